"""TCP transport (RFC 7766): length-prefixed messages, pipelining, and the limits that stop a
slow or hostile client from holding a connection slot or memory for long:

- connections per client (an IPv4 address, an IPv6 /56) and in total; one over either limit
  is accepted and closed at once;
- idle timeout: no message in progress and nothing to send;
- read timeout: a message whose first byte has arrived must be complete within it; more
  bytes of the same message do not extend it, so a client trickling bytes is cut;
- write timeout: while replies are blocked (the client does not read them) for this long,
  the connection is aborted;
- buffers: at most `max_buffer` bytes of a client's queries are held unanswered (reading
  stops there and the kernel pushes back) and about as many of replies unsent (answering
  stops there, which in turn stops reading).

Only one timer runs per connection, for whichever of the three waits applies now.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from gdns.server.udp import Respond

log = logging.getLogger("gdns.tcp")
WARN_EVERY = 10.0  # seconds between warnings about each connection limit
V6_CLIENT_PREFIX = 56  # IPv6 clients are counted per /56, IPv4 clients per address
READ_CHUNK = 64 * 1024  # bytes asked of the socket per read, at most
SMALLEST_BUFFER = 2 + 65535  # one DNS message of the largest size, with its length

# Why connections end: the `reason` label of gdns_dns_tcp_connections_closed_total.
CLOSE_REASONS = (
    "client",  # the client closed or reset it
    "idle",
    "read_timeout",
    "write_timeout",
    "per_client_limit",  # refused at once: this client had too many open
    "total_limit",  # refused at once: the process had too many open
    "error",  # a socket error other than the client closing or resetting
    "other",  # closed by gdns for another reason (shutting down)
)


def client_key(host: str) -> str:
    """What the per-client limit counts by: the IPv4 address, or the IPv6 /56 (a site: one
    customer's allocation is usually a /48 to /56, and a single host controls a whole /64)."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network(f"{address}/{V6_CLIENT_PREFIX}", strict=False))


class TCPLimits:
    """The TCP limits of one process (one event loop), its count of open connections per client
    and in total, and why connections ended. Touched only from the event loop thread."""

    def __init__(
        self,
        idle_timeout: float = 10.0,
        max_connections: int = 1024,
        *,
        max_per_client: int = 64,
        read_timeout: float = 2.0,
        write_timeout: float = 5.0,
        max_buffer: int = 128 * 1024,
    ):
        if max_buffer < SMALLEST_BUFFER:
            raise ValueError(f"max_buffer must be at least {SMALLEST_BUFFER}")
        self.idle_timeout = idle_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.max_buffer = max_buffer
        self.open = 0
        self.per_client: dict[str, int] = {}
        self.closed = dict.fromkeys(CLOSE_REASONS, 0)
        self._last_warning = {"total_limit": -WARN_EVERY, "per_client_limit": -WARN_EVERY}
        # Every connection reads through this one buffer: a transport fills it and hands it to
        # the protocol's buffer_updated() at once, with nothing else running in between.
        self.scratch = memoryview(bytearray(READ_CHUNK))

    @property
    def refused_total(self) -> int:
        return self.closed["total_limit"] + self.closed["per_client_limit"]

    def admit(self, host: str) -> str | None:
        """Count a new connection from `host`: its client key, or None when it is refused (then
        counted as closed, and warned about at most every WARN_EVERY seconds)."""
        if self.open >= self.max_connections:
            self._refuse("total_limit", host, None)
            return None
        key = client_key(host)
        count = self.per_client.get(key, 0)
        if count >= self.max_per_client:
            self._refuse("per_client_limit", host, key)
            return None
        self.per_client[key] = count + 1
        self.open += 1
        return key

    def release(self, key: str, reason: str) -> None:
        """An admitted connection ended, for `reason` (one of CLOSE_REASONS)."""
        self.open -= 1
        left = self.per_client[key] - 1
        if left:
            self.per_client[key] = left
        else:
            del self.per_client[key]
        self.closed[reason] += 1

    def _refuse(self, reason: str, host: str, key: str | None) -> None:
        self.closed[reason] += 1
        now = time.monotonic()
        if now - self._last_warning[reason] < WARN_EVERY:
            return
        self._last_warning[reason] = now
        if reason == "total_limit":
            log.warning(
                "TCP connection limit (%d) reached: refused a connection from %s (%d refused so far)",
                self.max_connections,
                host,
                self.closed[reason],
            )
        else:
            counted = f"counted as {key}; " if key != host else ""  # an IPv6 client: its /56
            log.warning(
                "TCP per-client connection limit (%d) reached: refused a connection from %s "
                "(%s%d refused so far)",
                self.max_per_client,
                host,
                counted,
                self.closed[reason],
            )

    def export(self) -> dict:
        """The counters in the shape of gdns.server.stats exports (what a worker reports)."""
        return {"tcp_connections": self.open, "tcp_closed": dict(self.closed)}


class TCPProtocol(asyncio.BufferedProtocol):
    def __init__(self, respond: Respond, limits: TCPLimits):
        self.respond = respond
        self.limits = limits
        self.buffer = bytearray()  # received, not yet answered: at most limits.max_buffer
        self.transport: asyncio.Transport | None = None
        self.client: str | None = None  # the limits' key while this connection is counted
        self.peer: tuple = ("?", 0)
        self.paused = False  # the client is not reading our replies: stop answering and reading
        self.eof = False
        self.reason: str | None = None  # why we closed it ourselves
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiting = "idle"  # idle | read_timeout | write_timeout: what the deadline is for
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("?", 0)
        self.client = self.limits.admit(str(self.peer[0]))
        if self.client is None:
            transport.abort()
            return
        self.loop = asyncio.get_running_loop()
        # Past this many reply bytes queued, pause_writing(): stop answering until it drains.
        transport.set_write_buffer_limits(high=self.limits.max_buffer)
        self._wait("idle", self.limits.idle_timeout)

    # -- the one timer -------------------------------------------------------------------------

    def _wait(self, kind: str, seconds: float) -> None:
        """From now on, close for `kind` unless something changes within `seconds`. A later
        deadline keeps the timer already set (it re-arms when it fires): no timer churn per query."""
        self.waiting = kind
        self.deadline = self.loop.time() + seconds
        if self.timer is None or self.timer_at > self.deadline:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = self.deadline
            self.timer = self.loop.call_at(self.deadline, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        if self.loop.time() + 0.001 < self.deadline:  # the deadline moved on since the timer was set
            self.timer_at = self.deadline
            self.timer = self.loop.call_at(self.deadline, self._expired)
            return
        self._close(self.waiting)

    def _close(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        if self.transport.get_write_buffer_size():
            # close() would wait for a client that is not reading, holding the slot meanwhile.
            self.transport.abort()
        else:
            self.transport.close()

    # -- reading -----------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        # Never more than the room left under max_buffer. The room is never 0 while reading:
        # a full buffer holds complete messages, and those are left unanswered only while
        # paused, when reading is paused too.
        room = self.limits.max_buffer - len(self.buffer)
        return self.limits.scratch[: max(1, min(room, READ_CHUNK))]

    def buffer_updated(self, nbytes: int) -> None:
        began = not self.buffer
        self.buffer += self.limits.scratch[:nbytes]
        answered = self._answer_buffered()
        self._after_input(began or answered)

    def _after_input(self, new_message: bool) -> None:
        if self.paused or self.transport is None or self.transport.is_closing():
            return  # the write timeout runs, or the connection is going
        if not self.buffer:
            self._wait("idle", self.limits.idle_timeout)
        elif new_message:
            # A message has begun: it gets read_timeout from now, and more of its bytes do
            # not extend that.
            self._wait("read_timeout", self.limits.read_timeout)

    def _answer_buffered(self) -> bool:
        """Answer every complete message buffered, until paused; True if any was taken."""
        taken = False
        buffer = self.buffer
        # Stop while paused: one read can hold thousands of queries, and answering them all
        # would queue their (much larger) replies past the write buffer limit.
        while len(buffer) >= 2 and not self.paused:
            end = 2 + (buffer[0] << 8 | buffer[1])
            if len(buffer) < end:
                break
            message = bytes(buffer[2:end])
            del buffer[:end]
            taken = True
            reply = self.respond(message, "tcp", self.peer)
            if reply is None:
                continue
            if self.transport is None or self.transport.is_closing():
                break
            self.transport.write(len(reply).to_bytes(2, "big") + reply)
        return taken

    def eof_received(self) -> bool:
        self.eof = True
        return False  # half-close from the client: finish writing, then close

    # -- writing -----------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        if self.loop is not None:
            self._wait("write_timeout", self.limits.write_timeout)

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        self._answer_buffered()
        if self.paused:
            return  # paused again: a new write timeout runs
        # The client is reading. What is left is a message begun earlier: its read time starts
        # again now, since we were the ones not reading it.
        if self.buffer:
            self._wait("read_timeout", self.limits.read_timeout)
        else:
            self._wait("idle", self.limits.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.client is not None:
            if self.reason is not None:
                reason = self.reason
            elif self.eof or isinstance(exc, ConnectionError):
                reason = "client"
            elif exc is not None:
                reason = "error"
            else:
                reason = "other"
            self.limits.release(self.client, reason)
            self.client = None
        self.transport = None
