"""The health producer: probes every (address, check) target on its own schedule and
publishes a new immutable HealthSnapshot when something changes. It never answers queries;
the engine never probes. They meet only at the snapshot, which is replaced whole.

- Identical probes (same address and check) run once, however many pools use them.
- A global concurrency limit and jittered intervals keep probe load smooth; a target that is
  down and failing is probed every `down_interval` (twice the interval by default), not
  hammered; after its first success the normal interval resumes, so recovery takes
  about `down_interval + rise x interval`.
- A human override beats automation: a member whose zone `status` is down or drain stays so.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

import aiohttp

from gdns.health.overrides import Overrides
from gdns.health.probe import new_session, run_probe
from gdns.health.snapshot import HealthSnapshot, MemberHealth
from gdns.health.state import TargetState
from gdns.zone.checks import Check
from gdns.zone.zoneset import ZoneSet

log = logging.getLogger("gdns.health")
overrides_log = logging.getLogger("gdns.overrides")

TargetKey = tuple[str, Check]  # (probed address, check)
RTT_PUBLISH_EVERY = 1.0  # seconds: round-trip-time updates alone are published at most this often


@dataclass(slots=True)
class Target:
    address: str
    check: Check
    state: TargetState
    members: set[str] = field(default_factory=set)
    task: asyncio.Task | None = None

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        name = f" (check {self.check.name})" if self.check.name else ""
        return f"{self.check.type} {host}:{self.check.port}{name}"


class HealthMonitor:
    def __init__(
        self,
        publish: Callable[[HealthSnapshot], None],
        concurrency: int = 64,
        overrides: Overrides | None = None,
        observer=None,
    ):
        self.publish = publish
        self.overrides = overrides or Overrides()
        self.observer = observer  # gets probe results and transitions (metrics)
        self.concurrency = concurrency
        self.targets: dict[TargetKey, Target] = {}
        self.zones: ZoneSet | None = None  # the zones probed: the newest given to update()
        self.served: ZoneSet | None = None  # the zones answering now: snapshots are made for these
        self.version = 0
        self.session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(concurrency)
        self._soon = False
        self._later: asyncio.TimerHandle | None = None
        self._rng = random.Random()
        self._held = False
        self._member_keys: tuple[ZoneSet | None, frozenset[str]] = (None, frozenset())
        self._stale: set[str] = set()  # stale overrides already logged

    async def start(self) -> None:
        self.session = new_session(self.concurrency)  # one session for the process

    def update(self, zones: ZoneSet) -> None:
        """Probe exactly what `zones` needs: start new targets, stop removed ones, keep the
        state of targets that stay (a reload does not forget what probes learned). While held
        (a reload before its swap), targets only the served zones use are stopped at release()."""
        wanted = _wanted(zones)
        if not self._held:
            self._stop_unwanted(wanted)
        for key, members in wanted.items():
            target = self.targets.get(key)
            if target is None:
                address, check = key
                target = Target(address, check, TargetState(check.rise, check.fall))
                self.targets[key] = target
                target.task = asyncio.get_running_loop().create_task(self._run(target))
            target.members = members
        self.zones = zones
        if not self._held:
            self.served = zones
            self._note_stale()

    def _stop_unwanted(self, wanted: dict[TargetKey, set[str]]) -> None:
        for key in list(self.targets):
            if key not in wanted:
                target = self.targets.pop(key)
                if target.task is not None:
                    target.task.cancel()
                log.info("stopped probing %s: no member uses it any more", target.label)

    async def first_round(self, deadline: float) -> int:
        """Wait until every target has a first result, or `deadline` seconds; return how
        many targets are still unprobed (their members count as up until they are)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if all(t.state.up is not None for t in self.targets.values()):
                return 0
            await asyncio.sleep(0.02)
        return sum(1 for t in self.targets.values() if t.state.up is None)

    def snapshot(self, zones: ZoneSet | None = None) -> HealthSnapshot:
        zones = zones or self.served
        table = {}
        for zone in zones.zones.values():
            for pool in zone.pools.values():
                for member in pool.members():
                    table[member.key] = self._member_health(member)
        self.version += 1
        return HealthSnapshot(MappingProxyType(table), self.version)

    def _member_health(self, member) -> MemberHealth:
        forced = self.overrides.table.get(member.key)
        if forced is not None:
            state = forced["state"]
            reason = f"operator override: {state}"
            return MemberHealth(state, self._rtt(member), reason, forced["since"], forced=True)
        if member.status != "up":
            reason = f"configured status {member.status} (overrides probes)"
            return MemberHealth(member.status, None, reason, forced=True)
        if member.check is None:
            return MemberHealth("up", None, "no check: configured status up")
        target = self.targets.get((member.probe or member.address, member.check))
        if target is None or target.state.up is None:
            return MemberHealth("up", None, "not probed yet")
        state = target.state
        return MemberHealth("up" if state.up else "down", state.rtt, state.last_reason, state.since)

    def _rtt(self, member) -> float | None:
        if member.check is None:
            return None
        target = self.targets.get((member.probe or member.address, member.check))
        return target.state.rtt if target is not None else None

    def target_of(self, member) -> Target | None:
        if member.check is None:
            return None
        return self.targets.get((member.probe or member.address, member.check))

    def republish(self) -> None:
        """Publish now (an override changed): for the zones being served, also during a
        reload, so the change is in the very next answer (the reload's own snapshot for its
        new zones reads the same overrides)."""
        self._publish()

    async def _run(self, target: Target) -> None:
        check = target.check
        # Spread the first probes a little so a large zone does not probe everything at once.
        await asyncio.sleep(self._rng.uniform(0, min(check.interval, 1.0) * 0.1))
        while True:
            async with self._limit:
                began = time.monotonic()
                result = await run_probe(self.session, target.address, check)
                took = time.monotonic() - began
            state = target.state
            was = state.up
            changed = state.record(result.ok, result.reason, result.rtt, time.time())
            if changed:
                self._log_transition(target, was)
            if self.observer is not None:
                now_up = state.up if changed else None
                self.observer.probed(check.type, result.ok, result.reason, took, now_up)
            self._changed(changed)
            # A failing target is probed at the slower down_interval; once it answers again,
            # the normal interval confirms the recovery without delay.
            delay = check.interval if state.up or state.successes else check.down_interval
            await asyncio.sleep(delay * self._rng.uniform(0.9, 1.1))

    def _log_transition(self, target: Target, was: bool | None) -> None:
        state = target.state
        members = ", ".join(sorted(target.members))
        if state.up:
            how = "first probe" if was is None else f"{state.successes} success(es) in a row"
            log.info("%s is UP (%s; %s); members: %s", target.label, state.last_reason, how, members)
        else:
            how = "first probe" if was is None else f"{state.failures} failure(s) in a row"
            log.warning("%s is DOWN (%s; %s); members: %s", target.label, state.last_reason, how, members)

    def _changed(self, state_changed: bool) -> None:
        """Publish soon after a state change; after RTT changes alone, at most every second."""
        loop = asyncio.get_running_loop()
        if state_changed:
            if not self._soon:
                self._soon = True
                loop.call_soon(self._publish)
        elif self._later is None:
            self._later = loop.call_later(RTT_PUBLISH_EVERY, self._publish)

    def hold(self) -> None:
        """A reload begins: the zones next given to update() are probed (their new targets get
        a first round) but not served yet. Meanwhile snapshots are still made and published
        for the zones being served, so overrides and probe results reach DNS at once, and
        targets only those zones use keep being probed."""
        self._held = True

    def release(self) -> None:
        """The reload's zones are served from now on (the caller swaps them in at once):
        snapshots are made for them, and targets no longer used stop."""
        self._held = False
        if self.zones is not None:
            self._stop_unwanted(_wanted(self.zones))
        self.served = self.zones
        self._note_stale()

    def member_keys(self) -> frozenset[str]:
        """The keys of every member of the zones being served (worked out once per zone set)."""
        zones, keys = self._member_keys
        served = self.served
        if zones is not served:
            keys = frozenset()
            if served is not None:
                pools = (p for z in served.zones.values() for p in z.pools.values())
                keys = frozenset(m.key for p in pools for m in p.members())
            self._member_keys = (served, keys)
        return keys

    def stale_overrides(self) -> list[str]:
        """Overrides naming a member the served zones do not have (removed or renamed by a
        reload, or the zones changed while gdns was stopped). They are kept, have no effect,
        and apply again if the member comes back; the admin API lists and deletes them."""
        keys = self.member_keys()
        return sorted(key for key in self.overrides.table if key not in keys)

    def _note_stale(self) -> None:
        """Log each override when it becomes stale, and when it applies again."""
        stale = set(self.stale_overrides())
        for key in sorted(stale - self._stale):
            overrides_log.warning(
                "override of %s (%s) is stale: no such member in the zones; kept without effect "
                "until the member comes back (DELETE /api/v1/overrides?member=... removes it)",
                key,
                self.overrides.get(key),
            )
        for key in sorted(self._stale - stale):
            if key in self.overrides.table:
                overrides_log.warning("override of %s (%s) applies again", key, self.overrides.get(key))
        self._stale = stale

    def _publish(self) -> None:
        self._soon = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self.served is not None:
            self.publish(self.snapshot())

    async def close(self) -> None:
        tasks = [t.task for t in self.targets.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._later is not None:
            self._later.cancel()
        if self.session is not None:
            await self.session.close()


def _wanted(zones: ZoneSet) -> dict[TargetKey, set[str]]:
    """The targets `zones` needs, each with the keys of the members it decides."""
    wanted: dict[TargetKey, set[str]] = {}
    for zone in zones.zones.values():
        for pool in zone.pools.values():
            for member in pool.members():
                if member.check is not None:
                    key = (member.probe or member.address, member.check)
                    wanted.setdefault(key, set()).add(member.key)
    return wanted
