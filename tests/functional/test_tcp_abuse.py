"""TCP limits end to end, against the real server on loopback: slow clients (trickling bytes,
never reading, idle, a message begun and abandoned) do not keep others from prompt answers over
TCP and UDP; the per-client limit refuses one address's extra connections while another
address still connects; a trickled message is cut at the read timeout; a client that never
reads is cut at the write timeout. Other 127.0.0.0/8 addresses stand in for other clients.
Every loop is bounded in count and time."""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import statistics
import struct
import threading
import time
import urllib.request

import dns.message
import dns.query
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, GdnsServer, wait_for
from tests.wire import read_exact

DATA = ROOT / "tests" / "data"
READ_TIMEOUT = 0.6
WRITE_TIMEOUT = 0.6
IDLE_TIMEOUT = 3.0
PER_CLIENT = 4
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy


def frame(qname: str, qtype: str = "A", qid: int | None = None) -> bytes:
    wire = dns.message.make_query(qname, qtype, id=qid).to_wire()
    return struct.pack("!H", len(wire)) + wire


def open_from(server, source: str, timeout: float = 2.0, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(server.addresses[0])
    return sock


def answered(sock: socket.socket) -> bool:
    """One query on `sock`; True when its answer comes back."""
    query = dns.message.make_query("host.test.example", "A")
    wire = query.to_wire()
    try:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        size = struct.unpack("!H", read_exact(sock, 2))[0]
        reply = dns.message.from_wire(read_exact(sock, size))
    except OSError:  # reset, closed or timed out
        return False
    return reply.id == query.id and reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def closed_now(sock: socket.socket) -> bool:
    """Without blocking: has the server closed (FIN or RST) this connection, which was sent no
    complete query (so anything readable is the close)?"""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def tcp_metrics(server) -> dict[str, float]:
    """gdns_dns_tcp_connections and each reason of gdns_dns_tcp_connections_closed_total."""
    with _OPENER.open(server.web + "/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gdns_dns_tcp_connections":
                out["open"] = sample.value
            elif sample.name == "gdns_dns_tcp_connections_closed_total":
                out[sample.labels["reason"]] = sample.value
    return out


@pytest.fixture(scope="module", params=["auto", "asyncio"])
def tight(request, tmp_path_factory):
    """A server with short TCP timeouts and a small per-client limit, on uvloop (when installed,
    as by default) and on asyncio's own loop: their transports read differently."""
    folder = tmp_path_factory.mktemp("zones")
    shutil.copy(DATA / "test.example.yaml", folder)
    server = GdnsServer(
        folder,
        "--event-loop",
        request.param,
        "--tcp-read-timeout",
        str(READ_TIMEOUT),
        "--tcp-write-timeout",
        str(WRITE_TIMEOUT),
        "--tcp-idle-timeout",
        str(IDLE_TIMEOUT),
        "--tcp-max-connections-per-client",
        str(PER_CLIENT),
        "--tcp-max-connections",
        "50",
    )
    yield server
    server.stop()


# -- slow clients do not slow the others -----------------------------------------------------------

TRICKLERS = IDLERS = ABANDONERS = 12
NON_READERS = 8


def test_many_slow_connections_do_not_delay_other_clients(start_server, zone_dir):
    shutil.copy(DATA / "test.example.yaml", zone_dir)
    # Timeouts long enough that the slow connections are all still open while we measure.
    server = start_server(
        zone_dir,
        *("--tcp-idle-timeout", "8", "--tcp-read-timeout", "8", "--tcp-write-timeout", "8"),
        *("--tcp-max-connections", "100", "--tcp-max-connections-per-client", "20"),
    )
    huge = b"".join(frame("huge.test.example", "TXT", qid=i) for i in range(3000))  # ~5 MB of replies
    stop = threading.Event()
    with contextlib.ExitStack() as stack:
        stack.callback(stop.set)
        tricklers = [stack.enter_context(open_from(server, "127.0.0.2")) for _ in range(TRICKLERS)]
        for _ in range(IDLERS):
            stack.enter_context(open_from(server, "127.0.0.3"))
        for _ in range(ABANDONERS):  # a length and half a message, then nothing
            sock = stack.enter_context(open_from(server, "127.0.0.4"))
            sock.sendall(frame("host.test.example")[:9])
        for _ in range(NON_READERS):  # pipeline about 5 MB of replies and read none of them
            sock = stack.enter_context(open_from(server, "127.0.0.5", timeout=8.0, rcvbuf=4096))
            threading.Thread(target=_send_quietly, args=(sock, huge), daemon=True).start()
        trickle = threading.Thread(target=_trickle, args=(tricklers, stop), daemon=True)
        trickle.start()
        time.sleep(0.3)  # the non-readers' replies back up by now

        slow = TRICKLERS + IDLERS + ABANDONERS + NON_READERS
        assert tcp_metrics(server)["open"] == slow
        udp_times, tcp_times = [], []
        for i in range(20):
            for times, over_tcp in ((udp_times, False), (tcp_times, True)):
                began = time.monotonic()
                reply = server.query(f"host{i % 3}.test.example", "A", tcp=over_tcp, timeout=2.0)
                times.append(time.monotonic() - began)
                assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
        counts = tcp_metrics(server)
        assert counts["open"] == slow  # the slow ones are all still held while we were served
    for times in (udp_times, tcp_times):
        assert max(times) < 1.0, times
        assert statistics.median(times) < 0.1, times


def _trickle(socks: list[socket.socket], stop: threading.Event) -> None:
    """One byte of a query per connection every 0.1 s, for at most 60 rounds (6 s)."""
    data = frame("host.test.example")
    for i in range(min(len(data) - 1, 60)):  # never the last byte: no query is ever complete
        if stop.wait(0.1):
            return
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.send(data[i : i + 1])


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # cut by the server or closed by the test: expected
        sock.sendall(data)


# -- per-client limit ------------------------------------------------------------------------------


def test_per_client_limit_refuses_extras_while_another_address_connects(tight):
    before = tcp_metrics(tight)
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(open_from(tight, "127.0.0.6")) for _ in range(PER_CLIENT)]
        assert all(answered(sock) for sock in held)
        extras = [stack.enter_context(open_from(tight, "127.0.0.6")) for _ in range(2)]
        for sock in extras:
            assert not answered(sock)  # reset at once
        other = stack.enter_context(open_from(tight, "127.0.0.7"))
        assert answered(other)  # another client is not affected
        assert all(answered(sock) for sock in held)  # nor are the connections already held
        after = tcp_metrics(tight)
        held.pop().close()  # a slot given back to 127.0.0.6 can be used again
        assert wait_for(lambda: tcp_metrics(tight)["open"] == after["open"] - 1, 3)
        again = stack.enter_context(open_from(tight, "127.0.0.6"))
        assert answered(again)
    assert after["per_client_limit"] - before["per_client_limit"] == 2
    assert after["total_limit"] == before["total_limit"]
    warnings = [line for line in tight.lines if "per-client connection limit (4) reached" in line]
    assert len(warnings) == 1  # two refusals, one warning (at most one per 10 s)
    assert "127.0.0.6" in warnings[0]


# -- read timeout ----------------------------------------------------------------------------------


def test_trickled_and_abandoned_messages_are_cut_at_the_read_timeout(tight):
    before = tcp_metrics(tight)
    data = frame("host.test.example")  # about 37 bytes: nearly 2 s at one byte every 50 ms
    with (
        open_from(tight, "127.0.0.8") as trickler,
        open_from(tight, "127.0.0.8") as abandoner,
        open_from(tight, "127.0.0.8") as silent,
    ):
        began = time.monotonic()
        abandoner.sendall(data[:1])  # one byte of the length, then nothing
        trickler_cut = abandoner_cut = None
        for i in range(len(data)):  # bounded: 37 rounds of 50 ms
            with contextlib.suppress(OSError):
                trickler.send(data[i : i + 1])
            time.sleep(0.05)
            now = time.monotonic() - began
            if trickler_cut is None and closed_now(trickler):
                trickler_cut = now
            if abandoner_cut is None and closed_now(abandoner):
                abandoner_cut = now
            if trickler_cut and abandoner_cut:
                break
        silent_open = not closed_now(silent)  # no message begun: only the idle timeout applies
    assert trickler_cut is not None, "the trickling client was never cut"
    assert abandoner_cut is not None, "the abandoned message was never cut"
    for cut in (trickler_cut, abandoner_cut):
        assert READ_TIMEOUT * 0.9 <= cut < READ_TIMEOUT + 1.0
    assert silent_open
    assert wait_for(lambda: tcp_metrics(tight)["read_timeout"] - before["read_timeout"] >= 2, 3)
    assert tcp_metrics(tight)["idle"] == before["idle"]


# -- write timeout ---------------------------------------------------------------------------------


def test_a_client_that_never_reads_is_cut_at_the_write_timeout(tight):
    before = tcp_metrics(tight)
    bulk = b"".join(frame("huge.test.example", "TXT", qid=i) for i in range(3000))  # ~5 MB of replies
    one = frame("host.test.example")
    cut: list[float] = []
    with open_from(tight, "127.0.0.9", timeout=0.2, rcvbuf=4096) as sock:
        began = time.monotonic()

        def keep_sending() -> None:
            # The bulk, then a query every 50 ms (up to 5 s) until the server resets us; we
            # never read a byte. A send that only times out means it is still open.
            with contextlib.suppress(TimeoutError):
                sock.sendall(bulk)
            for _ in range(100):
                try:
                    sock.sendall(one)
                except TimeoutError:
                    pass
                except OSError:
                    cut.append(time.monotonic() - began)
                    return
                time.sleep(0.05)

        sender = threading.Thread(target=keep_sending, daemon=True)
        sender.start()
        sender.join(8)
    assert cut, "the server never cut a client that does not read"
    assert WRITE_TIMEOUT * 0.9 <= cut[0] < WRITE_TIMEOUT + 2.5
    assert wait_for(lambda: tcp_metrics(tight)["write_timeout"] - before["write_timeout"] == 1, 3)
    after = tcp_metrics(tight)
    assert after["idle"] == before["idle"] and after["read_timeout"] == before["read_timeout"]


# -- with --workers ----------------------------------------------------------------------------------


def test_with_workers_limits_are_per_process_and_metrics_sum_them(start_server, zone_dir):
    shutil.copy(DATA / "test.example.yaml", zone_dir)
    server = start_server(zone_dir, "--workers", "2", "--tcp-max-connections-per-client", "3")
    with contextlib.ExitStack() as stack:
        for _ in range(10):  # the kernel spreads them over the two workers' sockets
            stack.enter_context(open_from(server, "127.0.0.10"))
        # Workers report once a second; every connection is then either open or refused.
        assert wait_for(lambda: sum(_held_or_refused(tcp_metrics(server))) == 10, 5)
        held, refused = _held_or_refused(tcp_metrics(server))
    # 3 per client in each worker: 10 connections leave at least one worker at its limit.
    assert 3 <= held <= 6 and refused == 10 - held


def _held_or_refused(counts: dict[str, float]) -> tuple[float, float]:
    return counts["open"], counts["per_client_limit"]
