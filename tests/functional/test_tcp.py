"""Truncation to the client's UDP size, and TCP as RFC 7766 asks: pipelining, idle timeout,
a bound on open connections. example_server runs with --tcp-idle-timeout 2 and
--tcp-max-connections 20."""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.conftest import ROOT
from tests.wire import read_exact

IDLE_TIMEOUT = 2.0
MAX_CONNECTIONS = 20
DATA = ROOT / "tests" / "data"


def connect(server, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(server.addresses[0], timeout=timeout)


def frame(message: dns.message.Message) -> bytes:
    wire = message.to_wire()
    return struct.pack("!H", len(wire)) + wire


def read_message(sock: socket.socket) -> dns.message.Message:
    size = struct.unpack("!H", read_exact(sock, 2))[0]
    return dns.message.from_wire(read_exact(sock, size))


def works(sock: socket.socket, qname: str = "host.test.example") -> bool:
    query = dns.message.make_query(qname, "A")
    sock.sendall(frame(query))
    reply = read_message(sock)
    return reply.id == query.id and reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server closes (FIN or RST) within `timeout`; False if it stays open."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


# -- truncation ----------------------------------------------------------------------------------


def test_answer_over_512_without_edns_is_truncated_and_complete_over_tcp(example_server):
    udp = example_server.query("big.test.example", "A", use_edns=False)
    assert udp.flags & dns.flags.TC and udp.flags & dns.flags.AA
    assert udp.rcode() == dns.rcode.NOERROR
    assert not udp.answer and not udp.authority
    assert udp.question[0].name.to_text() == "big.test.example."
    assert len(udp.to_wire()) <= 512
    tcp = example_server.query("big.test.example", "A", tcp=True, use_edns=False)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 40
    assert len(tcp.to_wire()) > 512


def test_edns_payload_lets_the_same_answer_fit_over_udp(example_server):
    udp = example_server.query("big.test.example", "A", use_edns=0, payload=1232)
    assert not udp.flags & dns.flags.TC
    assert len(udp.answer[0]) == 40


@pytest.mark.parametrize("payload", [512, 1232, 4096, 65535])
def test_huge_txt_is_truncated_over_udp_whatever_the_payload(example_server, payload):
    # About 1.6 kB: more than our UDP maximum (1232) even when the client offers more.
    udp = example_server.query("huge.test.example", "TXT", use_edns=0, payload=payload)
    assert udp.flags & dns.flags.TC
    assert not udp.answer
    assert udp.edns == 0  # the OPT stays, so the client still learns our size
    assert len(udp.to_wire()) <= min(payload, 1232)
    tcp = example_server.query("huge.test.example", "TXT", tcp=True, use_edns=0, payload=payload)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 6
    assert tcp.answer[0].ttl == 60
    assert len(tcp.to_wire()) > 1232


def test_additional_data_that_does_not_fit_is_left_out_without_tc(example_server):
    # RFC 2181 section 9: TC only when the answer itself does not fit.
    udp = example_server.query("bigmail.test.example", "MX", use_edns=False)
    assert not udp.flags & dns.flags.TC
    assert udp.answer[0][0].exchange.to_text() == "big.test.example."
    assert not udp.additional
    tcp = example_server.query("bigmail.test.example", "MX", tcp=True, use_edns=False)
    assert len(tcp.additional[0]) == 40


# -- pipelining ------------------------------------------------------------------------------------

NAMES = [
    "host.test.example",
    "nothere.test.example",
    "chain1.test.example",
    "big.test.example",
    "example.org",
]


def test_pipelined_queries_in_one_write_are_all_answered(example_server):
    queries = [dns.message.make_query(name, "A") for name in NAMES]
    with connect(example_server) as sock:
        sock.sendall(b"".join(frame(q) for q in queries))
        replies = {}
        for _ in queries:
            reply = read_message(sock)
            replies[reply.id] = reply
        assert works(sock)  # the connection stays usable
    assert set(replies) == {q.id for q in queries}
    for query in queries:
        reply = replies[query.id]
        assert reply.question == query.question
    by_name = {str(r.question[0].name): r for r in replies.values()}
    assert by_name["nothere.test.example."].rcode() == dns.rcode.NXDOMAIN
    assert by_name["example.org."].rcode() == dns.rcode.REFUSED
    assert len(by_name["big.test.example."].answer[0]) == 40  # no TC over TCP


def test_messages_split_across_writes_are_reassembled(example_server):
    data = b"".join(frame(dns.message.make_query(name, "A")) for name in NAMES[:3])
    with connect(example_server) as sock:
        # Awkward boundaries: inside the length prefix, inside a question, between messages.
        for start, end in [(0, 1), (1, 9), (9, 40), (40, len(data))]:
            sock.sendall(data[start:end])
            time.sleep(0.01)
        answered = [read_message(sock) for _ in range(3)]
    assert [str(r.question[0].name) for r in answered] == [n + "." for n in NAMES[:3]]


def test_a_dropped_message_does_not_stop_the_ones_after_it(example_server):
    response = dns.message.make_response(dns.message.make_query("host.test.example", "A")).to_wire()
    junk = [b"", b"\x01\x02\x03", response]  # empty, short header, a response (QR=1): all dropped
    query = dns.message.make_query("host.test.example", "A")
    with connect(example_server) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(j)) + j for j in junk) + frame(query))
        reply = read_message(sock)
    assert reply.id == query.id and reply.answer


def test_client_half_close_still_gets_its_answer(example_server):
    query = dns.message.make_query("host.test.example", "A")
    with connect(example_server) as sock:
        sock.sendall(frame(query))
        sock.shutdown(socket.SHUT_WR)
        reply = read_message(sock)
        assert reply.id == query.id and reply.answer
        assert closed_by_server(sock, 2.0)


COUNT = 3000  # about 5 MB of replies: more than the kernel and asyncio buffers hold


def test_a_client_that_reads_late_still_gets_every_answer(example_server):
    # Far more reply bytes than the server's write buffer: it must stop and resume, not drop.
    queries = [dns.message.make_query("huge.test.example", "TXT", id=i) for i in range(COUNT)]
    data = b"".join(frame(q) for q in queries)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: the server must wait
        sock.settimeout(5.0)
        sock.connect(example_server.addresses[0])
        sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        sender.start()
        time.sleep(0.2)  # let the server fill its buffers while nobody reads
        ids = [read_message(sock).id for _ in queries]
        sender.join(5)
    assert sorted(ids) == list(range(COUNT))


# -- idle timeout ------------------------------------------------------------------------------------


def test_idle_connections_are_closed_after_the_timeout(example_server):
    start = time.monotonic()
    with connect(example_server) as silent, connect(example_server) as used:
        assert works(used)
        assert not closed_by_server(silent, IDLE_TIMEOUT / 2)  # open while under the timeout
        assert closed_by_server(silent, IDLE_TIMEOUT + 2)
        assert closed_by_server(used, 1.0)
    elapsed = time.monotonic() - start
    assert IDLE_TIMEOUT * 0.9 <= elapsed < IDLE_TIMEOUT + 3


# -- connection bound --------------------------------------------------------------------------------


def test_connections_beyond_the_limit_are_closed_and_existing_ones_keep_working(example_server):
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(MAX_CONNECTIONS):
            sock = stack.enter_context(connect(example_server))
            assert works(sock)
            held.append(sock)
        extras = [stack.enter_context(connect(example_server)) for _ in range(3)]
        for sock in extras:
            with contextlib.suppress(OSError):  # the server may have reset it already
                sock.sendall(frame(dns.message.make_query("host.test.example", "A")))
            assert closed_by_server(sock, 2.0)
        for sock in held:
            assert works(sock)
    # Closed connections give their places back.
    for _ in range(30):
        with connect(example_server) as sock:
            try:
                if works(sock):
                    break
            except (ConnectionError, OSError):
                pass
        time.sleep(0.1)
    else:
        pytest.fail("no connection accepted after the others closed")
    assert example_server.proc.poll() is None


def test_clients_that_never_read_do_not_keep_their_slots(start_server, zone_dir):
    shutil.copy(DATA / "test.example.yaml", zone_dir)
    # Their replies back up, so the write timeout (not the idle one) frees their slots.
    server = start_server(zone_dir, "--tcp-max-connections", "2", "--tcp-write-timeout", "0.5")
    data = b"".join(frame(dns.message.make_query("huge.test.example", "TXT")) for _ in range(COUNT))
    with contextlib.ExitStack() as stack:
        for _ in range(2):  # fill every slot with a client that sends a lot and reads nothing
            hog = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            hog.settimeout(5.0)
            hog.connect(server.addresses[0])
            threading.Thread(target=_send_quietly, args=(hog, data), daemon=True).start()
        time.sleep(0.5)
        for _ in range(50):  # at most about 5 s
            with contextlib.suppress(OSError), connect(server, timeout=1.0) as sock:
                if works(sock):
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the write timeout never freed the slots of clients that do not read")


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server aborts us halfway: that is the point
        sock.sendall(data)
