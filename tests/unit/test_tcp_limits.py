"""The TCP limits without sockets: who counts as one client, the per-client and total caps,
rate-limited warnings, the counters' export, and the protocol's timers and buffers driven
through a fake transport on a real event loop with short timeouts."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from gdns.server import stats, tcp
from gdns.server.tcp import CLOSE_REASONS, TCPLimits, TCPProtocol, client_key

# -- who is one client ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("192.0.2.7", "192.0.2.7", True),
        ("192.0.2.7", "192.0.2.8", False),  # IPv4: per address, NAT or not
        ("2001:db8:0:ff00::1", "2001:db8:0:ffff:1:2:3:4", True),  # the same /56
        ("2001:db8:0:ff00::1", "2001:db8:0:fe00::1", False),  # a neighbouring /56
        ("2001:db8::1", "2001:db8:0:0::2", True),
        ("::ffff:192.0.2.7", "192.0.2.7", True),  # IPv4-mapped is the IPv4 client
        ("fe80::1%eth0", "fe80::2%eth1", True),  # the scope is not part of the address
    ],
)
def test_client_key(a, b, same):
    assert (client_key(a) == client_key(b)) is same


def test_client_key_names_the_network():
    assert client_key("2001:db8:0:ffab::1") == "2001:db8:0:ff00::/56"
    assert client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("?") == "?"  # no peer name: all such share one key


# -- admission -------------------------------------------------------------------------------------


def test_per_client_limit_refuses_only_that_client():
    limits = TCPLimits(max_connections=10, max_per_client=2)
    assert limits.admit("192.0.2.1") == "192.0.2.1"
    assert limits.admit("192.0.2.1") == "192.0.2.1"
    assert limits.admit("192.0.2.1") is None  # a third from the same address
    assert limits.admit("192.0.2.2") == "192.0.2.2"  # another address still gets in
    assert limits.admit("2001:db8:0:1::1") is not None
    assert limits.admit("2001:db8:0:2::1") is not None  # same /56: its second
    assert limits.admit("2001:db8:0:3::1") is None  # same /56: its third
    assert limits.open == 5
    assert limits.closed["per_client_limit"] == 2
    limits.release("192.0.2.1", "idle")
    assert limits.admit("192.0.2.1") == "192.0.2.1"  # a slot given back is usable again
    assert limits.closed["idle"] == 1


def test_total_limit_comes_first_and_release_forgets_clients():
    limits = TCPLimits(max_connections=3, max_per_client=5)
    keys = [limits.admit(f"192.0.2.{i}") for i in range(3)]
    assert None not in keys
    assert limits.admit("192.0.2.99") is None
    assert limits.closed["total_limit"] == 1 and limits.closed["per_client_limit"] == 0
    for key in keys:
        limits.release(key, "client")
    assert limits.open == 0 and limits.per_client == {}  # no entry per client left behind
    assert limits.refused_total == 1


def test_export_and_total_sum_tcp_counters():
    one, two = TCPLimits(max_per_client=1), TCPLimits()
    one.admit("192.0.2.1")
    one.admit("192.0.2.1")  # refused
    key = two.admit("192.0.2.1")
    two.admit("192.0.2.2")
    two.release(key, "read_timeout")
    summed = stats.total([one.export(), two.export(), stats.QueryStats().export()])
    assert summed["tcp_connections"] == 2
    assert summed["tcp_closed"]["per_client_limit"] == 1
    assert summed["tcp_closed"]["read_timeout"] == 1
    assert set(summed["tcp_closed"]) <= set(CLOSE_REASONS)
    assert stats.total([])["tcp_connections"] == 0


def test_a_buffer_smaller_than_one_message_is_rejected():
    with pytest.raises(ValueError):
        TCPLimits(max_buffer=65536)


def test_refusals_are_counted_and_warnings_rate_limited(caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(tcp.time, "monotonic", lambda: clock[0])
    limits = TCPLimits(idle_timeout=1, max_connections=2, max_per_client=1)
    limits.admit("192.0.2.1")
    with caplog.at_level(logging.WARNING, logger="gdns.tcp"):
        for _ in range(50):
            assert limits.admit("192.0.2.1") is None  # per client
        assert len(caplog.records) == 1
        assert "per-client" in caplog.records[0].getMessage()
        limits.admit("192.0.2.2")
        for _ in range(50):
            assert limits.admit("192.0.2.7") is None  # in total: its own warning, once
        assert len(caplog.records) == 2
        clock[0] += tcp.WARN_EVERY
        assert limits.admit("192.0.2.7") is None
        limits.release("192.0.2.2", "client")
        assert limits.admit("192.0.2.1") is None  # room in total now, not for this client
    assert limits.refused_total == 102
    assert len(caplog.records) == 4
    assert "51 refused so far" in caplog.records[-2].getMessage()
    assert "TCP connection limit (2) reached" in caplog.records[-2].getMessage()
    assert "51 refused so far" in caplog.records[-1].getMessage()
    assert "per-client connection limit (1) reached" in caplog.records[-1].getMessage()


def test_per_client_warning_names_the_ipv6_network(caplog):
    limits = TCPLimits(max_per_client=1)
    limits.admit("2001:db8:0:1::1")
    with caplog.at_level(logging.WARNING, logger="gdns.tcp"):
        assert limits.admit("2001:db8:0:2::1") is None
    assert "from 2001:db8:0:2::1 (counted as 2001:db8::/56; 1 refused so far)" in caplog.text


# -- the protocol: timers and buffers ----------------------------------------------------------------


class FakeTransport:
    """Just enough of an asyncio transport: records writes and how it was closed."""

    def __init__(self, protocol: TCPProtocol, peer=("192.0.2.1", 40000)):
        self.protocol, self.peer = protocol, peer
        self.written: list[bytes] = []
        self.closed_how: str | None = None
        self.reading = True
        self.unsent = 0  # what get_write_buffer_size() says

    def get_extra_info(self, name):
        return self.peer if name == "peername" else None

    def set_write_buffer_limits(self, high=None, low=None):
        self.high = high

    def get_write_buffer_size(self):
        return self.unsent

    def write(self, data):
        self.written.append(data)

    def is_closing(self):
        return self.closed_how is not None

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def _end(self, how):
        if self.closed_how is None:
            self.closed_how = how
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def close(self):
        self._end("close")

    def abort(self):
        self._end("abort")


def echo(message: bytes, transport: str, peer) -> bytes:
    return b"re:" + message


def feed(protocol: TCPProtocol, data: bytes) -> None:
    """What a transport does with bytes from the socket: get_buffer, fill, buffer_updated."""
    while data:
        view = protocol.get_buffer(-1)
        n = min(len(view), len(data))
        view[:n] = data[:n]
        protocol.buffer_updated(n)
        data = data[n:]


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def connect(limits: TCPLimits, peer=("192.0.2.1", 40000)) -> tuple[TCPProtocol, FakeTransport]:
    protocol = TCPProtocol(echo, limits)
    transport = FakeTransport(protocol, peer)
    protocol.connection_made(transport)
    return protocol, transport


def run(coro):
    return asyncio.run(coro)


def test_trickled_message_is_cut_at_the_read_timeout_not_extended():
    async def scenario():
        limits = TCPLimits(idle_timeout=5.0, read_timeout=0.2)
        protocol, transport = connect(limits)
        loop = asyncio.get_running_loop()
        start = loop.time()
        data = framed(b"x" * 100)
        for byte in data:  # one byte every 20 ms: 2 s for the whole message
            if transport.closed_how:
                break
            feed(protocol, bytes([byte]))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0)
        return loop.time() - start, transport, limits

    elapsed, transport, limits = run(scenario())
    assert transport.closed_how == "close"
    assert 0.18 <= elapsed < 0.6  # the read timeout (0.2 s), far below idle (5 s)
    assert transport.written == []
    assert limits.closed["read_timeout"] == 1 and limits.open == 0


def test_complete_messages_answered_then_idle_timeout_closes():
    async def scenario():
        limits = TCPLimits(idle_timeout=0.2, read_timeout=0.05)
        protocol, transport = connect(limits)
        loop = asyncio.get_running_loop()
        for i in range(5):  # a query every 50 ms, each split in two reads 10 ms apart
            data = framed(b"q%d" % i)
            feed(protocol, data[:3])
            await asyncio.sleep(0.01)
            feed(protocol, data[3:])
            await asyncio.sleep(0.04)
        assert transport.closed_how is None  # busy: neither timeout fired
        quiet = loop.time()
        while transport.closed_how is None and loop.time() - quiet < 2:
            await asyncio.sleep(0.01)
        return loop.time() - quiet, transport, limits

    elapsed, transport, limits = run(scenario())
    assert transport.written == [framed(b"re:q%d" % i) for i in range(5)]
    assert 0.15 <= elapsed < 0.6
    assert limits.closed["idle"] == 1 and limits.closed["read_timeout"] == 0


def test_a_client_that_does_not_read_is_aborted_at_the_write_timeout():
    async def scenario():
        limits = TCPLimits(idle_timeout=5.0, read_timeout=5.0, write_timeout=0.2)
        protocol, transport = connect(limits)
        loop = asyncio.get_running_loop()
        feed(protocol, framed(b"a"))
        transport.unsent = 200_000
        protocol.pause_writing()  # what the transport calls once its buffer passes `high`
        assert not transport.reading
        feed(protocol, framed(b"b") + framed(b"c"))  # already read before the pause took effect
        assert len(transport.written) == 1  # paused: not answered
        start = loop.time()
        while transport.closed_how is None and loop.time() - start < 2:
            await asyncio.sleep(0.01)
        return loop.time() - start, transport, limits

    elapsed, transport, limits = run(scenario())
    assert transport.closed_how == "abort"  # replies unsent: close() would wait for them
    assert 0.15 <= elapsed < 0.6
    assert limits.closed["write_timeout"] == 1


def test_resuming_in_time_answers_what_waited_and_keeps_the_connection():
    async def scenario():
        limits = TCPLimits(idle_timeout=0.3, read_timeout=5.0, write_timeout=0.2)
        protocol, transport = connect(limits)
        transport.unsent = 200_000
        protocol.pause_writing()
        feed(protocol, framed(b"a") + framed(b"b") + framed(b"c")[:2])
        await asyncio.sleep(0.1)
        transport.unsent = 0
        protocol.resume_writing()
        assert transport.reading
        feed(protocol, framed(b"c")[2:])
        await asyncio.sleep(0.15)  # past the write timeout had it kept running
        assert transport.closed_how is None
        await asyncio.sleep(0.4)  # past the idle timeout
        return transport, limits

    transport, limits = run(scenario())
    assert transport.written == [framed(b"re:a"), framed(b"re:b"), framed(b"re:c")]
    assert limits.closed["idle"] == 1 and limits.closed["write_timeout"] == 0


def test_reads_never_take_more_than_the_buffer_allows():
    limits = TCPLimits(max_buffer=70_000)

    async def scenario():
        protocol, transport = connect(limits)
        assert transport.high == 70_000  # replies: the same bound
        transport.unsent = 100_000
        protocol.pause_writing()
        rooms = [len(protocol.get_buffer(-1))]
        feed(protocol, framed(b"q" * 100) * 588)  # 59,976 bytes of queries, unanswered
        rooms.append(len(protocol.get_buffer(-1)))
        feed(protocol, b"\0" * rooms[-1])
        return protocol, rooms

    protocol, rooms = run(scenario())
    assert rooms == [tcp.READ_CHUNK, 70_000 - 59_976]
    assert len(protocol.buffer) == limits.max_buffer


def test_refused_connection_is_aborted_and_not_counted_open():
    async def scenario():
        limits = TCPLimits(max_connections=5, max_per_client=1)
        first = connect(limits)
        second = connect(limits)
        await asyncio.sleep(0)
        return limits, first, second

    limits, (_, first), (_, second) = run(scenario())
    assert first.closed_how is None and second.closed_how == "abort"
    assert limits.open == 1 and limits.closed["per_client_limit"] == 1


def test_client_close_and_reset_are_counted_as_client():
    async def scenario():
        limits = TCPLimits()
        protocol, transport = connect(limits)
        protocol.eof_received()
        protocol.connection_lost(None)
        other, _ = connect(limits, ("192.0.2.2", 1))
        other.connection_lost(ConnectionResetError())
        third, _ = connect(limits, ("192.0.2.3", 1))
        third.connection_lost(OSError("odd"))
        return limits

    limits = run(scenario())
    assert limits.closed["client"] == 2 and limits.closed["error"] == 1 and limits.open == 0


# -- flags -------------------------------------------------------------------------------------------

TCP_FLAGS = {
    "tcp_idle_timeout": "--tcp-idle-timeout",
    "tcp_read_timeout": "--tcp-read-timeout",
    "tcp_write_timeout": "--tcp-write-timeout",
    "tcp_max_connections": "--tcp-max-connections",
    "tcp_max_connections_per_client": "--tcp-max-connections-per-client",
    "tcp_max_buffer": "--tcp-max-buffer",
}


def test_flag_defaults_are_the_settings_defaults():
    from gdns.cli import build_parser
    from gdns.settings import Settings

    args = build_parser().parse_args(["serve"])
    for field in TCP_FLAGS:
        assert getattr(args, field) == getattr(Settings(), field), field
    TCPLimits(max_buffer=Settings().tcp_max_buffer)  # the default is a valid buffer


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--tcp-read-timeout", "0"),
        ("--tcp-write-timeout", "-1"),
        ("--tcp-idle-timeout", "nan"),
        ("--tcp-read-timeout", "inf"),
        ("--tcp-max-connections-per-client", "0"),
        ("--tcp-max-buffer", "65536"),
        ("--tcp-max-buffer", "64k"),
    ],
)
def test_bad_flag_values_are_refused(flag, value, capsys):
    from gdns.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", flag, value])
    assert flag in capsys.readouterr().err
