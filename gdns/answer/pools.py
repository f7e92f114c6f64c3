"""Answering a pool name: order the groups (strategy), keep the usable ones (health), pick
members in the first, or apply `when_all_down`. Pure apart from the round-robin counters."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from dnslib import RD

from gdns.strategy import STRATEGIES, Order
from gdns.strategy.client import Client
from gdns.strategy.pick import rendezvous, rotate, weighted_sample
from gdns.zone.pool import Group, Member, Pool

_rng = random.Random()


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
    decision = _decide(pool, family, client, counters)
    decision.pool = pool
    return decision


def _decide(pool: Pool, family: int, client: Client, counters: dict[str, int]) -> Decision:
    if family not in pool.families:
        return Decision("no-family", ttl=pool.ttl, notes=[f"the pool has no IPv{family} members"])
    health = client.health
    usable = tuple(g for g in pool.groups if any(health.get(m.key).eligible for m in g.family(family)))
    if not usable:
        return _all_down(pool, family)
    registered = STRATEGIES[pool.strategy]
    client.query_family = family
    order = registered.order(pool, usable, client)
    group = order.groups[0]
    members = tuple(m for m in group.family(family) if health.get(m.key).eligible)
    n = min(pool.answers, len(members))
    scope = order.scope
    if registered.picker == "roundrobin":
        # One rotation per family: a counter shared by A and AAAA would, for a client asking
        # both in turn, advance by two between its A queries and never rotate them.
        key = f"{pool.name}/{family}"
        turn = counters.get(key, 0)
        counters[key] = turn + 1
        picked = rotate(members, n, turn)
    elif registered.picker == "random":
        picked = _rng.sample(members, n)
    elif pool.sticky:
        network, prefix = client.sticky_network()
        picked = rendezvous(members, n, network, lambda m: m.weight, lambda m: m.seed)
        if len(members) > 1:  # one member is everybody's answer: nothing to scope
            scope = max(scope, prefix)
    else:
        picked = weighted_sample(members, n, lambda m: m.weight, _rng)
    return Decision(
        "answer",
        tuple(m.rdata for m in picked),
        tuple(picked),
        group,
        order,
        usable,
        min(scope, client.source_prefix),
        _ttl(pool, family, health),
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


def _all_down(pool: Pool, family: int) -> Decision:
    policy = pool.when_all_down
    outcome = f"all-down:{policy}"
    note = f"no healthy IPv{family} member in any group: when_all_down is {policy}"
    if policy == "all":
        # Every member, as gdnsd does: a guess beats no answer, and clients retry others.
        members = tuple(m for g in pool.groups for m in g.family(family))
        return Decision(outcome, tuple(m.rdata for m in members), members, ttl=_down_ttl(pool), notes=[note])
    if policy == "fallback":
        rdatas = tuple(rd for rd, f in zip(pool.fallback, pool.fallback_families, strict=True) if f == family)
        return Decision(outcome, rdatas, ttl=_down_ttl(pool), notes=[note])
    return Decision(outcome, ttl=_down_ttl(pool), servfail=policy == "servfail", notes=[note])


def _down_ttl(pool: Pool) -> int:
    return pool.ttl if pool.degraded_ttl is None else min(pool.ttl, pool.degraded_ttl)
