"""Answering a pool name: order the groups (strategy), keep the usable ones (health), pick
members in the first, or apply `when_all_down`.

The work splits in two. A `Plan` holds everything that depends only on the pool, the
address family and the health snapshot (usable groups, their eligible members, the TTL,
the all-down answer); it is built once per snapshot. Per query, `Plan.decide` orders the
groups for the client and picks members, and `Plan.pick_fast` does the same picks without
building the explanation, for the server's fast path. Both take their random draws through
the same calls, so with the same random state they pick the same members.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate

from dnslib import RD

from gdns.strategy import STRATEGIES, Order
from gdns.strategy.client import Client
from gdns.strategy.pick import rendezvous, rotate, weighted_sample
from gdns.zone.pool import Group, Member, Pool

_rng = random.Random()
_ADDRESS_CACHE = 4096  # client addresses remembered per plan (sticky picks, geo orders)


@dataclass(slots=True)
class Decision:
    """What was answered and why: read by the engine, `gdns explain` and the trace."""

    outcome: str  # "answer" | "all-down:<policy>" | "no-family"
    rdatas: tuple[RD, ...] = ()
    picked: tuple[Member, ...] = ()
    group: Group | None = None
    order: Order | None = None
    usable: tuple[Group, ...] = ()
    scope: int = 0
    ttl: int = 0
    servfail: bool = False
    notes: list[str] = field(default_factory=list)
    pool: Pool | None = None


def decide(pool: Pool, family: int, client: Client, counters: dict[str, int]) -> Decision:
    return Plan(pool, family, client.health).decide(client, counters)


class Plan:
    """One pool, one address family, one health snapshot: what every query shares."""

    __slots__ = (
        "pool",
        "family",
        "health",
        "usable",
        "eligible",
        "cumulative",
        "ttl",
        "registered",
        "first",
        "counter_key",
        "sticky_cache",
        "groups_by_address",
        "sticky",
        "down",
    )

    def __init__(self, pool: Pool, family: int, health):
        self.pool, self.family, self.health = pool, family, health
        self.registered = STRATEGIES[pool.strategy]
        self.sticky = pool.sticky and self.registered.picker == "weighted"  # picks hash the client
        self.counter_key = f"{pool.name}/{family}"
        self.sticky_cache: dict[str, tuple[Member, ...]] = {}
        self.groups_by_address: dict[str, Group] = {}
        self.down: Decision | None = None
        self.usable: tuple[Group, ...] = ()
        self.eligible: dict[str, tuple[Member, ...]] = {}
        self.cumulative: dict[str, list[float]] = {}
        if family not in pool.families:
            self.ttl = pool.ttl
            self.down = Decision("no-family", ttl=pool.ttl, notes=[f"the pool has no IPv{family} members"])
        else:
            usable = []
            for group in pool.groups:
                members = tuple(m for m in group.family(family) if health.get(m.key).eligible)
                if members:
                    usable.append(group)
                    self.eligible[group.name] = members
                    self.cumulative[group.name] = list(accumulate(m.weight for m in members))
            self.usable = tuple(usable)
            self.ttl = _ttl(pool, family, health)
            if not usable:
                self.down = _all_down(pool, family, health)
        # The first group, when it is known without the client: one usable group, or a
        # strategy whose order depends only on the pool and health (it draws no random
        # numbers, so working it out once here changes no later draw).
        self.first: Group | None = None
        if len(self.usable) == 1:
            self.first = self.usable[0]
        elif self.usable and self.registered.fixed_order:
            anyone = Client.of("0.0.0.0", None, None, health)
            anyone.query_family = family
            self.first = self.registered.order(pool, self.usable, anyone).groups[0]

    def decide(self, client: Client, counters: dict[str, int]) -> Decision:
        """The full decision, with the order and notes that explain and the trace show."""
        if self.down is not None:
            decision = _copy(self.down)
            decision.pool = self.pool
            return decision
        client.query_family = self.family
        order = self.registered.order(self.pool, self.usable, client)
        group = order.groups[0]
        picked = self._pick(group, client, counters)
        scope = order.scope
        if self.sticky and len(self.eligible[group.name]) > 1:
            scope = max(scope, client.sticky_network()[1])  # one member is everybody's answer
        return Decision(
            "answer",
            tuple(m.rdata for m in picked),
            tuple(picked),
            group,
            order,
            self.usable,
            min(scope, client.source_prefix),
            self.ttl,
            pool=self.pool,
        )

    def pick_fast(self, address: str, counters: dict[str, int], geo=None) -> tuple[Member, ...] | None:
        """Members for a query from `address` with no ECS; None when the answer is not a
        plain list of members (all down, no such family), which the full path answers.
        `geo` is the GeoIP lookup function, for geo pools."""
        if self.down is not None:
            return None
        group = self.first
        sticky = self.sticky
        if group is None:
            # Geo and sticky orders are pure functions of the address (and this snapshot):
            # remembered per address. Other orders draw at random every time.
            remember = sticky or self.pool.strategy == "geo"
            group = self.groups_by_address.get(address) if remember else None
            if group is None:
                client = Client.of(address, None, geo, self.health)
                client.query_family = self.family
                group = self.registered.order(self.pool, self.usable, client).groups[0]
                if remember:
                    if len(self.groups_by_address) >= _ADDRESS_CACHE:
                        self.groups_by_address.clear()
                    self.groups_by_address[address] = group
        if sticky:
            key = f"{group.name}/{address}"
            picked = self.sticky_cache.get(key)
            if picked is None:
                picked = self._pick(group, Client.of(address, None, None, self.health), counters)
                if len(self.sticky_cache) >= _ADDRESS_CACHE:
                    self.sticky_cache.clear()
                self.sticky_cache[key] = picked
            return picked
        return self._pick(group, None, counters)

    def _pick(self, group: Group, client: Client | None, counters: dict[str, int]) -> tuple[Member, ...]:
        members = self.eligible[group.name]
        n = self.pool.answers
        picker = self.registered.picker
        if picker == "roundrobin":
            # One rotation per family: a counter shared by A and AAAA would, for a client
            # asking both in turn, advance by two between its A queries and never rotate them.
            turn = counters.get(self.counter_key, 0)
            counters[self.counter_key] = turn + 1
            return tuple(rotate(members, min(n, len(members)), turn))
        if picker == "random":
            return tuple(_rng.sample(members, min(n, len(members))))
        if self.pool.sticky:
            network = client.sticky_network()[0]
            return tuple(rendezvous(members, min(n, len(members)), network, _weight, _seed))
        if n == 1 or len(members) == 1:
            # random.choices(members, cum_weights=...) with k=1, written out: it is most of
            # the per-query cost of a weighted pool.
            cumulative = self.cumulative[group.name]
            return (members[bisect(cumulative, _rng.random() * cumulative[-1], 0, len(members) - 1)],)
        return tuple(weighted_sample(members, min(n, len(members)), _weight, _rng))


def _weight(member: Member) -> float:
    return member.weight


def _seed(member: Member) -> int:
    return member.seed


def _copy(decision: Decision) -> Decision:
    return Decision(
        decision.outcome,
        decision.rdatas,
        decision.picked,
        ttl=decision.ttl,
        servfail=decision.servfail,
        notes=list(decision.notes),
    )


def _ttl(pool: Pool, family: int, health) -> int:
    """The pool's TTL, or its degraded_ttl while any member of this family is not up, so
    caches come back to the full pool soon after it recovers."""
    if pool.degraded_ttl is None:
        return pool.ttl
    for group in pool.groups:
        for member in group.family(family):
            if not health.get(member.key).eligible:
                return min(pool.ttl, pool.degraded_ttl)
    return pool.ttl


def _all_down(pool: Pool, family: int, health) -> Decision:
    policy = pool.when_all_down
    outcome = f"all-down:{policy}"
    note = f"no healthy IPv{family} member in any group: when_all_down is {policy}"
    if policy == "all":
        # Every member, as gdnsd does: a guess beats no answer, and clients retry others. But
        # not those a person took out (override or configured status down or drain): that was
        # on purpose, and answering them would undo it exactly when it matters.
        every = [m for g in pool.groups for m in g.family(family)]
        members = tuple(m for m in every if not health.get(m.key).forced)
        notes = [note]
        if len(members) < len(every):
            rest = "answering the others" if members else "nothing left to answer (NODATA)"
            notes.append(f"left out {len(every) - len(members)} member(s) an operator took out; {rest}")
        return Decision(outcome, tuple(m.rdata for m in members), members, ttl=_down_ttl(pool), notes=notes)
    if policy == "fallback":
        rdatas = tuple(rd for rd, f in zip(pool.fallback, pool.fallback_families, strict=True) if f == family)
        return Decision(outcome, rdatas, ttl=_down_ttl(pool), notes=[note])
    return Decision(outcome, ttl=_down_ttl(pool), servfail=policy == "servfail", notes=[note])


def _down_ttl(pool: Pool) -> int:
    return pool.ttl if pool.degraded_ttl is None else min(pool.ttl, pool.degraded_ttl)
