"""The codec alone: wire bytes -> Query (or a ready error reply, or a drop), Answer -> bytes."""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest
from dnslib import MX, NS, QTYPE, RR, A, DNSLabel

from gdns.answer.types import Answer, ClientSubnet, Query
from gdns.server import codec
from gdns.server.handler import Handler

CLIENT = ("192.0.2.200", 53000)
HOST = b"\x04HoSt\x04test\x07example\x00"
A_IN = struct.pack("!HH", 1, 1)


def header(qid: int = 7, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def opt_rr(payload: int = 1232, ttl: int = 0, rdata: bytes = b"", owner: bytes = b"\x00") -> bytes:
    return owner + struct.pack("!HHIH", 41, payload, ttl, len(rdata)) + rdata


def ecs(family: int, source: int, scope: int, address: bytes) -> bytes:
    data = struct.pack("!HBB", family, source, scope) + address
    return struct.pack("!HH", 8, len(data)) + data


def decode(wire: bytes, transport: str = "udp"):
    return codec.decode(wire, transport, CLIENT)


def reply_of(result) -> dns.message.Message:
    assert isinstance(result, codec.Reply), result
    return dns.message.from_wire(result)


def make(qname: str = "HoSt.test.example", qtype: str = "A", **kwargs) -> Query:
    result = decode(dns.message.make_query(qname, qtype, **kwargs).to_wire())
    assert isinstance(result, Query)
    return result


# -- decode: good queries ----------------------------------------------------------------------


def test_decode_plain_query():
    query = decode(header(qid=0xABCD, flags=0x0110) + HOST + A_IN, "tcp")
    assert isinstance(query, Query)
    assert query.id == 0xABCD
    assert query.qname == (b"HoSt", b"test", b"example")  # the client's case
    assert query.key == (b"host", b"test", b"example")
    assert (query.qtype, query.qclass) == (1, 1)
    assert query.transport == "tcp" and query.client == CLIENT
    assert query.rd and query.flags & 0x0010  # CD is seen (and not echoed)
    assert not query.edns and query.edns_payload == 512 and query.ecs is None


def test_decode_root_name():
    query = decode(header() + b"\x00" + A_IN)
    assert isinstance(query, Query) and query.qname == ()


def test_decode_edns_fields():
    query = make(use_edns=0, payload=4096, want_dnssec=True)
    assert query.edns and query.edns_version == 0
    assert query.edns_payload == 4096
    assert query.dnssec_ok


@pytest.mark.parametrize("payload", [0, 1, 511, 512])
def test_decode_small_payload_is_512(payload):
    assert make(use_edns=0, payload=payload).edns_payload == 512


def test_decode_ignores_unknown_options_and_other_additional_records():
    other = b"\x00" + struct.pack("!HHIH", 16, 1, 0, 2) + b"\x01x"
    rdata = struct.pack("!HH", 65001, 3) + b"abc" + struct.pack("!HH", 10, 0)
    query = decode(header(ar=2) + HOST + A_IN + other + opt_rr(rdata=rdata))
    assert isinstance(query, Query) and query.edns and query.ecs is None


def test_decode_cost_does_not_grow_with_chained_compression_pointers():
    """Found looking for what the fuzzers' small inputs (4 KiB at most) cannot reach: each
    record's owner a pointer to the previous record's owner, 5,000 records in a 64 KiB TCP
    message, made the decoder follow 7 million pointers (a second of CPU on the event loop).
    Names of records other than OPT are now skipped, their pointer checked (backwards) but
    not followed."""
    head = header(ar=0) + HOST + A_IN
    body, previous = b"", 12
    while len(head) + len(body) + 12 <= 65535:
        at = len(head) + len(body)
        body += struct.pack("!HHHIH", 0xC000 | previous, 1, 1, 0, 0)
        previous = at if at <= 0x3FFF else previous
    wire = head[:10] + struct.pack("!H", len(body) // 12) + head[12:] + body
    start = time.perf_counter()
    assert isinstance(decode(wire, "tcp"), Query)
    assert time.perf_counter() - start < 0.2  # about 3 ms; a second before


@pytest.mark.parametrize(
    "owner, ok",
    [
        (b"\xc0\x0c", True),  # a backward pointer: not followed
        (b"\x01x\xc0\x0c", True),
        (b"\xc0\x30", False),  # forward
        (b"\x41x", False),  # reserved label type
        ((b"\x3f" + b"x" * 63) * 4 + b"\x00", False),
    ],
    ids=["pointer", "label-then-pointer", "forward", "reserved", "over-255"],
)
def test_decode_checks_the_names_of_skipped_records(owner, ok):
    record = owner + struct.pack("!HHIH", 1, 1, 60, 0)
    result = decode(header(an=1) + HOST + A_IN + record + b"\x00" * 40)
    assert isinstance(result, Query) if ok else result[3] & 0xF == dns.rcode.FORMERR
    assert decode(header(an=1) + HOST + A_IN + owner[:1])[3] & 0xF == dns.rcode.FORMERR  # cut


def test_decode_accepts_an_opt_whose_owner_points_at_a_root_name():
    wire = header(ar=2) + HOST + A_IN + b"\x00" + struct.pack("!HHIH", 16, 1, 0, 0)
    at = len(wire)
    query = decode(wire + opt_rr(owner=struct.pack("!H", 0xC000 | (at - 11))))
    assert isinstance(query, Query) and query.edns
    query = decode(wire + opt_rr(owner=b"\xc0\x0c"))  # the question's name: not the root
    assert query[3] & 0xF == dns.rcode.FORMERR


def test_decode_skips_answer_and_authority_records():
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 9])
    query = decode(header(an=1, ns=1, ar=1) + HOST + A_IN + record + record + opt_rr())
    assert isinstance(query, Query) and query.edns


@pytest.mark.parametrize(
    "family, source, address, network",
    [
        (1, 24, b"\xc6\x33\x64", "198.51.100.0/24"),
        (1, 20, b"\xc6\x33\x60", "198.51.96.0/20"),
        (1, 32, b"\xcb\x00\x71\x07", "203.0.113.7/32"),
        (1, 0, b"", "0.0.0.0/0"),
        (2, 56, bytes.fromhex("20010db8123456"), "2001:db8:1234:5600::/56"),
    ],
)
def test_decode_ecs(family, source, address, network):
    query = decode(header(ar=1) + HOST + A_IN + opt_rr(rdata=ecs(family, source, 0, address)))
    assert isinstance(query, Query)
    assert query.ecs == ClientSubnet(family, source, ipaddress.ip_network(network))


# -- decode: drops and errors --------------------------------------------------------------------


@pytest.mark.parametrize("wire", [b"", b"\x00", header()[:11]])
def test_decode_drops_packets_without_a_header(wire):
    assert decode(wire) is None


@pytest.mark.parametrize("flags", [0x8000, 0x8400, 0x8103])
def test_decode_drops_responses(flags):
    assert decode(header(flags=flags) + HOST + A_IN) is None


@pytest.mark.parametrize(
    "wire",
    [
        header(qd=0),
        header(qd=2) + HOST + A_IN + HOST + A_IN,
        header(),
        header() + b"\xc0\x0c" + A_IN,  # pointer in the question
        header() + b"\x04host\xc0\x0c" + A_IN,
        header() + b"\x80abc\x00" + A_IN,  # reserved label type
        header() + b"\x40" + b"a" * 64 + b"\x00" + A_IN,  # 64-octet label
        header() + (b"\x3f" + b"a" * 63) * 4 + b"\x00" + A_IN,  # 257 octets
        header() + b"\x04ho",
        header() + HOST,
        header() + HOST + b"\x00",
        header() + HOST + struct.pack("!HH", 41, 1),  # OPT as the question type
        header(an=1) + HOST + A_IN,
        header(ar=1) + HOST + A_IN + b"\x00\x00\x29\x04",
        header(ar=1) + HOST + A_IN + b"\xc0\x23" + b"\x00" * 10,  # record name points at itself
        header(ar=1) + HOST + A_IN + b"\xc0\x40" + b"\x00" * 40,  # points forward
        header(ar=2) + HOST + A_IN + opt_rr() + opt_rr(),
        header(ar=1) + HOST + A_IN + opt_rr(owner=b"\x01x\x00"),
        header(ar=1) + HOST + A_IN + opt_rr(rdata=b"\x00\x08\x00\x09\x00"),
        header(ar=1) + HOST + A_IN + opt_rr(rdata=b"\x00\x08"),
    ],
)
def test_decode_formerr(wire):
    reply = reply_of(decode(wire))
    assert reply.id == 7
    assert reply.rcode() == dns.rcode.FORMERR
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.RD
    assert not reply.flags & (dns.flags.AA | dns.flags.RA | dns.flags.TC)
    assert not reply.answer and not reply.authority


def test_decode_formerr_echoes_a_readable_question():
    reply = reply_of(decode(header(ar=2) + HOST + A_IN + opt_rr() + opt_rr()))
    assert reply.question[0].name.to_text() == "HoSt.test.example."


def test_decode_exact_limits_are_legal():
    label63 = b"\x3f" + b"a" * 63
    name255 = label63 * 3 + b"\x3d" + b"a" * 61 + b"\x00"
    assert len(name255) == 255
    assert isinstance(decode(header() + name255 + A_IN), Query)
    assert isinstance(decode(header() + label63 + b"\x00" + A_IN), Query)


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_decode_other_opcodes_are_notimp(opcode):
    soa_in = struct.pack("!HH", 6, 1)  # dnspython reads an UPDATE's zone section only as SOA
    reply = reply_of(decode(header(flags=0x0100 | opcode << 11) + HOST + soa_in))
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.opcode() == opcode
    assert reply.question[0].name.to_text() == "HoSt.test.example."


def test_decode_notimp_even_without_one_question():
    reply = reply_of(decode(header(flags=4 << 11, qd=0)))
    assert reply.rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize(
    "question",
    [b"", b"\x04HoSt\x04te", b"\x04host\xc0\x0c" + A_IN, b"\x40" + A_IN, HOST + b"\x00"],
    ids=["none", "cut-in-name", "pointer", "reserved-label", "cut-in-type"],
)
def test_decode_notimp_even_when_the_question_is_malformed(question):
    """Found by fuzzing: an unknown opcode with an unreadable question got FORMERR, unlike
    one with a question count other than one (NOTIMP). The opcode decides first."""
    for opcode in (1, 2, 5, 15):
        result = decode(header(flags=opcode << 11) + question)
        assert isinstance(result, codec.Reply)
        assert result[3] & 0xF == dns.rcode.NOTIMP
        assert (result[2] >> 3) & 0xF == opcode
        assert struct.unpack_from("!H", result, 4)[0] == 0  # no question echoed
    assert decode(header() + question)[3] & 0xF == dns.rcode.FORMERR  # QUERY: still FORMERR


@pytest.mark.parametrize("version", [1, 2, 255])
def test_decode_badvers(version):
    wire = header(ar=1) + HOST + A_IN + opt_rr(ttl=(version << 16) | 0x8000)
    reply = reply_of(decode(wire))
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.flags & 0xF == 0 and reply.edns == 0
    assert reply.ednsflags & dns.flags.DO
    assert reply.question[0].name.to_text() == "HoSt.test.example."


@pytest.mark.parametrize(
    "option",
    [
        ecs(1, 33, 0, b"\x01\x02\x03\x04\x05"),
        ecs(2, 129, 0, b"\x20" * 17),
        ecs(0, 0, 0, b""),
        ecs(3, 8, 0, b"\x01"),
        ecs(1, 24, 0, b"\x01\x02\x03\x04"),
        ecs(1, 24, 0, b"\x01\x02"),
        ecs(1, 20, 0, b"\xc6\x33\x6f"),
        ecs(1, 24, 24, b"\xc6\x33\x64"),
        struct.pack("!HH", 8, 3) + b"\x00\x01\x18",
    ],
)
def test_decode_malformed_ecs_is_formerr_with_opt(option):
    reply = reply_of(decode(header(ar=1) + HOST + A_IN + opt_rr(rdata=option)))
    assert reply.rcode() == dns.rcode.FORMERR
    assert reply.edns == 0


# -- encode -----------------------------------------------------------------------------------------


def a_records(owner: str, count: int) -> list[RR]:
    addresses = (ipaddress.ip_address("192.0.2.0") + i for i in range(count))  # up to 256
    return [RR(DNSLabel(owner), QTYPE.A, ttl=60, rdata=A(str(a))) for a in addresses]


def test_encode_header_bits():
    query = make(use_edns=False)
    query = dataclasses.replace(query, flags=query.flags | 0x0010 | 0x0020)  # CD, AD
    reply = dns.message.from_wire(codec.encode(query, Answer(answer=a_records("HoSt.test.example", 1))))
    assert reply.id == query.id
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD
    assert not reply.flags & (dns.flags.RA | dns.flags.CD | dns.flags.AD | dns.flags.TC)
    assert reply.question[0].name.to_text() == "HoSt.test.example."
    assert reply.edns == -1


def test_encode_rcode_and_aa_from_the_answer():
    reply = dns.message.from_wire(codec.encode(make(), Answer(rcode=5, aa=False)))
    assert reply.rcode() == dns.rcode.REFUSED and not reply.flags & dns.flags.AA


def test_encode_opt_carries_payload_do_and_extended_rcode():
    query = make(use_edns=0, want_dnssec=True)
    reply = dns.message.from_wire(codec.encode(query, Answer(rcode=16), max_udp=1400))
    assert reply.edns == 0 and reply.payload == 1400
    assert reply.ednsflags & dns.flags.DO
    assert reply.rcode() == dns.rcode.BADVERS


@pytest.mark.parametrize("scope, echoed", [(0, 0), (16, 16), (32, 24)])
def test_encode_echoes_ecs_with_a_scope_never_wider_than_the_source(scope, echoed):
    query = make(use_edns=0, options=[dns.edns.ECSOption("198.51.100.0", 24)])
    reply = dns.message.from_wire(codec.encode(query, Answer(ecs_scope=scope)))
    [option] = reply.options
    assert (option.address, option.srclen, option.scopelen) == ("198.51.100.0", 24, echoed)


@pytest.mark.parametrize(
    "transport, edns, payload, count, truncated",
    [
        ("udp", False, 0, 25, False),  # about 450 bytes
        ("udp", False, 0, 40, True),  # about 690 bytes: over 512
        ("udp", True, 512, 40, True),
        ("udp", True, 1232, 40, False),
        ("udp", True, 4096, 100, True),  # over our 1232 whatever the client offers
        ("tcp", False, 0, 100, False),
        ("tcp", True, 512, 250, False),
    ],
)
def test_encode_truncates_to_the_clients_size(transport, edns, payload, count, truncated):
    kwargs = {"use_edns": 0, "payload": payload} if edns else {"use_edns": False}
    query = decode(dns.message.make_query("big.test.example", "A", **kwargs).to_wire(), transport)
    wire = codec.encode(query, Answer(answer=a_records("big.test.example", count)))
    reply = dns.message.from_wire(wire)
    assert bool(reply.flags & dns.flags.TC) == truncated
    if truncated:
        assert not reply.answer and reply.question
        assert len(wire) <= (min(payload, 1232) if edns else 512)
        assert reply.edns == (0 if edns else -1)
    else:
        assert len(reply.answer[0]) == count


def test_encode_drops_optional_additional_data_before_truncating():
    query = make("mail.test.example", "MX", use_edns=False)
    answer = Answer(answer=a_records("mail.test.example", 1), additional=a_records("big.test.example", 40))
    reply = dns.message.from_wire(codec.encode(query, answer))
    assert not reply.flags & dns.flags.TC
    assert reply.answer and not reply.additional


def test_encode_truncates_a_referral_whose_glue_does_not_fit():
    query = make("www.child.test.example", "A", use_edns=False)
    answer = Answer(aa=False, additional=a_records("ns.child.test.example", 40))
    reply = dns.message.from_wire(codec.encode(query, answer))
    assert reply.flags & dns.flags.TC


def test_encode_compresses_only_names_a_pointer_can_reach():
    """Found while extending the fuzzing to large answers: in a TCP reply over 16 KiB, names
    first written past offset 16383
    were compressed against with pointers whose 14-bit offset had lost its top bits (dnslib),
    so the additional section's owners pointed into the wrong bytes."""
    query = make("mail.test.example", "MX", use_edns=False)
    query = dataclasses.replace(query, transport="tcp")
    exchanges = [f"mx{i}.test.example" for i in range(1200)]
    mx = [RR(DNSLabel("mail.test.example"), QTYPE.MX, ttl=60, rdata=MX(DNSLabel(x))) for x in exchanges]
    glue = [rr for x in exchanges for rr in a_records(x, 1)]
    wire = codec.encode(query, Answer(answer=mx, additional=glue))
    assert len(wire) > 2 * 0x4000
    reply = dns.message.from_wire(wire)
    assert [r.exchange.to_text() for r in reply.answer[0]] == [x + "." for x in exchanges]
    assert [rrset.name.to_text() for rrset in reply.additional] == [x + "." for x in exchanges]
    assert wire.count(b"\xc0\x0c\x00\x0f") == 1200  # still compressed where it can be: MX owners


def test_servfail_for_our_own_errors():
    reply = dns.message.from_wire(codec.servfail(header(qid=99) + HOST + A_IN))
    assert reply.id == 99 and reply.rcode() == dns.rcode.SERVFAIL and reply.flags & dns.flags.RD
    assert codec.servfail(b"\x00\x01") is None


def test_handler_turns_an_engine_failure_into_servfail():
    class Broken:
        zones = geo = None
        zones_serial = 0
        on_zones: list = []

        def answer(self, query):
            raise RuntimeError("a bug")

    handler = Handler(Broken())
    reply = dns.message.from_wire(handler(header(qid=5) + HOST + A_IN, "udp", CLIENT))
    assert reply.id == 5 and reply.rcode() == dns.rcode.SERVFAIL
    assert handler(header(flags=0x8000) + HOST + A_IN, "udp", CLIENT) is None  # still dropped


def test_reply_echoes_the_client_spelling():
    # Names are packed in lower case, then the question goes back as sent: the owner name
    # points at it, and a name that shares its suffix is compressed against it regardless
    # of case (so the bytes after the question do not depend on the spelling).
    answers = {}
    for spelling in ("HoSt.TeSt.ExAmPlE", "host.test.example"):
        query = make(spelling)
        answer = Answer(
            answer=[RR(DNSLabel(list(query.key)), QTYPE.A, rdata=A("192.0.2.2"), ttl=60)],
            authority=[RR(DNSLabel("test.example"), QTYPE.NS, rdata=NS("ns1.test.example"), ttl=60)],
        )
        wire = codec.encode(query, answer)
        answers[spelling] = wire
        message = dns.message.from_wire(wire)
        assert str(message.question[0].name) == spelling + "."
        assert str(message.answer[0].name) == spelling + "."
        assert wire[12 : 12 + len(query.question)] == query.question
    upper, lower = answers.values()
    start = 12 + len(b"\x04host\x04test\x07example\x00") + 4
    assert upper[start:] == lower[start:] and upper[start : start + 2] == b"\xc0\x0c"
