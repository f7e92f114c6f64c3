"""Probes: one HTTP(S) request or one TCP connect, timed, with a reason for every failure.

A probe never raises: whatever the backend does (hang, refuse, reset, garbage, a huge body)
comes back as a ProbeResult with ok=False and a short reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache

import aiohttp

from gdns.zone.checks import Check

BODY_LIMIT = 64 * 1024  # bytes of a response body read for a body check


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    reason: str
    rtt: float | None = None  # seconds, for successful probes


def new_session(limit: int = 64) -> aiohttp.ClientSession:
    """The one session probes share. No keep-alive, so every probe tests a real connection;
    no decompression, so a body check never inflates a compressed bomb."""
    connector = aiohttp.TCPConnector(limit=limit, force_close=True)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


async def run_probe(session: aiohttp.ClientSession, address: str, check: Check) -> ProbeResult:
    try:
        if check.type == "tcp":
            return await _tcp(address, check)
        return await _http(session, address, check)
    except Exception as exc:  # a probe must never take the monitor down
        return ProbeResult(False, _line(f"probe error: {type(exc).__name__}: {exc}"))


async def _tcp(address: str, check: Check) -> ProbeResult:
    start = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, check.port), check.timeout)
    except TimeoutError:
        return ProbeResult(False, f"timeout after {check.timeout:g}s")
    except OSError as exc:
        return ProbeResult(False, _os_reason(exc))
    rtt = time.monotonic() - start
    writer.close()
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(writer.wait_closed(), 1)
    return ProbeResult(True, "connected", rtt)


async def _http(session: aiohttp.ClientSession, address: str, check: Check) -> ProbeResult:
    host = f"[{address}]" if ":" in address else address
    url = f"{check.type}://{host}:{check.port}{check.path}"
    headers = dict(check.headers)
    given = {name.lower() for name in headers}
    if "accept-encoding" not in given:
        # The session does not decompress (no bombs), so ask for the body as it is: a
        # backend that compresses what the client accepts would fail every body check.
        headers["Accept-Encoding"] = "identity"
    kwargs = {}
    if check.host:
        if "host" not in given:
            headers["Host"] = check.host
        if check.type == "https":
            kwargs["server_hostname"] = check.host
    if check.type == "https":
        try:
            kwargs["ssl"] = tls_context(check.verify, check.ca, _stamp(check.ca))
        except OSError as exc:  # the CA file was fine when the zones loaded; now it is not
            return ProbeResult(False, _line(f"TLS error: CA file {check.ca}: {exc.strerror or exc}"))
    start = time.monotonic()
    try:
        async with session.request(
            check.method,
            url,
            headers=headers,
            allow_redirects=check.follow_redirects,
            timeout=aiohttp.ClientTimeout(total=check.timeout),
            **kwargs,
        ) as response:
            body = b""
            if check.body is not None or check.body_regex is not None:
                body = await _read_body(response.content)
            rtt = time.monotonic() - start
            status = response.status
    except TimeoutError:
        return ProbeResult(False, f"timeout after {check.timeout:g}s")
    except aiohttp.ClientConnectorCertificateError as exc:
        return ProbeResult(False, _line(f"TLS error: {exc.certificate_error}"))
    except aiohttp.ClientSSLError as exc:
        return ProbeResult(False, _line(f"TLS error: {exc}"))
    except aiohttp.ClientConnectorError as exc:
        return ProbeResult(False, _os_reason(exc.os_error))
    except aiohttp.ServerDisconnectedError:
        return ProbeResult(False, "connection closed before a response")
    except aiohttp.ClientPayloadError as exc:
        return ProbeResult(False, _line(f"bad response body: {exc}"))
    except aiohttp.ClientResponseError as exc:
        return ProbeResult(False, _line(f"bad response: {exc.message}"))
    except (aiohttp.ClientOSError, OSError) as exc:
        return ProbeResult(False, _os_reason(exc))
    if status not in check.expect:
        return ProbeResult(False, f"status {status}")
    if check.body is not None and check.body.encode() not in body:
        return ProbeResult(False, f"body does not contain {check.body!r}")
    if check.body_regex is not None and not re.search(check.body_regex, body.decode("utf-8", "replace")):
        return ProbeResult(False, f"body does not match {check.body_regex!r}")
    return ProbeResult(True, f"status {status}", rtt)


async def _read_body(content: aiohttp.StreamReader) -> bytes:
    """Up to BODY_LIMIT bytes: one read() returns only what has arrived so far."""
    body = b""
    while len(body) < BODY_LIMIT:
        chunk = await content.read(BODY_LIMIT - len(body))
        if not chunk:
            break
        body += chunk
    return body


def _os_reason(exc: BaseException | None) -> str:
    # aiohttp wraps socket errors in ClientOSError, which keeps the errno but not the subclass
    code = getattr(exc, "errno", None)
    if isinstance(exc, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, ConnectionResetError) or code == errno.ECONNRESET:
        return "connection reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc is None:
        return "connection failed"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _line(f"connection failed: {text}")


def _line(text: str) -> str:
    """A reason is one short line: it goes to logs and the status page."""
    return " ".join(text.split())[:200]


def _stamp(ca: str | None) -> tuple[int, int, int] | None:
    """What changes when the CA file is replaced: a renewed bundle is read again."""
    if ca is None:
        return None
    try:
        st = os.stat(ca)
    except OSError:
        return None  # tls_context reports it
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def tls_context(verify: bool, ca: str | None, stamp: tuple | None = None) -> ssl.SSLContext | bool:
    """Verifying contexts are built once per (verify, CA bundle and its version `stamp`);
    verify=false skips checks. Raises OSError (ssl.SSLError too) for an unusable CA file."""
    if not verify:
        return False
    context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    return context
