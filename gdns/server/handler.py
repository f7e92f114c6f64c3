"""The one function both transports call: query bytes in, reply bytes (or nothing) out."""

from __future__ import annotations

import logging
import random
import time

from gdns.answer.engine import Engine
from gdns.logs import log_query
from gdns.server import codec
from gdns.web import metrics
from gdns.web.recent import RecentAnswers

log = logging.getLogger("gdns.query")


class Handler:
    def __init__(
        self,
        engine: Engine,
        max_udp_size: int = 1232,
        recent: RecentAnswers | None = None,
        sample: float = 0.0,
    ):
        self.engine = engine
        self.sample = sample  # share of queries logged (--query-log-sample); 0 costs one test
        self.max_udp_size = max_udp_size
        self.recent = recent  # shares of recent answers, for the API and status page

    def __call__(self, wire: bytes, transport: str, client: tuple) -> bytes | None:
        start = time.perf_counter()
        qtype = query = None
        try:
            query = codec.decode(wire, transport, client[:2], self.max_udp_size)
            if query is None:
                metrics.DROPPED.inc()
                return None
            if isinstance(query, codec.Reply):
                reply = query
            else:
                qtype = query.qtype
                answer = self.engine.answer(query)
                if answer.decisions:
                    self._count_pools(answer.decisions)
                reply = codec.encode(query, answer, self.max_udp_size)
        except Exception:  # our bug: SERVFAIL this query, keep serving the rest
            log.exception("internal error answering a query from %s", client[0])
            reply = codec.servfail(wire)
            if reply is None:
                return None
        family = "ipv6" if ":" in client[0] else "ipv4"
        metrics.QUERIES.labels(transport, family, metrics.type_label(qtype)).inc()
        rcode = reply[3] & 0xF
        if isinstance(reply, codec.Reply) and reply[11]:  # its OPT, last, holds the upper rcode bits
            rcode |= reply[-6] << 4
        metrics.RESPONSES.labels(metrics.rcode_label(rcode)).inc()
        if reply[2] & 0x02:
            metrics.TRUNCATED.inc()
        metrics.LATENCY.observe(time.perf_counter() - start)
        if self.sample and random.random() < self.sample:
            log_query(query, reply, transport, client, time.perf_counter() - start)
        return reply

    def _count_pools(self, decisions) -> None:
        for decision in decisions:
            pool = decision.pool
            if pool is None:
                continue
            if decision.outcome != "answer":
                if decision.outcome.startswith("all-down:"):
                    metrics.POOL_ALL_DOWN.labels(pool.name, pool.when_all_down).inc()
                continue
            group = decision.group.name if decision.group else ""
            for member in decision.picked:
                metrics.POOL_ANSWERS.labels(pool.name, group, member.address).inc()
                if self.recent is not None:
                    self.recent.add(member.key)
