"""Strategies order a pool's groups for one client: the registry, the client network, and
failover, weighted, roundrobin, random, geo and latency orders with their ECS scopes."""

import ipaddress
import random
from collections import Counter

import pytest

from gdns.answer.types import ClientSubnet
from gdns.geo import GeoDatabase, distance_km
from gdns.health.snapshot import HealthSnapshot
from gdns.strategy import STRATEGIES, Order, register
from gdns.strategy.client import Client
from gdns.strategy.geo import _excluding
from gdns.zone.pool import Pool
from tests.poolkit import CHI2_CRITICAL_001, pool_of, snapshot


def usable(pool: Pool, health: HealthSnapshot, family: int = 4):
    return tuple(g for g in pool.groups if any(health.get(m.key).eligible for m in g.family(family)))


def order(pool: Pool, client: Client, family: int = 4) -> Order:
    client.query_family = family
    return STRATEGIES[pool.strategy].order(pool, usable(pool, client.health, family), client)


def names(o: Order) -> list[str]:
    return [g.name for g in o.groups]


def ecs(text: str) -> ClientSubnet:
    net = ipaddress.ip_network(text)
    return ClientSubnet(1 if net.version == 4 else 2, net.prefixlen, net)


def chi2(counts: Counter, weights: dict) -> float:
    total, whole = sum(counts.values()), sum(weights.values())
    return sum((counts[k] - total * w / whole) ** 2 / (total * w / whole) for k, w in weights.items())


@pytest.fixture
def seeded(monkeypatch):
    import gdns.strategy.weighted

    monkeypatch.setattr(gdns.strategy.weighted, "_rng", random.Random(7))


@pytest.fixture(scope="module")
def geodb(geoip_db):
    database = GeoDatabase(str(geoip_db))
    yield database
    database.close()


# -- registry ---------------------------------------------------------------------------------


def test_registry():
    assert set(STRATEGIES) >= {"weighted", "failover", "roundrobin", "random", "geo", "latency"}
    pickers = {name: STRATEGIES[name].picker for name in ("weighted", "failover", "geo", "latency")}
    assert set(pickers.values()) == {"weighted"}
    assert (STRATEGIES["roundrobin"].picker, STRATEGIES["random"].picker) == ("roundrobin", "random")
    assert not STRATEGIES["roundrobin"].sticky_allowed and not STRATEGIES["random"].sticky_allowed
    assert STRATEGIES["weighted"].sticky_allowed and STRATEGIES["geo"].sticky_allowed


def test_register_adds_a_strategy():
    @register("test-reversed", picker="roundrobin", sticky_allowed=False)
    def reversed_order(pool, usable, client):
        return Order(tuple(reversed(usable)), 0, "reversed")

    try:
        registered = STRATEGIES["test-reversed"]
        assert (registered.order, registered.picker, registered.sticky_allowed) == (
            reversed_order,
            "roundrobin",
            False,
        )
    finally:
        del STRATEGIES["test-reversed"]


# -- the client network -------------------------------------------------------------------------


def test_client_of_resolver_address():
    v4 = Client.of("198.51.100.77")
    assert (str(v4.address), v4.source_prefix, v4.ecs, v4.family, v4.width) == (
        "198.51.100.77",
        32,
        False,
        4,
        32,
    )
    assert v4.sticky_network() == (bytes([198, 51, 100, 0, 24]), 24)
    v6 = Client.of("2001:db8:1:2345::1")
    assert (v6.source_prefix, v6.family, v6.width) == (128, 6, 128)
    network, prefix = v6.sticky_network()
    assert prefix == 56
    assert network == ipaddress.ip_address("2001:db8:1:2300::").packed + bytes([56])


def test_client_of_ipv4_mapped_resolver_is_ipv4():
    client = Client.of("::ffff:198.51.100.77")
    assert str(client.address) == "198.51.100.77"
    assert client.sticky_network() == Client.of("198.51.100.1").sticky_network()


def test_client_of_ecs_uses_the_subnet():
    client = Client.of("198.51.100.1", ecs("203.0.113.0/24"))
    assert (str(client.address), client.source_prefix, client.ecs) == ("203.0.113.0", 24, True)
    # The same hashing key as a resolver inside that /24 without ECS.
    assert client.sticky_network() == Client.of("203.0.113.99").sticky_network()


@pytest.mark.parametrize(
    "subnet,prefix",
    [
        ("203.0.112.0/20", 20),
        ("203.0.113.7/32", 24),
        ("0.0.0.0/0", 0),
        ("2001:db8::/32", 32),
        ("2001:db8::/64", 56),
    ],
)
def test_sticky_network_is_never_longer_than_the_ecs_source(subnet, prefix):
    client = Client.of("198.51.100.1", ecs(subnet))
    network, got = client.sticky_network()
    assert got == prefix
    expected = ipaddress.ip_network((ipaddress.ip_network(subnet).network_address, prefix), strict=False)
    assert network == expected.network_address.packed + bytes([prefix])


def test_same_slash24_same_key_other_slash24_other_key():
    keys = {Client.of(f"198.51.100.{i}").sticky_network() for i in range(256)}
    assert len(keys) == 1
    assert Client.of("198.51.101.1").sticky_network() not in keys


def test_location_is_looked_up_once():
    calls = []

    def geo(address):
        calls.append(address)
        return None

    client = Client.of("192.0.2.1", geo=geo)
    assert client.location() is None and client.location() is None
    assert calls == [ipaddress.ip_address("192.0.2.1")]
    assert Client.of("192.0.2.1").location() is None  # no database


# -- failover, roundrobin, random -----------------------------------------------------------------

THREE_GROUPS = """\
www:
  strategy: {strategy}
  groups:
    a: {{members: [{{address: 192.0.2.10}}]}}
    b: {{members: [{{address: 192.0.2.20}}, {{address: "2001:db8::20"}}]}}
    c: {{members: [{{address: 192.0.2.30}}, {{address: "2001:db8::30"}}]}}
"""


@pytest.mark.parametrize("strategy", ["failover", "roundrobin", "random"])
def test_fixed_order_strategies_keep_the_written_order_with_scope_0(strategy):
    pool = pool_of(THREE_GROUPS.format(strategy=strategy))
    up = snapshot(pool)
    assert names(order(pool, Client.of("198.51.100.1", health=up))) == ["a", "b", "c"]
    assert order(pool, Client.of("198.51.100.1", ecs("203.0.113.0/24"), health=up)).scope == 0
    down = snapshot(pool, down={"192.0.2.10"}, drain={"192.0.2.20"})
    assert names(order(pool, Client.of("198.51.100.1", health=down))) == ["c"]
    assert names(order(pool, Client.of("198.51.100.1", health=up), family=6)) == ["b", "c"]


# -- weighted groups --------------------------------------------------------------------------------

WEIGHTED_GROUPS = """\
www:
  strategy: weighted
  sticky: {sticky}
  groups:
    big: {{weight: 6, members: [{{address: 192.0.2.10}}]}}
    mid: {{weight: 3, members: [{{address: 192.0.2.20}}]}}
    small: {{weight: 1, members: [{{address: 192.0.2.30}}]}}
"""
GROUP_WEIGHTS = {"big": 6, "mid": 3, "small": 1}


def test_weighted_groups_drawn_by_weight(seeded):
    pool = pool_of(WEIGHTED_GROUPS.format(sticky="false"))
    health = snapshot(pool)
    rng = random.Random(11)
    firsts = Counter()
    for _ in range(12000):
        client = Client.of(ipaddress.IPv4Address(rng.getrandbits(32)), health=health)
        o = order(pool, client)
        assert sorted(names(o)) == sorted(GROUP_WEIGHTS) and o.scope == 0
        firsts[o.groups[0].name] += 1
    assert chi2(firsts, GROUP_WEIGHTS) < CHI2_CRITICAL_001[2]


def test_weighted_groups_sticky_by_weight_over_10000_networks():
    pool = pool_of(WEIGHTED_GROUPS.format(sticky="true"))
    health = snapshot(pool)
    firsts = Counter()
    for i in range(10000):
        o = order(pool, Client.of(f"10.{i >> 8}.{i & 255}.1", health=health))
        assert o.scope == 24
        firsts[o.groups[0].name] += 1
    assert chi2(firsts, GROUP_WEIGHTS) < CHI2_CRITICAL_001[2]


def test_weighted_groups_sticky_only_the_down_groups_clients_move():
    pool = pool_of(WEIGHTED_GROUPS.format(sticky="true"))
    up, mid_down = snapshot(pool), snapshot(pool, down={"192.0.2.20"})
    moved = 0
    for i in range(2000):
        address = f"198.{18 + (i >> 8)}.{i & 255}.9"
        before = order(pool, Client.of(address, health=up)).groups[0].name
        after = order(pool, Client.of(address, health=mid_down)).groups[0].name
        assert after == before or before == "mid"
        moved += before == "mid"
    assert moved > 0


def test_weighted_one_usable_group_does_not_depend_on_the_client():
    pool = pool_of(WEIGHTED_GROUPS.format(sticky="true"))
    health = snapshot(pool, down={"192.0.2.20", "192.0.2.30"})
    o = order(pool, Client.of("198.51.100.1", health=health))
    assert (names(o), o.scope) == (["big"], 0)


# -- geo ----------------------------------------------------------------------------------------------

GEO = """\
www:
  strategy: geo
  groups:
    eu: {location: [50.11, 8.68], members: [{address: 192.0.2.10}, {address: "2001:db8::10"}]}
    us: {location: [39.04, -77.49], members: [{address: 192.0.2.20}, {address: "2001:db8::20"}]}
    ap: {location: [1.35, 103.82], members: [{address: 192.0.2.30}]}
    sa: {location: [-23.55, -46.63], members: [{address: 192.0.2.40}]}
    spare: {members: [{address: 192.0.2.50}]}
  rules:
    - {subnets: [198.18.0.0/15, "2001:db8:ff::/48"], groups: [sa]}
    - {countries: [NO], groups: [ap]}
    - {continents: [EU], groups: [eu, us]}
    - {countries: [SG], continents: [SA], groups: nearest}
    - {groups: nearest}
"""


@pytest.fixture(scope="module")
def geo_pool():
    return pool_of(GEO)


def geo_client(geodb, pool, address, subnet=None, down=()):
    return Client.of(address, ecs(subnet) if subnet else None, geodb.lookup, snapshot(pool, down=down))


@pytest.mark.parametrize(
    "address,rule,groups,scope",
    [
        # subnet rule: the matched subnet's prefix; unlisted groups follow in written order
        ("198.18.5.5", 0, ["sa", "eu", "us", "ap", "spare"], 15),
        ("198.19.255.1", 0, ["sa", "eu", "us", "ap", "spare"], 15),
        # country: the GeoIP network's prefix (/25 in the test database)
        ("192.0.2.200", 1, ["ap", "eu", "us", "sa", "spare"], 25),
        # continent (Germany is not NO, so rule 1 does not match; EU does)
        ("192.0.2.1", 2, ["eu", "us", "ap", "sa", "spare"], 25),
        ("2001:db8:1::1", 2, ["eu", "us", "ap", "sa", "spare"], 48),
        # nearest from Singapore: Frankfurt 10,260 km, Ashburn ~15,550, Sao Paulo ~15,990
        ("203.0.113.5", 3, ["ap", "eu", "us", "sa", "spare"], 25),
        # nearest from Sao Paulo (continent SA): Ashburn ~7,600, Frankfurt ~9,800, Singapore ~16,000
        ("203.0.113.200", 3, ["sa", "us", "eu", "ap", "spare"], 25),
        # catch-all nearest from Ashburn: Frankfurt ~6,540 before Sao Paulo ~7,600
        ("198.51.100.7", 4, ["us", "eu", "sa", "ap", "spare"], 24),
        # catch-all nearest from San Francisco (IPv6): Ashburn ~3,880, Frankfurt ~9,130 (over the
        # pole) before Sao Paulo ~10,430, Singapore ~13,580
        ("2001:db8:2::1", 4, ["us", "eu", "sa", "ap", "spare"], 48),
    ],
)
def test_geo_rules(geodb, geo_pool, address, rule, groups, scope):
    o = order(geo_pool, geo_client(geodb, geo_pool, address))
    assert (o.rule, names(o), o.scope) == (rule, groups, scope)
    assert o.why.startswith(f"rule {rule} ")


def test_geo_nearest_is_sorted_by_great_circle_distance(geodb, geo_pool):
    where = geodb.lookup(ipaddress.ip_address("203.0.113.5"))
    o = order(geo_pool, geo_client(geodb, geo_pool, "203.0.113.5"))
    located = [g for g in o.groups if g.location]
    km = [distance_km(where.point, g.location) for g in located]
    assert km == sorted(km) and len(located) == 4
    assert o.groups[-1].name == "spare"  # no location: last


def test_geo_unknown_location_falls_back_to_written_order(geodb, geo_pool):
    o = order(geo_pool, geo_client(geodb, geo_pool, "10.1.2.3"))
    assert (o.rule, names(o)) == (4, ["eu", "us", "ap", "sa", "spare"])
    assert "unknown" in o.why
    # Exactly as wide as the empty GeoIP network around the client (and the excluded subnets).
    empty = geodb.lookup(ipaddress.ip_address("10.1.2.3")).prefix
    assert o.scope == max(
        empty, _excluding(ipaddress.ip_address("10.1.2.3"), ipaddress.ip_network("198.18.0.0/15"))
    )


def test_geo_without_a_database(geo_pool):
    """No GeoIP: countries and continents match nobody, nearest keeps the written order."""
    client = Client.of("192.0.2.200", health=snapshot(geo_pool))
    o = order(geo_pool, client)
    assert (o.rule, names(o)) == (4, ["eu", "us", "ap", "sa", "spare"])
    # Only the excluded subnet 198.18.0.0/15 shaped the decision: 192 vs 198 share 5 bits.
    assert o.scope == 6


def test_geo_ecs_subnet_decides(geodb, geo_pool):
    o = order(geo_pool, geo_client(geodb, geo_pool, "192.0.2.1", subnet="198.18.4.0/22"))
    assert (o.rule, o.scope) == (0, 15)
    o = order(geo_pool, geo_client(geodb, geo_pool, "198.18.0.1", subnet="203.0.113.128/25"))
    assert (o.rule, o.groups[0].name, o.scope) == (3, "sa", 25)


def test_geo_ipv6_subnet_rule_and_family(geodb, geo_pool):
    o = order(geo_pool, geo_client(geodb, geo_pool, "2001:db8:ff::1"), family=6)
    # sa and ap have no IPv6 members: only eu and us are usable for AAAA.
    assert (o.rule, names(o), o.scope) == (0, ["eu", "us"], 48)


def test_geo_listed_groups_down_fall_back_to_the_others(geodb, geo_pool):
    o = order(geo_pool, geo_client(geodb, geo_pool, "198.18.5.5", down={"192.0.2.40"}))
    assert (o.rule, names(o)) == (0, ["eu", "us", "ap", "spare"])
    o = order(geo_pool, geo_client(geodb, geo_pool, "192.0.2.1", down={"192.0.2.10", "192.0.2.20"}))
    assert (o.rule, names(o)) == (2, ["ap", "sa", "spare"])


FIRST_MATCH = """\
www:
  strategy: geo
  groups:
    eu: {members: [{address: 192.0.2.10}]}
    us: {members: [{address: 192.0.2.20}]}
    ap: {members: [{address: 192.0.2.30}]}
  rules:
    - {countries: [DE], groups: [us]}
    - {subnets: [192.0.2.0/24], groups: [ap]}
    - {subnets: [192.0.2.0/26], groups: [eu]}
    - {groups: [eu]}
"""


def test_geo_first_match_wins(geodb):
    pool = pool_of(FIRST_MATCH)
    de = order(pool, Client.of("192.0.2.1", geo=geodb.lookup, health=snapshot(pool)))
    assert (de.rule, de.groups[0].name) == (0, "us")  # also in both subnets: the country rule is first
    no = order(pool, Client.of("192.0.2.200", geo=geodb.lookup, health=snapshot(pool)))
    assert (no.rule, no.groups[0].name, no.scope) == (1, "ap", 25)  # GeoIP /25 is narrower than /24


def test_geo_scope_excludes_earlier_subnets():
    pool = pool_of("""\
        www:
          strategy: geo
          groups:
            eu: {members: [{address: 192.0.2.10}]}
            ap: {members: [{address: 192.0.2.30}]}
          rules:
            - {subnets: [192.0.2.0/26, 198.51.100.0/24], groups: [ap]}
            - {groups: [eu]}
        """)
    health = snapshot(pool)
    o = order(pool, Client.of("192.0.2.200", health=health))
    assert (o.rule, o.scope) == (1, 25)  # 192.0.2.128/25 holds no address of 192.0.2.0/26
    assert order(pool, Client.of("10.1.2.3", health=health)).scope == 1  # 0.0.0.0/1 vs 192/8 and 198/8
    assert order(pool, Client.of("198.51.101.1", health=health)).scope == 24
    subnets = pool.rules[0].subnets
    rng = random.Random(5)
    for _ in range(3000):
        address = ipaddress.IPv4Address(rng.getrandbits(32) & 0xFFFFFF00 | rng.choice([0, 77, 200]))
        o = order(pool, Client.of(address, health=health))
        if o.rule == 0:
            continue
        around = ipaddress.ip_network((address, o.scope), strict=False)
        wider = ipaddress.ip_network((address, o.scope - 1), strict=False)
        assert not any(around.overlaps(net) for net in subnets)  # the scope is safe ...
        assert any(wider.overlaps(net) for net in subnets)  # ... and no narrower than needed


def test_excluding():
    ip = ipaddress.ip_address
    net = ipaddress.ip_network
    assert _excluding(ip("192.0.2.200"), net("192.0.2.0/26")) == 25
    assert _excluding(ip("192.0.2.64"), net("192.0.2.0/26")) == 26
    assert _excluding(ip("10.0.0.1"), net("10.0.0.0/32")) == 32
    assert _excluding(ip("2001:db8::1"), net("192.0.2.0/24")) == 0  # other family: never matches
    assert _excluding(ip("2001:db9::"), net("2001:db8::/32")) == 32


# -- latency -------------------------------------------------------------------------------------------

LATENCY = """\
www:
  strategy: latency
  groups:
    fra: {members: [{address: 192.0.2.10}, {address: 192.0.2.11}, {address: "2001:db8::10"}]}
    iad: {members: [{address: 192.0.2.20}, {address: "2001:db8::20"}]}
    sin: {members: [{address: 192.0.2.30}]}
    new: {members: [{address: 192.0.2.40}]}
"""


def latency(rtt, down=(), drain=(), family=4, body=LATENCY):
    pool = pool_of(body)
    health = snapshot(pool, down=down, drain=drain, rtt=rtt)
    return order(pool, Client.of("198.51.100.1", ecs("203.0.113.0/24"), health=health), family)


def test_latency_ranks_by_rtt_and_unmeasured_last():
    o = latency({"192.0.2.10": 0.080, "192.0.2.11": 0.080, "192.0.2.20": 0.020, "192.0.2.30": 0.150})
    assert (names(o), o.scope) == (["iad", "fra", "sin", "new"], 0)
    assert o.details["rtt_ms"] == pytest.approx({"fra": 80, "iad": 20, "sin": 150})


def test_latency_mean_of_the_healthy_members_only():
    rtt = {"192.0.2.10": 0.010, "192.0.2.11": 0.090, "192.0.2.20": 0.060}
    assert names(latency(rtt))[:2] == ["fra", "iad"]  # fra: mean 50 ms
    assert names(latency(rtt, down={"192.0.2.10"}))[:2] == ["iad", "fra"]  # fra: 90 ms
    assert names(latency(rtt, drain={"192.0.2.10"}))[:2] == ["iad", "fra"]
    # A group whose only measured member is down counts as unmeasured.
    assert names(latency({"192.0.2.20": 0.060, "192.0.2.30": 0.001}, down={"192.0.2.30"})) == [
        "iad",
        "fra",
        "new",
    ]


def test_latency_uses_the_asked_family():
    rtt = {"192.0.2.10": 0.080, "192.0.2.20": 0.020, "2001:db8::10": 0.010, "2001:db8::20": 0.090}
    assert names(latency(rtt)) == ["iad", "fra", "sin", "new"]
    assert names(latency(rtt, family=6)) == ["fra", "iad"]


def test_latency_nothing_measured_is_the_written_order():
    o = latency({})
    assert (names(o), o.scope) == (["fra", "iad", "sin", "new"], 0)


@pytest.mark.parametrize(
    "best,other,equal",
    [
        (0.100, 0.100, True),
        (0.100, 0.1149, True),  # the band: best x 1.10 + 5 ms = 115 ms
        (0.100, 0.1151, False),
        (0.010, 0.0159, True),  # 16 ms: the 5 ms matter most for fast groups
        (0.010, 0.0161, False),
        (0.200, 0.2249, True),  # 225 ms: the 10 % matter most for slow ones
        (0.200, 0.2251, False),
    ],
)
def test_latency_tolerance_band(best, other, equal):
    """Groups within best x (1 + tolerance_percent/100) + tolerance_ms keep the written order."""
    # fra (written first) is the slower one.
    o = latency({"192.0.2.10": other, "192.0.2.11": other, "192.0.2.20": best})
    assert names(o)[:2] == (["fra", "iad"] if equal else ["iad", "fra"])


def test_latency_tolerance_is_per_pool():
    strict = LATENCY.replace(
        "strategy: latency", "strategy: latency\n  tolerance_ms: 0\n  tolerance_percent: 0"
    )
    o = latency({"192.0.2.10": 0.0201, "192.0.2.11": 0.0201, "192.0.2.20": 0.020}, body=strict)
    assert names(o) == ["iad", "fra", "sin", "new"]
    wide = LATENCY.replace(
        "strategy: latency", "strategy: latency\n  tolerance_ms: 50\n  tolerance_percent: 0"
    )
    rtt = {"192.0.2.10": 0.060, "192.0.2.11": 0.060, "192.0.2.20": 0.020, "192.0.2.30": 0.075}
    assert names(latency(rtt, body=wide)) == ["fra", "iad", "sin", "new"]  # fra within 20 + 50 ms
    rtt["192.0.2.10"] = rtt["192.0.2.11"] = 0.071
    assert names(latency(rtt, body=wide)) == ["iad", "fra", "sin", "new"]  # fra 71 ms: outside the band


def test_latency_does_not_flap_between_near_equal_groups():
    rng = random.Random(9)
    firsts = set()
    for _ in range(500):
        a, b = 0.050 + rng.uniform(-0.002, 0.002), 0.050 + rng.uniform(-0.002, 0.002)
        firsts.add(names(latency({"192.0.2.10": a, "192.0.2.11": a, "192.0.2.20": b}))[0])
    assert firsts == {"fra"}
