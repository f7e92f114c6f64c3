"""EDNS0 (RFC 6891) and Client Subnet (RFC 7871) end to end, over real UDP and TCP."""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.wire import read_exact

OPT = 41
ECS = 8


@pytest.fixture(params=[False, True], ids=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param


def raw_exchange(server, wire: bytes, tcp: bool, timeout: float = 3.0) -> dns.message.Message:
    host, port = server.addresses[0]
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", read_exact(sock, 2))[0]
            return dns.message.from_wire(read_exact(sock, size))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, (host, port))
        return dns.message.from_wire(sock.recv(65535))


def query_with_additional(
    qid: int, *records: bytes, qname: bytes = b"\x04host\x04test\x07example\x00"
) -> bytes:
    """A query for host.test.example A with hand-made additional records."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, len(records))
    return header + qname + struct.pack("!HH", 1, 1) + b"".join(records)


def opt_rr(payload: int = 1232, ttl: int = 0, rdata: bytes = b"", owner: bytes = b"\x00") -> bytes:
    return owner + struct.pack("!HHIH", OPT, payload, ttl, len(rdata)) + rdata


def option(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


def ecs(family: int, source: int, scope: int, address: bytes) -> bytes:
    return option(ECS, struct.pack("!HBB", family, source, scope) + address)


# -- OPT ---------------------------------------------------------------------------------------


def test_opt_is_echoed_with_our_payload(example_server, tcp):
    reply = example_server.query("host.test.example", "A", tcp=tcp, use_edns=0, payload=4096)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert reply.edns == 0
    assert reply.payload == 1232
    assert not reply.ednsflags & dns.flags.DO


def test_no_opt_in_the_reply_without_opt_in_the_query(example_server, tcp):
    reply = example_server.query("host.test.example", "A", tcp=tcp, use_edns=False)
    assert reply.edns == -1
    assert reply.answer


def test_do_bit_is_copied(example_server, tcp):
    reply = example_server.query("host.test.example", "A", tcp=tcp, use_edns=0, want_dnssec=True)
    assert reply.edns == 0
    assert reply.ednsflags & dns.flags.DO  # RFC 3225
    assert reply.answer


def test_opt_is_on_negative_and_refused_replies_too(example_server, tcp):
    for qname, rcode in [("nothere.test.example", dns.rcode.NXDOMAIN), ("example.org", dns.rcode.REFUSED)]:
        reply = example_server.query(qname, "A", tcp=tcp, use_edns=0)
        assert reply.rcode() == rcode
        assert reply.edns == 0


@pytest.mark.parametrize("version", [1, 255])
def test_unknown_version_gets_badvers_with_opt(example_server, tcp, version):
    reply = example_server.query("host.test.example", "A", tcp=tcp, use_edns=version)
    assert reply.rcode() == dns.rcode.BADVERS  # 16: 0 in the header, 1 in OPT's extended rcode
    assert reply.flags & 0xF == 0
    assert reply.edns == 0  # we say which version we speak
    assert not reply.answer
    assert reply.question[0].name.to_text() == "host.test.example."


def test_badvers_advertises_the_configured_udp_size(start_server, zone_dir):
    server = start_server(zone_dir, "--max-udp-size", "4096")
    reply = server.query("www.gslb.example.com", "A", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.payload == 4096
    assert server.query("www.gslb.example.com", "A", use_edns=0).payload == 4096


def test_unknown_options_are_ignored(example_server, tcp):
    options = [dns.edns.GenericOption(65001, b"xyz"), dns.edns.GenericOption(65002, b"")]
    reply = example_server.query("host.test.example", "A", tcp=tcp, use_edns=0, options=options)
    assert reply.rcode() == dns.rcode.NOERROR
    assert [rr.address for rr in reply.answer[0]] == ["192.0.2.2"]
    assert not reply.options  # not echoed either


@pytest.mark.parametrize("payload", [0, 100, 200])
def test_payload_below_512_is_treated_as_512(example_server, tcp, payload):
    # mid.test.example A is about 200 bytes: more than the payload asked for, less than 512.
    reply = example_server.query("mid.test.example", "A", tcp=tcp, use_edns=0, payload=payload)
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == 10
    assert len(reply.to_wire()) > payload


def test_two_opt_records_are_formerr(example_server, tcp):
    wire = query_with_additional(0x1001, opt_rr(), opt_rr())
    reply = raw_exchange(example_server, wire, tcp)
    assert reply.id == 0x1001
    assert reply.rcode() == dns.rcode.FORMERR
    assert not reply.answer


@pytest.mark.parametrize(
    "record",
    [
        opt_rr(owner=b"\x04host\x00"),  # OPT not at the root
        opt_rr(rdata=b"\x00\x0a\x00\x08\x01"),  # option longer than the OPT data
        opt_rr(rdata=b"\x00\x0a\x00"),  # half an option header
        opt_rr()[:-2] + b"\x00\x10",  # RDLENGTH past the end of the packet
        opt_rr()[:5],  # OPT cut off in its fixed part
    ],
    ids=["not-root", "option-overrun", "option-header-cut", "rdlength-overrun", "cut-short"],
)
def test_malformed_opt_is_formerr(example_server, tcp, record):
    reply = raw_exchange(example_server, query_with_additional(0x1002, record), tcp)
    assert reply.id == 0x1002
    assert reply.rcode() == dns.rcode.FORMERR


def test_other_additional_records_do_not_hide_the_opt(example_server, tcp):
    other = b"\x00" + struct.pack("!HHIH", 16, 1, 0, 2) + b"\x01x"  # a root TXT before the OPT
    reply = raw_exchange(example_server, query_with_additional(0x1003, other, opt_rr()), tcp)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.edns == 0


# -- ECS (RFC 7871) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, source", [("198.51.100.0", 24), ("203.0.113.7", 32), ("2001:db8:1234::", 48), ("0.0.0.0", 0)]
)
def test_ecs_is_echoed_with_scope_zero(example_server, tcp, address, source):
    sent = dns.edns.ECSOption(address, source)
    reply = example_server.query("host.test.example", "A", tcp=tcp, use_edns=0, options=[sent])
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    [echo] = [o for o in reply.options if o.otype == dns.edns.ECS]
    assert (echo.address, echo.srclen, echo.scopelen) == (address, source, 0)


@pytest.mark.parametrize(
    "data",
    [
        ecs(1, 33, 0, b"\xc6\x33\x64\x00\x00"),  # IPv4 prefix longer than 32
        ecs(2, 129, 0, b"\x20" * 17),  # IPv6 prefix longer than 128
        ecs(3, 8, 0, b"\x01"),  # unknown family
        ecs(1, 24, 0, b"\xc6\x33\x64\x00"),  # one address byte too many
        ecs(1, 24, 0, b"\xc6\x33"),  # one address byte too few
        ecs(1, 20, 0, b"\xc6\x33\x6f"),  # bits set beyond the source prefix
        ecs(1, 24, 8, b"\xc6\x33\x64"),  # a scope in a query
        option(ECS, b"\x00\x01\x18"),  # shorter than the fixed part
    ],
    ids=["v4-prefix", "v6-prefix", "family", "long-address", "short-address", "stray-bits", "scope", "short"],
)
def test_malformed_ecs_is_formerr(example_server, tcp, data):
    reply = raw_exchange(example_server, query_with_additional(0x1004, opt_rr(rdata=data)), tcp)
    assert reply.id == 0x1004
    assert reply.rcode() == dns.rcode.FORMERR
    assert not reply.answer
