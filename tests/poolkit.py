"""Shared helpers for pool tests: compile one pool, and build a health snapshot by hand."""

from __future__ import annotations

import textwrap
from types import MappingProxyType

from gdns.health.snapshot import HealthSnapshot, MemberHealth
from gdns.zone.compile import compile_zone
from gdns.zone.pool import Pool
from gdns.zone.yamlsafe import load

# Chi-squared critical values at p = 0.001 by degrees of freedom (standard tables). Random
# streams in the unit tests are seeded and sticky choices are hashes, so nothing is flaky.
CHI2_CRITICAL_001 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515}

# The smallest valid zone, ending where a test adds its own sections.
ZONE_HEAD = """\
origin: example.com.
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com.]
records:
  ns1: {A: 192.0.2.1}
"""
HEAD = ZONE_HEAD + "pools:\n"


def pool_of(body: str) -> Pool:
    """The one pool in HEAD plus `body` (written at any indentation), compiled with GeoIP on."""
    text = HEAD + textwrap.indent(textwrap.dedent(body), "  ")
    zone, errors = compile_zone(load(text, "z.yaml"), "d", geoip=True)
    assert errors == []
    (pool,) = zone.pools.values()
    return pool


def snapshot(pool: Pool, down=(), drain=(), rtt=None, forced=()) -> HealthSnapshot:
    """Health by member address: down/drain sets, RTTs in seconds; `forced`: the addresses
    whose state a person set (override or configured status) rather than probes."""
    rtt = rtt or {}
    table = {}
    for m in pool.members():
        state = "down" if m.address in down else "drain" if m.address in drain else "up"
        table[m.key] = MemberHealth(state, rtt.get(m.address), forced=m.address in forced)
    return HealthSnapshot(MappingProxyType(table))
