"""UDP transport: one datagram in, at most one datagram out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Respond = Callable[[bytes, str, tuple], "bytes | None"]


class UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, respond: Respond):
        self.respond = respond
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = self.respond(data, "udp", addr)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for earlier replies: nothing to do
