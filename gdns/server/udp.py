"""UDP transport: one datagram in, at most one datagram out.

Two ways to run it. `UDPThread` (the default) gives each UDP socket a thread of its own that
blocks in recvfrom and answers in place: no event-loop callbacks, futures or transport
bookkeeping per datagram, which is most of what an asyncio datagram endpoint costs per
query. `UDPProtocol` is the asyncio endpoint (`--udp-loop`), for comparison and for
platforms where a blocking thread is unwelcome. Both call the same Handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable

# The reply to send; None or b"" (a reply the rate limiter dropped) when there is none.
Respond = Callable[[bytes, str, tuple], "bytes | None"]
RECEIVE_BUFFER = 4 << 20  # bytes: a burst of queries waits here instead of being dropped
log = logging.getLogger("gdns")


def size_buffers(sock: socket.socket, size: int = RECEIVE_BUFFER) -> None:
    """Ask for a large receive buffer (the kernel caps it at net.core.rmem_max, or raises
    it past that for a privileged process with SO_RCVBUFFORCE)."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            return


class UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, respond: Respond):
        self.respond = respond
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = self.respond(data, "udp", addr)
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for earlier replies: nothing to do


class UDPThread:
    """A blocking receive-and-answer loop on one socket, in a daemon thread."""

    def __init__(self, sock: socket.socket, respond: Respond):
        self.sock = sock
        self.respond = respond
        self.closing = False
        host, port = sock.getsockname()[:2]
        name = f"gdns-udp-{host}:{port}"
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.sock.setblocking(True)
        self.thread.start()

    def _run(self) -> None:
        receive, send, respond = self.sock.recvfrom, self.sock.sendto, self.respond
        while True:
            try:
                data, addr = receive(65535)
            except OSError:
                if self.closing:
                    return
                continue  # e.g. ICMP port unreachable for an earlier reply
            if addr is None:  # woken by close()
                return
            try:
                reply = respond(data, "udp", addr)
                if reply:
                    send(reply, addr)
            except OSError:
                pass  # the client's address is unreachable, or the send buffer is full
            except Exception:  # the handler answers SERVFAIL on its own bugs; this is a last guard
                log.exception("UDP thread: unexpected error; still serving")

    def close(self, timeout: float = 2.0) -> None:
        self.closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes recvfrom (ENOTCONN is raised, harmlessly)
        self.thread.join(timeout)
        self.sock.close()
