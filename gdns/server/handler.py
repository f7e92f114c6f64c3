"""The one function both transports call: query bytes in, reply bytes (or nothing) out."""

from __future__ import annotations

import logging

from gdns.answer.engine import Engine
from gdns.server import codec

log = logging.getLogger("gdns.query")


class Handler:
    def __init__(self, engine: Engine, max_udp_size: int = 1232):
        self.engine = engine
        self.max_udp_size = max_udp_size

    def __call__(self, wire: bytes, transport: str, client: tuple) -> bytes | None:
        try:
            query = codec.decode(wire, transport, client[:2], self.max_udp_size)
            if query is None or isinstance(query, codec.Reply):
                return query
            return codec.encode(query, self.engine.answer(query), self.max_udp_size)
        except Exception:  # our bug: SERVFAIL this query, keep serving the rest
            log.exception("internal error answering a query from %s", client[0])
            return codec.servfail(wire)
