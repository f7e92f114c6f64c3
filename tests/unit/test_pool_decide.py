"""gdns.answer.pools.decide: health filtering, member picks (weighted, sticky, rotation,
uniform), answers: N, ECS scope and when_all_down, over compiled pools and chosen health."""

import ipaddress
import random
from collections import Counter

import pytest

from gdns.answer.pools import Decision, decide
from gdns.answer.types import ClientSubnet
from gdns.geo import GeoDatabase
from gdns.health.snapshot import UP, HealthSnapshot, MemberHealth
from gdns.strategy.client import Client
from gdns.zone.pool import Pool
from tests.poolkit import CHI2_CRITICAL_001, pool_of, snapshot


def ecs(text: str) -> ClientSubnet:
    net = ipaddress.ip_network(text)
    return ClientSubnet(1 if net.version == 4 else 2, net.prefixlen, net)


def ask(pool, health, address="198.51.100.1", family=4, subnet=None, counters=None, geo=None) -> Decision:
    client = Client.of(address, ecs(subnet) if subnet else None, geo, health)
    return decide(pool, family, client, {} if counters is None else counters)


def addresses(d: Decision) -> list[str]:
    assert [str(rd) for rd in d.rdatas] == [m.address for m in d.picked]
    return [m.address for m in d.picked]


def first(d: Decision) -> str:
    return addresses(d)[0]


def chi2(counts: Counter, weights: dict) -> float:
    total, whole = sum(counts.values()), sum(weights.values())
    return sum((counts[k] - total * w / whole) ** 2 / (total * w / whole) for k, w in weights.items())


def slash24s(n: int) -> list[str]:
    """One address in each of n distinct /24s (10.0.0.0/8; these tests send no traffic)."""
    return [f"10.{i >> 8 & 255}.{i & 255}.{1 + i % 250}" for i in range(n)]


def slash56s(n: int) -> list[str]:
    """One address in each of n distinct /56s of the documentation prefix 2001:db8::/32."""
    return [str(ipaddress.IPv6Address((0x20010DB8 << 96) | (i << 72) | 0x53)) for i in range(n)]


@pytest.fixture
def seeded(monkeypatch):
    import gdns.answer.pools
    import gdns.strategy.weighted

    monkeypatch.setattr(gdns.answer.pools, "_rng", random.Random(3))
    monkeypatch.setattr(gdns.strategy.weighted, "_rng", random.Random(4))


WEIGHTED = """\
www:
  strategy: weighted
  sticky: {sticky}
  answers: {answers}
  members:
    - {{address: 192.0.2.10, weight: 5}}
    - {{address: 192.0.2.11, weight: 3}}
    - {{address: 192.0.2.12, weight: 1.5}}
    - {{address: 192.0.2.13, weight: 0.5}}
    - {{address: 192.0.2.14, weight: 7}}
    - {{address: "2001:db8::10", weight: 2}}
    - {{address: "2001:db8::11", weight: 1}}
"""
V4_WEIGHTS = {"192.0.2.10": 5, "192.0.2.11": 3, "192.0.2.12": 1.5, "192.0.2.13": 0.5, "192.0.2.14": 7}


def weighted(sticky=False, answers=1) -> Pool:
    return pool_of(WEIGHTED.format(sticky=str(sticky).lower(), answers=answers))


# -- weighted: shares converge to the weights among the family's healthy members -----------------


@pytest.mark.parametrize("sticky", [False, True], ids=["random", "sticky"])
def test_weighted_shares_follow_weights_among_healthy_members(seeded, sticky):
    pool = weighted(sticky)
    health = snapshot(pool, down={"192.0.2.14"})  # the heaviest is down: shares renormalise
    counts = Counter(first(ask(pool, health, address)) for address in slash24s(10000))
    expected = {a: w for a, w in V4_WEIGHTS.items() if a != "192.0.2.14"}
    assert set(counts) == set(expected)
    assert chi2(counts, expected) < CHI2_CRITICAL_001[3]
    # and the statistic does notice the wrong answer: the weights as if .14 were still up
    counts["192.0.2.14"] = 0
    assert chi2(counts, V4_WEIGHTS) > 10 * CHI2_CRITICAL_001[4]


@pytest.mark.parametrize("sticky", [False, True], ids=["random", "sticky"])
def test_weighted_shares_per_family(seeded, sticky):
    pool = weighted(sticky)
    health = snapshot(pool, drain={"192.0.2.13"})
    counts = Counter(first(ask(pool, health, address, family=6)) for address in slash56s(6000))
    assert chi2(counts, {"2001:db8::10": 2, "2001:db8::11": 1}) < CHI2_CRITICAL_001[1]
    v4 = Counter(first(ask(pool, health, address)) for address in slash56s(6000))
    assert chi2(v4, {a: w for a, w in V4_WEIGHTS.items() if a != "192.0.2.13"}) < CHI2_CRITICAL_001[3]


def test_weighted_shares_over_groups_and_members(seeded):
    """A member's share is its group's weight share times its weight share in the group."""
    pool = pool_of("""\
        www:
          strategy: weighted
          groups:
            a: {weight: 3, members: [{address: 192.0.2.10, weight: 2}, {address: 192.0.2.11}]}
            b: {weight: 1, members: [{address: 198.51.100.10}, {address: 198.51.100.11, weight: 3}]}
            c: {weight: 5, members: [{address: "2001:db8::1"}]}
        """)
    health = snapshot(pool)
    rng = random.Random(8)
    counts = Counter(
        first(ask(pool, health, str(ipaddress.IPv4Address(rng.getrandbits(32))))) for _ in range(12000)
    )
    expected = {"192.0.2.10": 3 * 2 / 3, "192.0.2.11": 3 / 3, "198.51.100.10": 1 / 4, "198.51.100.11": 3 / 4}
    assert chi2(counts, expected) < CHI2_CRITICAL_001[3]


def test_weighted_non_sticky_scope_is_0(seeded):
    pool = weighted()
    d = ask(pool, snapshot(pool), subnet="203.0.113.0/24")
    assert (d.outcome, d.scope, len(d.picked)) == ("answer", 0, 1)


def test_weighted_answers_n_distinct(seeded):
    pool = weighted(answers=3)
    health = snapshot(pool, down={"192.0.2.10"})
    firsts = Counter()
    for _ in range(6000):
        got = addresses(ask(pool, health))
        assert len(got) == 3 == len(set(got)) and "192.0.2.10" not in got
        firsts[got[0]] += 1
    assert chi2(firsts, {a: w for a, w in V4_WEIGHTS.items() if a != "192.0.2.10"}) < CHI2_CRITICAL_001[3]
    # answers: 3 with two healthy members: both, never a repeat
    health = snapshot(pool, down={"192.0.2.10", "192.0.2.11", "192.0.2.12"})
    assert sorted(addresses(ask(pool, health))) == ["192.0.2.13", "192.0.2.14"]
    six = ask(pool, snapshot(pool), family=6)
    assert sorted(addresses(six)) == ["2001:db8::10", "2001:db8::11"]


# -- sticky: a pure function of the client network and the healthy set ---------------------------


def test_sticky_same_network_same_member():
    pool = weighted(True)
    health = snapshot(pool)
    for base in slash24s(200):
        prefix = base.rsplit(".", 1)[0]
        got = {first(ask(pool, health, f"{prefix}.{host}")) for host in (0, 1, 77, 200, 255)}
        assert len(got) == 1
    v6 = {first(ask(pool, health, f"2001:db8:0:12{i:02x}::{i}")) for i in range(256)}  # one /56
    assert len(v6) == 1


def test_sticky_uses_the_ecs_subnet_not_the_resolver():
    pool = weighted(True)
    health = snapshot(pool)
    seen = set()
    for i, net in enumerate(slash24s(300)):
        subnet = str(ipaddress.ip_network(f"{net}/24", strict=False))
        via_ecs = ask(pool, health, f"198.51.100.{i % 256}", subnet=subnet)
        direct = ask(pool, health, net)  # a resolver inside that /24, without ECS
        assert first(via_ecs) == first(direct)
        assert (via_ecs.scope, direct.scope) == (24, 24)
        seen.add(first(via_ecs))
    assert len(seen) == 5  # the resolver's address played no part: all members appear


def test_sticky_is_stable_across_decisions_and_counters():
    pool = weighted(True, answers=2)
    health = snapshot(pool)
    counters: dict[str, int] = {}
    clients = slash24s(500)
    once = [addresses(ask(pool, health, a, counters=counters)) for a in clients]
    again = [addresses(ask(pool, snapshot(pool), a, counters=counters)) for a in reversed(clients)]
    assert once == list(reversed(again))
    assert all(len(set(pair)) == 2 for pair in once)
    assert len({tuple(pair) for pair in once}) > 10


def test_sticky_member_down_moves_only_its_clients_and_they_return():
    pool = weighted(True)
    up = snapshot(pool)
    clients = slash24s(5000)
    before = {a: first(ask(pool, up, a)) for a in clients}
    for state in ("down", "drain"):
        changed = snapshot(pool, **{state: {"192.0.2.11"}})
        during = {a: first(ask(pool, changed, a)) for a in clients}
        for a in clients:
            if before[a] == "192.0.2.11":
                assert during[a] != "192.0.2.11"
            else:
                assert during[a] == before[a]  # every client whose member stayed up keeps it
        assert sum(before[a] == "192.0.2.11" for a in clients) > 700  # about 3/17 of 5000
    assert {a: first(ask(pool, snapshot(pool), a)) for a in clients} == before  # recovered: back


def test_sticky_answers_n_keeps_the_survivors():
    pool = weighted(True, answers=2)
    up = snapshot(pool)
    clients = slash24s(2000)
    before = {a: addresses(ask(pool, up, a)) for a in clients}
    down = snapshot(pool, down={"192.0.2.10"})
    for a in clients:
        during = addresses(ask(pool, down, a))
        assert len(set(during)) == 2 and "192.0.2.10" not in during
        assert set(before[a]) - {"192.0.2.10"} <= set(during)
    assert {a: addresses(ask(pool, up, a)) for a in clients} == before


def test_sticky_scope_is_the_hashing_prefix_never_wider_than_the_source():
    pool = weighted(True)
    health = snapshot(pool)
    assert ask(pool, health, "198.51.100.1").scope == 24
    assert ask(pool, health, "2001:db8::1", family=6).scope == 56
    assert ask(pool, health, subnet="203.0.113.0/24").scope == 24
    assert ask(pool, health, subnet="203.0.113.128/25").scope == 24
    assert ask(pool, health, subnet="203.0.112.0/20").scope == 20
    assert ask(pool, health, subnet="2001:db8:aa::/48", family=6).scope == 48
    assert ask(pool, health, subnet="0.0.0.0/0").scope == 0
    # One healthy member: everybody gets it, so the answer does not depend on the client.
    one = snapshot(pool, down={"192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"})
    assert (
        first(ask(pool, one, subnet="203.0.113.0/24")),
        ask(pool, one, subnet="203.0.113.0/24").scope,
    ) == (
        "192.0.2.14",
        0,
    )


# -- roundrobin and random ------------------------------------------------------------------------

ROTATION = """\
www:
  strategy: {strategy}
  answers: {answers}
  groups:
    main:
      members:
        - {{address: 192.0.2.40}}
        - {{address: 192.0.2.41}}
        - {{address: 192.0.2.42}}
        - {{address: 192.0.2.43}}
        - {{address: "2001:db8::40"}}
        - {{address: "2001:db8::41"}}
    spare: {{members: [{{address: 198.51.100.40}}]}}
"""


def rotation(strategy="roundrobin", answers=1) -> Pool:
    return pool_of(ROTATION.format(strategy=strategy, answers=answers))


def test_roundrobin_rotates_query_after_query():
    pool = rotation()
    health, counters = snapshot(pool), {}
    got = [first(ask(pool, health, counters=counters)) for _ in range(8)]
    assert got == ["192.0.2.40", "192.0.2.41", "192.0.2.42", "192.0.2.43"] * 2


def test_roundrobin_answers_n_rotates_their_order():
    pool = rotation(answers=3)
    health, counters = snapshot(pool), {}
    got = [addresses(ask(pool, health, counters=counters)) for _ in range(4)]
    assert got == [
        ["192.0.2.40", "192.0.2.41", "192.0.2.42"],
        ["192.0.2.41", "192.0.2.42", "192.0.2.43"],
        ["192.0.2.42", "192.0.2.43", "192.0.2.40"],
        ["192.0.2.43", "192.0.2.40", "192.0.2.41"],
    ]
    d = ask(pool, health, subnet="203.0.113.0/24")
    assert d.scope == 0


def test_roundrobin_rotates_each_family_even_when_a_and_aaaa_alternate():
    pool = rotation()
    health, counters = snapshot(pool), {}
    v4, v6 = [], []
    for _ in range(4):
        v4.append(first(ask(pool, health, counters=counters)))
        v6.append(first(ask(pool, health, family=6, counters=counters)))
    assert v4 == ["192.0.2.40", "192.0.2.41", "192.0.2.42", "192.0.2.43"]
    assert v6 == ["2001:db8::40", "2001:db8::41"] * 2


def test_roundrobin_skips_unhealthy_members_and_pools_do_not_share_turns():
    pool = rotation()
    health, counters = snapshot(pool, down={"192.0.2.41"}, drain={"192.0.2.43"}), {}
    got = [first(ask(pool, health, counters=counters)) for _ in range(4)]
    assert got == ["192.0.2.40", "192.0.2.42"] * 2
    other = pool_of(ROTATION.format(strategy="roundrobin", answers=1).replace("www:", "api:"))
    assert first(ask(other, snapshot(other), counters=counters)) == "192.0.2.40"


def test_random_is_uniform(seeded):
    pool = rotation("random")
    health = snapshot(pool)
    counts = Counter(first(ask(pool, health)) for _ in range(8000))
    assert chi2(counts, {f"192.0.2.4{i}": 1 for i in range(4)}) < CHI2_CRITICAL_001[3]
    assert ask(pool, health, subnet="203.0.113.0/24").scope == 0


def test_random_answers_n_distinct_healthy(seeded):
    pool = rotation("random", answers=3)
    health = snapshot(pool, down={"192.0.2.40"})
    firsts = Counter()
    for _ in range(3000):
        got = addresses(ask(pool, health))
        assert sorted(got) == ["192.0.2.41", "192.0.2.42", "192.0.2.43"]
        firsts[got[0]] += 1
    assert chi2(firsts, dict.fromkeys(["192.0.2.41", "192.0.2.42", "192.0.2.43"], 1)) < CHI2_CRITICAL_001[2]
    big = pool_of(ROTATION.format(strategy="random", answers=10))
    assert sorted(addresses(ask(big, snapshot(big), family=6))) == ["2001:db8::40", "2001:db8::41"]


@pytest.mark.parametrize("strategy", ["roundrobin", "random"])
def test_rotation_and_random_use_the_first_group_with_healthy_members(strategy):
    pool = rotation(strategy)
    down = snapshot(pool, down={"192.0.2.40", "192.0.2.41", "192.0.2.42"}, drain={"192.0.2.43"})
    d = ask(pool, down)
    assert (addresses(d), d.group.name) == (["198.51.100.40"], "spare")


# -- failover ---------------------------------------------------------------------------------------

FAILOVER = """\
www:
  strategy: failover
  groups:
    primary: {members: [{address: 192.0.2.10}, {address: 192.0.2.11}]}
    v4only: {members: [{address: 192.0.2.20}]}
    backup: {members: [{address: 198.51.100.30}, {address: "2001:db8::30"}]}
    last: {members: [{address: "2001:db8::40"}]}
"""


def test_failover_first_group_with_healthy_members_of_the_family():
    pool = pool_of(FAILOVER)
    up = snapshot(pool)
    d = ask(pool, up, subnet="203.0.113.0/24")
    assert (d.group.name, d.scope, [g.name for g in d.usable]) == (
        "primary",
        0,
        ["primary", "v4only", "backup"],
    )
    assert first(d) in {"192.0.2.10", "192.0.2.11"}
    one_down = snapshot(pool, down={"192.0.2.10"})
    assert {first(ask(pool, one_down)) for _ in range(20)} == {"192.0.2.11"}
    gone = snapshot(pool, down={"192.0.2.10"}, drain={"192.0.2.11"})
    assert (ask(pool, gone).group.name, first(ask(pool, gone))) == ("v4only", "192.0.2.20")
    gone = snapshot(pool, down={"192.0.2.10", "192.0.2.11", "192.0.2.20"})
    assert ask(pool, gone).group.name == "backup"
    # AAAA: primary and v4only have no IPv6 members and are skipped.
    six = ask(pool, up, "2001:db8::1", family=6)
    assert (six.group.name, addresses(six), six.scope) == ("backup", ["2001:db8::30"], 0)
    six = ask(pool, snapshot(pool, down={"2001:db8::30"}), family=6)
    assert (six.group.name, addresses(six)) == ("last", ["2001:db8::40"])
    # A down IPv6 member does not make the group unusable for A.
    assert ask(
        pool, snapshot(pool, down={"2001:db8::30", "192.0.2.10", "192.0.2.11", "192.0.2.20"})
    ).group.name == ("backup")


# -- latency and geo through decide -------------------------------------------------------------------


def test_latency_picks_the_fastest_group_with_scope_0():
    pool = pool_of("""\
        www:
          strategy: latency
          sticky: true
          groups:
            fra: {members: [{address: 192.0.2.10}]}
            iad: {members: [{address: 198.51.100.10}]}
        """)
    health = snapshot(pool, rtt={"192.0.2.10": 0.090, "198.51.100.10": 0.020})
    d = ask(pool, health, subnet="203.0.113.0/24")
    assert (d.group.name, first(d), d.scope) == ("iad", "198.51.100.10", 0)
    d = ask(pool, snapshot(pool, down={"198.51.100.10"}, rtt={"192.0.2.10": 0.090, "198.51.100.10": 0.020}))
    assert d.group.name == "fra"


@pytest.fixture(scope="module")
def geodb(geoip_db):
    database = GeoDatabase(str(geoip_db))
    yield database
    database.close()


GEO = """\
www:
  strategy: geo
  sticky: {sticky}
  groups:
    eu: {{location: [50.11, 8.68], members: [{{address: 192.0.2.10}}, {{address: 192.0.2.11}}]}}
    ap: {{location: [1.35, 103.82], members: [{{address: 203.0.113.10}}]}}
  rules:
    - {{subnets: [198.18.0.0/15], groups: [ap]}}
    - {{countries: [SG], groups: [ap]}}
    - {{groups: nearest}}
"""


def test_geo_scope_through_decide(geodb):
    pool = pool_of(GEO.format(sticky="false"))
    health = snapshot(pool)

    def geo(**kw):
        return ask(pool, health, geo=geodb.lookup, **kw)

    assert (geo(address="198.18.0.1").group.name, geo(address="198.18.0.1").scope) == ("ap", 15)
    assert geo(subnet="198.18.0.0/24").scope == 15  # the matched subnet's prefix
    assert geo(subnet="198.0.0.0/8").scope == 8  # never wider than the source prefix
    sg = geo(subnet="203.0.113.0/25")
    assert (sg.group.name, sg.scope) == ("ap", 25)  # the GeoIP network's prefix
    assert geo(subnet="203.0.113.0/24").scope == 24
    de = geo(address="192.0.2.1")
    assert (de.group.name, de.scope, de.order.rule) == ("eu", 25, 2)


def test_geo_sticky_scope_is_the_narrower_of_geo_and_hashing(geodb):
    pool = pool_of(GEO.format(sticky="true"))
    health = snapshot(pool)
    d = ask(pool, health, "198.18.0.1", geo=geodb.lookup)
    assert (d.group.name, d.scope) == ("ap", 15)  # one member in ap: no hashing
    d = ask(pool, health, "192.0.2.1", geo=geodb.lookup)
    assert (d.group.name, d.scope) == ("eu", 25)  # GeoIP /25 is narrower than the /24 hash
    d = ask(pool, health, "198.51.100.7", geo=geodb.lookup)
    assert (d.group.name, d.scope) == ("eu", 24)  # GeoIP /24, hashing /24
    d = ask(pool, health, "198.51.100.7", subnet="198.51.100.0/22", geo=geodb.lookup)
    assert d.scope == 22


# -- when every member is down, and pools without the family --------------------------------------

ALL_DOWN = """\
www:
  when_all_down: {policy}
  {fallback}
  groups:
    a: {{members: [{{address: 192.0.2.10, status: down}}, {{address: "2001:db8::10"}}]}}
    b: {{members: [{{address: 192.0.2.20, status: drain}}, {{address: 192.0.2.21}}]}}
"""


def all_down(policy, fallback=""):
    pool = pool_of(ALL_DOWN.format(policy=policy, fallback=fallback))
    health = snapshot(pool, down={"192.0.2.10", "192.0.2.21", "2001:db8::10"}, drain={"192.0.2.20"})
    return pool, health


def test_when_all_down_all_answers_every_member_of_the_family():
    pool, health = all_down("all")
    d = ask(pool, health, subnet="203.0.113.0/24")
    assert (d.outcome, addresses(d), d.servfail, d.ttl, d.scope) == (
        "all-down:all",
        ["192.0.2.10", "192.0.2.20", "192.0.2.21"],
        False,
        30,
        0,
    )
    assert addresses(ask(pool, health, family=6)) == ["2001:db8::10"]
    assert d.notes and "when_all_down is all" in d.notes[0]


def test_when_all_down_all_leaves_out_members_an_operator_took_out():
    """Down or drained by a person (override, configured status): left out of `all`, which
    answers the members down by their probes; with none of those, nothing (NODATA)."""
    pool = pool_of(ALL_DOWN.format(policy="all", fallback=""))
    down = {"192.0.2.10", "192.0.2.21", "2001:db8::10"}
    health = snapshot(pool, down=down, drain={"192.0.2.20"}, forced={"192.0.2.10", "192.0.2.20"})
    d = ask(pool, health)
    assert (d.outcome, addresses(d), d.servfail) == ("all-down:all", ["192.0.2.21"], False)
    assert "left out 2 member(s) an operator took out; answering the others" in d.notes
    assert addresses(ask(pool, health, family=6)) == ["2001:db8::10"]  # probe-down: answered

    everyone = {"192.0.2.10", "192.0.2.20", "192.0.2.21"}
    health = snapshot(pool, down=down, drain={"192.0.2.20"}, forced=everyone)
    d = ask(pool, health)
    assert (d.outcome, d.rdatas, d.picked, d.servfail) == ("all-down:all", (), (), False)
    assert "left out 3 member(s) an operator took out; nothing left to answer (NODATA)" in d.notes


def test_when_all_down_fallback_answers_the_familys_fallback_addresses():
    pool, health = all_down("fallback", 'fallback: [192.0.2.250, "2001:db8::250", 192.0.2.251]')
    d = ask(pool, health)
    assert (d.outcome, [str(rd) for rd in d.rdatas], d.picked, d.servfail) == (
        "all-down:fallback",
        ["192.0.2.250", "192.0.2.251"],
        (),
        False,
    )
    assert [str(rd) for rd in ask(pool, health, family=6).rdatas] == ["2001:db8::250"]
    pool, health = all_down("fallback", "fallback: 192.0.2.250")
    assert ask(pool, health, family=6).rdatas == ()  # no IPv6 fallback: an empty answer


@pytest.mark.parametrize("policy,servfail", [("nodata", False), ("servfail", True)])
def test_when_all_down_nodata_and_servfail(policy, servfail):
    pool, health = all_down(policy)
    d = ask(pool, health)
    assert (d.outcome, d.rdatas, d.servfail, d.pool) == (f"all-down:{policy}", (), servfail, pool)


def test_all_down_is_per_family():
    pool, _ = all_down("servfail")
    health = snapshot(pool, down={"192.0.2.10", "192.0.2.20", "192.0.2.21"})
    assert ask(pool, health).outcome == "all-down:servfail"
    assert addresses(ask(pool, health, family=6)) == ["2001:db8::10"]


def test_a_pool_without_the_family_is_nodata_not_all_down():
    pool = pool_of("""\
        www:
          when_all_down: servfail
          members: [{address: 192.0.2.10}]
        """)
    d = ask(pool, snapshot(pool), "2001:db8::1", family=6)
    assert (d.outcome, d.rdatas, d.servfail, d.ttl, d.pool) == ("no-family", (), False, 30, pool)
    assert ask(pool, snapshot(pool)).outcome == "answer"


# -- the decision record and the health snapshot -------------------------------------------------------


def test_decision_fields(seeded):
    pool = weighted(answers=2)
    health = snapshot(pool, down={"192.0.2.10"})
    d = ask(pool, health)
    assert d.outcome == "answer" and d.pool is pool and d.ttl == pool.ttl and not d.servfail
    assert d.group is pool.groups[0] and d.usable == pool.groups and d.order.groups == pool.groups
    assert len(d.picked) == 2 and all(m.family == 4 for m in d.picked)
    assert tuple(m.rdata for m in d.picked) == d.rdatas


def test_health_snapshot_defaults_and_eligibility():
    assert HealthSnapshot().get("nobody/knows/192.0.2.1") is UP
    assert [MemberHealth(s).eligible for s in ("up", "down", "drain")] == [True, False, False]
    pool = pool_of(ALL_DOWN.format(policy="all", fallback=""))

    class Zones:  # the part of a ZoneSet from_zones reads
        zones = {"example.com.": type("Z", (), {"pools": {"www": pool}})()}

    snap = HealthSnapshot.from_zones(Zones(), version=7)
    assert snap.version == 7
    states = {m.address: snap.get(m.key).state for m in pool.members()}
    assert states == {"192.0.2.10": "down", "2001:db8::10": "up", "192.0.2.20": "drain", "192.0.2.21": "up"}
    with pytest.raises(TypeError):
        snap.members["x"] = UP  # read-only: swapped whole, never changed in place
