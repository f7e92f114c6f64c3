"""Keep the served zones in step with the folder: poll for changes, reload on SIGHUP,
validate the new set whole, swap it in atomically or keep the last good one.

Polling stat() (following symlinks) rather than inotify: it sees a Kubernetes ConfigMap's
symlink swap, editors that replace files, and network filesystems alike, and costs a few
stat calls per interval.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gdns.zone.errors import ZoneError, ZoneLoadError
from gdns.zone.loader import fingerprint, load_folder
from gdns.zone.zoneset import ZoneSet

log = logging.getLogger("gdns.reload")

SETTLE = 0.1  # seconds a changed folder must stay unchanged before it is read


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
    ):
        self.folder = folder
        self.geoip = geoip
        self.apply = apply
        self.interval = interval
        self.seen = fingerprint(folder)
        self.last: ReloadResult | None = None
        self.observer: Callable[[ReloadResult], None] | None = None  # metrics
        self._lock = asyncio.Lock()

    async def watch(self) -> None:
        """Poll until cancelled."""
        if self.interval <= 0:
            return
        while True:
            await asyncio.sleep(self.interval)
            if fingerprint(self.folder) != self.seen:
                await self.reload("zone files changed")

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
            try:
                # Parsing is CPU work: a thread keeps the event loop answering meanwhile.
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
            applied = self.apply(zones)
            if inspect.isawaitable(applied):  # the app probes new members before the swap
                await applied
            names = ", ".join(f"{z.origin_label} (serial {z.serial})" for z in zones.zones.values())
            log.info("zones reloaded (%s): %s", reason, names)
            self.last = ReloadResult(True, time.time(), zones=len(zones))
            if self.observer is not None:
                self.observer(self.last)
            return self.last
