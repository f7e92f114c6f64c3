"""`gdns serve --workers N`: N processes answer DNS on shared ports; the main process feeds them.

The main process (the instance) loads and validates the zones, probes, reloads and serves the
web side exactly as one process does, but answers no DNS itself. For each --listen address it
binds N UDP and N TCP sockets to one port with SO_REUSEPORT (the kernel spreads queries over
them by source address and port), and starts N worker processes (`python -m gdns _worker`),
each given one UDP and one TCP socket per address as inherited file descriptors. A worker
answers through the same code as one process (`gdns.app.serve_dns`), from the zones and health
snapshots the instance sends it; it never probes and never reads the zone files.

The instance keeps its copies of the sockets, so a worker that dies loses no queries: they
wait in its socket until the restarted worker answers them.

Each worker has a control channel, a socket pair carrying frames (length, kind, pickle):

    instance -> worker   INIT     settings and the worker's number (read before its event loop)
                         ZONES    a zone set begins; then ZONE, POOLS, NODES: it in pieces
                         SWAP     the zone set's health and generation: both swapped in at once
                         HEALTH   every snapshot the health monitor publishes
    worker -> instance   READY    the generation of the zones it now serves
                         STATS    its query counters (gdns.server.stats), every second and at exit

A zone set goes in pieces of a few milliseconds of unpickling each, because the C unpickler
holds the GIL for a whole call: one pickle of a 100k-record zone takes about a second to load
(several with the garbage collector running), and the worker's UDP threads would answer
nothing meanwhile. The collector is paused while the pieces arrive, and what was loaded is
frozen (gc.freeze) after the swap, so no full collection walks the zones afterwards.
Frames are written whole and in order, so a health snapshot never lands inside a zone set.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copyreg
import dataclasses
import gc
import io
import logging
import operator
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import MappingProxyType

from gdns.health.snapshot import HealthSnapshot, MemberHealth
from gdns.server import stats
from gdns.settings import Settings
from gdns.zone.loader import collect_and_freeze, collect_and_pause
from gdns.zone.pool import Pool
from gdns.zone.reload import retire
from gdns.zone.zoneset import Names, Packed, Zone, ZoneSet

log = logging.getLogger("gdns.workers")

_FRAME = struct.Struct("!IB")  # body length, kind
INIT, ZONES, ZONE, POOLS, NODES, SWAP, HEALTH, READY, STATS, GEO = range(1, 11)
NODES_PER_FRAME = 1000  # about 7 ms to unpickle
POOLS_PER_FRAME = 250  # about 6 ms
STATS_EVERY = 1.0  # seconds between a worker's counter reports
RESTARTS = 5  # restarts allowed within RESTART_WINDOW; one more death stops the instance
RESTART_WINDOW = 60.0
START_TIMEOUT = 60.0  # seconds for every worker to serve the zones at start-up
STOP_TIMEOUT = 5.0  # seconds a worker has to exit after SIGTERM, before SIGKILL
MAX_BACKLOG = 512 << 20  # bytes queued for a worker that does not read: it is stuck; kill it
READ_LIMIT = 4 << 20


def _frame(kind: int, message, dispatch: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    if dispatch is not None:
        pickler.dispatch_table = dispatch
    pickler.dump(message)
    body = buffer.getvalue()
    return _FRAME.pack(len(body), kind) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame; asyncio.IncompleteReadError at the end of the channel."""
    size, kind = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    return kind, await reader.readexactly(size)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the control channel closed")
        data += chunk
    return data


# -- zone sets and health snapshots across the channel -----------------------------------------


def _pool_ref(index: int):
    """Stands, in NODES frames, for the pool at `index` of the zone being sent (see _Unpickler),
    so a node's pool is the very object in its zone's pools, as in the instance."""
    raise RuntimeError("a pool reference outside a zone transfer")


def _fields(obj, leave: tuple[str, ...] = ()) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init and f.name not in leave}


def zone_frames(zones: ZoneSet):
    """The frames of a zone set, from ZONES to its last NODES (SWAP follows when it is sent)."""
    yield _frame(ZONES, _fields(zones, ("zones",)))
    for key, zone in zones.zones.items():
        pools: list[tuple] = list(zone.pools.items())
        index = {id(pool): i for i, (_, pool) in enumerate(pools)}
        names = zone.nodes if isinstance(zone.nodes, Names) else Names(dict(zone.nodes))
        table = names.objects
        for node in table.values():  # packed names have no pool
            pool = getattr(node, "pool", None)
            if pool is not None and id(pool) not in index:  # not in zone.pools: sent, unnamed
                index[id(pool)] = len(pools)
                pools.append((None, pool))
        yield _frame(ZONE, (key, _fields(zone, ("nodes", "pools"))))
        for i in range(0, len(pools), POOLS_PER_FRAME):
            yield _frame(POOLS, pools[i : i + POOLS_PER_FRAME])
        dispatch = copyreg.dispatch_table.copy()
        dispatch[Pool] = lambda pool, index=index: (_pool_ref, (index[id(pool)],))
        nodes = list(table.items())
        for i in range(0, len(nodes), NODES_PER_FRAME):
            yield _frame(NODES, nodes[i : i + NODES_PER_FRAME], dispatch)
        yield _frame(NODES, names.packed)  # packed names go as they are: a few buffers


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, pools: list):
        super().__init__(io.BytesIO(data))
        self.pools = pools

    def find_class(self, module: str, name: str):
        if module == __name__ and name == "_pool_ref":
            return self.pools.__getitem__
        return super().find_class(module, name)


class ZoneIntake:
    """A zone set arriving as zone_frames() made it."""

    def __init__(self, top: dict):
        self.top = top
        self.zones: list[tuple] = []  # (key, fields, pools in order, named pools, nodes, [Packed])
        self.longest = 0.0  # seconds: the longest single frame (how long answering may pause)

    def take(self, kind: int, body: bytes) -> None:
        began = time.perf_counter()
        if kind == ZONE:
            key, fields = pickle.loads(body)
            self.zones.append((key, fields, [], {}, {}, []))
        elif kind == POOLS:
            _, _, pools, named, _, _ = self.zones[-1]
            for key, pool in pickle.loads(body):
                pools.append(pool)
                if key is not None:
                    named[key] = pool
        else:
            _, _, pools, _, nodes, packed = self.zones[-1]
            loaded = _Unpickler(body, pools).load()
            if isinstance(loaded, Packed):
                packed.append(loaded)
            else:
                nodes.update(loaded)
        self.longest = max(self.longest, time.perf_counter() - began)

    def finish(self) -> ZoneSet:
        zones = {}
        for key, fields, _, named, nodes, packed in self.zones:
            zones[key] = Zone(**fields, nodes=Names(nodes, packed[0] if packed else None), pools=named)
        return ZoneSet(zones=zones, **self.top)


_MEMBER_FIELDS = tuple(f.name for f in dataclasses.fields(MemberHealth))
_member_row = operator.attrgetter(*_MEMBER_FIELDS)


def health_message(snapshot: HealthSnapshot) -> tuple:
    """A snapshot as plain data (its members table is a MappingProxyType, which pickle refuses)."""
    return snapshot.version, {key: _member_row(m) for key, m in snapshot.members.items()}


class HealthIntake:
    """Snapshots from health_message(), reusing the MemberHealth of members that did not change."""

    def __init__(self):
        self.members: dict[str, MemberHealth] = {}

    def snapshot(self, message: tuple) -> HealthSnapshot:
        version, rows = message
        old, table = self.members, {}
        for key, row in rows.items():
            member = old.get(key)
            if member is None or _member_row(member) != row:
                member = MemberHealth(*row)
            table[key] = member
        self.members = table
        return HealthSnapshot(MappingProxyType(table), version)


# -- the instance's side -----------------------------------------------------------------------


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Slot:
    """One worker position: its sockets, its current process, what it reported."""

    def __init__(self, number: int, pairs: list):
        self.number = number
        self.pairs = pairs  # [(tcp, udp)] one per --listen address, kept open across restarts
        self.proc: subprocess.Popen | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.generation = 0  # of the zones it serves; 0: none yet
        self.stats: dict | None = None  # the current process's last report
        self.base = stats.QueryStats().export()  # the last reports of its earlier processes
        self.restarts = 0

    def totals(self) -> dict:
        return stats.total([self.base] + ([self.stats] if self.stats else []))


class WorkerPool:
    """The worker processes of one instance: start, feed, watch, restart, stop."""

    def __init__(self, settings: Settings, pairs_per_worker: list[list], on_failure):
        # Workers need no admin token: they answer DNS only.
        self.settings = dataclasses.replace(settings, admin_token=None)
        self.slots = [Slot(i + 1, pairs) for i, pairs in enumerate(pairs_per_worker)]
        self.on_failure = on_failure  # (message) -> None: the instance must stop
        self.failed: str | None = None
        self.generation = 0
        self.frames: list[bytes] = []  # the current zone set, as sent
        self.health: HealthSnapshot | None = None
        self.closing = False
        self.deaths: collections.deque[float] = collections.deque()
        self.tasks: set[asyncio.Task] = set()
        self.collector = WorkerCollector(self)

    # -- what the App calls

    async def start(self, zones: ZoneSet, health: HealthSnapshot) -> None:
        from gdns.app import StartupError
        from gdns.web import metrics

        metrics.REGISTRY.register(self.collector)
        self.frames = await self.pack(zones)
        self.generation, self.health = 1, health
        for slot in self.slots:
            try:
                await self._spawn(slot)
            except OSError as exc:
                raise StartupError(f"cannot start worker process {slot.number}: {exc}") from None
        deadline = time.monotonic() + START_TIMEOUT
        while not self.current():
            if self.failed is not None:
                raise StartupError(self.failed)
            if time.monotonic() > deadline:
                raise StartupError(f"the worker processes did not start in {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.02)

    async def pack(self, zones: ZoneSet) -> list[bytes]:
        """The frames of `zones`, made a piece at a time so the web side and probes go on."""
        frames = []
        for frame in zone_frames(zones):
            frames.append(frame)
            await asyncio.sleep(0)
        return frames

    def send_zones(self, frames: list[bytes], health: HealthSnapshot) -> None:
        self.generation += 1
        self.frames, self.health = frames, health
        swap = self._swap_frame()
        for slot in self.slots:
            self._send(slot, [*frames, swap])

    def send_health(self, snapshot: HealthSnapshot) -> None:
        self.health = snapshot
        frame = _frame(HEALTH, health_message(snapshot))
        for slot in self.slots:
            self._send(slot, [frame])

    def send_geo(self) -> None:
        """The GeoIP file changed and the instance took it: each worker reads it again."""
        frame = _frame(GEO, None)
        for slot in self.slots:
            self._send(slot, [frame])

    def current(self) -> bool:
        """Every worker serves the current zones."""
        return self.failed is None and all(s.generation == self.generation for s in self.slots)

    def waiting_for(self) -> str:
        if self.failed is not None:
            return self.failed
        late = [s for s in self.slots if s.generation != self.generation]
        if not late:
            return ""
        numbers = ", ".join(str(s.number) for s in late)
        return f"worker(s) {numbers} not serving the current zones yet"

    def totals(self) -> list[dict]:
        return [slot.totals() for slot in self.slots]

    async def close(self) -> None:
        """SIGTERM to every worker (by its PID); SIGKILL to one still running STOP_TIMEOUT later."""
        from gdns.web import metrics

        self.closing = True
        with contextlib.suppress(KeyError):
            metrics.REGISTRY.unregister(self.collector)
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(s.proc and s.proc.poll() is None for s in self.slots):
            await asyncio.sleep(0.02)
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                log.warning("worker %d (pid %d) did not stop in time; killing it", slot.number, slot.proc.pid)
                slot.proc.kill()
                slot.proc.wait()
        # Let the readers take the last reports and reap; a restart waiting in its delay ends.
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
        for task in list(self.tasks):
            task.cancel()
        for slot in self.slots:
            if slot.writer is not None:
                slot.writer.close()
                slot.writer = None

    # -- the processes

    def _swap_frame(self) -> bytes:
        return _frame(SWAP, (self.generation, health_message(self.health)))

    def _send(self, slot: Slot, frames: list[bytes]) -> None:
        writer = slot.writer
        if writer is None or writer.is_closing():
            return  # dead or restarting: it gets the current state when it starts
        writer.writelines(frames)
        if writer.transport.get_write_buffer_size() > MAX_BACKLOG and slot.proc is not None:
            pid = slot.proc.pid
            log.error("worker %d (pid %d) does not read its control channel; killing it", slot.number, pid)
            slot.proc.kill()

    async def _spawn(self, slot: Slot) -> None:
        ours, theirs = socket.socketpair()
        fds = [theirs.fileno()] + [sock.fileno() for pair in slot.pairs for sock in pair]
        argv = [sys.executable, "-m", "gdns", "_worker", "--number", str(slot.number)]
        argv += ["--control", str(theirs.fileno())]
        argv += ["--sockets", ",".join(f"{tcp.fileno()}:{udp.fileno()}" for tcp, udp in slot.pairs)]
        try:
            proc = subprocess.Popen(argv, pass_fds=fds, env=_child_env(), stdin=subprocess.DEVNULL)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker's copy only: its exit is our end-of-file
        reader, writer = await asyncio.open_connection(sock=ours, limit=READ_LIMIT)
        slot.proc, slot.writer, slot.stats, slot.generation = proc, writer, None, 0
        if self.closing:  # the instance began to stop meanwhile
            proc.terminate()
        log.info("worker %d started (pid %d)", slot.number, proc.pid)
        # All at once, after the await: the zones and health current now, none missed.
        init = _frame(INIT, {"number": slot.number, "settings": self.settings})
        self._send(slot, [init, *self.frames, self._swap_frame()])
        self._track(self._listen(slot, reader, writer, proc))

    def _track(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _listen(self, slot: Slot, reader, writer, proc: subprocess.Popen) -> None:
        """Take the worker's reports until its channel ends; then reap it and restart it."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, body = await read_frame(reader)
                if kind == READY:
                    slot.generation = pickle.loads(body)
                elif kind == STATS:
                    slot.stats = pickle.loads(body)
        writer.close()
        code = await self._reap(proc)
        if slot.stats is not None:
            slot.base = stats.total([slot.base, slot.stats])
            slot.base["tcp_connections"] = 0  # a gauge: the dead process's connections are gone
            slot.base["rrl_entries"] = 0  # a gauge: that process's table is gone
        slot.proc = slot.writer = slot.stats = None
        slot.generation = 0
        if self.closing:
            return
        what = f"worker {slot.number} (pid {proc.pid}) {_exit_text(code)}"
        now = time.monotonic()
        while self.deaths and now - self.deaths[0] > RESTART_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) >= RESTARTS:
            self.failed = (
                f"worker processes keep dying ({len(self.deaths)} restarts in the last "
                f"{RESTART_WINDOW:.0f} s); stopping"
            )
            log.error("%s; %s", what, self.failed)
            self.on_failure(self.failed)
            return
        log.error("%s; restarting it", what)
        self.deaths.append(now)
        await asyncio.sleep(min(0.1 * 2 ** (len(self.deaths) - 1), 5.0))  # 0.1 s, 0.2 s, ... 1.6 s
        if self.closing:
            return
        slot.restarts += 1
        try:
            await self._spawn(slot)
        except OSError as exc:
            self.failed = f"cannot restart worker {slot.number}: {exc}"
            log.error("%s", self.failed)
            self.on_failure(self.failed)

    @staticmethod
    async def _reap(proc: subprocess.Popen) -> int:
        """Its exit code: it closed its channel, so it is exiting (or stuck: then killed)."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if proc.poll() is None:
            proc.kill()
        return proc.wait()


def _child_env() -> dict[str, str]:
    """This environment (less the admin token); and when gdns runs from a source tree rather than an installed
    package, that tree first on the path, so the workers run the very same code."""
    env = dict(os.environ)
    env.pop("GDNS_ADMIN_TOKEN", None)  # the workers serve no web side: no secret for them to hold
    root = Path(__file__).resolve().parent.parent
    paths = sysconfig.get_paths()
    installed = {Path(paths[k]).resolve() for k in ("purelib", "platlib") if k in paths}
    if root not in installed:  # never put site-packages ahead of the standard library
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


class WorkerCollector:
    """gdns_worker_queries_total and gdns_worker_restarts_total, per worker number."""

    def __init__(self, pool: WorkerPool):
        self.pool = pool

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        queries = CounterMetricFamily(
            "gdns_worker_queries", "DNS queries received, per worker process (--workers).", labels=["worker"]
        )
        restarts = CounterMetricFamily(
            "gdns_worker_restarts", "Worker processes started again after one died.", labels=["worker"]
        )
        for slot in self.pool.slots:
            queries.add_metric([str(slot.number)], sum(slot.totals()["queries"].values()))
            restarts.add_metric([str(slot.number)], slot.restarts)
        yield queries
        yield restarts


# -- the worker's side -------------------------------------------------------------------------


def worker_main(argv: list[str]) -> int:
    """`python -m gdns _worker --number N --control FD --sockets TCP:UDP,...` (started by WorkerPool)."""
    parser = argparse.ArgumentParser(prog="gdns _worker")
    parser.add_argument("--number", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--sockets", required=True)
    args = parser.parse_args(argv)
    # Ctrl-C and a closed terminal reach the whole process group: the instance decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    code = 1
    try:
        control = socket.socket(fileno=args.control)
        control.setblocking(True)
        size, kind = _FRAME.unpack(_read_exactly(control, _FRAME.size))
        init = pickle.loads(_read_exactly(control, size))
        settings: Settings = init["settings"]
        _setup_logging(settings, args.number)
        pairs = []
        for item in args.sockets.split(","):
            tcp, udp = (int(fd) for fd in item.split(":"))
            pairs.append((socket.socket(fileno=tcp), socket.socket(fileno=udp)))
        from gdns.cli import event_loop_factory

        with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
            code = runner.run(Worker(args.number, settings, control, pairs).run())
    except EOFError:
        code = 0  # the instance went away before it said anything
    except Exception:
        logging.getLogger("gdns.worker").exception("worker %d failed", args.number)
    finally:
        logging.shutdown()
        sys.stderr.flush()
        # Not a normal exit: the UDP threads block in recvfrom on sockets the instance still
        # holds, and must not be woken by shutting those sockets down.
        os._exit(code)


def _setup_logging(settings: Settings, number: int) -> None:
    from gdns.logs import TEXT_FORMAT, setup

    setup(settings.log_level, settings.log_format)
    handler = logging.getLogger().handlers[0]

    def tag(record: logging.LogRecord) -> bool:
        record.worker = number  # a field of its own in JSON lines
        return True

    handler.addFilter(tag)
    if settings.log_format == "text":
        tagged = TEXT_FORMAT.replace("%(name)s:", "%(name)s [worker %(worker)s]:")
        handler.setFormatter(logging.Formatter(tagged))


class Worker:
    """One worker process: answers DNS on its sockets from what the instance sends."""

    def __init__(self, number: int, settings: Settings, control: socket.socket, pairs: list):
        self.number = number
        self.settings = settings
        self.control = control
        self.pairs = pairs
        self.log = logging.getLogger("gdns.worker")
        self.engine = None
        self.listeners = None
        self.writer: asyncio.StreamWriter | None = None
        self.health = HealthIntake()
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    async def run(self) -> int:
        from gdns.app import StartupError, open_geoip

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        reader, self.writer = await asyncio.open_connection(sock=self.control, limit=READ_LIMIT)
        try:
            geo = open_geoip(self.settings.geoip_db) if self.settings.geoip_db else None
        except StartupError as exc:
            self.log.error("%s", exc)
            return 1
        reading = loop.create_task(self._read(reader, geo))
        stopping = loop.create_task(self.stopping.wait())
        reporting = loop.create_task(self._report())
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if reading.done() and not reading.cancelled() and reading.exception() is not None:
            exc = reading.exception()
            self.log.error("stopping on an error: %r", exc, exc_info=exc)
            code = 1
        for task in (reading, stopping, reporting):
            task.cancel()
        if self.listeners is not None:
            await self.listeners.close(release_udp=False)
            self._send(STATS, stats.total(self.listeners.totals()))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.drain(), 1.0)
        self.writer.close()
        return code

    def _send(self, kind: int, message) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(kind, message))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY)
            if self.listeners is not None:
                self._send(STATS, stats.total(self.listeners.totals()))

    async def _read(self, reader: asyncio.StreamReader, geo) -> None:
        intake: ZoneIntake | None = None
        began = 0.0
        while True:
            try:
                kind, body = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                if not self.stopping.is_set():
                    self.log.warning("the main process is gone (control channel closed); exiting")
                self.stopping.set()
                return
            if kind == ZONES:
                collect_and_pause()  # a collection during the intake would walk every object taken in
                intake, began = ZoneIntake(pickle.loads(body)), time.monotonic()
            elif kind in (ZONE, POOLS, NODES):
                intake.take(kind, body)
                await asyncio.sleep(0.002)  # a real pause: sleep(0) keeps the GIL from the UDP threads
            elif kind == SWAP:
                generation, message = pickle.loads(body)
                zones = intake.finish()
                await self._swap(zones, self.health.snapshot(message), geo)
                collect_and_freeze()  # the zones stay until the next swap: no collection need walk them
                gc.enable()
                self.log.info(
                    "serving zones generation %d: %d zone(s), taken in over %.2f s, longest pause %.1f ms",
                    generation,
                    len(zones),
                    time.monotonic() - began,
                    intake.longest * 1000,
                )
                intake = None
                self._send(READY, generation)
            elif kind == HEALTH:
                snapshot = self.health.snapshot(pickle.loads(body))
                if self.engine is not None:
                    self.engine.health = snapshot
            elif kind == GEO:
                # Read in a thread (it may be large); the old database answers meanwhile.
                reloaded = geo is not None and await asyncio.to_thread(geo.reload) == "reloaded"
                if reloaded and self.engine is not None:
                    self.engine.geo_changed()

    async def _swap(self, zones: ZoneSet, health: HealthSnapshot, geo) -> None:
        if self.engine is None:
            from gdns.app import build_engine, serve_dns

            self.engine = build_engine(zones, self.settings, geo, health)
            self.listeners = await serve_dns(self.engine, self.settings, self.pairs)
            shown = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.listeners.addresses)
            self.log.info("answering on %s (udp, tcp), pid %d", shown, os.getpid())
            return
        box = [self.engine.zones]  # handed over: retire() frees them once it holds the last reference
        # As in one process: zones and health in one assignment.
        self.engine.swap(zones, health)
        task = asyncio.get_running_loop().create_task(retire(box))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
