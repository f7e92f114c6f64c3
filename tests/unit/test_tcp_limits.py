"""The TCP connection cap counts every refusal but warns at most once per interval."""

import logging

from gdns.server import tcp


def test_refusals_are_counted_and_warnings_rate_limited(caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(tcp.time, "monotonic", lambda: clock[0])
    limits = tcp.TCPLimits(idle_timeout=1, max_connections=2)
    with caplog.at_level(logging.WARNING, logger="gdns.tcp"):
        for _ in range(50):
            limits.refused(("192.0.2.7", 5353))
        assert len(caplog.records) == 1
        clock[0] += tcp.WARN_EVERY
        limits.refused(("192.0.2.7", 5353))
    assert limits.refused_total == 51
    assert len(caplog.records) == 2
    assert "51 refused so far" in caplog.records[-1].getMessage()
