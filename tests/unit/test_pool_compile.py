"""The `pools:` section of a zone: validation with positioned errors, and the compiled Pools."""

import ipaddress
import textwrap

import pytest
from dnslib import QTYPE, DNSLabel

from gdns.strategy import STRATEGIES
from gdns.zone.compile import compile_zone
from gdns.zone.pool import Pool, stable_hash
from gdns.zone.yamlsafe import load
from tests.poolkit import ZONE_HEAD

HEAD = ZONE_HEAD
POOLS_LINE = HEAD.count("\n") + 2  # the line of the first pool written with `with_pools`
ONE = "members: [{address: 192.0.2.10}]"  # the smallest valid pool body


def with_pools(body: str, records: str = "") -> str:
    """HEAD, more `records:` entries, and a `pools:` section, each written at any indentation."""
    records = textwrap.dedent(records)
    text = HEAD + textwrap.indent(records if records.endswith("\n") or not records else records + "\n", "  ")
    return text + "pools:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def compile_text(text: str, geoip: bool = False):
    return compile_zone(load(text, "z.yaml"), "digest", geoip=geoip)


def zone_of(body: str, records: str = "", geoip: bool = False):
    zone, errors = compile_text(with_pools(body, records), geoip)
    assert errors == []
    return zone


def pool_of(body: str, geoip: bool = False, name: str = "www.example.com.") -> Pool:
    return zone_of(body, geoip=geoip).pools[tuple(DNSLabel(name).label)]


def errors_of(body: str, records: str = "", geoip: bool = False) -> list[str]:
    zone, errors = compile_text(with_pools(body, records), geoip)
    assert zone is None
    assert errors
    return [str(e) for e in sorted(errors)]


def one_error(body: str, records: str = "", geoip: bool = False) -> str:
    errors = errors_of(body, records, geoip)
    assert len(errors) == 1, errors
    return errors[0]


def geo(rules: str, groups: str = "{eu: {members: [{address: 192.0.2.20}]}}") -> str:
    return f"www: {{strategy: geo, groups: {groups}, rules: {rules}}}"


# -- compiled pools --------------------------------------------------------------------------


def test_defaults_with_the_members_shorthand():
    pool = pool_of(f"www: {{{ONE}}}")
    assert pool.name == "www.example.com."
    assert pool.owner == DNSLabel("www.example.com.")
    assert (pool.ttl, pool.strategy, pool.sticky, pool.answers) == (30, "weighted", False, 1)
    assert (pool.rules, pool.when_all_down, pool.fallback, pool.fallback_families) == ((), "all", (), ())
    assert (pool.tolerance_ms, pool.tolerance_percent) == (5.0, 10.0)
    [group] = pool.groups
    assert (group.name, group.weight, group.location) == ("default", 1, None)
    assert group.seed == stable_hash("www.example.com./default")
    [member] = group.members
    assert member.key == "www.example.com./default/192.0.2.10"
    assert (member.address, member.family, member.weight, member.status) == ("192.0.2.10", 4, 1, "up")
    assert member.seed == stable_hash(member.key)
    assert member.rdata.__class__.__name__ == "A" and str(member.rdata) == "192.0.2.10"


def test_every_key_compiled():
    pool = pool_of("""\
        www:
          ttl: 2m
          strategy: latency
          sticky: true
          answers: 2
          when_all_down: fallback
          fallback: [203.0.113.9, "2001:db8::9"]
          tolerance_ms: 12.5
          tolerance_percent: 0
          groups:
            fra:
              weight: 2.5
              location: [50.11, 8.68]
              members:
                - {address: 192.0.2.10, weight: 3, status: drain}
                - {address: "2001:DB8:0::10", status: down}
            iad:
              members: [{address: 198.51.100.10}]
        """)
    assert (pool.ttl, pool.strategy, pool.sticky, pool.answers) == (120, "latency", True, 2)
    assert (pool.tolerance_ms, pool.tolerance_percent) == (12.5, 0)
    assert pool.when_all_down == "fallback"
    assert [str(rd) for rd in pool.fallback] == ["203.0.113.9", "2001:db8::9"]
    assert pool.fallback_families == (4, 6)
    assert [g.name for g in pool.groups] == ["fra", "iad"]
    fra = pool.group("fra")
    assert (fra.weight, fra.location) == (2.5, (50.11, 8.68))
    assert [(m.key, m.family, m.weight, m.status) for m in fra.members] == [
        ("www.example.com./fra/192.0.2.10", 4, 3, "drain"),
        ("www.example.com./fra/2001:db8::10", 6, 1, "down"),  # the address in its canonical form
    ]
    assert [m.key for m in pool.members()] == [
        "www.example.com./fra/192.0.2.10",
        "www.example.com./fra/2001:db8::10",
        "www.example.com./iad/198.51.100.10",
    ]
    assert pool.families == frozenset({4, 6})
    assert fra.family(6)[0].rdata.__class__.__name__ == "AAAA"


@pytest.mark.parametrize(
    ("members", "families"),
    [
        ("[{address: 192.0.2.10}]", {4}),
        ("[{address: '2001:db8::10'}]", {6}),
        ("[{address: 192.0.2.10}, {address: '2001:db8::10'}]", {4, 6}),
    ],
)
def test_families(members, families):
    assert pool_of(f"www: {{members: {members}}}").families == frozenset(families)


def test_fallback_may_be_one_address():
    pool = pool_of(
        "www: {when_all_down: fallback, fallback: '2001:db8::99', members: [{address: '2001:db8::1'}]}"
    )
    assert [str(rd) for rd in pool.fallback] == ["2001:db8::99"]
    assert pool.fallback_families == (6,)


def test_fallback_of_a_family_the_pool_lacks_is_an_error():
    """AAAA for a pool without IPv6 members is NODATA before when_all_down is consulted."""
    error = one_error(f"www: {{when_all_down: fallback, fallback: '2001:db8::99', {ONE}}}")
    assert "pools.www.fallback: 2001:db8::99 is never used: the pool has no IPv6 members" in error


@pytest.mark.parametrize("policy", ["all", "nodata", "servfail"])
def test_when_all_down_without_fallback(policy):
    assert pool_of(f"www: {{when_all_down: {policy}, {ONE}}}").when_all_down == policy


@pytest.mark.parametrize("strategy", ["weighted", "roundrobin", "random", "failover", "latency"])
def test_every_strategy_but_geo_needs_no_rules(strategy):
    assert pool_of(f"www: {{strategy: {strategy}, {ONE}}}").strategy == strategy


@pytest.mark.parametrize("strategy", ["weighted", "failover", "latency"])
def test_sticky_is_allowed_with_weighted_picking(strategy):
    assert pool_of(f"www: {{strategy: {strategy}, sticky: true, {ONE}}}").sticky is True


def test_sticky_geo_pool():
    assert pool_of(geo("[{groups: [eu]}]").replace("geo,", "geo, sticky: true,")).sticky is True


def test_same_address_in_two_groups_gets_two_keys():
    pool = pool_of(
        "www: {groups: {a: {members: [{address: 192.0.2.10}]}, b: {members: [{address: 192.0.2.10}]}}}"
    )
    assert [m.key for m in pool.members()] == [
        "www.example.com./a/192.0.2.10",
        "www.example.com./b/192.0.2.10",
    ]


def test_member_keys_use_the_lowercased_absolute_owner():
    zone = zone_of("""\
        WWW.Example.COM.: {members: [{address: 192.0.2.10}]}
        '@': {members: [{address: 192.0.2.11}]}
        a.b: {members: [{address: 192.0.2.12}]}
        """)
    keys = sorted(m.key for pool in zone.pools.values() for m in pool.members())
    assert keys == [
        "a.b.example.com./default/192.0.2.12",
        "example.com./default/192.0.2.11",
        "www.example.com./default/192.0.2.10",
    ]


def test_pool_node_in_the_zone():
    zone = zone_of(f"www: {{{ONE}}}")
    node = zone.nodes[tuple(DNSLabel("www.example.com.").label)]
    assert node.pool is zone.pools[node.name]
    assert node.rrsets == {}


def test_pool_may_stand_beside_txt_and_mx():
    zone = zone_of(
        f"www: {{{ONE}}}",
        records="www: {TXT: hello, MX: {preference: 10, exchange: mail.example.net.}}",
    )
    node = zone.nodes[tuple(DNSLabel("www.example.com.").label)]
    assert node.pool is not None
    assert set(node.rrsets) == {QTYPE.TXT, QTYPE.MX}


def test_pool_beside_a_delegation_elsewhere():
    zone = zone_of(f"www: {{{ONE}}}", records="sub: {NS: ns.example.net.}")
    assert len(zone.pools) == 1


def test_geo_rules_compiled():
    pool = pool_of(
        """\
        www:
          strategy: geo
          groups:
            eu: {location: [50.11, 8.68], members: [{address: 192.0.2.20}]}
            ap: {location: [1.35, 103.82], members: [{address: 203.0.113.20}]}
          rules:
            - {subnets: [203.0.113.0/24, "2001:db8:1::/48"], groups: [ap, eu]}
            - {countries: [NO, DE], continents: [EU], groups: [eu]}
            - {groups: nearest}
        """,
        geoip=True,
    )
    first, second, last = pool.rules
    assert first.index == 0
    assert first.subnets == (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8:1::/48"))
    assert first.groups == ("ap", "eu")
    assert not first.catch_all and not first.needs_geoip
    assert second.countries == frozenset({"NO", "DE"})  # NO (Norway) stays a string, not false
    assert second.continents == frozenset({"EU"})
    assert second.needs_geoip and not second.catch_all
    assert (last.index, last.groups, last.catch_all, last.needs_geoip) == (2, (), True, True)


def test_subnet_only_geo_pool_needs_no_geoip():
    pool = pool_of(geo("[{subnets: [198.51.100.0/24], groups: [eu]}, {groups: [eu]}]"))
    assert [r.catch_all for r in pool.rules] == [False, True]


def test_norway_in_block_style_stays_a_string():
    pool = pool_of(
        """\
        www:
          strategy: geo
          members: [{address: 192.0.2.10}]
          rules:
            - countries:
                - NO
                - "NO"
              groups: [default]
            - groups: [default]
        """,
        geoip=True,
    )
    assert pool.rules[0].countries == frozenset({"NO"})


def test_the_example_pools_compile():
    """The shipped example shows every registered strategy."""
    with open("zones/gslb.example.com.yaml", encoding="utf-8") as f:
        zone, errors = compile_text(f.read())
    assert errors == []
    assert {p.name.split(".")[0]: p.strategy for p in zone.pools.values()} == {
        "app": "weighted",
        "api": "failover",
        "geo": "geo",
        "rr": "roundrobin",
        "lucky": "random",
        "edge": "latency",
        "maintenance": "weighted",
        "web": "failover",
    }
    assert {p.strategy for p in zone.pools.values()} == set(STRATEGIES)
    # A health check sends real traffic: the example's checked members are on loopback only.
    probed = [m.probe or m.address for p in zone.pools.values() for m in p.members() if m.check]
    assert probed == ["127.0.0.21", "127.0.0.22"]
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in probed)


# -- positions -------------------------------------------------------------------------------


def test_error_position_and_path_of_a_member_address():
    body = """\
        www:
          groups:
            eu:
              members:
                - {address: 192.0.2.10}
                - {address: 192.0.2.300}
        """
    assert one_error(body) == (
        f"z.yaml:{POOLS_LINE + 5}:23: pools.www.groups.eu.members[1].address: "
        "'192.0.2.300' is not an IPv4 or IPv6 address"
    )


def test_error_position_of_an_unknown_key_is_the_key():
    body = """\
        www:
          members: [{address: 192.0.2.10}]
          stratgy: geo
        """
    assert one_error(body) == (
        f"z.yaml:{POOLS_LINE + 2}:5: pools.www.stratgy: unknown key 'stratgy' (did you mean 'strategy'?)"
    )


# -- shape: keys, types, ranges --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        # unknown keys, with a hint at every level
        (
            f"www: {{{ONE}, stategy: geo}}",
            "pools.www.stategy: unknown key 'stategy' (did you mean 'strategy'?)",
        ),
        (
            "www: {members: [{address: 192.0.2.10, wieght: 2}]}",
            "pools.www.members[0].wieght: unknown key 'wieght' (did you mean 'weight'?)",
        ),
        (
            "www: {members: [{address: 192.0.2.10, adress: x}]}",
            "pools.www.members[0].adress: unknown key 'adress' (did you mean 'address'?)",
        ),
        (
            "www: {groups: {eu: {members: [{address: 192.0.2.10, stats: up}]}}}",
            "pools.www.groups.eu.members[0].stats: unknown key 'stats' (did you mean 'status'?)",
        ),
        (
            "www: {groups: {eu: {members: [{address: 192.0.2.10}], locaton: [1, 2]}}}",
            "pools.www.groups.eu.locaton: unknown key 'locaton' (did you mean 'location'?)",
        ),
        (
            geo("[{country: [DE], groups: [eu]}, {groups: [eu]}]"),
            "pools.www.rules[0].country: unknown key 'country' (did you mean 'countries'?)",
        ),
        (f"www: {{{ONE}, zzz: 1}}", "pools.www.zzz: unknown key 'zzz' (expected one of: ttl, strategy,"),
        # types
        ("www: [192.0.2.10]", "pools.www: expected a mapping, got a list"),
        ("www:", "pools.www: expected a mapping"),
        (f"www: {{{ONE}, ttl: soon}}", "pools.www.ttl: 'soon' is not a duration"),
        (f"www: {{{ONE}, ttl: -1}}", "pools.www.ttl: input should be greater than or equal to 0"),
        (f"www: {{{ONE}, sticky: yes}}", "pools.www.sticky: expected true or false, got the string 'yes'"),
        (f"www: {{{ONE}, strategy: 1}}", "pools.www.strategy: expected a string"),
        (f"www: {{{ONE}, answers: 0}}", "pools.www.answers: input should be greater than or equal to 1"),
        (f"www: {{{ONE}, answers: 33}}", "pools.www.answers: input should be less than or equal to 32"),
        (f"www: {{{ONE}, answers: true}}", "pools.www.answers: expected an integer, got a boolean"),
        (f"www: {{{ONE}, answers: 1.5}}", "pools.www.answers: expected an integer"),
        (
            f"www: {{{ONE}, when_all_down: nxdomain}}",
            "pools.www.when_all_down: input should be 'all', 'fallback'",
        ),
        (
            f"www: {{{ONE}, tolerance_ms: -1}}",
            "pools.www.tolerance_ms: input should be greater than or equal to 0",
        ),
        (f"www: {{{ONE}, tolerance_ms: 1.0e999}}", "pools.www.tolerance_ms: input should be a finite number"),
        (f"www: {{{ONE}, tolerance_percent: '5'}}", "pools.www.tolerance_percent: expected a number"),
        ("www: {members: {address: 192.0.2.10}}", "pools.www.members: expected a list"),
        ("www: {members: [192.0.2.10]}", "pools.www.members[0]: expected a mapping"),
        ("www: {members: [{weight: 2}]}", "pools.www.members[0]: missing required key 'address'"),
        ("www: {members: [{address: 192.0.2.10, status: off}]}", "input should be 'up', 'down' or 'drain'"),
        (
            "www: {members: [{address: 192.0.2.10, status: UP}]}",
            "pools.www.members[0].status: input should be",
        ),
        ("www: {groups: [{members: [{address: 192.0.2.10}]}]}", "pools.www.groups: expected a mapping"),
        ("www: {groups: {eu: {weight: 2}}}", "pools.www.groups.eu: missing required key 'members'"),
        (
            "www: {groups: {eu: {members: []}}}",
            "pools.www.groups.eu.members: must not be empty",
        ),
    ],
)
def test_shape_errors(body, fragment):
    assert fragment in one_error(body)


@pytest.mark.parametrize(
    "value", ["0", "-1", "-0.5", "'2'", "true", "false", "null", "[1]", "1000001", "1.0e999"]
)
@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("www: {{members: [{{address: 192.0.2.10, weight: {}}}]}}", "pools.www.members[0].weight"),
        (
            "www: {{groups: {{eu: {{weight: {}, members: [{{address: 192.0.2.10}}]}}}}}}",
            "pools.www.groups.eu.weight",
        ),
        (
            "www: {{groups: {{eu: {{members: [{{address: 192.0.2.10, weight: {}}}]}}}}}}",
            "pools.www.groups.eu.members[0].weight",
        ),
    ],
)
def test_weights_must_be_positive_numbers(template, path, value):
    assert f": {path}: " in one_error(template.format(value))


@pytest.mark.parametrize("value", ["0.001", "1", "2.5", "1000000"])
def test_positive_weights_are_accepted(value):
    [member] = pool_of(f"www: {{members: [{{address: 192.0.2.10, weight: {value}}}]}}").members()
    assert member.weight == float(value)


def test_members_shorthand_must_not_be_empty():
    assert "pools.www.members: must not be empty" in one_error("www: {members: []}")


def test_both_groups_and_members():
    error = one_error(f"www: {{{ONE}, groups: {{eu: {{{ONE}}}}}}}")
    assert f"z.yaml:{POOLS_LINE}:" in error
    assert "pools.www.members: give either 'groups' or 'members' (one group), not both" in error


@pytest.mark.parametrize("body", ["www: {ttl: 60}", "www: {}"])
def test_neither_groups_nor_members(body):
    assert "pools.www: a pool needs 'groups' (or 'members' for a single group)" in one_error(body)


def test_no_groups_at_all():
    assert "pools.www.groups: a pool needs at least one group" in one_error("www: {groups: {}}")


@pytest.mark.parametrize("name", ["'a/b'", "''", "'eu west'", '"eu\\tw"'])
def test_bad_group_names(name):
    error = one_error(f"www: {{groups: {{{name}: {{{ONE}}}}}}}")
    assert "must not be empty or contain '/' or blanks" in error


# -- strategy and sticky ---------------------------------------------------------------------


def test_unknown_strategy_lists_the_known_ones():
    error = one_error(f"www: {{strategy: nope, {ONE}}}")
    assert error.startswith(f"z.yaml:{POOLS_LINE}:")
    assert (
        "pools.www.strategy: unknown strategy 'nope' "
        "(expected one of: failover, geo, latency, random, roundrobin, weighted)"
    ) in error


def test_unknown_strategy_with_a_hint():
    assert "unknown strategy 'wieghted' (did you mean 'weighted'?)" in one_error(
        f"www: {{strategy: wieghted, {ONE}}}"
    )


def test_misspelt_geo_strategy_is_one_error_not_two():
    """Its rules are checked as geo rules, not reported as rules on a non-geo pool."""
    error = one_error("www: {strategy: goe, members: [{address: 192.0.2.10}], rules: [{groups: [default]}]}")
    assert "pools.www.strategy: unknown strategy 'goe'" in error


@pytest.mark.parametrize("strategy", ["roundrobin", "random"])
def test_sticky_with_roundrobin_or_random(strategy):
    error = one_error(f"www: {{strategy: {strategy}, sticky: true, {ONE}}}")
    assert f"pools.www.sticky: sticky has no meaning with strategy {strategy!r}" in error


def test_sticky_false_with_roundrobin_is_fine():
    assert pool_of(f"www: {{strategy: roundrobin, sticky: false, {ONE}}}").sticky is False


# -- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("192.0.2.300", "'192.0.2.300' is not an IPv4 or IPv6 address"),
        ("192.0.2", "'192.0.2' is not an IPv4 or IPv6 address"),
        ("192.0.2.010", "'192.0.2.010' is not an IPv4 or IPv6 address"),
        ("192.0.2.0/24", "'192.0.2.0/24' is not an IPv4 or IPv6 address"),
        ("www.example.com", "'www.example.com' is not an IPv4 or IPv6 address"),
        ("'2001:db8::g'", "'2001:db8::g' is not an IPv4 or IPv6 address"),
        ("'2001:db8::1%eth0'", "'2001:db8::1%eth0' has a scope id"),
        ("''", "'' is not an IPv4 or IPv6 address"),
        ("3221225994", "expected a string"),
    ],
)
def test_bad_member_addresses(address, fragment):
    error = one_error(f"www: {{members: [{{address: {address}}}]}}")
    assert f"pools.www.members[0].address: {fragment}" in error


@pytest.mark.parametrize(
    ("first", "second"),
    [("192.0.2.10", "192.0.2.10"), ("'2001:db8::10'", "'2001:DB8:0:0::10'")],
)
def test_duplicate_address_in_a_group(first, second):
    error = one_error(f"www: {{groups: {{eu: {{members: [{{address: {first}}}, {{address: {second}}}]}}}}}}")
    assert "pools.www.groups.eu.members[1].address:" in error
    assert "is listed twice in group 'eu'" in error


# -- fallback --------------------------------------------------------------------------------


def test_fallback_policy_needs_addresses():
    error = one_error(f"www: {{when_all_down: fallback, {ONE}}}")
    assert "pools.www.fallback: when_all_down: fallback needs a 'fallback' list of addresses" in error


def test_fallback_policy_needs_a_nonempty_list():
    error = one_error(f"www: {{when_all_down: fallback, fallback: [], {ONE}}}")
    assert "pools.www.fallback: when_all_down: fallback needs a 'fallback' list" in error


@pytest.mark.parametrize(
    "policy", ["", "when_all_down: all,", "when_all_down: nodata,", "when_all_down: servfail,"]
)
def test_fallback_only_with_the_fallback_policy(policy):
    error = one_error(f"www: {{{policy} fallback: [192.0.2.99], {ONE}}}")
    assert "pools.www.fallback: 'fallback' is used only with when_all_down: fallback" in error


@pytest.mark.parametrize(
    ("fallback", "fragment"),
    [
        ("[192.0.2.300]", "pools.www.fallback[0]: '192.0.2.300' is not an IPv4 or IPv6 address"),
        ("[192.0.2.99, nope]", "pools.www.fallback[1]: 'nope' is not an IPv4 or IPv6 address"),
        ("nope", "pools.www.fallback: 'nope' is not an IPv4 or IPv6 address"),
        ("['2001:db8::1%1']", "pools.www.fallback[0]: '2001:db8::1%1' has a scope id"),
        ("[192.0.2.99, 192.0.2.99]", "pools.www.fallback[1]: 192.0.2.99 is listed twice in 'fallback'"),
        ("[1]", "pools.www.fallback[0]: expected an IPv4 or IPv6 address, got"),
        ("{a: 1}", "pools.www.fallback: expected an IPv4 or IPv6 address, got"),
    ],
)
def test_bad_fallback(fallback, fragment):
    assert fragment in one_error(f"www: {{when_all_down: fallback, fallback: {fallback}, {ONE}}}")


# -- locations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("[91, 0]", "pools.www.groups.eu.location: location is [latitude, longitude] in degrees"),
        ("[-90.5, 0]", "pools.www.groups.eu.location: location is [latitude, longitude]"),
        ("[0, 180.1]", "pools.www.groups.eu.location: location is [latitude, longitude]"),
        ("[0, -181]", "pools.www.groups.eu.location: location is [latitude, longitude]"),
        ("[50]", "pools.www.groups.eu.location: location is [latitude, longitude]"),
        ("[50, 8, 0]", "pools.www.groups.eu.location: location is [latitude, longitude]"),
        ("[]", "pools.www.groups.eu.location: location is [latitude, longitude]"),
        ("[1.0e999, 0]", "pools.www.groups.eu.location: location is [latitude, longitude]"),
        ("['50', 8]", "pools.www.groups.eu.location[0]: expected a number, got the string '50'"),
        ("[true, 8]", "pools.www.groups.eu.location[0]: expected a number, got a boolean"),
        ("50.1", "pools.www.groups.eu.location: expected a list"),
    ],
)
def test_bad_location(location, fragment):
    assert fragment in one_error(f"www: {{groups: {{eu: {{location: {location}, {ONE}}}}}}}")


@pytest.mark.parametrize("location", ["[90, 180]", "[-90, -180]", "[0, 0]", "[50.11, 8.68]"])
def test_good_locations(location):
    pool = pool_of(f"www: {{groups: {{eu: {{location: {location}, {ONE}}}}}}}")
    assert pool.groups[0].location == tuple(float(x) for x in location.strip("[]").split(","))


# -- geo rules -------------------------------------------------------------------------------


def test_geo_without_rules():
    error = one_error("www: {strategy: geo, members: [{address: 192.0.2.10}]}")
    assert error.startswith(f"z.yaml:{POOLS_LINE}:")
    assert "pools.www: a geo pool needs 'rules'" in error


def test_geo_with_an_empty_rule_list():
    assert "pools.www.rules: a geo pool needs at least one rule" in one_error(geo("[]"))


def test_geo_without_a_catch_all():
    error = one_error(geo("[{subnets: [198.51.100.0/24], groups: [eu]}]"))
    assert "pools.www.rules: the last rule must be a catch-all" in error


def test_rules_after_a_catch_all_are_unreachable():
    rules = [
        "{subnets: [198.51.100.0/24], groups: [eu]}",
        "{groups: [eu]}",
        "{subnets: [203.0.113.0/24], groups: [eu]}",
        "{groups: [eu]}",
    ]
    errors = errors_of(geo(f"[{', '.join(rules)}]"))
    assert len(errors) == 2, errors
    assert "pools.www.rules[2]: unreachable: rule 1 before it is a catch-all" in errors[0]
    assert "pools.www.rules[3]: unreachable: rule 1 before it is a catch-all" in errors[1]


def test_a_rule_whose_subnets_are_all_bad_is_not_a_catch_all():
    """A rule with conditions stays conditional even when they fail to parse: the next rule
    is checked, not called unreachable."""
    errors = errors_of(geo("[{subnets: [198.51.100.1/24], groups: [eu]}, {groups: [nope]}]"))
    assert len(errors) == 2, errors
    assert "pools.www.rules[0].subnets[0]: '198.51.100.1/24' is not a network" in errors[0]
    assert "host bits set" in errors[0]
    assert "pools.www.rules[1].groups[0]: unknown group 'nope' (groups: eu)" in errors[1]


def test_unknown_group_in_a_rule():
    error = one_error(geo("[{subnets: [198.51.100.0/24], groups: [eu, us]}, {groups: [eu]}]"))
    assert "pools.www.rules[0].groups[1]: unknown group 'us' (groups: eu)" in error


def test_unknown_group_in_a_rule_of_a_members_pool_names_default():
    body = "www: {strategy: geo, members: [{address: 192.0.2.10}], rules: [{groups: [main]}]}"
    assert "pools.www.rules[0].groups[0]: unknown group 'main' (groups: default)" in one_error(body)


def test_group_listed_twice_in_a_rule():
    error = one_error(geo("[{groups: [eu, eu]}]"))
    assert "pools.www.rules[0].groups[1]: group 'eu' is listed twice" in error


@pytest.mark.parametrize(
    ("groups", "fragment"),
    [
        ("[]", "pools.www.rules[0].groups: list at least one group, or say 'nearest'"),
        (
            "eu",
            "pools.www.rules[0].groups: 'groups' is a list of group names or 'nearest', got the string 'eu'",
        ),
        ("nearer", "'groups' is a list of group names or 'nearest'"),
        ("7", "pools.www.rules[0].groups: 'groups' is a list of group names or 'nearest'"),
        ("[7]", "pools.www.rules[0].groups[0]: expected a group name"),
    ],
)
def test_bad_rule_groups(groups, fragment):
    assert fragment in one_error(geo(f"[{{groups: {groups}}}]"))


def test_rule_without_groups():
    error = one_error(geo("[{subnets: [198.51.100.0/24]}, {groups: [eu]}]"))
    assert "pools.www.rules[0]: missing required key 'groups'" in error


@pytest.mark.parametrize(
    ("subnet", "fragment"),
    [
        ("198.51.100.1/24", "host bits set"),
        ("'2001:db8::1/32'", "host bits set"),
        ("198.51.100.0/33", "198.51.100.0/33"),
        ("not-a-net", "'not-a-net' is not a network"),
    ],
)
def test_bad_subnets(subnet, fragment):
    error = one_error(geo(f"[{{subnets: [{subnet}], groups: [eu]}}, {{groups: [eu]}}]"))
    assert "pools.www.rules[0].subnets[0]: " in error
    assert fragment in error


def test_subnets_must_be_a_list():
    error = one_error(geo("[{subnets: 198.51.100.0/24, groups: [eu]}, {groups: [eu]}]"))
    assert "pools.www.rules[0].subnets: expected a list" in error


@pytest.mark.parametrize("condition", ["subnets", "countries", "continents"])
def test_empty_condition_is_not_a_silent_catch_all(condition):
    error = one_error(geo(f"[{{{condition}: [], groups: [eu]}}, {{groups: [eu]}}]"), geoip=True)
    assert f"pools.www.rules[0].{condition}: an empty '{condition}' list matches no client" in error


@pytest.mark.parametrize("code", ["'no'", "DEU", "de", "D", "'1A'", "''", "'D E'"])
def test_bad_country_codes(code):
    error = one_error(geo(f"[{{countries: [DE, {code}], groups: [eu]}}, {{groups: [eu]}}]"), geoip=True)
    assert "pools.www.rules[0].countries[1]: " in error
    assert "is not an ISO 3166 country code" in error


def test_country_code_that_is_not_a_string():
    error = one_error(geo("[{countries: [1], groups: [eu]}, {groups: [eu]}]"), geoip=True)
    assert "pools.www.rules[0].countries[0]: expected a string" in error


@pytest.mark.parametrize("code", ["eu", "EUR", "XX", "Europe"])
def test_bad_continent_codes(code):
    error = one_error(geo(f"[{{continents: [{code}], groups: [eu]}}, {{groups: [eu]}}]"), geoip=True)
    assert f"pools.www.rules[0].continents[0]: '{code}' is not a continent code (AF, AN, AS, EU" in error


@pytest.mark.parametrize("code", ["AF", "AN", "AS", "EU", "NA", "OC", "SA"])
def test_every_continent_code(code):
    pool = pool_of(geo(f"[{{continents: [{code}], groups: [eu]}}, {{groups: [eu]}}]"), geoip=True)
    assert pool.rules[0].continents == frozenset({code})


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ("{countries: [DE], groups: [eu]}, {groups: [eu]}", "pools.www.rules[0].countries"),
        ("{continents: [EU], groups: [eu]}, {groups: [eu]}", "pools.www.rules[0].continents"),
        ("{countries: [NO], continents: [EU], groups: [eu]}, {groups: [eu]}", "pools.www.rules[0].countries"),
        ("{subnets: [198.51.100.0/24], groups: [eu]}, {groups: nearest}", "pools.www.rules[1].groups"),
    ],
)
def test_rules_that_need_a_geoip_database(rule, path):
    body = geo(f"[{rule}]", groups="{eu: {location: [50, 8], members: [{address: 192.0.2.20}]}}")
    error = one_error(body, geoip=False)
    assert f"{path}: this rule needs a GeoIP database, and none is configured" in error
    assert pool_of(body, geoip=True).strategy == "geo"


def test_nearest_needs_a_group_location():
    error = one_error(geo("[{groups: nearest}]"), geoip=True)
    assert "pools.www.rules[0].groups: 'nearest' needs a 'location' on the pool's groups" in error


def test_nearest_with_some_groups_located():
    groups = (
        "{eu: {location: [50, 8], members: [{address: 192.0.2.20}]}, x: {members: [{address: 192.0.2.21}]}}"
    )
    assert pool_of(geo("[{groups: nearest}]", groups), geoip=True).rules[0].groups == ()


@pytest.mark.parametrize("strategy", ["weighted", "failover", "latency", "roundrobin", "random"])
def test_rules_with_a_non_geo_strategy(strategy):
    body = f"www: {{strategy: {strategy}, members: [{{address: 192.0.2.10}}], rules: [{{groups: [nope]}}]}}"
    error = one_error(body)
    assert f"pools.www.rules: 'rules' are used only with strategy geo, not {strategy!r}" in error


def test_rules_must_be_a_list_of_mappings():
    assert "pools.www.rules: expected a list" in one_error(geo("{groups: [eu]}"))
    assert "pools.www.rules[0]: expected a mapping" in one_error(geo("[eu]"))


# -- a pool in the zone ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "clash"),
    [
        ("www: {A: 192.0.2.5}", "A"),
        ("www: {AAAA: '2001:db8::5'}", "AAAA"),
        ("www: {A: 192.0.2.5, AAAA: '2001:db8::5', TXT: x}", "A, AAAA"),
        ("www: {CNAME: other.example.net.}", "CNAME"),
    ],
)
def test_pool_clashes_with_static_records(records, clash):
    error = one_error(f"www: {{{ONE}}}", records=records)
    assert error.startswith(f"z.yaml:{POOLS_LINE + 1}:3: pools.www: ")
    assert f"a pool answers A and AAAA itself: remove the static {clash} at this name" in error


def test_clash_is_found_for_an_absolute_or_differently_cased_key():
    error = one_error(f"WWW.example.com.: {{{ONE}}}", records="www: {A: 192.0.2.5}")
    assert "remove the static A at this name" in error


def test_clash_is_reported_beside_the_pools_own_errors():
    errors = errors_of("www: {members: [{address: nope}]}", records="www: {A: 192.0.2.5}")
    assert len(errors) == 2, errors
    assert "pools.www.members[0].address: 'nope' is not" in " ".join(errors)
    assert "pools.www: a pool answers A and AAAA itself" in " ".join(errors)


@pytest.mark.parametrize("key", ["sub", "www.sub", "a.b.sub"])
def test_pool_at_or_under_a_delegation(key):
    error = one_error(f"{key}: {{{ONE}}}", records="sub: {NS: ns.example.net.}")
    path = f'pools."{key}"' if "." in key else f"pools.{key}"
    assert f"{path}: a pool cannot be at or under delegation sub.example.com." in error


def test_invalid_pool_under_a_delegation_gets_both_errors():
    errors = errors_of("x.sub: {ttl: 60}", records="sub: {NS: ns.example.net.}")
    assert len(errors) == 2, errors
    assert any("a pool cannot be at or under delegation sub.example.com." in e for e in errors)


def test_same_pool_name_twice():
    body = f"""\
        www: {{{ONE}}}
        WWW.example.com.: {{{ONE}}}
        """
    error = one_error(body)
    assert error.startswith(f'z.yaml:{POOLS_LINE + 1}:3: pools."WWW.example.com.": same name as pools.www')


def test_same_pool_name_twice_when_the_first_is_invalid():
    body = """\
        www: {ttl: 60}
        WWW: {members: [{address: 192.0.2.10}]}
        """
    errors = errors_of(body)
    assert len(errors) == 2, errors
    assert "pools.WWW: same name as pools.www" in errors[1]


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("'a b'", "invalid owner name 'a b'"),
        ("www.example.org.", "name 'www.example.org.' is outside the zone's origin"),
        ("'bücher'", "must be ASCII"),
    ],
)
def test_bad_pool_owner_names(key, fragment):
    assert fragment in one_error(f"{key}: {{{ONE}}}")


def test_pools_must_be_a_mapping():
    zone, errors = compile_text(HEAD + "pools: [www]\n")
    assert zone is None
    assert [str(e) for e in errors] == [f"z.yaml:{POOLS_LINE - 1}:8: pools: expected a mapping, got a list"]


# -- every problem at once -------------------------------------------------------------------


def test_all_errors_in_a_file_are_reported_at_once():
    body = """\
        www:
          strategy: geo
          sticky: maybe
          groups:
            eu: {location: [95, 8], members: [{address: 192.0.2.300, weight: 0}]}
          rules:
            - {countries: [DEU], groups: [us]}
        api:
          strategy: roundrobin
          sticky: true
          members: [{address: 192.0.2.1}, {address: 192.0.2.1}]
        edge:
          strategy: fastest
          when_all_down: fallback
          members: [{address: 198.51.100.1, wieght: 2}]
        static:
          members: [{address: 203.0.113.1}]
        """
    errors = errors_of(body, records="static: {A: 192.0.2.5}")
    expected = [
        # `www` fails its shape first (sticky, weight), so its meaning is not checked yet
        "pools.www.sticky: expected true or false",
        "pools.www.groups.eu.members[0].weight: input should be greater than 0",
        "pools.api.sticky: sticky has no meaning with strategy 'roundrobin'",
        "pools.api.members[1].address: 192.0.2.1 is listed twice in group 'default'",
        "pools.edge.members[0].wieght: unknown key 'wieght' (did you mean 'weight'?)",
        "pools.static: a pool answers A and AAAA itself",
    ]
    assert len(errors) == len(expected), errors
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)
    assert all(e.startswith("z.yaml:") for e in errors)


def test_meaning_errors_of_one_pool_are_reported_together():
    body = """\
        www:
          strategy: geo
          groups:
            eu: {location: [95, 8], members: [{address: 192.0.2.300}]}
          rules:
            - {countries: [DEU], groups: [us]}
            - {subnets: [198.51.100.1/24], groups: [eu]}
          fallback: [192.0.2.99]
        """
    errors = errors_of(body)
    expected = [
        "pools.www.groups.eu.members[0].address: '192.0.2.300' is not an IPv4 or IPv6 address",
        "pools.www.groups.eu.location: location is [latitude, longitude]",
        "pools.www.rules[0].countries: this rule needs a GeoIP database",
        "pools.www.rules[0].countries[0]: 'DEU' is not an ISO 3166 country code",
        "pools.www.rules[0].groups[0]: unknown group 'us'",
        "pools.www.rules[1].subnets[0]: '198.51.100.1/24' is not a network",
        "pools.www.rules: the last rule must be a catch-all",
        "pools.www.fallback: 'fallback' is used only with when_all_down: fallback",
    ]
    assert len(errors) == len(expected), errors
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)


def test_pool_errors_are_reported_even_when_the_origin_is_bad():
    text = with_pools("www: {members: [{address: 192.0.2.300}]}").replace(
        "origin: example.com.", "origin: example.com"
    )
    zone, errors = compile_text(text)
    assert zone is None
    messages = [str(e) for e in sorted(errors)]
    assert any("origin" in m for m in messages), messages
    assert any("pools.www.members[0].address: '192.0.2.300' is not" in m for m in messages), messages
