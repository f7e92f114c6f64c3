"""Strategies order a pool's groups for one client. One small module per strategy,
registered by name; adding a strategy is adding a file and importing it below.

A strategy is a pure function of (pool, usable groups, client, health, geo) that returns an
Order: the groups in preference, the ECS scope the ordering depended on, and a few words on
why (for `gdns explain` and the in-band trace). Picking members inside the chosen group is
`gdns.strategy.pick`'s job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gdns.strategy.client import Client
from gdns.zone.pool import Group, Pool


@dataclass(frozen=True, slots=True)
class Order:
    groups: tuple[Group, ...]
    scope: int = 0  # ECS prefix length this ordering depended on
    why: str = ""
    rule: int | None = None  # geo: index of the rule that matched
    details: dict = field(default_factory=dict)


Strategy = Callable[[Pool, tuple[Group, ...], Client], Order]


@dataclass(frozen=True, slots=True)
class Registered:
    name: str
    order: Strategy
    picker: str  # how members are picked in the chosen group: weighted | roundrobin | random
    sticky_allowed: bool = True
    fixed_order: bool = False  # the order depends only on the pool and health, never the client


STRATEGIES: dict[str, Registered] = {}


def register(name: str, picker: str = "weighted", sticky_allowed: bool = True, fixed_order: bool = False):
    def wrap(order: Strategy) -> Strategy:
        STRATEGIES[name] = Registered(name, order, picker, sticky_allowed, fixed_order)
        return order

    return wrap


# The built-in strategies register themselves on import.
from gdns.strategy import failover, geo, latency, roundrobin, uniform, weighted  # noqa: E402,F401
