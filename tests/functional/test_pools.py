"""Pool answers from the real server over UDP and TCP: strategies, stickiness, ECS scope,
health from the zone file, when_all_down, TTL, CNAME chasing, and the example zone's pools.

The resolver is always 127.0.0.1, so client variety comes from EDNS Client Subnet options.
The pool zone is tests/data/pools/pools.example.yaml, served with the GeoIP test database.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import ROOT, GdnsServer, wait_for

POOL_ZONE = ROOT / "tests" / "data" / "pools" / "pools.example.yaml"
DIG = shutil.which("dig")

# The upper 0.1% point of the chi-squared distribution (p = 0.001), from standard tables
# (scipy.stats.chi2.ppf(0.999, df)): a correct server fails a test at most once in 1000 runs.
CHI2_CRITICAL_P001 = {1: 10.828, 2: 13.816, 3: 16.266}

MOVING = """\
origin: moving.example.
soa: {{mname: ns1.moving.example., rname: hostmaster.moving.example.}}
ns: [ns1.moving.example.]
records:
  ns1: {{A: 192.0.2.53}}
pools:
  sticky:
    strategy: weighted
    sticky: true
    members:
      - {{address: 192.0.2.101}}
      - {{address: 192.0.2.102, status: {status}}}
      - {{address: 192.0.2.103}}
      - {{address: 192.0.2.104}}
  failover:
    strategy: failover
    groups:
      primary: {{members: [{{address: 192.0.2.111, status: {status}}}]}}
      backup: {{members: [{{address: 198.51.100.111}}]}}
"""


def write_moving(folder: Path, status: str) -> None:
    tmp = folder / ".moving.yaml.tmp"
    tmp.write_text(MOVING.format(status=status))
    os.replace(tmp, folder / "moving.yaml")  # as careful tools do: the reloader never sees half


@pytest.fixture(scope="module")
def pools_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pool-zones")
    shutil.copy(POOL_ZONE, folder / POOL_ZONE.name)
    write_moving(folder, "up")
    return folder


@pytest.fixture(scope="module")
def server(pools_dir, geoip_db):
    srv = GdnsServer(pools_dir, "--geoip-db", str(geoip_db), "--reload-interval", "0.2")
    yield srv
    srv.stop()


@pytest.fixture(params=[False, True], ids=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param


# -- helpers ---------------------------------------------------------------------------------


def ask(srv, name: str, qtype: str = "A", ecs: str | None = None, tcp: bool = False) -> dns.message.Message:
    options = []
    if ecs is not None:
        net = ipaddress.ip_network(ecs, strict=False)
        options.append(dns.edns.ECSOption(str(net.network_address), net.prefixlen))
    return srv.query(name, qtype, tcp=tcp, use_edns=0, options=options)


def addresses(reply: dns.message.Message) -> list[str]:
    return [rd.address for rrset in reply.answer if rrset.rdtype in (1, 28) for rd in rrset]


def address(reply: dns.message.Message) -> str:
    assert reply.rcode() == dns.rcode.NOERROR, reply
    [one] = addresses(reply)
    return one


def scope(reply: dns.message.Message) -> int | None:
    """The reply's ECS scope prefix, or None without an ECS option."""
    found = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    assert len(found) <= 1
    return found[0].scopelen if found else None


def echoed(reply: dns.message.Message) -> str:
    [option] = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    return f"{option.address}/{option.srclen}"


def assert_nodata(reply: dns.message.Message, zone: str = "pools.example.") -> None:
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert not reply.answer
    [soa] = reply.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == zone


def v6_networks(count: int, start: int = 0) -> list[str]:
    """`count` distinct documentation /56 networks (the IPv6 sticky hashing prefix)."""
    base = int(ipaddress.ip_address("2001:db8::"))
    return [str(ipaddress.ip_network((base + ((start + i) << 72), 56))) for i in range(count)]


def chi_squared(counts: Counter, weights: dict[str, float]) -> tuple[float, dict[str, float]]:
    total = sum(counts.values())
    scale = total / sum(weights.values())
    stat = sum((counts[k] - w * scale) ** 2 / (w * scale) for k, w in weights.items())
    return stat, {k: counts[k] / total for k in weights}


# -- weighted ------------------------------------------------------------------------------


def test_weighted_share_over_many_client_subnets(server):
    """1200 queries from 1200 client networks follow the 1:2:5 weights; scope is always 0."""
    weights = {"192.0.2.1": 1, "192.0.2.2": 2, "192.0.2.3": 5}
    counts: Counter = Counter()
    scopes = set()
    for i, net in enumerate(v6_networks(1200)):
        reply = ask(server, "weighted.pools.example", ecs=net, tcp=i % 10 == 0)
        counts[address(reply)] += 1
        scopes.add(scope(reply))
    assert set(counts) == set(weights)
    stat, shares = chi_squared(counts, weights)
    print(f"weighted 1:2:5 shares over {sum(counts.values())} queries: {shares}")
    assert stat < CHI2_CRITICAL_P001[2], (stat, counts)
    assert scopes == {0}  # the answer does not depend on the client


def test_sticky_share_over_many_client_networks(server):
    """Rendezvous hashing spreads 800 client /56 networks by weight 1:1:2, each with scope 56."""
    weights = {"192.0.2.11": 1, "192.0.2.12": 1, "192.0.2.13": 2}
    counts: Counter = Counter()
    for net in v6_networks(800, start=5000):
        reply = ask(server, "sticky.pools.example", ecs=net)
        counts[address(reply)] += 1
        assert scope(reply) == 56
    stat, shares = chi_squared(counts, weights)
    print(f"sticky 1:1:2 shares over {sum(counts.values())} networks: {shares}")
    assert stat < CHI2_CRITICAL_P001[2], (stat, counts)


@pytest.mark.parametrize("network", ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"])
def test_sticky_same_network_same_member_scope_24(server, network):
    net = ipaddress.ip_network(network)
    seen = set()
    for i, host in enumerate([1, 77, 128, 200, 254]):
        for ecs in (network, f"{net.network_address + host}/32", f"{net.network_address + host}/28"):
            reply = ask(server, "sticky.pools.example", ecs=ecs, tcp=i % 2 == 1)
            seen.add(address(reply))
            assert scope(reply) == 24, ecs
    assert len(seen) == 1


@pytest.mark.parametrize(
    "ecs, expected",
    [
        ("192.0.0.0/16", 16),
        ("192.0.0.0/20", 20),
        ("192.0.2.0/24", 24),
        ("192.0.2.9/32", 24),
        ("0.0.0.0/0", 0),
    ],
)
def test_sticky_scope_is_capped_at_the_source_prefix(server, tcp, ecs, expected):
    reply = ask(server, "sticky.pools.example", ecs=ecs, tcp=tcp)
    assert address(reply).startswith("192.0.2.1")
    assert scope(reply) == expected
    assert echoed(reply) == str(ipaddress.ip_network(ecs))  # address and source echoed as sent


@pytest.mark.parametrize("ecs, expected", [("2001:db8:5:100::/64", 56), ("2001:db8:5::/48", 48)])
def test_sticky_ipv6_hashes_on_56(server, ecs, expected):
    a = ask(server, "sticky.pools.example", "AAAA", ecs=ecs)
    assert address(a) in {"2001:db8::11", "2001:db8::12"}
    assert scope(a) == expected
    assert address(ask(server, "sticky.pools.example", "AAAA", ecs=ecs, tcp=True)) == address(a)


def test_sticky_without_ecs_uses_the_resolver_network_and_echoes_nothing(server):
    replies = [ask(server, "sticky.pools.example", tcp=i % 2 == 1) for i in range(6)]
    assert len({address(r) for r in replies}) == 1
    assert all(scope(r) is None for r in replies)


# -- health from the zone file: members down and back up --------------------------------------


def test_member_down_moves_only_its_clients_and_they_return(server, pools_dir):
    networks = v6_networks(240, start=9000)

    def mapping() -> dict[str, str]:
        return {net: address(ask(server, "sticky.moving.example", ecs=net)) for net in networks}

    before = mapping()
    moved = [net for net, addr in before.items() if addr == "192.0.2.102"]
    assert 30 < len(moved) < 90  # about a quarter of the networks
    probe = moved[0]

    write_moving(pools_dir, "down")
    assert wait_for(lambda: address(ask(server, "sticky.moving.example", ecs=probe)) != "192.0.2.102")
    during = mapping()
    assert "192.0.2.102" not in during.values()
    assert {net for net in networks if during[net] != before[net]} == set(moved)  # only its clients
    assert len({during[net] for net in moved}) > 1  # spread over the others, not piled on one

    write_moving(pools_dir, "up")
    assert wait_for(lambda: address(ask(server, "sticky.moving.example", ecs=probe)) == "192.0.2.102")
    assert mapping() == before


def test_failover_to_backup_when_primary_is_marked_down(server, pools_dir, tcp):
    def failover() -> str:
        return address(ask(server, "failover.moving.example", ecs="203.0.113.0/24", tcp=tcp))

    assert failover() == "192.0.2.111"
    write_moving(pools_dir, "down")
    assert wait_for(lambda: failover() == "198.51.100.111")
    assert scope(ask(server, "failover.moving.example", ecs="203.0.113.0/24", tcp=tcp)) == 0
    write_moving(pools_dir, "up")
    assert wait_for(lambda: failover() == "192.0.2.111")


# -- deterministic strategies: failover, latency, geo -----------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [("failover-up", "192.0.2.21"), ("failover-down", "198.51.100.22"), ("latency", "192.0.2.51")],
)
def test_fixed_order_strategies_echo_ecs_with_scope_0(server, tcp, name, expected):
    for ecs in ("192.0.2.0/24", "203.0.113.128/25", "2001:db8:1::/48"):
        reply = ask(server, f"{name}.pools.example", ecs=ecs, tcp=tcp)
        assert address(reply) == expected
        assert scope(reply) == 0
        assert echoed(reply) == ecs


@pytest.mark.parametrize(
    "name, qtype, ecs, expected, expected_scope",
    [
        # rule 0, country NO (GeoIP network 192.0.2.128/25)
        ("geo", "A", "192.0.2.130/32", "198.51.100.30", 25),
        # rule 1, continent SA (BR, 203.0.113.128/25)
        ("geo", "A", "203.0.113.200/32", "203.0.113.130", 25),
        # rule 3, nearest: DE -> eu, SG -> ap, US -> us (198.51.100.0/24), GB -> eu
        ("geo", "A", "192.0.2.10/32", "192.0.2.30", 25),
        ("geo", "A", "203.0.113.10/32", "203.0.113.30", 25),
        ("geo", "A", "198.51.100.7/32", "198.51.100.30", 24),
        ("geo", "AAAA", "2001:db8:1::/48", "2001:db8::30", 48),
        ("geo", "AAAA", "2001:db8:2:ab00::/56", "2001:db8::31", 48),
        # the GeoIP network is /25 but the client gave only /24: the scope is capped at 24
        ("geo", "A", "192.0.2.0/24", "192.0.2.30", 24),
        # rule 2, an IPv6 subnet
        ("geo", "AAAA", "2001:db8:ffff:1::/64", "2001:db8::32", 48),
        # subnet rules: the matched subnet's prefix, or the prefix that excludes it
        ("geo-subnet", "A", "198.51.100.10/32", "198.51.100.41", 25),
        ("geo-subnet", "A", "198.51.100.0/25", "198.51.100.41", 25),
        ("geo-subnet", "A", "198.51.100.200/32", "198.51.100.43", 25),
        ("geo-subnet", "A", "2001:db8:ffff:1::/64", "198.51.100.42", 48),
    ],
)
def test_geo(server, tcp, name, qtype, ecs, expected, expected_scope):
    reply = ask(server, f"{name}.pools.example", qtype, ecs=ecs, tcp=tcp)
    assert address(reply) == expected
    assert scope(reply) == expected_scope


# -- picking: rotation and several answers ------------------------------------------------------


def test_roundrobin_rotates_query_after_query(server):
    ring = ["192.0.2.61", "192.0.2.62", "192.0.2.63"]
    firsts = [address(ask(server, "rr.pools.example", tcp=i % 2 == 1)) for i in range(7)]
    for a, b in itertools.pairwise(firsts):
        assert ring.index(b) == (ring.index(a) + 1) % 3, firsts
    reply = ask(server, "rr.pools.example", ecs="192.0.2.0/24")
    assert scope(reply) == 0


def test_two_answers_are_two_distinct_addresses_in_rotation(server, tcp):
    ring = ["192.0.2.71", "192.0.2.72", "192.0.2.73"]
    pairs = [addresses(ask(server, "rr-two.pools.example", tcp=tcp)) for _ in range(6)]
    for pair in pairs:
        assert len(pair) == 2 and len(set(pair)) == 2 and set(pair) <= set(ring)
        assert ring.index(pair[1]) == (ring.index(pair[0]) + 1) % 3  # rotated, order kept
    assert len({pair[0] for pair in pairs}) == 3  # every member leads in turn


# -- families, NODATA, when_all_down ----------------------------------------------------------


def test_aaaa_from_ipv6_members(server, tcp):
    seen = {address(ask(server, "v6only.pools.example", "AAAA", tcp=tcp)) for _ in range(20)}
    assert seen <= {"2001:db8::81", "2001:db8::82"} and seen


@pytest.mark.parametrize("name, qtype", [("v6only", "A"), ("v4only", "AAAA"), ("down-nodata", "A")])
def test_nodata_with_soa(server, tcp, name, qtype):
    assert_nodata(ask(server, f"{name}.pools.example", qtype, ecs="198.51.100.0/24", tcp=tcp))


def test_when_all_down_all_answers_every_member_an_operator_did_not_take_out(server, tcp):
    """.91 and .92 are down by their probes and answered; .90 is configured down: left out."""
    reply = ask(server, "down-all.pools.example", tcp=tcp)
    assert sorted(addresses(reply)) == ["192.0.2.91", "192.0.2.92"]


def test_when_all_down_all_with_every_member_taken_out_by_hand_is_nodata(server, tcp):
    assert_nodata(ask(server, "down-forced.pools.example", tcp=tcp))


def test_when_all_down_fallback_by_family(server, tcp):
    assert address(ask(server, "down-fallback.pools.example", tcp=tcp)) == "192.0.2.250"
    assert address(ask(server, "down-fallback.pools.example", "AAAA", tcp=tcp)) == "2001:db8::250"


def test_when_all_down_servfail_never_nxdomain(server, tcp):
    reply = ask(server, "down-servfail.pools.example", ecs="192.0.2.0/24", tcp=tcp)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert not reply.answer
    for name in ("down-all", "down-forced", "down-fallback", "down-nodata", "down-servfail"):
        for qtype in ("A", "AAAA", "TXT", "MX"):
            assert ask(server, f"{name}.pools.example", qtype, tcp=tcp).rcode() != dns.rcode.NXDOMAIN


# -- TTL, CNAME, other types beside a pool ----------------------------------------------------


@pytest.mark.parametrize("name, ttl", [("weighted", 42), ("sticky", 20), ("failover-up", 30), ("rr-two", 30)])
def test_ttl_is_the_pool_ttl(server, tcp, name, ttl):
    reply = ask(server, f"{name}.pools.example", tcp=tcp)
    assert reply.answer and all(rrset.ttl == ttl for rrset in reply.answer)


def test_cname_to_a_pool_is_chased(server, tcp):
    reply = ask(server, "alias.pools.example", ecs="198.51.100.0/24", tcp=tcp)
    cname, a = reply.answer
    assert cname.rdtype == dns.rdatatype.CNAME and cname[0].target.to_text() == "sticky.pools.example."
    assert a.name.to_text() == "sticky.pools.example." and a.ttl == 20
    direct = ask(server, "sticky.pools.example", ecs="198.51.100.0/24", tcp=tcp)
    assert a[0].address == address(direct)
    assert scope(reply) == 24  # the chased pool's sticky scope


def test_txt_beside_a_pool_answers_normally(server, tcp):
    reply = ask(server, "weighted.pools.example", "TXT", tcp=tcp)
    [txt] = reply.answer
    assert txt.rdtype == dns.rdatatype.TXT
    assert txt[0].strings == (b"a pool name may carry other types",)
    assert_nodata(ask(server, "weighted.pools.example", "MX", tcp=tcp))


# -- the example zone's pools answer what its comments promise ---------------------------------


@pytest.mark.parametrize(
    "name, ecs, expected, expected_scope",
    [
        ("api", "203.0.113.0/24", "198.51.100.30", 0),
        ("maintenance", "203.0.113.0/24", "192.0.2.250", 0),
        ("geo", "203.0.113.0/24", "203.0.113.20", 24),
        # the catch-all: valid for the widest network that excludes 203.0.113.0/24, a /5
        ("geo", "198.51.100.0/24", "192.0.2.20", 5),
        ("edge", "198.51.100.0/24", "192.0.2.50", 0),
    ],
)
def test_example_zone_pools(example_server, tcp, name, ecs, expected, expected_scope):
    reply = ask(example_server, f"{name}.gslb.example.com", ecs=ecs, tcp=tcp)
    assert address(reply) == expected
    assert scope(reply) == expected_scope


def test_example_zone_app_is_sticky_per_network(example_server):
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"):
        net = ipaddress.ip_network(network)
        got = {address(ask(example_server, "app.gslb.example.com", ecs=f"{net[h]}/32")) for h in (1, 99, 250)}
        assert len(got) == 1 and got <= {"192.0.2.10", "192.0.2.11"}


# -- dig ---------------------------------------------------------------------------------------


def dig(srv, *args: str) -> str:
    if DIG is None:
        pytest.skip("dig is not installed")
    cmd = [DIG, f"@{srv.host}", "-p", str(srv.port), "+time=2", "+tries=1", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def dig_answer(output: str) -> list[str]:
    match = re.search(r";; ANSWER SECTION:\n(.*?)(?:\n\n|\Z)", output, re.S)
    return [line.split()[-1] for line in match.group(1).splitlines()] if match else []


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig_example_geo_subnet(example_server, transport):
    out = dig(example_server, "+subnet=203.0.113.0/24", "geo.gslb.example.com", transport)
    assert dig_answer(out) == ["203.0.113.20"]
    assert "CLIENT-SUBNET: 203.0.113.0/24/24" in out


def test_dig_example_api_and_maintenance(example_server):
    assert dig(example_server, "+short", "api.gslb.example.com").split() == ["198.51.100.30"]
    assert dig(example_server, "+short", "maintenance.gslb.example.com").split() == ["192.0.2.250"]
    out = dig(example_server, "+subnet=198.51.100.0/24", "api.gslb.example.com")
    assert "CLIENT-SUBNET: 198.51.100.0/24/0" in out


@pytest.mark.parametrize("subnet, expected_scope", [("198.51.100.0/24", 24), ("198.51.0.0/16", 16)])
def test_dig_sticky_scope_and_same_member_as_dnspython(server, subnet, expected_scope):
    out = dig(server, f"+subnet={subnet}", "sticky.pools.example")
    assert f"CLIENT-SUBNET: {subnet}/{expected_scope}" in out
    assert dig_answer(out) == [address(ask(server, "sticky.pools.example", ecs=subnet))]


def test_dig_geo_country_and_nodata(server):
    out = dig(server, "+subnet=192.0.2.128/25", "geo.pools.example")
    assert dig_answer(out) == ["198.51.100.30"]
    assert "CLIENT-SUBNET: 192.0.2.128/25/25" in out
    out = dig(server, "v4only.pools.example", "AAAA")
    assert "status: NOERROR" in out and "ANSWER: 0" in out and "AUTHORITY: 1" in out
