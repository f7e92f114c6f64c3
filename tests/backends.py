"""Real backends on loopback for the health tests: an aiohttp server whose behaviour can be
changed while it runs, a raw TCP server that misbehaves, and a TLS variant with a trustme CA.

Every server listens on a 127.0.0.x address and an ephemeral port; nothing leaves the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

HUGE_TOTAL = 32 * 1024 * 1024  # bytes the /huge route would send if the client read it all
ENDLESS_TOTAL = 1024 * 1024 * 1024  # bytes the /endless route sends at most (it is never read)


@dataclass
class Seen:
    method: str
    path: str
    host: str | None
    headers: dict[str, str] = field(default_factory=dict)


class Backend:
    """An aiohttp app on `host`, port 0. Change `status`, `body`, `delay`, `compress` at any
    time; `requests` records every request it received (method, path, Host header).

    Routes: /host echoes the Host header; /redirect answers 302 to /; /slow-body sends the
    headers and "start", then "end" after `delay` seconds; /huge streams
    HUGE_TOTAL bytes ("EARLY" after 40 KiB, "LATE" after 80 KiB) and counts what it sent;
    /endless streams a chunked body until the client hangs up (or ENDLESS_TOTAL), counted too;
    everything else answers `status` with `body` after `delay` seconds.
    """

    def __init__(self, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None):
        self.host = host
        self.ssl_context = ssl_context
        self.status = 200
        self.body = "ok"
        self.delay = 0.0
        self.compress = False
        self.requests: list[Seen] = []
        self.huge_sent = 0
        self.endless_sent = 0
        self.inflight = 0  # requests being answered now, and the most at once
        self.max_inflight = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def count(self) -> int:
        return len(self.requests)

    async def start(self) -> Backend:
        app = web.Application()
        app.router.add_route("*", "/host", self._host)
        app.router.add_route("*", "/redirect", self._redirect)
        app.router.add_route("*", "/huge", self._huge)
        app.router.add_route("*", "/endless", self._endless)
        app.router.add_route("*", "/slow-body", self._slow_body)
        app.router.add_route("*", "/{tail:.*}", self._default)
        # A request still hanging (delay) is cut off at close, not waited for.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Backend:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _seen(self, request: web.Request) -> None:
        self.requests.append(
            Seen(request.method, request.path, request.headers.get("Host"), dict(request.headers))
        )

    async def _default(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.inflight -= 1
        response = web.Response(status=self.status, text=self.body)
        if self.compress:
            response.enable_compression()
        return response

    async def _host(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(text=f"host={request.headers.get('Host')}")

    async def _redirect(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPFound("/")

    async def _slow_body(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, OSError):
            await response.write(b"start ")
            await asyncio.sleep(self.delay)
            await response.write(b"end")
        return response

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        response = web.StreamResponse()
        response.content_length = HUGE_TOTAL
        await response.prepare(request)
        chunk = 64 * 1024
        head = b"x" * (40 * 1024) + b"EARLY" + b"x" * (40 * 1024) + b"LATE"
        sent = 0
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            await response.write(head)
            sent = self.huge_sent = len(head)
            while sent < HUGE_TOTAL:  # bounded: at most HUGE_TOTAL / chunk writes
                await response.write(b"y" * min(chunk, HUGE_TOTAL - sent))
                sent += min(chunk, HUGE_TOTAL - sent)
                self.huge_sent = sent
        return response

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        """A chunked body with no end in sight (bounded at ENDLESS_TOTAL, far past any limit)."""
        self._seen(request)
        response = web.StreamResponse()  # no length: chunked transfer encoding
        await response.prepare(request)
        chunk = b"z" * (64 * 1024)
        self.endless_sent = 0
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while self.endless_sent < ENDLESS_TOTAL:
                await response.write(chunk)
                self.endless_sent += len(chunk)
        return response


class RawServer:
    """A TCP server that speaks no HTTP, or broken HTTP. mode: "garbage" writes junk and
    closes, "bad-status" sends an invalid status line, "short-body" promises 100 bytes of
    body and sends 3, "close" closes at once, "reset" aborts with a RST, "hang" accepts and
    says nothing."""

    def __init__(self, mode: str, host: str = "127.0.0.1"):
        self.mode = mode
        self.host = host
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._hanging: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        for writer in self._hanging:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(reader.read(1024), 1.0)  # let the request arrive
        if self.mode == "hang":
            self._hanging.append(writer)
            return
        reply = {
            "garbage": b"\x00\xffthis is not HTTP at all\r\n\r\n\x17\x03",
            "bad-status": b"HTTP/1.1 abc OK\r\n\r\n",
            "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
        }.get(self.mode)
        if reply is not None:
            writer.write(reply)
            with contextlib.suppress(OSError):
                await writer.drain()
        if self.mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        writer.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound and released): connecting to it is refused."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TLS:
    """A trustme CA; `server_context(*names)` for a backend, `ca_file` for probes to trust it."""

    def __init__(self, folder: Path):
        import trustme

        self.ca = trustme.CA()
        self.ca_file = str(folder / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def server_context(self, *names: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(*names).configure_cert(context)
        return context


def probe_session() -> aiohttp.ClientSession:
    """A session configured as the HealthMonitor configures its own."""
    from gdns.health.probe import new_session

    return new_session()


class ThreadedBackend:
    """An HTTP backend on a loopback address, served by aiohttp in its own thread and loop, for
    tests whose own code is synchronous (they drive a `gdns serve` subprocess).

    `status`, `delay` and `body` are read per request, so the test flips them at any time.
    Every answered request is recorded as (arrival time, status answered)."""

    def __init__(self, host: str):
        self.host = host
        self.status = 200
        self.delay = 0.0
        self.body = "ok"
        self.log: list[tuple[float, int]] = []  # (monotonic arrival, status answered)
        self.arrived = 0  # requests received, answered or not yet
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"backend-{host}", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    @property
    def requests(self) -> int:
        return len(self.log)

    async def _start(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        self.arrived += 1
        if self.delay > 0:
            with contextlib.suppress(TimeoutError):  # a hang that ends early when the backend closes
                await asyncio.wait_for(self._closing.wait(), self.delay)
        status = self.status
        self.log.append((arrived, status))
        return web.Response(status=status, text=self.body)

    def answered_since(self, since: float, ok: bool) -> int:
        """Requests that arrived after `since` and were answered 2xx (ok) or not."""
        return sum(1 for arrived, status in list(self.log) if arrived >= since and (status < 300) == ok)

    def close(self) -> None:
        async def stop() -> None:
            self._closing.set()
            await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()


class InThread:
    """An async test server (Backend, RawServer: anything with async __aenter__/__aexit__)
    run on its own event loop in a thread, for tests whose own code is synchronous."""

    def __init__(self, server):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="in-thread-server", daemon=True)
        self._thread.start()
        self.server = self._run(server.__aenter__())

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    @property
    def port(self) -> int:
        return self.server.port

    def close(self) -> None:
        try:
            self._run(self.server.__aexit__(None, None, None))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
