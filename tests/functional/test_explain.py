"""`gdns explain` runs the server's own decision code offline: for deterministic strategies it
must say exactly what the live server answers for the same client and ECS, and why."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.edns
import dns.rcode
import pytest

from tests.conftest import ROOT, GdnsServer

POOL_ZONE = ROOT / "tests" / "data" / "pools" / "pools.example.yaml"
CLIENT = "127.0.0.1"  # the live server sees every test query from here

# (name, type, ECS or None): deterministic answers only (no weighted draws, no rotation).
CASES = [
    ("failover-up.pools.example", "A", "192.0.2.0/24"),
    ("failover-down.pools.example", "A", "203.0.113.0/24"),
    ("latency.pools.example", "A", "198.51.100.0/24"),
    ("latency.pools.example", "A", None),
    ("geo.pools.example", "A", "192.0.2.130/32"),
    ("geo.pools.example", "A", "203.0.113.200/32"),
    ("geo.pools.example", "A", "192.0.2.10/32"),
    ("geo.pools.example", "A", "198.51.100.0/24"),
    ("geo.pools.example", "A", "192.0.2.0/24"),
    ("geo.pools.example", "AAAA", "2001:db8:1::/48"),
    ("geo.pools.example", "AAAA", "2001:db8:ffff:1::/64"),
    ("geo-subnet.pools.example", "A", "198.51.100.200/32"),
    ("geo-subnet.pools.example", "A", "2001:db8:ffff:1::/64"),
    ("sticky.pools.example", "A", "192.0.2.0/24"),
    ("sticky.pools.example", "A", "198.51.100.0/24"),
    ("sticky.pools.example", "A", "203.0.113.77/32"),
    ("sticky.pools.example", "A", "192.0.0.0/16"),
    ("sticky.pools.example", "AAAA", "2001:db8:7:700::/56"),
    ("sticky.pools.example", "A", "2001:db8:8::/48"),
    ("sticky.pools.example", "A", None),
    ("alias.pools.example", "A", "203.0.113.0/24"),
    ("v4only.pools.example", "AAAA", "192.0.2.0/24"),
    ("down-fallback.pools.example", "AAAA", None),
    ("down-servfail.pools.example", "A", "192.0.2.0/24"),
]


@pytest.fixture(scope="module")
def zones(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("explain-zones")
    shutil.copy(POOL_ZONE, folder / POOL_ZONE.name)
    return folder


@pytest.fixture(scope="module")
def server(zones, geoip_db):
    srv = GdnsServer(zones, "--geoip-db", str(geoip_db))
    yield srv
    srv.stop()


def gdns(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gdns", "explain", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)


def explain_args(zones: Path, geoip_db: Path, name: str, qtype: str, ecs: str | None) -> list[str]:
    args = [name, "--type", qtype, "--client", CLIENT, "--zones", str(zones), "--geoip-db", str(geoip_db)]
    return args + (["--ecs", ecs] if ecs else [])


@pytest.fixture(scope="module")
def explained(zones, geoip_db) -> dict:
    """Every case explained once, in parallel: each is a fresh interpreter."""

    def run(case):
        result = gdns(*explain_args(zones, geoip_db, *case), "--json")
        assert result.returncode == 0, result.stderr
        return case, json.loads(result.stdout)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(run, CASES))


def live(server, name: str, qtype: str, ecs: str | None, tcp: bool = False):
    options = []
    if ecs:
        net = ipaddress.ip_network(ecs)
        options.append(dns.edns.ECSOption(str(net.network_address), net.prefixlen))
    return server.query(name, qtype, tcp=tcp, use_edns=0, options=options)


def records(section) -> set[str]:
    return {" ".join(line.split()) for rrset in section for line in rrset.to_text().splitlines()}


def reply_scope(reply) -> int | None:
    found = [o.scopelen for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    return found[0] if found else None


@pytest.mark.parametrize("case", CASES, ids=[f"{n.split('.')[0]}-{t}-{e}" for n, t, e in CASES])
def test_explain_agrees_with_the_live_server(server, explained, case):
    data = explained[case]
    name, qtype, ecs = case
    for tcp in (False, True):
        reply = live(server, name, qtype, ecs, tcp=tcp)
        assert data["rcode"] == dns.rcode.to_text(reply.rcode())
        assert set(data["answer"]) == records(reply.answer)
        assert set(data["authority"]) == records(reply.authority)
        assert data["ecs_scope"] == reply_scope(reply)
    assert data["client"] == CLIENT and data["ecs"] == ecs
    assert data["question"] == {"name": name + ".", "type": qtype}
    assert data["decisions"], "a pool name is answered by a decision"
    [decision] = data["decisions"]  # every case meets exactly one pool
    picked_in_groups = [m["address"] for g in decision["groups"] for m in g["members"] if m["picked"]]
    if decision["outcome"] == "answer":
        assert picked_in_groups == decision["picked"]
        assert {rr.split()[-1] for rr in data["answer"] if rr.split()[3] == qtype} == set(decision["picked"])
    if ecs:
        assert data["ecs_scope"] == min(decision["scope"], ipaddress.ip_network(ecs).prefixlen)


def test_explain_json_shows_the_geo_rule_order_and_health(explained):
    d = explained[("geo.pools.example", "A", "192.0.2.130/32")]["decisions"][0]
    assert (d["pool"], d["strategy"], d["rule"], d["order"][0]) == ("geo.pools.example.", "geo", 0, "us")
    assert "country NO" in d["why"]
    d = explained[("failover-down.pools.example", "A", "203.0.113.0/24")]["decisions"][0]
    primary = {m["address"]: m["state"] for m in d["groups"][0]["members"]}
    assert primary == {"192.0.2.22": "down", "192.0.2.23": "drain"}
    assert d["groups"][0]["usable"] is False and d["order"] == ["backup"]
    d = explained[("down-servfail.pools.example", "A", "192.0.2.0/24")]["decisions"][0]
    assert d["outcome"] == "all-down:servfail"


def test_explain_text_names_the_rule_and_the_picked_member(zones, geoip_db):
    result = gdns(*explain_args(zones, geoip_db, "geo.pools.example", "A", "192.0.2.130/32"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "rule 0 (country NO)" in out
    [picked] = [line for line in out.splitlines() if "<- picked" in line]
    assert "198.51.100.30" in picked
    assert "scope /25" in out
    result = gdns(*explain_args(zones, geoip_db, "geo.pools.example", "A", "198.51.100.7/32"))
    assert "rule 3 (catch-all): nearest" in result.stdout
    [picked] = [line for line in result.stdout.splitlines() if "<- picked" in line]
    assert "198.51.100.30" in picked


def test_explain_invalid_zones_exit_1_with_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "origin: bad.example.\n"
        "soa: {mname: ns1.bad.example., rname: hostmaster.bad.example.}\n"
        "ns: [ns1.bad.example.]\n"
        "pools:\n"
        "  www:\n"
        "    members: [{address: 192.0.2.999}]\n"
        "  geo:\n"
        "    strategy: nearest-ish\n"
        "    members: [{address: 192.0.2.1}]\n"
    )
    result = gdns("www.bad.example", "--client", CLIENT, "--zones", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:6:" in result.stderr
    assert f"{tmp_path / 'bad.yaml'}:8:" in result.stderr  # every problem, not just the first
    assert not result.stdout


def test_explain_missing_zones_dir_exits_1(tmp_path):
    result = gdns("www.example.com", "--client", CLIENT, "--zones", str(tmp_path / "nothere"))
    assert result.returncode == 1
    assert "nothere" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--client", "192.0.2.300"],
        ["--client", "example.com"],
        ["--client", CLIENT, "--ecs", "192.0.2.0/33"],
        ["--client", CLIENT, "--type", "MX"],
    ],
)
def test_explain_bad_arguments_exit_2(zones, args):
    result = gdns("geo.pools.example", "--zones", str(zones), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error" in result.stderr and not result.stdout


@pytest.mark.parametrize(
    "name, message",
    [
        ("geo..pools.example", "'geo..pools.example' has an empty label"),
        (".geo.pools.example.", "'.geo.pools.example.' has an empty label"),
        ("geo.pools.example..", "'geo.pools.example..' has an empty label"),
        ("", "the name is empty"),
        ("x" * 64 + ".pools.example", "has a label longer than 63 octets"),
        (".".join(["x" * 60] * 5), "is longer than 255 octets"),
    ],
)
def test_explain_rejects_names_no_query_could_carry(zones, name, message):
    """An empty label used to be dropped, so `a..example.` was explained as `a.example.`."""
    result = gdns(name, "--client", CLIENT, "--zones", str(zones))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("gdns: error: ") and message in result.stderr
    assert not result.stdout
