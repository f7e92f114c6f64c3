"""The web side as an attack surface: tokens in every wrong shape, no secret in any log line,
page or API answer, no serving beyond loopback without a token, and limits on what a request
may be (size, headers, time) with the server unharmed after each."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.functional.test_web import (
    KEY_10,
    ORIGIN,
    TOKEN,
    answered_over,
    api,
    http_check,
    override,
    unoverride,
    write_zone,
    www_pool,
)

BACKEND_SECRET = "backend-secret-7f3a"  # sent by the probes to the backend, in the zone file


def raw(server, request: bytes, timeout: float = 5.0) -> bytes:
    """Send `request` as bytes to the web side; return everything it answers until it closes."""
    host, port = server.web.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:  # bounded by the timeout and the server closing
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else 0


def post(headers: bytes, body: bytes = b"{}") -> bytes:
    return (
        b"POST /api/v1/overrides HTTP/1.1\r\nHost: gdns\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n"
        + headers
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def still_fine(server) -> None:
    assert api(server, "/healthz").status == 200
    assert answered_over(server, f"www.{ORIGIN}", 5)


@pytest.fixture
def secret_server(tmp_path, start_server, backend):
    """A server with an admin token, a state file, debug logging, and a check that sends a
    secret header to its backend."""
    probed = backend("127.0.0.41")
    check = http_check(probed, headers={"Authorization": f"Bearer {BACKEND_SECRET}"})
    pool = www_pool()
    pool["www"]["groups"]["main"]["members"].append({"address": "127.0.0.41", "check": "web"})
    write_zone(tmp_path, ORIGIN, pool, {"web": check})
    (tmp_path / "token").write_text(TOKEN + "\n")
    args = ["--admin-token-file", str(tmp_path / "token"), "--state-file", str(tmp_path / "state.json")]
    return start_server(tmp_path, *args, "--log-level", "debug"), probed


def test_tokens_in_every_wrong_shape_are_refused(secret_server):
    server, _ = secret_server
    body = json.dumps({"member": KEY_10, "state": "down"}).encode()
    wrong = [
        b"",  # no header at all
        b"Authorization: \r\n",
        b"Authorization: Bearer\r\n",
        b"Authorization: " + TOKEN.encode() + b"\r\n",  # no scheme
        b"Authorization: Basic " + TOKEN.encode() + b"\r\n",
        b"Authorization: Token " + TOKEN.encode() + b"\r\n",
        b"Authorization: Bearer " + TOKEN[:-1].encode() + b"\r\n",  # a prefix of it
        b"Authorization: Bearer " + TOKEN.upper().encode() + b"\r\n",  # tokens are case-sensitive
        b"Authorization: Bearer " + TOKEN.encode() + b" extra\r\n",
        b"Authorization: Bearer " + TOKEN.encode() + b"\xff\xfe\r\n",  # not UTF-8
        b"Authorization: Bearer \xc3\x28\xa0\xa1\r\n",  # not UTF-8 at all
        b"Authorization: Bearer " + TOKEN.encode() + b"\x00\r\n",  # a NUL byte
    ]
    for header in wrong:
        reply = raw(server, post(header, body))
        assert status_of(reply) in (400, 401), (header, reply[:200])  # 400: aiohttp refuses the bytes
        if status_of(reply) == 401:
            assert b"WWW-Authenticate: Bearer" in reply
            assert TOKEN.encode() not in reply  # the answer never echoes what was presented
    assert api(server, "/api/v1/overrides").json == {"overrides": {}}
    right = raw(server, post(b"Authorization: Bearer " + TOKEN.encode() + b"\r\n", body))
    assert status_of(right) == 200, right[:300]
    still_fine(server)


def test_no_secret_in_logs_status_page_api_or_metrics(secret_server):
    """The admin token and a check's header values appear nowhere gdns shows or writes, after
    actions that succeed and fail, with debug logging on."""
    server, probed = secret_server
    assert probed.requests >= 1  # the probes did send the secret
    assert override(server, KEY_10, "drain").status == 200
    assert override(server, KEY_10, "down", token=TOKEN + "x").status == 401
    assert override(server, KEY_10, "down", token="wrong").status == 401
    assert unoverride(server, KEY_10).status == 200
    assert api(server, "/api/v1/overrides", method="PUT", body={}, token=TOKEN).status == 405
    assert api(server, "/api/v1/overrides", method="POST", body=b"{", token=TOKEN).status == 400
    raw(server, post(b"Authorization: Bearer " + TOKEN.encode() + b"\xff\r\n"))
    bodies = [
        api(server, path).body
        for path in (
            "/status",
            "/api/v1/pools",
            "/api/v1/zones",
            "/api/v1/overrides",
            "/api/v1/reload",
            "/metrics",
        )
    ]
    time.sleep(0.3)  # the last log lines
    server.stop()
    seen = {"log": server.log().encode(), **{f"body {i}": b for i, b in enumerate(bodies)}}
    for where, text in seen.items():
        assert TOKEN.encode() not in text, where
        assert BACKEND_SECRET.encode() not in text, where
    assert b"override: " in seen["log"]  # the actions were logged, without the token
    state = json.loads((Path(server.zones) / "state.json").read_text())
    assert TOKEN not in json.dumps(state)


def test_request_size_and_header_limits_and_the_server_is_fine(secret_server):
    server, _ = secret_server
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
    megabyte = json.dumps({"member": KEY_10, "state": "down", "pad": "x" * (1 << 20)}).encode()
    assert status_of(raw(server, post(auth, megabyte))) == 413  # over 64 KiB
    assert status_of(raw(server, post(b"", megabyte))) == 401  # refused before the body is read
    big_header = b"X-Big: " + b"y" * 100_000 + b"\r\n"
    assert status_of(raw(server, post(auth + big_header))) == 400
    many_headers = b"".join(b"X-H%d: v\r\n" % i for i in range(40_000))
    assert status_of(raw(server, post(auth + many_headers))) in (400, 431, 0)  # refused, or cut off
    long_line = b"GET /api/v1/pools?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: gdns\r\n\r\n"
    assert status_of(raw(server, long_line)) in (400, 414)
    assert status_of(raw(server, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64))) == 400
    assert (
        status_of(raw(server, b"TRACE /api/v1/overrides HTTP/1.1\r\nHost: gdns\r\nConnection: close\r\n\r\n"))
        == 405
    )
    assert api(server, "/api/v1/overrides").json == {"overrides": {}}
    still_fine(server)
    # Each malformed request is one DEBUG line (the server runs at debug), without a traceback
    # quoting the client's bytes: a client cannot flood the log with ERRORs.
    assert server.wait_for_log("refused a malformed HTTP request from 127.0.0.1 (LineTooLong)")
    assert "Traceback" not in server.log() and "Error handling request" not in server.log()
    assert "yyyyyyyy" not in server.log()


@pytest.mark.parametrize("where", ["[::]:0", ":0"])  # 0.0.0.0: test_web.py
def test_the_web_side_refuses_to_serve_beyond_loopback_without_a_token(tmp_path, where):
    write_zone(tmp_path, ORIGIN, www_pool())
    env = {k: v for k, v in os.environ.items() if k != "GDNS_ADMIN_TOKEN"}
    cmd = [sys.executable, "-m", "gdns", "serve", "--zones", str(tmp_path), "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*cmd, "--web", where], capture_output=True, text=True, timeout=30, env=env, cwd=ROOT
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gdns: error: refusing to serve the web side on "), (
        done.stderr
    )
    assert "without an admin token" in lines[0]
    assert "Traceback" not in done.stderr


def test_idle_and_trickling_web_connections_are_closed():
    """Connections that send nothing, or their headers a byte at a time, do not stay open: the
    web side shares the process (and its file descriptors) with DNS."""
    from gdns.web.app import make_runner

    class State:
        engine = monitor = reloader = None
        ready, not_ready_reason = False, "testing"

    async def main() -> tuple[float, float]:
        runner = make_runner(State(), None, idle_timeout=0.5)
        await runner.setup()
        try:
            from aiohttp import web

            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            times = []
            for trickle in (False, True):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                began = time.monotonic()
                writer.write(b"GET /healthz HTTP/1.1\r\n")
                for _ in range(40 if trickle else 0):  # bounded: 4 s at most
                    if reader.at_eof():
                        break
                    writer.write(b"X: y\r\n")
                    await asyncio.sleep(0.1)
                await asyncio.wait_for(reader.read(), 5)  # until the server closes
                times.append(time.monotonic() - began)
                writer.close()
            return tuple(times)
        finally:
            await runner.cleanup()

    idle, trickle = asyncio.run(main())
    assert 0.4 < idle < 2 and 0.4 < trickle < 2, (idle, trickle)


def test_worker_processes_do_not_inherit_the_admin_token(tmp_path, start_server, monkeypatch):
    monkeypatch.setenv("GDNS_ADMIN_TOKEN", TOKEN)
    write_zone(tmp_path, ORIGIN, www_pool())
    server = start_server(tmp_path, "--workers", "2")
    assert override(server, KEY_10, "down").status == 200  # the instance has it
    pids = [int(m) for m in re.findall(r"answering on .*, pid (\d+)", server.log())]
    assert len(pids) == 2, server.log()
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert TOKEN.encode() not in environ and b"GDNS_ADMIN_TOKEN" not in environ
