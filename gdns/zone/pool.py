"""Pool records as the engine reads them: immutable, built once per zone load."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from dnslib import RD, DNSLabel

from gdns.zone.checks import Check

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def stable_hash(text: str) -> int:
    """A 64-bit hash that is the same in every process and on every instance."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class Member:
    key: str  # "<pool owner>/<group>/<address>": the health snapshot's key
    address: str
    family: int  # 4 or 6
    weight: float
    status: str  # configured: "up" | "down" | "drain"
    rdata: RD
    seed: int = 0  # stable_hash(key): rendezvous hashing mixes it with the client network
    check: Check | None = None  # the health check that decides its state, if any
    probe: str | None = None  # the address probed (default: the member's address)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    members: tuple[Member, ...]
    weight: float = 1.0
    location: tuple[float, float] | None = None  # latitude, longitude in degrees
    seed: int = 0
    # Split once at load time: every pool answer asks for one family's members. Two fields,
    # not a dict, and `members` itself when all are of one family: a zone has many groups.
    v4: tuple[Member, ...] = field(default=(), compare=False, repr=False)
    v6: tuple[Member, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for family, name in ((4, "v4"), (6, "v6")):
            split = tuple(m for m in self.members if m.family == family)
            object.__setattr__(self, name, self.members if len(split) == len(self.members) else split)

    @property
    def by_family(self) -> dict[int, tuple[Member, ...]]:
        return {4: self.v4, 6: self.v6}

    def family(self, family: int) -> tuple[Member, ...]:
        if family == 4:
            return self.v4
        if family == 6:
            return self.v6
        raise KeyError(family)


@dataclass(frozen=True, slots=True)
class Rule:
    """A geo rule: matches if any condition matches; no condition at all is the catch-all."""

    index: int
    subnets: tuple[IPNetwork, ...] = ()
    countries: frozenset[str] = frozenset()
    continents: frozenset[str] = frozenset()
    groups: tuple[str, ...] = ()  # empty: nearest by distance

    @property
    def catch_all(self) -> bool:
        return not (self.subnets or self.countries or self.continents)

    @property
    def needs_geoip(self) -> bool:
        return bool(self.countries or self.continents or not self.groups)


@dataclass(frozen=True, slots=True)
class Pool:
    name: str  # the owner name as text, for logs and explain
    owner: DNSLabel
    ttl: int
    strategy: str
    groups: tuple[Group, ...]
    sticky: bool = False
    answers: int = 1
    rules: tuple[Rule, ...] = ()
    when_all_down: str = "all"  # all | fallback | nodata | servfail
    fallback: tuple[RD, ...] = ()
    fallback_families: tuple[int, ...] = ()
    # latency: a group counts as equal to the best when its RTT is at most
    # best * (1 + tolerance_percent / 100) + tolerance_ms / 1000 seconds.
    tolerance_ms: float = 5.0
    tolerance_percent: float = 10.0
    families: frozenset[int] = field(default_factory=frozenset)  # address families it has
    degraded_ttl: int | None = None  # TTL while any member of the asked family is not up

    def group(self, name: str) -> Group:
        return next(g for g in self.groups if g.name == name)

    def members(self):
        for group in self.groups:
            yield from group.members
