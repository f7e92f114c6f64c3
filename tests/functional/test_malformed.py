"""Malformed packets get FORMERR or are dropped, over UDP and TCP, and never crash the server
or stall other clients.

A drop is shown without waiting for a timeout: the bad packet is followed by a good query on
the same socket, and the first reply must be the good query's.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.wire import read_exact

FORMERR, DROP = "formerr", "drop"
QID = 0x2BAD
A_IN = struct.pack("!HH", 1, 1)
HOST = b"\x04host\x04test\x07example\x00"
RR_RDLENGTH_99 = struct.pack("!HHIH", 16, 1, 0, 99)  # type, class, TTL, a length with no data
SELF_POINTER = struct.pack("!H", 0xC000 | (12 + len(HOST) + 4))  # a record name pointing at itself


@pytest.fixture(params=[False, True], ids=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param


def header(qid: int = QID, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def long_name(octets: int) -> bytes:
    """A wire name of exactly `octets` octets (labels of up to 63) ending in test.example."""
    tail = b"\x04test\x07example\x00"
    body = octets - len(tail)
    labels = b""
    while body > 0:
        size = min(63, body - 1)
        if body - (size + 1) == 1:  # never leave a one-octet gap (a label needs two)
            size -= 1
        labels += bytes([size]) + b"a" * size
        body -= size + 1
    return labels + tail


CASES = [
    ("empty", b"", DROP),
    ("short-header", b"\x2b\xad\x01", DROP),
    ("eleven-bytes", header()[:11], DROP),
    ("response", header(flags=0x8500) + HOST + A_IN, DROP),
    ("response-garbage", header(flags=0x8000, qd=7) + b"\xff" * 20, DROP),
    ("header-only", header(), FORMERR),
    ("qdcount-0", header(qd=0), FORMERR),
    ("qdcount-0-with-question", header(qd=0) + HOST + A_IN, FORMERR),
    ("qdcount-2", header(qd=2) + HOST + A_IN + HOST + A_IN, FORMERR),
    ("pointer-in-question", header() + b"\xc0\x0c" + A_IN, FORMERR),
    ("pointer-after-label", header() + b"\x04host\xc0\x0c" + A_IN, FORMERR),
    ("pointer-forward", header() + b"\xc0\x20" + A_IN + b"\x00" * 20, FORMERR),
    ("pointer-cut", header() + b"\x04host\xc0", FORMERR),
    ("reserved-label-type", header() + b"\x80abc\x00" + A_IN, FORMERR),
    ("extended-label-type", header() + b"\x41" + b"\x00" * 8 + A_IN, FORMERR),
    ("label-too-long", header() + b"\x40" + b"a" * 64 + b"\x00" + A_IN, FORMERR),
    ("name-over-255", header() + long_name(256) + A_IN, FORMERR),
    ("name-way-over-255", header() + (b"\x3f" + b"a" * 63) * 5 + b"\x00" + A_IN, FORMERR),
    ("label-past-end", header() + b"\x04ho", FORMERR),
    ("name-without-end", header() + b"\x04host\x04test", FORMERR),
    ("no-type-class", header() + HOST, FORMERR),
    ("half-type-class", header() + HOST + b"\x00\x01", FORMERR),
    ("qtype-opt", header() + HOST + struct.pack("!HH", 41, 1), FORMERR),
    ("answer-count-lie", header(an=5) + HOST + A_IN, FORMERR),
    ("authority-cut", header(ns=1) + HOST + A_IN + b"\x00\x00\x02\x00", FORMERR),
    ("additional-cut", header(ar=1) + HOST + A_IN + b"\x00\x00\x29", FORMERR),
    ("additional-pointer-loop", header(ar=1) + HOST + A_IN + SELF_POINTER + b"\x00" * 10, FORMERR),
    (
        "additional-rdlength-lie",
        header(ar=1) + HOST + A_IN + b"\x00" + struct.pack("!HHIH", 16, 1, 0, 99),
        FORMERR,
    ),
]


def send_all(server, packets: list[bytes], tcp: bool, expect: int, timeout: float = 3.0) -> list[bytes]:
    """Send the packets (on one socket, in order, in one TCP write) and read `expect` replies."""
    host, port = server.addresses[0]
    replies: list[bytes] = []
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"".join(struct.pack("!H", len(p)) + p for p in packets))
            for _ in range(expect):
                size = struct.unpack("!H", read_exact(sock, 2))[0]
                replies.append(read_exact(sock, size))
        return replies
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for packet in packets:
            sock.sendto(packet, (host, port))
        for _ in range(expect):
            replies.append(sock.recv(65535))
    return replies


def probe_query() -> dns.message.Message:
    return dns.message.make_query("host.test.example", "A")


def is_reply_to(wire: bytes, query: dns.message.Message) -> bool:
    try:
        return query.is_response(dns.message.from_wire(wire))
    except Exception:
        return False


def assert_answers_normally(server) -> None:
    assert server.proc.poll() is None, "the server died"
    for tcp in (False, True):
        reply = server.query("HoSt.test.example", "A", tcp=tcp, timeout=2.0)
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
        assert [rr.address for rr in reply.answer[0]] == ["192.0.2.2"]
    assert "internal error" not in server.log() and "Traceback" not in server.log()


@pytest.mark.parametrize("name, wire, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_query(example_server, tcp, name, wire, expected):
    probe = probe_query()
    first, *rest = send_all(example_server, [wire, probe.to_wire()], tcp, 1 if expected == DROP else 2)
    if expected == DROP:
        assert dns.message.from_wire(first).id == probe.id, "a reply to a packet that must be dropped"
        return
    assert len(first) >= 12
    qid, flags, qdcount, ancount, nscount, arcount = struct.unpack("!HHHHHH", first[:12])
    assert qid == QID
    assert flags & 0x8000, "QR"
    assert flags & 0x000F == dns.rcode.FORMERR
    assert flags & 0x0100, "RD copied"
    assert not flags & 0x0480, "AA and RA clear"
    assert ancount == nscount == 0
    assert qdcount <= 1
    assert dns.message.from_wire(rest[0]).id == probe.id  # still serving on this socket


def test_exact_limits_are_accepted(example_server, tcp):
    """The boundaries themselves are legal: a 63-octet label, a 255-octet name."""
    label63 = header(qid=1) + b"\x3f" + b"a" * 63 + b"\x04test\x07example\x00" + A_IN
    name255 = header(qid=2) + long_name(255) + A_IN
    assert len(long_name(255)) == 255
    for reply in send_all(example_server, [label63, name255], tcp, 2):
        message = dns.message.from_wire(reply)
        assert message.rcode() == dns.rcode.NXDOMAIN  # parsed, looked up, not in the zone
        assert message.flags & dns.flags.AA


def test_a_batch_of_garbage_then_normal_service(example_server, tcp):
    rng = random.Random(0x6D5)  # fixed seed: the same packets every run
    packets = []
    for _ in range(150):
        packet = bytearray(rng.randbytes(rng.randrange(0, 300)))
        if len(packet) > 2 and rng.random() < 0.7:
            packet[2] &= 0x7F  # mostly "queries", so they get past the QR check
        packets.append(bytes(packet))
    packets += [wire for _, wire, _ in CASES]
    probe = probe_query()
    packets.append(probe.to_wire())
    host, port = example_server.addresses[0]
    seen: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as sock:
        sock.settimeout(3.0)
        if tcp:
            sock.connect((host, port))
            sock.sendall(b"".join(struct.pack("!H", len(p)) + p for p in packets))
        else:
            for packet in packets:
                sock.sendto(packet, (host, port))
        for _ in range(len(packets)):
            if tcp:
                seen.append(read_exact(sock, struct.unpack("!H", read_exact(sock, 2))[0]))
            else:
                seen.append(sock.recv(65535))
            if is_reply_to(seen[-1], probe):
                break
    assert dns.message.from_wire(seen[-1]).answer, "the good query after the garbage was answered"
    for reply in seen:
        assert len(reply) >= 12 and reply[2] & 0x80, "every reply is a response"
        assert reply[3] & 0x0F != dns.rcode.SERVFAIL, "garbage is the client's fault, never SERVFAIL"
    assert_answers_normally(example_server)


def test_a_stalled_tcp_client_does_not_stall_others(example_server):
    host, port = example_server.addresses[0]
    with socket.create_connection((host, port), timeout=3.0) as stalled:
        stalled.sendall(b"\xff\xff" + b"\x00" * 10)  # announces 65535 bytes, sends 10
        with socket.create_connection((host, port), timeout=3.0) as slow:
            slow.sendall(b"\x00")  # half a length prefix
            start = time.monotonic()
            assert_answers_normally(example_server)
            assert time.monotonic() - start < 1.0


def test_the_server_survived_everything(example_server):
    assert_answers_normally(example_server)
