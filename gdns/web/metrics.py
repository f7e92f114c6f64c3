"""Prometheus metrics: one `gdns_` namespace, units in names, only bounded labels (query
types are folded into a fixed set; pools, groups and members come from the zone files;
never a query name or a client address)."""

from __future__ import annotations

import platform
import re

from dnslib import QTYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from gdns import __version__

disable_created_metrics()  # *_created series double the output and no dashboard reads them
REGISTRY = CollectorRegistry(auto_describe=True)

CHECKS = Counter(
    "gdns_health_checks_total",
    "Health probes run, by result and reason class.",
    ["result", "reason"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "gdns_health_transitions_total", "Health state changes of probe targets.", ["to"], registry=REGISTRY
)
PROBE_DURATION = Histogram(
    "gdns_health_probe_duration_seconds",
    "Duration of health probes, successful or not.",
    ["type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RELOADS = Counter("gdns_zone_reloads_total", "Zone reloads, by result.", ["result"], registry=REGISTRY)
LAST_RELOAD = Gauge(
    "gdns_zone_last_reload_success_timestamp_seconds",
    "Unix time of the last successful zone load.",
    registry=REGISTRY,
)
ZONES = Gauge("gdns_zones", "Zones being served.", registry=REGISTRY)
GEOIP_RELOADS = Counter(
    "gdns_geoip_reloads_total",
    "Reloads of the GeoIP database after its file changed, by result.",
    ["result"],
    registry=REGISTRY,
)
BUILD = Info("gdns_build", "Version of gdns and of Python.", registry=REGISTRY)
BUILD.info({"version": __version__, "python": platform.python_version()})

RRL_ACTIONS = ("dropped", "slipped", "log_only")
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_TYPES = frozenset(
    {
        "A",
        "AAAA",
        "CNAME",
        "MX",
        "TXT",
        "NS",
        "SOA",
        "SRV",
        "CAA",
        "PTR",
        "ANY",
        "DS",
        "DNSKEY",
        "HTTPS",
        "SVCB",
        "NAPTR",
        "AXFR",
        "IXFR",
    }
)
# Anchored: a reason may quote what a backend sent ("bad response: ... b'refused'").
_REASONS = (
    ("timeout", re.compile(r"^timeout")),
    ("refused", re.compile(r"^connection refused")),
    ("reset", re.compile(r"^connection (reset|closed)")),
    ("status", re.compile(r"^status \d")),
    ("body", re.compile(r"^(body|bad response body)")),  # not what was expected, or broken off
    ("protocol", re.compile(r"^bad response")),  # not HTTP, or HTTP too malformed to read
    ("tls", re.compile(r"^TLS")),
)


def type_label(qtype: int | None) -> str:
    if qtype is None:
        return "none"
    name = QTYPE.get(qtype, None)
    return name if isinstance(name, str) and name in _TYPES else "other"


def rcode_label(rcode: int) -> str:
    return _RCODES.get(rcode, "BADVERS" if rcode == 16 else "other")


def reason_class(ok: bool, reason: str) -> str:
    if ok:
        return "ok"
    for name, pattern in _REASONS:
        if pattern.search(reason):
            return name
    return "error"


class ProbeObserver:
    """Counts what the HealthMonitor reports: probe results, durations, transitions."""

    def probed(self, kind: str, ok: bool, reason: str, seconds: float, now_up: bool | None) -> None:
        CHECKS.labels("success" if ok else "failure", reason_class(ok, reason)).inc()
        PROBE_DURATION.labels(kind).observe(seconds)
        if now_up is not None:
            TRANSITIONS.labels("up" if now_up else "down").inc()


class QueryCollector:
    """The answer path's counters (gdns.server.stats), summed over every transport thread and
    worker process, as Prometheus families at scrape time."""

    def __init__(self, totals):
        self.totals = totals  # () -> a gdns.server.stats export (the sum of all of them)

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        from gdns.server.stats import LATENCY_BUCKETS
        from gdns.server.tcp import CLOSE_REASONS

        data = self.totals()
        queries = CounterMetricFamily(
            "gdns_dns_queries", "DNS queries received.", labels=["transport", "family", "type"]
        )
        for labels, value in sorted(data["queries"].items()):
            queries.add_metric(list(labels), value)
        yield queries
        responses = CounterMetricFamily(
            "gdns_dns_responses", "DNS responses sent, by rcode.", labels=["rcode"]
        )
        for rcode, value in sorted(data["responses"].items()):
            responses.add_metric([rcode], value)
        yield responses
        yield CounterMetricFamily(
            "gdns_dns_truncated_responses", "UDP responses sent with TC set.", value=data["truncated"]
        )
        yield CounterMetricFamily(
            "gdns_dns_dropped_queries",
            "Packets dropped without a reply (no header, or a response).",
            value=data["dropped"],
        )
        yield CounterMetricFamily(
            "gdns_dns_full_path_queries",
            "Queries answered by the full path (decoded, resolved, packed) rather than from the fast "
            "path's prebuilt replies; packets dropped are counted here too.",
            value=data.get("full", 0),
        )
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), data["latency"], strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        yield HistogramMetricFamily(
            "gdns_dns_answer_duration_seconds",
            "Time to answer one query, from its bytes to the reply's (fast path or full).",
            buckets=buckets,
            sum_value=data["latency_sum"],
        )
        yield GaugeMetricFamily(
            "gdns_dns_tcp_connections",
            "TCP connections open now (with --workers, as of each worker's last report).",
            value=data.get("tcp_connections", 0),
        )
        closed = CounterMetricFamily(
            "gdns_dns_tcp_connections_closed",
            "TCP connections ended, by reason; refusals at a connection limit count here too.",
            labels=["reason"],
        )
        tcp_closed = data.get("tcp_closed", {})
        for reason in CLOSE_REASONS:  # every reason, 0 until seen, so rate() works from the start
            closed.add_metric([reason], tcp_closed.get(reason, 0))
        yield closed
        answers = CounterMetricFamily(
            "gdns_pool_answers",
            "Addresses given in pool answers, by pool, group and member.",
            labels=["pool", "group", "member"],
        )
        for key, value in sorted(data["members"].items()):
            answers.add_metric(key.rsplit("/", 2), value)  # "<pool>/<group>/<address>"
        yield answers
        down = CounterMetricFamily(
            "gdns_pool_all_down_answers",
            "Pool answers made by when_all_down, by pool and policy.",
            labels=["pool", "policy"],
        )
        for labels, value in sorted(data["all_down"].items()):
            down.add_metric(list(labels), value)
        yield down
        limited = CounterMetricFamily(
            "gdns_rrl_responses",
            "UDP responses over the rate limit (--rrl-*), by what was done with them: dropped, slipped "
            "(sent truncated instead), or log_only (sent anyway, --rrl-log-only).",
            labels=["action"],
        )
        counts = data.get("limited", {})
        for action in RRL_ACTIONS:
            limited.add_metric([action], counts.get(action, 0))
        yield limited
        yield GaugeMetricFamily(
            "gdns_rrl_table_entries",
            "Accounts (client network and answer) in the rate limiter's table, over every worker process.",
            value=data.get("rrl_entries", 0),
        )
        yield CounterMetricFamily(
            "gdns_rrl_evicted_accounts",
            "Accounts being limited that were forgotten because the table was full (--rrl-table-size).",
            value=data.get("rrl_evicted", 0),
        )


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class MemberCollector:
    """gdns_member_up, gdns_member_override and gdns_member_overrides_stale, read from the
    current zones and health snapshot at scrape time (so they are never out of date and cost
    nothing between scrapes)."""

    def __init__(self, state):
        self.state = state  # anything with .engine (zones, health) and .monitor (overrides)

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(
            "gdns_member_up",
            "1 when the member may be given in answers (up), 0 when down or drained.",
            labels=["pool", "group", "member"],
        )
        forced = GaugeMetricFamily(
            "gdns_member_override",
            "1 for each operator override (up, down or drain) in force.",
            labels=["pool", "group", "member", "state"],
        )
        stale = GaugeMetricFamily(
            "gdns_member_overrides_stale",
            "Operator overrides naming a member that no zone served has (kept, without effect).",
        )
        engine = getattr(self.state, "engine", None)
        monitor = getattr(self.state, "monitor", None)
        stale.add_metric([], float(len(monitor.stale_overrides())) if monitor is not None else 0.0)
        if engine is not None:
            for zone in engine.zones.zones.values():
                for pool in zone.pools.values():
                    for group in pool.groups:
                        for member in group.members:
                            labels = [pool.name, group.name, member.address]
                            up.add_metric(labels, 1.0 if engine.health.get(member.key).eligible else 0.0)
                            state = monitor.overrides.get(member.key) if monitor else None
                            if state:
                                forced.add_metric(labels + [state], 1.0)
        yield up
        yield forced
        yield stale
