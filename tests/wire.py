"""Raw-socket helpers for tests that send bytes dnspython would refuse to build."""

from __future__ import annotations

import socket
import struct


def read_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly n bytes from a stream socket; at most n reads, each under the socket's timeout."""
    data = b""
    for _ in range(n):
        if len(data) == n:
            break
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def read_message(sock: socket.socket) -> bytes:
    """One length-prefixed DNS message from a TCP stream (RFC 1035 4.2.2)."""
    return read_exact(sock, struct.unpack("!H", read_exact(sock, 2))[0])


def frame(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire
