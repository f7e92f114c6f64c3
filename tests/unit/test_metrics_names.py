"""The metric names and label values gdns can produce, checked without a server: one `gdns_`
namespace, units in names, and label values from fixed sets whatever the input."""

from __future__ import annotations

import pytest
from dnslib import QTYPE
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gdns.web import metrics

FORBIDDEN_LABELS = {"qname", "name", "client", "address", "ip", "client_ip", "src", "source"}


def test_every_registered_family_follows_the_naming_rules():
    text = generate_latest(metrics.REGISTRY).decode()
    families = list(text_string_to_metric_families(text))
    assert families
    for family in families:
        assert family.name.startswith("gdns_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), sample


def test_query_type_labels_come_from_a_fixed_set():
    labels = {metrics.type_label(t) for t in range(0, 65536, 7)} | {metrics.type_label(None)}
    labels |= {metrics.type_label(t) for t in (1, 28, 5, 15, 16, 2, 6, 33, 257, 12, 255, 65, 64, 252, 251)}
    assert labels <= metrics._TYPES | {"other", "none"}
    assert {"A", "AAAA", "other", "none"} <= labels
    assert metrics.type_label(QTYPE.A) == "A"
    assert metrics.type_label(65280) == "other"


@pytest.mark.parametrize(
    ("rcode", "label"),
    [(0, "NOERROR"), (1, "FORMERR"), (2, "SERVFAIL"), (3, "NXDOMAIN"), (4, "NOTIMP"), (5, "REFUSED")]
    + [(9, "other"), (15, "other"), (16, "BADVERS")],
)
def test_rcode_labels(rcode, label):
    assert metrics.rcode_label(rcode) == label


@pytest.mark.parametrize(
    ("ok", "reason", "label"),
    [
        (True, "status 200", "ok"),
        (True, "connected", "ok"),
        (False, "timeout after 2s", "timeout"),
        (False, "connection refused", "refused"),
        (False, "connection reset by peer", "reset"),
        (False, "connection closed before a response", "reset"),
        (False, "status 503", "status"),
        (False, "body does not contain 'ok'", "body"),
        (False, "bad response body: Response payload is not completed", "body"),
        (False, "bad response: Bad status line: Invalid status code: b'HTTP/1.1 abc OK' ^", "protocol"),
        (False, "bad response: Got more than 8190 bytes when reading", "protocol"),
        (False, "bad response: Bad status line: b'connection refused' ^", "protocol"),
        (False, "TLS error: [SSL] connection reset", "tls"),
        (False, "TLS error: certificate has expired", "tls"),
        (False, "probe error: ValueError: 203.0.113.7 said something odd", "error"),
    ],
)
def test_probe_reasons_fold_into_a_few_classes(ok, reason, label):
    assert metrics.reason_class(ok, reason) == label


def test_query_collector_families_follow_the_naming_rules_and_tcp_reasons_are_fixed():
    from prometheus_client import CollectorRegistry

    from gdns.server import stats
    from gdns.server.tcp import CLOSE_REASONS, TCPLimits

    limits = TCPLimits(max_per_client=1)
    key = limits.admit("192.0.2.1")
    limits.admit("192.0.2.1")  # refused: per client
    limits.admit("192.0.2.2")
    limits.release(key, "write_timeout")
    registry = CollectorRegistry()
    registry.register(metrics.QueryCollector(lambda: stats.total([limits.export()])))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    for family in families.values():
        assert family.name.startswith("gdns_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), sample
    assert families["gdns_dns_tcp_connections"].type == "gauge"
    assert families["gdns_dns_tcp_connections"].samples[0].value == 1
    closed = {s.labels["reason"]: s.value for s in families["gdns_dns_tcp_connections_closed"].samples}
    assert set(closed) == set(CLOSE_REASONS)  # every reason present from the start, no others
    assert closed["write_timeout"] == 1 and closed["per_client_limit"] == 1 and closed["idle"] == 0
