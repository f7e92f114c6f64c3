"""Composition root: settings -> zones -> engine -> listeners -> reloader; signals."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import time

from aiohttp import web

from gdns.answer.engine import Engine
from gdns.health.monitor import HealthMonitor
from gdns.health.overrides import OverrideError, Overrides
from gdns.health.snapshot import HealthSnapshot
from gdns.server import stats
from gdns.server.fast import FastPath
from gdns.server.handler import Handler
from gdns.server.tcp import TCPLimits, TCPProtocol
from gdns.server.udp import UDPProtocol, UDPThread, size_buffers
from gdns.settings import Settings
from gdns.web import metrics
from gdns.web.app import is_loopback, make_app
from gdns.web.recent import RecentAnswers
from gdns.zone.loader import load_folder
from gdns.zone.reload import ZoneReloader

log = logging.getLogger("gdns")


_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)


class StartupError(Exception):
    """A problem that stops the server from starting, said in one line."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _socket(host: str, kind: int) -> socket.socket:
    sock = socket.socket(_family(host), kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    else:
        with contextlib.suppress(OSError):  # room for bursts: a full buffer drops queries
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if _family(host) == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setblocking(False)
    return sock


def bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A TCP and a UDP socket on the same port; port 0 picks one free for both."""
    for _ in range(50 if port == 0 else 1):
        made: list[socket.socket] = []
        try:
            tcp = _socket(host, socket.SOCK_STREAM)
            made.append(tcp)
            udp = _socket(host, socket.SOCK_DGRAM)
            made.append(udp)
            tcp.bind((host, port))
            udp.bind((host, tcp.getsockname()[1]))
            return tcp, udp
        except OSError as exc:
            for sock in made:
                sock.close()
            if port == 0 and exc.errno == errno.EADDRINUSE:
                continue
            raise StartupError(_bind_message(host, port, exc), exc.errno) from None
    raise StartupError(f"cannot find a free port on {host} for both UDP and TCP")


def _bind_message(host: str, port: int, exc: OSError) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is already in use"
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {where}: permission denied "
            "(ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: the address is not on this host"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def open_geoip(path: str):
    from gdns.geo import GeoDatabase

    try:
        return GeoDatabase(path)
    except FileNotFoundError:
        raise StartupError(f"GeoIP database {path}: no such file") from None
    except Exception as exc:  # maxminddb raises its own errors for a corrupt file
        raise StartupError(f"GeoIP database {path}: cannot be read ({exc})") from None


class App:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine: Engine | None = None
        self.reloader: ZoneReloader | None = None
        self.transports: list = []
        self.udp_threads: list[UDPThread] = []
        self.servers: list[asyncio.base_events.Server] = []
        self.addresses: list[tuple[str, int]] = []
        self._stop = asyncio.Event()
        self.monitor: HealthMonitor | None = None
        self._tasks: set[asyncio.Task] = set()
        self.ready = False
        self.not_ready_reason = "loading zones"
        self.handlers: list[Handler] = []  # one per transport thread, each with its own counters
        self.recent = RecentAnswers(lambda: self.query_totals()["members"])
        self.loaded_at: float | None = None
        self.web_runner: web.AppRunner | None = None
        self.web_address: tuple[str, int] | None = None

    async def set_zones(self, zones) -> None:
        """Swap in reloaded zones. Probes of targets that stay keep their state; new targets
        get a first probe round (bounded like the one at start-up) while the old zones keep
        answering, so a reload never answers a new member on a guess."""
        self.monitor.hold()  # snapshots of the new zones wait for the swap below
        try:
            self.monitor.update(zones)
            if any(t.state.up is None for t in self.monitor.targets.values()):
                await self.monitor.first_round(self.settings.first_probe_deadline)
        finally:
            self.monitor.release()
        # Both swaps happen on the loop thread with no await between them, so every query
        # sees the old zones with the old health, or the new with the new.
        self.engine.health = self.monitor.snapshot(zones)
        self.engine.zones = zones

    def query_totals(self) -> dict:
        """The answer counters of every transport, summed (for /metrics and shares)."""
        return stats.total(h.stats.export() for h in self.handlers)

    def set_health(self, snapshot: HealthSnapshot) -> None:
        if self.engine is not None:  # the first snapshot is handed to the Engine directly
            self.engine.health = snapshot

    async def start(self) -> None:
        s = self.settings
        geo = open_geoip(s.geoip_db) if s.geoip_db else None
        zones = load_folder(s.zones, geoip=geo is not None)  # ZoneLoadError: the caller prints all
        try:
            overrides = Overrides(s.state_file)
        except OverrideError as exc:
            raise StartupError(str(exc)) from None
        pairs = self._bind()  # fail fast on a busy port, before any probing
        try:
            await self._start_web()
            self.not_ready_reason = "first probe round in progress"
            await self._first_probe_round(zones, overrides)
        except BaseException:
            for pair in pairs:
                for sock in pair:
                    sock.close()
            raise
        self.engine = Engine(
            zones,
            version=s.chaos_version,
            identity=s.chaos_id,
            geo=geo,
            health=self.monitor.snapshot(zones),
            why_from=s.why_from,
        )
        fast = FastPath(self.engine, s.max_udp_size)
        handler = Handler(self.engine, s.max_udp_size, sample=s.query_log_sample, fast=fast)
        self.handlers.append(handler)
        limits = TCPLimits(s.tcp_idle_timeout, s.tcp_max_connections)
        loop = asyncio.get_running_loop()
        for tcp, udp in pairs:
            size_buffers(udp)
            if s.udp_on_loop:
                transport, _ = await loop.create_datagram_endpoint(lambda: UDPProtocol(handler), sock=udp)
                self.transports.append(transport)
            else:
                # Its own Handler: each thread writes only its own counters.
                own = Handler(self.engine, s.max_udp_size, sample=s.query_log_sample, fast=fast)
                self.handlers.append(own)
                thread = UDPThread(udp, own)
                thread.start()
                self.udp_threads.append(thread)
            server = await loop.create_server(lambda: TCPProtocol(handler, limits), sock=tcp, backlog=1024)
            self.servers.append(server)
            host, port = udp.getsockname()[:2]
            self.addresses.append((host, port))
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            log.info("listening on %s (udp, tcp)", shown)
        self.reloader = ZoneReloader(s.zones, self.set_zones, s.reload_interval, geoip=geo is not None)
        self.reloader.observer = self._reloaded
        names = ", ".join(f"{z.origin_label} (serial {z.serial})" for z in zones.zones.values())
        log.info("serving %d zone(s): %s", len(zones), names)
        self._loaded(len(zones))
        self.ready, self.not_ready_reason = True, ""

    def _loaded(self, count: int) -> None:
        self.loaded_at = time.time()
        metrics.LAST_RELOAD.set(self.loaded_at)
        metrics.ZONES.set(count)

    def _reloaded(self, result) -> None:
        metrics.RELOADS.labels("success" if result.ok else "failure").inc()
        if result.ok:
            self._loaded(result.zones)

    async def _start_web(self) -> None:
        s = self.settings
        if s.web is None:
            return
        host, port = s.web
        if not is_loopback(host) and not s.admin_token:
            raise StartupError(
                f"refusing to serve the web side on {host}:{port}, beyond loopback, without an admin "
                "token (--admin-token-file or GDNS_ADMIN_TOKEN)"
            )
        self.web_runner = web.AppRunner(make_app(self, s.admin_token), access_log=None)
        await self.web_runner.setup()
        try:
            site = web.TCPSite(self.web_runner, host, port, reuse_address=True)
            await site.start()
        except OSError as exc:
            await self.web_runner.cleanup()
            self.web_runner = None
            raise StartupError(
                _bind_message(host, port, exc).replace("listen on", "serve the web side on")
            ) from None
        self.web_address = self.web_runner.addresses[0][:2]
        shown = f"[{self.web_address[0]}]" if ":" in self.web_address[0] else self.web_address[0]
        log.info("web side on http://%s:%d/ (metrics, status, API)", shown, self.web_address[1])

    def _bind(self) -> list[tuple[socket.socket, socket.socket]]:
        s = self.settings
        pairs = []
        for host, port in s.listen:
            try:
                pairs.append(bind_pair(host, port))
            except StartupError as exc:
                if s.listen_is_default and ":" in host and exc.errno in _NO_IPV6:
                    log.warning("IPv6 is not available here; serving IPv4 only (%s)", exc)
                    continue
                for pair in pairs:
                    for sock in pair:
                        sock.close()
                raise
        return pairs

    async def _first_probe_round(self, zones, overrides: Overrides) -> None:
        """Probe every member once before answering, so the first pool answers are not
        guesses; at the deadline, members still unprobed count as up until they are."""
        self.monitor = HealthMonitor(self.set_health, overrides=overrides, observer=metrics.ProbeObserver())
        await self.monitor.start()
        self.monitor.update(zones)
        if not self.monitor.targets:
            return
        began = time.monotonic()
        unprobed = await self.monitor.first_round(self.settings.first_probe_deadline)
        up = sum(1 for t in self.monitor.targets.values() if t.state.up)
        log.info(
            "first probe round: %d target(s), %d up, %d unprobed (counted as up) after %.2fs",
            len(self.monitor.targets),
            up,
            unprobed,
            time.monotonic() - began,
        )

    def _reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reloader.reload("SIGHUP"))
        self._tasks.add(task)  # the loop keeps only a weak reference to running tasks
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Start, serve until SIGINT/SIGTERM, then close every listener."""
        loop = asyncio.get_running_loop()
        try:
            await self.start()
        except BaseException:
            await self.close()  # whatever started before the failure: probes, web side
            raise
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        watcher = loop.create_task(self.reloader.watch())
        ticker = loop.create_task(self._tick())
        log.info("ready")
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            watcher.cancel()
            ticker.cancel()
            await self.close()

    async def _tick(self, every: float = 5.0) -> None:
        """Marks for the recent-answer shares."""
        while True:
            self.recent.tick()
            await asyncio.sleep(every)

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.close()
        if self.web_runner is not None:
            await self.web_runner.cleanup()
        for transport in self.transports:
            transport.close()
        for thread in self.udp_threads:
            await asyncio.to_thread(thread.close)
        for server in self.servers:
            server.close()
            if hasattr(server, "close_clients"):  # Python 3.13+
                server.close_clients()
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)
