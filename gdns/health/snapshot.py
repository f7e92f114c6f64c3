"""The immutable health snapshot the answer engine reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gdns.zone.zoneset import ZoneSet


@dataclass(frozen=True, slots=True)
class MemberHealth:
    state: str  # "up" | "down" | "drain"
    rtt: float | None = None  # smoothed round-trip time in seconds; None = not measured
    reason: str = "configured"
    since: float | None = None  # wall-clock time of the last up/down change, when probed
    forced: bool = False  # the state was set by a person (override, configured status), not probes

    @property
    def eligible(self) -> bool:
        """May be given in new answers (drain: still counted, but no new answers)."""
        return self.state == "up"


UP = MemberHealth("up")


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    members: Mapping[str, MemberHealth] = field(default_factory=lambda: MappingProxyType({}))
    version: int = 0

    def get(self, key: str) -> MemberHealth:
        return self.members.get(key, UP)

    @classmethod
    def from_zones(cls, zones: ZoneSet, version: int = 0) -> HealthSnapshot:
        """Configured statuses only, with no probing (what `gdns explain` works from)."""
        table = {}
        for zone in zones.zones.values():
            for pool in zone.pools.values():
                for member in pool.members():
                    reason = f"configured status {member.status}"
                    if member.check is not None and member.status == "up":
                        reason += f"; check {member.check.name or member.check.type} not probed here"
                    forced = member.status != "up"
                    table[member.key] = MemberHealth(member.status, None, reason, forced=forced)
        return cls(MappingProxyType(table), version)
