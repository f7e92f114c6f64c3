"""TCP transport (RFC 7766): length-prefixed messages, pipelining, idle timeout, a bound
on open connections, and back-pressure so a client that does not read cannot pin memory."""

from __future__ import annotations

import asyncio
import logging
import time

from gdns.server.udp import Respond

log = logging.getLogger("gdns.tcp")
WARN_EVERY = 10.0  # seconds between warnings about the connection limit


class TCPLimits:
    def __init__(self, idle_timeout: float = 10.0, max_connections: int = 1024):
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.open = 0
        self.refused_total = 0
        self._last_warning = -WARN_EVERY

    def refused(self, peer: tuple) -> None:
        """Count a connection refused at the limit; warn at most every WARN_EVERY seconds."""
        self.refused_total += 1
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log.warning(
                "TCP connection limit (%d) reached: refused a connection from %s (%d refused so far)",
                self.max_connections,
                peer[0],
                self.refused_total,
            )


class TCPProtocol(asyncio.Protocol):
    def __init__(self, respond: Respond, limits: TCPLimits):
        self.respond = respond
        self.limits = limits
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.counted = False
        self.paused = False  # the client is not reading our replies: stop answering
        self.peer: tuple = ("?", 0)

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("?", 0)
        if self.limits.open >= self.limits.max_connections:
            self.limits.refused(self.peer)
            transport.abort()
            return
        self.limits.open += 1
        self.counted = True
        # Keep at most a few replies queued for a slow reader before we stop reading.
        transport.set_write_buffer_limits(high=128 * 1024)
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.limits.idle_timeout, self._idle)

    def _idle(self) -> None:
        if self.transport is None:
            return
        if self.transport.get_write_buffer_size():
            # close() would wait for a client that is not reading, holding the slot forever.
            self.transport.abort()
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm()
        self._answer_buffered()

    def _answer_buffered(self) -> None:
        # Stop while paused: one read can hold thousands of queries, and answering them all
        # would queue their (much larger) replies past the write buffer limit.
        while len(self.buffer) >= 2 and not self.paused:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break
            message = bytes(self.buffer[2 : 2 + size])
            del self.buffer[: 2 + size]
            reply = self.respond(message, "tcp", self.peer)
            if reply is None:
                continue
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(len(reply).to_bytes(2, "big") + reply)

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self._arm()  # the client is reading: not idle
            self.transport.resume_reading()
            self._answer_buffered()

    def eof_received(self) -> bool:
        return False  # half-close from the client: finish writing, then close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.counted:
            self.limits.open -= 1
            self.counted = False
        self.transport = None
