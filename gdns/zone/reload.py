"""Keep the served zones in step with the folder: poll for changes, reload on SIGHUP,
validate the new set whole, swap it in atomically or keep the last good one.

Polling stat() (following symlinks) rather than inotify: it sees a Kubernetes ConfigMap's
symlink swap, editors that replace files, and network filesystems alike, and costs a few
stat calls per interval.

A large zone must not stall answering while it reloads: it is parsed in a thread with a short
GIL switch interval (threads that answer get the GIL back sooner), and the zones it replaces
are freed a piece at a time afterwards (see retire), not all at once when they are dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gdns.zone.errors import ZoneError, ZoneLoadError
from gdns.zone.loader import fingerprint, load_folder
from gdns.zone.zoneset import ZoneSet

log = logging.getLogger("gdns.reload")

SETTLE = 0.1  # seconds a changed folder must stay unchanged before it is read
SWITCH = 0.0005  # seconds: sys.setswitchinterval while a reload parses (Python's default is 0.005)
RETIRE_WAIT = 5.0  # seconds replaced zones may stay in use elsewhere before they are left whole
RETIRE_STEP = 1000  # names (or pools) of replaced zones freed at a time, about a millisecond
RETIRE_PAUSE = 0.002  # seconds between two steps: the loop idles and the UDP threads answer


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    when: float
    errors: tuple[ZoneError, ...] = ()
    zones: int = 0


class ZoneReloader:
    def __init__(
        self,
        folder: str,
        apply: Callable[[ZoneSet], Awaitable[None] | None],
        interval: float = 2.0,
        geoip: bool = False,
        zones: ZoneSet | None = None,
    ):
        """`zones`: the zones being served now (loaded at start-up), freed a piece at a time
        once a reload replaces them, like every set this reloader applies (see retire)."""
        self.folder = folder
        self.geoip = geoip
        self.apply = apply
        self.interval = interval
        self.seen = fingerprint(folder)
        self.last: ReloadResult | None = None
        self.observer: Callable[[ReloadResult], None] | None = None  # metrics
        self._lock = asyncio.Lock()
        self._zones = zones
        self._retiring: set[asyncio.Task] = set()

    async def watch(self) -> None:
        """Poll until cancelled."""
        if self.interval <= 0:
            return
        while True:
            await asyncio.sleep(self.interval)
            if fingerprint(self.folder) != self.seen:
                try:
                    await self.reload("zone files changed")
                except Exception:  # a bug, not a bad file: say so, keep serving and polling
                    log.exception("zone reload failed unexpectedly; still serving the previous zones")

    async def reload(self, reason: str) -> ReloadResult:
        async with self._lock:
            current = fingerprint(self.folder)
            for _ in range(20):  # let a writer finish: wait until two looks agree
                await asyncio.sleep(SETTLE)
                again = fingerprint(self.folder)
                if again == current:
                    break
                current = again
            self.seen = current
            interval = sys.getswitchinterval()
            try:
                # Parsing is CPU work: a thread keeps the event loop answering meanwhile. While it
                # runs, a thread that answers waits for the GIL at most SWITCH, not 5 ms, after
                # every blocking call (each query it reads): answering slows down much less.
                sys.setswitchinterval(min(interval, SWITCH))
                zones = await asyncio.to_thread(load_folder, self.folder, self.geoip)
            except ZoneLoadError as exc:
                for error in exc.errors:
                    log.error("%s", error)
                log.error(
                    "zone reload (%s) failed with %d problem(s); still serving the previous zones",
                    reason,
                    len(exc.errors),
                )
                self.last = ReloadResult(False, time.time(), tuple(exc.errors))
                if self.observer is not None:
                    self.observer(self.last)
                return self.last
            finally:
                sys.setswitchinterval(interval)
            applied = self.apply(zones)
            if inspect.isawaitable(applied):  # the app probes new members before the swap
                await applied
            # Held by self._zones, the replaced zones were not freed by the swap (all at once, on
            # the thread that dropped them last); retire frees them a piece at a time.
            replaced, self._zones = [self._zones], zones
            names = ", ".join(f"{z.origin_label} (serial {z.serial})" for z in zones.zones.values())
            log.info("zones reloaded (%s): %s", reason, names)
            self._log_removed(replaced[0], zones)
            self.last = ReloadResult(True, time.time(), zones=len(zones))
            if self.observer is not None:
                self.observer(self.last)
            if replaced[0] is not None:
                task = asyncio.get_running_loop().create_task(retire(replaced))
                self._retiring.add(task)  # the loop keeps only a weak reference to a task
                task.add_done_callback(self._retiring.discard)
            return self.last

    @staticmethod
    def _log_removed(old: ZoneSet | None, new: ZoneSet) -> None:
        """A zone whose file went away is no longer served: say which, and why."""
        if old is None:
            return
        for origin, zone in old.zones.items():
            if origin not in new.zones:
                why = "is gone" if not os.path.lexists(zone.file) else "no longer defines it"
                log.warning("zone %s is no longer served: its file %s %s", zone.origin_label, zone.file, why)


async def retire(box: list[ZoneSet]) -> None:
    """Free replaced zones a piece at a time on the loop thread, with pauses between.

    Dropped whole, a large zone set is a million or more objects freed in one go, tens of
    milliseconds in which nothing is answered. Only what no one else holds is taken apart: a
    query or a web request may still be reading the old set for a moment, so this waits (up
    to RETIRE_WAIT) until it holds the last reference; anything still held elsewhere after
    that is left whole, to be freed as ever by whoever drops it last."""
    old = box.pop()
    deadline = time.monotonic() + RETIRE_WAIT
    while sys.getrefcount(old) > 2:  # `old`, and the call's argument
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)
    zones = old.zones
    if sys.getrefcount(zones) > 3:  # the set's field, `zones`, the argument
        return
    while zones:
        _, zone = zones.popitem()
        if sys.getrefcount(zone) > 2:  # `zone`, the argument
            continue
        for table in (zone.nodes, zone.pools):
            if sys.getrefcount(table) > 4:  # the zone's field, the tuple, `table`, the argument
                continue
            while table:
                for _ in range(min(len(table), RETIRE_STEP)):
                    if not table:
                        break  # Names: its packed names went all at once
                    table.popitem()
                # A real pause, not sleep(0): a loop that gives up the GIL in select() and takes
                # it straight back starves a thread waiting for it. Each release wakes that thread,
                # which finds the GIL taken again and starts its 5 ms wait over, so it never gets
                # to ask for a switch; a UDP thread then answers nothing until the work is done.
                await asyncio.sleep(RETIRE_PAUSE)
