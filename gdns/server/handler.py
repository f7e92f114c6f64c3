"""The one function both transports call: query bytes in, reply bytes (or nothing) out.

The fast path (gdns.server.fast) answers what it has seen before; everything else is
decoded, answered by the engine and packed here, and remembered for the fast path when it
is the same for every client.
"""

from __future__ import annotations

import logging
import random
import time
from bisect import bisect_left

from gdns.answer.engine import Engine
from gdns.logs import log_query
from gdns.server import codec, rrl
from gdns.server.fast import FastPath
from gdns.server.stats import LATENCY_BUCKETS as _BUCKETS
from gdns.server.stats import QueryStats
from gdns.web.metrics import rcode_label, type_label

log = logging.getLogger("gdns.query")
_clock = time.perf_counter
_bucket = bisect_left


class Handler:
    """One per transport thread: it owns its QueryStats (one writer per counter set)."""

    def __init__(
        self,
        engine: Engine,
        max_udp_size: int = 1232,
        sample: float = 0.0,
        fast: FastPath | None = None,
        stats: QueryStats | None = None,
    ):
        self.engine = engine
        self.sample = sample  # share of queries logged (--query-log-sample); 0 costs one test
        self.max_udp_size = max_udp_size
        self.fast = fast if fast is not None else FastPath(engine, max_udp_size)
        self.stats = stats if stats is not None else QueryStats()

    def __call__(self, wire: bytes, transport: str, client: tuple) -> bytes | None:
        """The reply; None or b"" for none (b"": the rate limiter dropped the fast path's reply)."""
        start = _clock()
        if self.sample and random.random() < self.sample:
            return self.full(wire, transport, client, start, logged=True)
        stats = self.stats
        try:
            reply = self.fast.answer(wire, client[0], transport == "tcp", stats)
        except Exception:  # our bug: the full path answers this one
            log.exception("internal error on the fast path for a query from %s", client[0])
            reply = None
        if reply is None:
            return self.full(wire, transport, client, start)
        seconds = _clock() - start  # QueryStats.observe, written out: this runs per query
        stats.latency[_bucket(_BUCKETS, seconds)] += 1
        stats.latency_sum += seconds
        return reply

    def full(self, wire: bytes, transport: str, client: tuple, start: float, logged: bool = False):
        """Decode, answer and pack (and remember the result for the fast path)."""
        stats = self.stats
        stats.full += 1
        qtype = query = answer = None
        try:
            query = codec.decode(wire, transport, client[:2], self.max_udp_size)
            if query is None:
                stats.dropped += 1
                return None
            if isinstance(query, codec.Reply):
                reply = query
            else:
                qtype = query.qtype
                serial = self.engine.zones_serial  # the zones it is made from (a reload may swap them)
                answer = self.engine.answer(query)
                if answer.decisions:
                    self._count_pools(answer.decisions)
                reply, whole = codec.pack(query, answer, self.max_udp_size)
                self.fast.remember(query, answer, reply, whole, serial)
        except Exception:  # our bug: SERVFAIL this query, keep serving the rest
            log.exception("internal error answering a query from %s", client[0])
            answer = None
            reply = codec.servfail(wire)
            if reply is None:
                return None
        key = (transport, "ipv6" if ":" in client[0] else "ipv4", type_label(qtype))
        stats.queries[key] = stats.queries.get(key, 0) + 1
        limiter = self.fast.rrl
        if limiter is not None and transport == "udp":
            identity = rrl.identity(query, answer) if answer is not None else rrl.ERROR_IDENTITY
            action = limiter.check(client[0], identity, stats)
            if action == rrl.DROP:
                stats.observe(time.perf_counter() - start)
                return None
            if action == rrl.SLIP:  # never for errors, so there is a Query
                opt = codec.edns_opt(query.dnssec_ok, self.max_udp_size) if query.edns else b""
                reply = rrl.slipped(reply, len(query.question), opt)
        rcode = reply[3] & 0xF
        if isinstance(reply, codec.Reply) and reply[11]:  # its OPT, last, holds the upper rcode bits
            rcode |= reply[-6] << 4
        label = rcode_label(rcode)
        stats.responses[label] = stats.responses.get(label, 0) + 1
        if reply[2] & 0x02:
            stats.truncated += 1
        stats.observe(time.perf_counter() - start)
        if logged:
            log_query(query, reply, transport, client, time.perf_counter() - start)
        return reply

    def _count_pools(self, decisions) -> None:
        stats = self.stats
        for decision in decisions:
            pool = decision.pool
            if pool is None:
                continue
            if decision.outcome != "answer":
                if decision.outcome.startswith("all-down:"):
                    key = (pool.name, pool.when_all_down)
                    stats.all_down[key] = stats.all_down.get(key, 0) + 1
                continue
            for member in decision.picked:
                stats.members[member.key] = stats.members.get(member.key, 0) + 1
