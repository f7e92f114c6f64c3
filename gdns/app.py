"""Composition root: settings -> zones -> engine -> listeners -> reloader; signals."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
import time

from aiohttp import web

from gdns.answer.engine import Engine
from gdns.health.monitor import HealthMonitor
from gdns.health.overrides import OverrideError, Overrides
from gdns.health.snapshot import HealthSnapshot
from gdns.server import stats
from gdns.server.fast import FastPath
from gdns.server.handler import Handler
from gdns.server.rrl import RateLimiter, RRLSettings
from gdns.server.tcp import TCPLimits, TCPProtocol
from gdns.server.udp import UDPProtocol, UDPThread, size_buffers
from gdns.settings import Settings
from gdns.web import metrics
from gdns.web.app import is_loopback, make_runner
from gdns.web.recent import RecentAnswers
from gdns.zone.loader import load_folder
from gdns.zone.reload import SETTLE, ZoneReloader

log = logging.getLogger("gdns")


_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)


class StartupError(Exception):
    """A problem that stops the server from starting (or, with workers, running), said in one line."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _socket(host: str, kind: int, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(_family(host), kind)
    if reuse_port:  # --workers: several sockets share the port; the kernel spreads the queries
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    else:
        with contextlib.suppress(OSError):  # room for bursts: a full buffer drops queries
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if _family(host) == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setblocking(False)
    return sock


TCP_BACKLOG = 1024  # connections the kernel completes and queues before gdns accepts them


def bind_pair(
    host: str, port: int, reuse_port: bool = False, listen: bool = True
) -> tuple[socket.socket, socket.socket]:
    """A TCP and a UDP socket on the same port; port 0 picks one free for both.

    The TCP socket listens at once, like the UDP socket receives at once: until gdns answers
    (after the first probe round), the kernel completes connections and keeps them, with the
    queries sent on them, in the backlog, as it keeps datagrams in the UDP socket's buffer.
    Nothing is refused in that window; everything is answered once gdns is ready."""
    for _ in range(50 if port == 0 else 1):
        made: list[socket.socket] = []
        try:
            tcp = _socket(host, socket.SOCK_STREAM, reuse_port)
            made.append(tcp)
            udp = _socket(host, socket.SOCK_DGRAM, reuse_port)
            made.append(udp)
            tcp.bind((host, port))
            udp.bind((host, tcp.getsockname()[1]))
            if listen:
                tcp.listen(TCP_BACKLOG)
            return tcp, udp
        except OSError as exc:
            for sock in made:
                sock.close()
            if port == 0 and exc.errno == errno.EADDRINUSE:
                continue
            raise StartupError(_bind_message(host, port, exc), exc.errno) from None
    raise StartupError(f"cannot find a free port on {host} for both UDP and TCP")


def bind_shared(host: str, port: int, count: int) -> list[tuple[socket.socket, socket.socket]]:
    """`count` TCP+UDP pairs on one port with SO_REUSEPORT, one pair per worker process.

    A plain pair is bound first, to find the port (or find it busy) exactly as one process
    would: SO_REUSEPORT alone would quietly share a port that another gdns (same user) holds.
    """
    for _ in range(20 if port == 0 else 1):
        probe = bind_pair(host, port, listen=False)  # a busy port: the usual one-line error
        got = probe[1].getsockname()[1]
        for sock in probe:
            sock.close()
        pairs: list[tuple[socket.socket, socket.socket]] = []
        try:
            for _ in range(count):
                pairs.append(bind_pair(host, got, reuse_port=True))
            return pairs
        except StartupError as exc:
            for pair in pairs:
                for sock in pair:
                    sock.close()
            if port == 0 and exc.errno == errno.EADDRINUSE:  # taken between the two binds
                continue
            raise
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
    from gdns.geo import GeoDatabase, GeoError

    try:
        return GeoDatabase(path)
    except GeoError as exc:
        raise StartupError(str(exc)) from None


def build_engine(zones, settings: Settings, geo, health: HealthSnapshot) -> Engine:
    """The answer engine as `gdns serve` configures it (the same in a worker process)."""
    return Engine(
        zones,
        version=settings.chaos_version,
        identity=settings.chaos_id,
        geo=geo,
        health=health,
        why_from=settings.why_from,
    )


class Listeners:
    """DNS answered on bound sockets: a UDP thread per UDP socket (or the event loop with
    --udp-on-loop) and an asyncio server per TCP socket, all calling Handlers over one Engine.
    The one process of `gdns serve` and every --workers process serve through this."""

    def __init__(self):
        self.handlers: list[Handler] = []  # one per transport thread, each with its own counters
        self.transports: list = []
        self.udp_threads: list[UDPThread] = []
        self.servers: list[asyncio.base_events.Server] = []
        self.addresses: list[tuple[str, int]] = []
        self.tcp_limits: TCPLimits | None = None  # this process's TCP limits and counters
        self.rrl: RateLimiter | None = None  # one per process, shared by its UDP threads

    def totals(self) -> list[dict]:
        parts = [h.stats.export() for h in self.handlers]
        if self.tcp_limits is not None:
            parts.append(self.tcp_limits.export())
        if self.rrl is not None:
            parts.append(self.rrl.export())
        return parts

    async def close(self, release_udp: bool = True) -> None:
        """Stop answering. `release_udp=False` leaves the UDP threads' sockets alone (a worker
        about to exit: shutting a socket down would break it for the parent, which keeps it
        for a restarted worker); the threads are daemons and end with the process."""
        for transport in self.transports:
            transport.close()
        for thread in self.udp_threads:
            if release_udp:
                await asyncio.to_thread(thread.close)
            else:
                thread.closing = True
        for server in self.servers:
            server.close()
            if hasattr(server, "close_clients"):  # Python 3.13+
                server.close_clients()
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)


async def serve_dns(engine: Engine, settings: Settings, pairs) -> Listeners:
    """Answer DNS with `engine` on each bound (tcp, udp) pair."""
    s = settings
    out = Listeners()
    fast = FastPath(engine, s.max_udp_size)
    if s.rrl.enabled:
        fast.rrl = out.rrl = RateLimiter(s.rrl)
    handler = Handler(engine, s.max_udp_size, sample=s.query_log_sample, fast=fast)
    out.handlers.append(handler)
    limits = TCPLimits(
        s.tcp_idle_timeout,
        s.tcp_max_connections,
        max_per_client=s.tcp_max_connections_per_client,
        read_timeout=s.tcp_read_timeout,
        write_timeout=s.tcp_write_timeout,
        max_buffer=s.tcp_max_buffer,
    )
    out.tcp_limits = limits
    loop = asyncio.get_running_loop()
    for tcp, udp in pairs:
        size_buffers(udp)
        if s.udp_on_loop:
            transport, _ = await loop.create_datagram_endpoint(lambda: UDPProtocol(handler), sock=udp)
            out.transports.append(transport)
        else:
            # Its own Handler: each thread writes only its own counters.
            own = Handler(engine, s.max_udp_size, sample=s.query_log_sample, fast=fast)
            out.handlers.append(own)
            thread = UDPThread(udp, own)
            thread.start()
            out.udp_threads.append(thread)
        # The socket listens already (bind_pair): connections queued since are accepted now.
        server = await loop.create_server(lambda: TCPProtocol(handler, limits), sock=tcp, backlog=TCP_BACKLOG)
        out.servers.append(server)
        out.addresses.append(udp.getsockname()[:2])
    return out


def _log_rrl(s: Settings) -> None:
    r = s.rrl
    if not r.enabled:
        if r != RRLSettings():
            log.warning("--rrl-* options given, but no --rrl-*-per-second rate: rate limiting is off")
        return
    responses, nxdomains, errors = (f"{rate}/s" if rate else "unlimited" for rate in r.rates)
    exempt = ", ".join(map(str, r.exempt)) or "none"
    log.info(
        "rate limiting UDP responses%s per /%d (IPv4) and /%d (IPv6) network: answers %s, NXDOMAIN %s, "
        "errors %s; slip %d, window %d s, table %d accounts%s; exempt: %s",
        " (log only)" if r.log_only else "",
        r.ipv4_prefix,
        r.ipv6_prefix,
        responses,
        nxdomains,
        errors,
        r.slip,
        r.window,
        r.table_size,
        " per worker" if s.workers > 1 else "",
        exempt,
    )


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class App:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine: Engine | None = None
        self.reloader: ZoneReloader | None = None
        self.listeners: Listeners | None = None  # one process: it answers DNS itself
        self.workers = None  # --workers N > 1: a gdns.workers.WorkerPool answers DNS
        self.sockets: list[socket.socket] = []  # bound for the workers; kept for restarts
        self.addresses: list[tuple[str, int]] = []
        self._stop = asyncio.Event()
        self._fatal: str | None = None  # why the instance stopped on its own (workers keep dying)
        self.monitor: HealthMonitor | None = None
        self._tasks: set[asyncio.Task] = set()
        self._started = False
        self._phase = "loading zones"  # why not ready, until started
        self.recent = RecentAnswers(lambda: self.query_totals()["members"])
        self.loaded_at: float | None = None
        self.web_runner: web.AppRunner | None = None
        self.web_address: tuple[str, int] | None = None
        self.geo = None  # the GeoDatabase, reloaded when its file changes
        self._geo_lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """Started, and with workers: every worker serves the current zones."""
        return self._started and (self.workers is None or self.workers.current())

    @property
    def not_ready_reason(self) -> str:
        if not self._started:
            return self._phase
        if self.workers is not None:
            return self.workers.waiting_for()
        return ""

    async def set_zones(self, zones) -> None:
        """Swap in reloaded zones. Probes of targets that stay keep their state; new targets
        get a first probe round (bounded like the one at start-up) while the old zones keep
        answering, so a reload never answers a new member on a guess."""
        self.monitor.hold()  # snapshots stay those of the served zones until the swap below
        try:
            self.monitor.update(zones)
            if any(t.state.up is None for t in self.monitor.targets.values()):
                await self.monitor.first_round(self.settings.first_probe_deadline)
            if self.workers is not None:
                # Still held: no snapshot of the new zones may reach a worker before they do.
                frames = await self.workers.pack(zones)
        finally:
            self.monitor.release()
        # One assignment (Engine.swap): every query, on any thread, sees the old zones with
        # the old health, or the new with the new.
        self.engine.swap(zones, self.monitor.snapshot(zones))
        if self.workers is not None:
            self.workers.send_zones(frames, self.engine.health)  # each worker swaps both at once

    def query_totals(self) -> dict:
        """The answer counters of every transport (and worker), summed (for /metrics and shares)."""
        parts = self.listeners.totals() if self.listeners is not None else []
        if self.workers is not None:
            parts += self.workers.totals()
        return stats.total(parts)

    def set_health(self, snapshot: HealthSnapshot) -> None:
        if self.engine is not None:  # the first snapshot is handed to the Engine directly
            self.engine.health = snapshot
            if self.workers is not None:
                self.workers.send_health(snapshot)

    async def start(self) -> None:
        s = self.settings
        geo = self.geo = open_geoip(s.geoip_db) if s.geoip_db else None
        zones = load_folder(s.zones, geoip=geo is not None)  # ZoneLoadError: the caller prints all
        try:
            overrides = Overrides(s.state_file)
        except OverrideError as exc:
            raise StartupError(str(exc)) from None
        if s.workers > 1 and not sys.platform.startswith("linux"):
            # Elsewhere SO_REUSEPORT gives all of a port's queries to one socket, or is missing.
            raise StartupError("--workers above 1 needs Linux (SO_REUSEPORT spreading queries)")
        groups = self._bind()  # fail fast on a busy port, before any probing
        try:
            await self._start_web()
            self._phase = "first probe round in progress"
            await self._first_probe_round(zones, overrides)
            self.engine = build_engine(zones, s, geo, self.monitor.snapshot(zones))
            if s.workers > 1:
                from gdns.workers import WorkerPool

                self.sockets = [sock for group in groups for pair in group for sock in pair]
                self._phase = "starting worker processes"
                # Worker i gets the i-th pair of every address.
                per_worker = [[group[i] for group in groups] for i in range(s.workers)]
                self.workers = WorkerPool(s, per_worker, self._worker_failure)
                await self.workers.start(zones, self.engine.health)
                addresses = [group[0][1].getsockname()[:2] for group in groups]
            else:
                self.listeners = await serve_dns(self.engine, s, [group[0] for group in groups])
                addresses = self.listeners.addresses
        except BaseException:
            for group in groups:
                for pair in group:
                    for sock in pair:
                        sock.close()
            self.sockets = []
            raise
        for host, port in addresses:
            self.addresses.append((host, port))
            log.info("listening on %s (udp, tcp)", _shown(host, port))
        self.reloader = ZoneReloader(
            s.zones, self.set_zones, s.reload_interval, geoip=geo is not None, zones=zones
        )
        self.reloader.observer = self._reloaded
        names = ", ".join(f"{z.origin_label} (serial {z.serial})" for z in zones.zones.values())
        log.info("serving %d zone(s): %s", len(zones), names)
        _log_rrl(s)
        self._loaded(len(zones))
        self._started, self._phase = True, ""

    def _worker_failure(self, message: str) -> None:
        """The workers keep dying: stop the instance, with this as the error."""
        self._fatal = message
        self._stop.set()

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
        self.web_runner = make_runner(self, s.admin_token)
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

    def _bind(self) -> list[list[tuple[socket.socket, socket.socket]]]:
        """Per --listen address: one (tcp, udp) pair, or with workers one per worker."""
        s = self.settings
        groups = []
        for host, port in s.listen:
            try:
                if s.workers > 1:
                    groups.append(bind_shared(host, port, s.workers))
                else:
                    groups.append([bind_pair(host, port)])
            except StartupError as exc:
                if s.listen_is_default and ":" in host and exc.errno in _NO_IPV6:
                    log.warning("IPv6 is not available here; serving IPv4 only (%s)", exc)
                    continue
                for group in groups:
                    for pair in group:
                        for sock in pair:
                            sock.close()
                raise
        return groups

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
        for job in (self.reloader.reload("SIGHUP"), self.reload_geo()):
            task = asyncio.get_running_loop().create_task(job)
            self._tasks.add(task)  # the loop keeps only a weak reference to running tasks
            task.add_done_callback(self._tasks.discard)

    async def reload_geo(self) -> str | None:
        """Take a changed GeoIP file: read and check it in a thread while the old database
        answers, then swap (and tell the workers), or keep the old one and say why."""
        geo = self.geo
        if geo is None or geo.changed() is None:
            return None
        async with self._geo_lock:
            stamp = geo.changed()
            for _ in range(20):  # let a writer finish: wait until two looks agree
                await asyncio.sleep(SETTLE)
                again = geo.changed()
                if again == stamp:
                    break
                stamp = again
            result = await asyncio.to_thread(geo.reload)
            if result is not None:
                metrics.GEOIP_RELOADS.labels("success" if result == "reloaded" else "failure").inc()
            if result == "reloaded":
                self.engine.geo_changed()
                if self.workers is not None:
                    self.workers.send_geo()
            return result

    async def _watch_geo(self) -> None:
        """Poll the GeoIP file as the zones folder is polled (--reload-interval)."""
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            try:
                await self.reload_geo()
            except Exception:  # a bug, not a bad file: say so, keep polling
                log.exception("GeoIP reload failed unexpectedly; still using the database read before")

    async def run(self) -> None:
        """Start, serve until SIGINT/SIGTERM, then close every listener (and stop the workers).
        Raises StartupError when the instance stopped on its own (its workers kept dying)."""
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
        geo_watcher = None
        if self.geo is not None and self.settings.reload_interval > 0:
            geo_watcher = loop.create_task(self._watch_geo())
        log.info("ready")
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            watcher.cancel()
            ticker.cancel()
            if geo_watcher is not None:
                geo_watcher.cancel()
            await self.close()
        if self._fatal is not None:
            raise StartupError(self._fatal)

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
        if self.listeners is not None:
            await self.listeners.close()
        if self.workers is not None:
            await self.workers.close()  # SIGTERM to each worker by its PID, and wait
        for sock in self.sockets:
            sock.close()
        self.sockets = []
