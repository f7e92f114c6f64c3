"""gdns.health.probe.run_probe against real backends on loopback: every failure is a
ProbeResult with a reason, never an exception."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest

from gdns.health.probe import BODY_LIMIT, ProbeResult, run_probe
from gdns.zone.checks import Check
from tests.backends import HUGE_TOTAL, TLS, Backend, RawServer, free_port, probe_session

HTTP = Check(type="http", port=0, interval=1.0, timeout=0.5)


def probe(address: str, check: Check) -> ProbeResult:
    """One probe in a fresh session (inside a running loop)."""

    async def go() -> ProbeResult:
        async with probe_session() as session:
            return await run_probe(session, address, check)

    return go()


def with_backend(test, **behaviour):
    """Run `test(backend)` (a coroutine function) against a fresh Backend."""

    async def main():
        async with Backend() as backend:
            for key, value in behaviour.items():
                setattr(backend, key, value)
            return await test(backend)

    return asyncio.run(main())


def http_probe(**check):
    """Probe a fresh backend with HTTP fields `check`; return (result, backend)."""
    behaviour = {k: check.pop(k) for k in ("status", "body_text", "delay", "compress") if k in check}
    if "body_text" in behaviour:
        behaviour["body"] = behaviour.pop("body_text")

    async def test(backend):
        return await probe("127.0.0.1", replace(HTTP, port=backend.port, **check)), backend

    return with_backend(test, **behaviour)


# -- HTTP -------------------------------------------------------------------------------------


def test_200_is_up_with_a_round_trip_time():
    result, backend = http_probe()
    assert result.ok and result.reason == "status 200"
    assert result.rtt is not None and 0 < result.rtt < 0.5
    assert [(r.method, r.path) for r in backend.requests] == [("GET", "/")]


def test_path_and_headers_are_sent():
    result, backend = http_probe(path="/health/deep?x=1", headers=(("X-Probe", "gdns"),))
    assert result.ok
    assert backend.requests[0].path == "/health/deep"
    assert backend.requests[0].headers["X-Probe"] == "gdns"


@pytest.mark.parametrize(
    ("status", "expect", "ok"),
    [
        (204, frozenset(range(200, 300)), True),
        (299, frozenset(range(200, 300)), True),
        (301, frozenset(range(200, 300)), False),
        (404, frozenset({200, 404}), True),
        (418, frozenset(range(400, 500)), True),
        (200, frozenset({204}), False),
    ],
)
def test_expected_statuses(status, expect, ok):
    result, _ = http_probe(status=status, expect=expect)
    assert result.ok is ok
    assert result.reason == f"status {status}"
    assert (result.rtt is not None) is ok


def test_503_is_down_with_the_status_as_reason():
    result, _ = http_probe(status=503)
    assert result == ProbeResult(False, "status 503")


def test_body_substring():
    assert http_probe(body_text="all systems go", body="systems")[0].ok
    result, _ = http_probe(body_text="maintenance", body="systems")
    assert result == ProbeResult(False, "body does not contain 'systems'")


def test_body_regex():
    assert http_probe(body_text='{"status": "ok"}', body_regex=r'"status":\s*"ok"')[0].ok
    result, _ = http_probe(body_text='{"status": "degraded"}', body_regex=r'"status":\s*"ok"')
    assert not result.ok
    assert result.reason == 'body does not match \'"status":\\\\s*"ok"\''


def test_status_is_checked_before_the_body():
    result, _ = http_probe(status=500, body_text="ok", body="ok")
    assert result.reason == "status 500"


def test_compressed_body_is_checked_as_sent_uncompressed():
    """The session does not decompress (no bombs), so a probe must not invite compression:
    a backend that gzips whatever the client accepts would fail every body check."""
    body = "healthy " * 200
    result, backend = http_probe(body_text=body, compress=True, body="healthy")
    assert result.ok, result
    assert backend.requests[0].headers.get("Accept-Encoding", "identity") == "identity"


def timed_probe(path: str, delay: float, timeout: float, **check) -> tuple[ProbeResult, float]:
    async def test(backend):
        started = time.monotonic()
        result = await probe(
            "127.0.0.1", replace(HTTP, port=backend.port, path=path, timeout=timeout, **check)
        )
        return result, time.monotonic() - started

    return with_backend(test, delay=delay)


def test_slow_backend_times_out():
    result, took = timed_probe("/", delay=0.6, timeout=0.2)
    assert result == ProbeResult(False, "timeout after 0.2s")
    assert 0.15 < took < 0.5


def test_slow_body_times_out_too():
    """The timeout covers reading the body, not only the headers."""
    result, took = timed_probe("/slow-body", delay=0.6, timeout=0.2, body="end")
    assert result == ProbeResult(False, "timeout after 0.2s")
    assert 0.15 < took < 0.5


def test_body_arriving_in_pieces_is_read_whole():
    result, _ = timed_probe("/slow-body", delay=0.1, timeout=0.5, body="start end")
    assert result.ok, result


def test_hanging_server_times_out():
    async def main():
        async with RawServer("hang") as server:
            return await probe("127.0.0.1", replace(HTTP, port=server.port, timeout=0.2))

    assert asyncio.run(main()) == ProbeResult(False, "timeout after 0.2s")


def test_refused_port():
    result = asyncio.run(probe("127.0.0.1", replace(HTTP, port=free_port())))
    assert result == ProbeResult(False, "connection refused")


@pytest.mark.parametrize("mode", ["garbage", "bad-status", "close", "reset"])
def test_misbehaving_tcp_server_is_a_failure_with_a_reason(mode):
    async def main():
        async with RawServer(mode) as server:
            result = await probe("127.0.0.1", replace(HTTP, port=server.port))
            return result, server.connections

    result, connections = asyncio.run(main())
    assert 1 <= connections <= 2  # aiohttp retries an idempotent request once on a dead connection
    assert not result.ok and result.rtt is None
    assert result.reason and not result.reason.startswith("probe error"), result.reason
    assert "\n" not in result.reason and len(result.reason) <= 200
    expected = {
        "garbage": "bad response: Bad status line",
        "bad-status": "bad response: Bad status line: Invalid status code",
        "close": "connection closed before a response",
        "reset": "connection reset",
    }[mode]
    assert result.reason.startswith(expected), result.reason


def test_huge_body_is_read_only_up_to_the_limit():
    async def test(backend):
        early = await probe("127.0.0.1", replace(HTTP, port=backend.port, path="/huge", body="EARLY"))
        late = await probe("127.0.0.1", replace(HTTP, port=backend.port, path="/huge", body="LATE"))
        await asyncio.sleep(0.1)  # let the handler notice the closed connection
        return early, late, backend.huge_sent

    assert 40 * 1024 + 5 < BODY_LIMIT < 80 * 1024, "the markers must straddle the limit"
    started = time.monotonic()
    early, late, sent = with_backend(test)
    assert early.ok, early  # found past the first read, which holds only what has arrived
    assert late == ProbeResult(False, "body does not contain 'LATE'")  # beyond the limit
    assert sent < HUGE_TOTAL / 2  # the probe hung up long before the end
    assert time.monotonic() - started < 3


def test_endless_chunked_body_is_read_only_up_to_the_limit_in_flat_memory():
    """A body with no length and no end: the probe stops at BODY_LIMIT, decides, hangs up,
    and never holds much more than the limit in memory."""

    async def test(backend):
        check = replace(HTTP, port=backend.port, path="/endless", body="NEVER", timeout=2.0)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            result = await probe("127.0.0.1", check)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        await asyncio.sleep(0.1)  # let the handler notice the closed connection
        return result, peak, backend.endless_sent

    started = time.monotonic()
    result, peak, sent = with_backend(test)
    assert result == ProbeResult(False, "body does not contain 'NEVER'")  # decided, not a timeout
    assert time.monotonic() - started < 1.5
    assert sent < 16 * 1024 * 1024, sent  # the probe hung up; the backend stopped soon after
    # Backend and probe share this process: both are counted, and still far below one MiB of
    # body buffered, let alone the gigabyte on offer.
    assert peak < 1024 * 1024, peak


def test_host_header_is_sent_when_host_is_set():
    result, backend = http_probe(path="/host", host="www.example.com", body="host=www.example.com")
    assert result.ok, result
    assert backend.requests[0].host == "www.example.com"


def test_host_header_defaults_to_the_address():
    result, backend = http_probe(path="/host", body_regex=r"^host=127\.0\.0\.1:\d+$")
    assert result.ok, result


def test_head_method():
    result, backend = http_probe(method="HEAD")
    assert result.ok
    assert [r.method for r in backend.requests] == ["HEAD"]


def test_redirects_are_not_followed_by_default():
    result, backend = http_probe(path="/redirect")
    assert result == ProbeResult(False, "status 302")
    assert [r.path for r in backend.requests] == ["/redirect"]


def test_redirects_followed_when_asked():
    result, backend = http_probe(path="/redirect", follow_redirects=True)
    assert result.ok
    assert [r.path for r in backend.requests] == ["/redirect", "/"]


def test_other_loopback_addresses():
    async def main():
        async with Backend("127.0.0.2") as backend:
            on = await probe("127.0.0.2", replace(HTTP, port=backend.port))
            off = await probe("127.0.0.3", replace(HTTP, port=backend.port))
            return on, off

    on, off = asyncio.run(main())
    assert on.ok
    assert off == ProbeResult(False, "connection refused")


# -- TCP --------------------------------------------------------------------------------------


def test_tcp_connect():
    async def main():
        async with RawServer("close") as server:
            ok = await probe("127.0.0.1", Check(type="tcp", port=server.port, timeout=0.5))
            await asyncio.sleep(0.05)
            return ok, server.connections

    result, connections = asyncio.run(main())
    assert result.ok and result.reason == "connected"
    assert result.rtt is not None and result.rtt < 0.5
    assert connections == 1


def test_tcp_refused():
    result = asyncio.run(probe("127.0.0.1", Check(type="tcp", port=free_port(), timeout=0.5)))
    assert result == ProbeResult(False, "connection refused")


# -- HTTPS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TLS:
    return TLS(tmp_path_factory.mktemp("tls"))


def https_probe(tls: TLS, names=("127.0.0.1",), **check) -> ProbeResult:
    async def main():
        async with Backend(ssl_context=tls.server_context(*names)) as backend:
            return await probe("127.0.0.1", Check(type="https", port=backend.port, timeout=0.5, **check))

    return asyncio.run(main())


def test_https_trusted_with_the_ca_bundle(tls):
    result = https_probe(tls, ca=tls.ca_file)
    assert result.ok and result.reason == "status 200"


def test_https_untrusted_is_a_tls_error(tls):
    result = https_probe(tls)
    assert not result.ok
    assert result.reason.startswith("TLS error"), result.reason
    assert "certificate verify failed" in result.reason or "unable to get local issuer" in result.reason


def test_https_without_verification(tls):
    assert https_probe(tls, verify=False).ok
    assert https_probe(tls, names=("other.example.net",), verify=False).ok


def test_https_hostname_is_checked_against_host(tls):
    names = ("www.example.com",)
    assert https_probe(tls, names, ca=tls.ca_file, host="www.example.com").ok
    wrong = https_probe(tls, names, ca=tls.ca_file, host="api.example.com")
    assert not wrong.ok and wrong.reason.startswith("TLS error"), wrong.reason
    assert "api.example.com" in wrong.reason or "mismatch" in wrong.reason
    # without `host`, the certificate must name the address itself
    bare = https_probe(tls, names, ca=tls.ca_file)
    assert not bare.ok and bare.reason.startswith("TLS error"), bare.reason


def test_https_host_header_and_sni(tls):
    async def main():
        async with Backend(ssl_context=tls.server_context("www.example.com")) as backend:
            check = Check(
                type="https", port=backend.port, timeout=0.5, ca=tls.ca_file, host="www.example.com"
            )
            result = await probe("127.0.0.1", replace(check, path="/host", body="host=www.example.com"))
            return result, backend.requests

    result, requests = asyncio.run(main())
    assert result.ok, result
    assert requests[0].host == "www.example.com"


def test_https_to_a_plain_http_port_is_a_failure(tls):
    async def main():
        async with Backend() as backend:
            return await probe("127.0.0.1", Check(type="https", port=backend.port, timeout=0.5, verify=False))

    result = asyncio.run(main())
    assert not result.ok and result.reason and not result.reason.startswith("probe error"), result.reason


def test_https_with_a_missing_ca_file_is_a_failure_not_an_exception(tls, tmp_path):
    result = https_probe(tls, ca=str(tmp_path / "missing.pem"))
    assert not result.ok
    assert result.reason.startswith(f"TLS error: CA file {tmp_path / 'missing.pem'}: No such file")


def test_a_replaced_ca_file_is_read_again(tls, tmp_path):
    """A renewed CA bundle takes effect at the next probe, without a restart."""
    ca = tmp_path / "ca.pem"
    TLS(tmp_path).ca.cert_pem.write_to_path(str(ca))  # another CA: not the backend's
    assert https_probe(tls, ca=str(ca)).reason.startswith("TLS error: ")
    tmp = tmp_path / "ca.pem.new"
    tmp.write_bytes(Path(tls.ca_file).read_bytes())
    os.replace(tmp, ca)
    assert https_probe(tls, ca=str(ca)).ok
