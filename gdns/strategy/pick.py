"""Picking members inside the chosen group: weighted (optionally sticky), rotation, uniform.

Sticky choices use weighted rendezvous hashing (highest random weight): every member gets a
score from a hash of (client network, member) scaled by its weight, and the highest scores
win. The choice is a pure function of the client network and the set of healthy members, so
when a member goes down only its own clients move, and they return when it recovers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

from gdns.zone.pool import stable_hash

T = TypeVar("T")
_MASK = (1 << 64) - 1


def mix64(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit mix."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


_BELOW_ONE = math.nextafter(1.0, 0.0)


def unit(x: int) -> float:
    """A 64-bit value as a float strictly inside (0, 1)."""
    # (2**53 - 0.5) / 2**53 rounds to 1.0, whose log is 0: rendezvous() would divide by zero
    # for that (network, member), on every query from the network.
    return min(((x >> 11) + 0.5) / (1 << 53), _BELOW_ONE)


def rendezvous(items: Sequence[T], n: int, network: bytes, weight, seed) -> list[T]:
    """The n items with the highest weighted rendezvous score for `network`."""
    base = stable_hash(network.hex())
    scored = [(-weight(item) / math.log(unit(mix64(base ^ seed(item)))), i) for i, item in enumerate(items)]
    scored.sort(reverse=True)
    return [items[i] for _, i in scored[:n]]


def weighted_sample(items: Sequence[T], n: int, weight, rng: random.Random) -> list[T]:
    """n distinct items, each draw in proportion to weight (Efraimidis-Spirakis keys)."""
    if n == 1:
        return rng.choices(items, weights=[weight(item) for item in items])
    keyed = [(rng.random() ** (1.0 / weight(item)), i) for i, item in enumerate(items)]
    keyed.sort(reverse=True)
    return [items[i] for _, i in keyed[:n]]


def rotate(items: Sequence[T], n: int, turn: int) -> list[T]:
    start = turn % len(items)
    ordered = list(items[start:]) + list(items[:start])
    return ordered[:n]
