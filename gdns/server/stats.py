"""Query counters the answer path bumps as plain integers.

A Prometheus counter takes a lock and a label lookup per increment, which is a large share
of a fast-path answer; these are dict and int updates instead. Each transport thread has its
own QueryStats (one writer each), and `gdns.web.metrics` turns the sum of all of them (and,
with --workers, of every worker's last report) into the usual metric families at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds (seconds) of gdns_dns_answer_duration_seconds; a final +Inf bucket follows.
LATENCY_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
)


class QueryStats:
    __slots__ = (
        "queries",
        "responses",
        "truncated",
        "dropped",
        "full",
        "latency",
        "latency_sum",
        "members",
        "all_down",
        "limited",
    )

    def __init__(self):
        self.queries: dict[tuple[str, str, str], int] = {}  # (transport, family, type)
        self.responses: dict[str, int] = {}  # rcode name
        self.truncated = 0
        self.dropped = 0
        self.full = 0  # queries answered by the full path (the rest took the fast path)
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative
        self.latency_sum = 0.0
        self.members: dict[str, int] = {}  # member key "<pool>/<group>/<address>": addresses given
        self.all_down: dict[tuple[str, str], int] = {}  # (pool, policy): when_all_down answers
        self.limited: dict[str, int] = {}  # rate-limited UDP responses: dropped, slipped, log_only

    def observe(self, seconds: float) -> None:
        self.latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def export(self) -> dict:
        """A plain, picklable copy (what a worker sends its parent)."""
        return {
            "queries": dict(self.queries),
            "responses": dict(self.responses),
            "truncated": self.truncated,
            "dropped": self.dropped,
            "full": self.full,
            "latency": list(self.latency),
            "latency_sum": self.latency_sum,
            "members": dict(self.members),
            "all_down": dict(self.all_down),
            "limited": dict(self.limited),
            "rrl_entries": 0,  # the rate limiter's table (gdns.server.rrl), added by its owner
            "rrl_evicted": 0,
        }


def total(exports) -> dict:
    """The sum of several export() results, of TCP counters (gdns.server.tcp.TCPLimits.export)
    and of the rate limiter's (gdns.server.rrl), whose parts may carry only some of the keys."""
    out = QueryStats().export()
    out["tcp_connections"] = 0  # a gauge: open now (a dead worker's report is zeroed first)
    out["tcp_closed"] = {}  # reason -> connections ended
    for part in exports:
        for name in ("queries", "responses", "members", "all_down", "limited", "tcp_closed"):
            into = out[name]
            for key, value in part.get(name, {}).items():
                into[key] = into.get(key, 0) + value
        for name in (
            "truncated",
            "dropped",
            "full",
            "latency_sum",
            "rrl_entries",
            "rrl_evicted",
            "tcp_connections",
        ):
            out[name] += part.get(name, 0)
        if "latency" in part:
            out["latency"] = [a + b for a, b in zip(out["latency"], part["latency"], strict=True)]
    return out
