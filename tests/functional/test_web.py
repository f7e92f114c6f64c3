"""The web side end to end: the real `gdns serve` subprocess, its /metrics, /healthz, /readyz,
/api/v1 and admin overrides, over HTTP to 127.0.0.1 (urllib, no proxy), with DNS queries sent
by dnspython and health-checked members probed on real aiohttp backends on 127.0.0.x.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import ThreadedBackend as Backend
from tests.conftest import ROOT, GdnsServer, wait_for

TOKEN = "s3cret-token-for-tests"
ORIGIN = "w.example"
WWW = f"www.{ORIGIN}."
KEY_10, KEY_11, KEY_12 = (f"{WWW}/main/192.0.2.{n}" for n in (10, 11, 12))

# -- HTTP ------------------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy: loopback only


class Reply:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(
    url: str, method: str = "GET", body=None, token: str | None = None, headers: dict | None = None
) -> Reply:
    data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None and "Content-Type" not in (headers or {}):
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=5) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.headers, exc.read())


def api(server: GdnsServer, path: str, **kw) -> Reply:
    return http(server.web + path, **kw)


def pool_json(server: GdnsServer, name: str) -> dict:
    pools = api(server, "/api/v1/pools").json["pools"]
    return next(p for p in pools if p["name"] == name)


def member_json(server: GdnsServer, key: str) -> dict:
    for pool in api(server, "/api/v1/pools").json["pools"]:
        for group in pool["groups"]:
            for m in group["members"]:
                if m["key"] == key:
                    return m
    raise KeyError(key)


def override(server: GdnsServer, key: str, state: str, token: str = TOKEN) -> Reply:
    return api(server, "/api/v1/overrides", method="POST", body={"member": key, "state": state}, token=token)


def unoverride(server: GdnsServer, key: str, token: str = TOKEN) -> Reply:
    return api(server, f"/api/v1/overrides?member={urllib.parse.quote(key)}", method="DELETE", token=token)


# -- metrics ---------------------------------------------------------------------------------

Samples = dict[tuple[str, tuple], float]


def scrape(server: GdnsServer) -> tuple[list, Samples]:
    reply = api(server, "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    families = list(text_string_to_metric_families(reply.text))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return families, samples


def metric(samples: Samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def metrics(server: GdnsServer) -> Samples:
    return scrape(server)[1]


# -- zones and backends ------------------------------------------------------------------------


def write_zone(folder: Path, origin: str, pools: dict, checks: dict | None = None, extra: str = "") -> Path:
    doc = {
        "origin": f"{origin}.",
        "ttl": 300,
        "soa": {"mname": f"ns1.{origin}.", "rname": f"hostmaster.{origin}."},
        "ns": [f"ns1.{origin}."],
        "records": {"ns1": {"A": "192.0.2.53"}},
    }
    if checks:
        doc["checks"] = checks
    doc["pools"] = pools
    path = folder / f"{origin}.yaml"
    tmp = folder / f".{origin}.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False) + extra)
    os.replace(tmp, path)
    return path


def www_pool(ttl: int = 30) -> dict:
    """Three members in one group: .10 and .12 up, .11 configured down."""
    members = [
        {"address": "192.0.2.10"},
        {"address": "192.0.2.11", "status": "down"},
        {"address": "192.0.2.12", "weight": 3},
    ]
    return {"www": {"ttl": ttl, "groups": {"main": {"members": members}}}}


def http_check(backend: Backend, interval: float = 0.2, timeout: float = 0.15, **more) -> dict:
    """A check on `backend`'s /health that decides at once (rise 1, fall 1) unless told otherwise."""
    check = {
        "type": "http",
        "port": backend.port,
        "path": "/health",
        "interval": interval,
        "timeout": timeout,
    }
    return check | {"rise": 1, "fall": 1, **more}


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    return path


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One server for the read-mostly tests: the www pool, tests/data's test.example (a big
    answer to truncate), an admin token, a state file, and a fast reload poll."""
    base = tmp_path_factory.mktemp("web")
    zones = base / "zones"
    zones.mkdir()
    write_zone(zones, ORIGIN, www_pool())
    (zones / "test.example.yaml").write_bytes((ROOT / "tests" / "data" / "test.example.yaml").read_bytes())
    (base / "token").write_text(TOKEN)
    server = GdnsServer(
        zones, "--admin-token-file", str(base / "token"), "--state-file", str(base / "state.json")
    )
    yield server
    server.stop()


def ask(server: GdnsServer, name: str, qtype="A", tcp: bool = False, **make) -> dns.message.Message:
    return server.query(name, qtype, tcp=tcp, timeout=3.0, **make)


def addresses(reply: dns.message.Message) -> set[str]:
    return {rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


def answered_over(server: GdnsServer, name: str, count: int) -> set[str]:
    seen: set[str] = set()
    for _ in range(count):
        reply = ask(server, name)
        assert reply.rcode() == dns.rcode.NOERROR
        seen |= addresses(reply)
    return seen


def send_raw(server: GdnsServer, packet: bytes, expect_reply: bool) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0 if expect_reply else 0.3)
        sock.sendto(packet, (server.host, server.port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


# == /healthz, /readyz, /metrics ===============================================================


def test_healthz_and_readyz_when_serving(srv):
    assert api(srv, "/healthz").status == 200
    assert api(srv, "/healthz").json == {"status": "alive"}
    ready = api(srv, "/readyz")
    assert ready.status == 200 and ready.json["status"] == "ready"
    missing = api(srv, "/no/such/page")
    assert missing.status == 404 and "error" in missing.json
    assert http(srv.web + "/").status == 200  # redirected to /status
    assert "gdns status" in api(srv, "/status").text


FORBIDDEN_LABELS = {"qname", "name", "client", "address", "ip", "client_ip", "src", "source"}
QUERY_TYPES = {"A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR", "ANY", "DS", "DNSKEY"}
QUERY_TYPES |= {"HTTPS", "SVCB", "NAPTR", "AXFR", "IXFR", "other", "none"}


def test_metrics_lint(srv):
    ask(srv, "www.w.example")  # some samples in the labelled families
    ask(srv, "host.test.example", 65280)  # a query type outside the fixed set
    families, samples = scrape(srv)
    names = {f.name for f in families}
    for family in families:
        assert family.name.startswith("gdns_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
            assert not family.name.endswith("_total")  # the parser strips it from counters only
        if family.type in ("histogram", "summary") or any(w in family.name for w in ("duration", "latency")):
            assert family.name.endswith("_seconds"), family.name
        if "timestamp" in family.name or family.name.endswith("_time"):
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), (sample.name, sample.labels)
    for (name, labels), _ in samples.items():
        if name == "gdns_dns_queries_total":
            d = dict(labels)
            assert set(d) == {"transport", "family", "type"}
            assert d["transport"] in {"udp", "tcp"} and d["family"] in {"ipv4", "ipv6"}
            assert d["type"] in QUERY_TYPES, d
        if name == "gdns_dns_responses_total":
            assert dict(labels)["rcode"] in {
                "NOERROR",
                "FORMERR",
                "SERVFAIL",
                "NXDOMAIN",
                "NOTIMP",
                "REFUSED",
            }
    assert metric(samples, "gdns_dns_queries_total", transport="udp", family="ipv4", type="other") >= 1
    assert {
        "gdns_dns_queries",
        "gdns_dns_responses",
        "gdns_dns_truncated_responses",
        "gdns_dns_answer_duration_seconds",
        "gdns_pool_answers",
        "gdns_health_checks",
        "gdns_health_transitions",
        "gdns_health_probe_duration_seconds",
        "gdns_zone_reloads",
        "gdns_zone_last_reload_success_timestamp_seconds",
        "gdns_member_up",
        "gdns_member_override",
        "gdns_build_info",
        "gdns_dns_tcp_connections",
        "gdns_dns_tcp_connections_closed",
    } <= names
    closed = "gdns_dns_tcp_connections_closed_total"
    reasons = {dict(labels)["reason"] for (name, labels) in samples if name == closed}
    assert reasons == {
        "client",
        "idle",
        "read_timeout",
        "write_timeout",
        "per_client_limit",
        "total_limit",
        "error",
        "other",
    }
    build = [labels for (name, labels) in samples if name == "gdns_build_info"]
    assert len(build) == 1 and dict(build[0])["version"] and dict(build[0])["python"]
    assert metric(samples, "gdns_zones") == 2
    assert abs(metric(samples, "gdns_zone_last_reload_success_timestamp_seconds") - time.time()) < 600


def test_query_counters_move_as_sent(srv):
    before = metrics(srv)
    for _ in range(5):
        assert ask(srv, "www.w.example").rcode() == dns.rcode.NOERROR
    for _ in range(2):
        assert ask(srv, "www.w.example", tcp=True).rcode() == dns.rcode.NOERROR
    assert ask(srv, "host.test.example", "AAAA").answer
    assert ask(srv, "nothere.test.example", "MX").rcode() == dns.rcode.NXDOMAIN
    big = ask(srv, "big.test.example", use_edns=False)  # ~650 bytes: more than 512
    assert big.flags & dns.flags.TC
    header = struct.pack("!HHHHHH", 0x2BAD, 0x0100, 1, 0, 0, 0)
    formerr = send_raw(srv, header + b"\x04ho", expect_reply=True)  # a question cut short
    assert formerr is not None and formerr[3] & 0xF == dns.rcode.FORMERR
    assert send_raw(srv, b"\x2b\xad\x01", expect_reply=False) is None  # not even a header: dropped
    sent = 5 + 2 + 1 + 1 + 1 + 1

    def moved() -> bool:
        now = metrics(srv)
        return (
            metric(now, "gdns_dns_dropped_queries_total") - metric(before, "gdns_dns_dropped_queries_total")
            >= 1
        )

    assert wait_for(moved, timeout=3)
    after = metrics(srv)

    def delta(name: str, **labels) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    q = "gdns_dns_queries_total"
    assert delta(q, transport="udp", family="ipv4", type="A") == 5 + 1
    assert delta(q, transport="tcp", family="ipv4", type="A") == 2
    assert delta(q, transport="udp", family="ipv4", type="AAAA") == 1
    assert delta(q, transport="udp", family="ipv4", type="MX") == 1
    assert delta(q, transport="udp", family="ipv4", type="none") == 1
    total = sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == q)
    assert total == sent
    r = "gdns_dns_responses_total"
    assert delta(r, rcode="NOERROR") == 5 + 2 + 1 + 1
    assert delta(r, rcode="NXDOMAIN") == 1
    assert delta(r, rcode="FORMERR") == 1
    assert delta("gdns_dns_truncated_responses_total") == 1
    assert delta("gdns_dns_dropped_queries_total") == 1
    assert delta("gdns_dns_answer_duration_seconds_count") == sent
    assert delta("gdns_dns_answer_duration_seconds_bucket", le="+Inf") == sent
    assert delta("gdns_dns_answer_duration_seconds_sum") > 0
    # Pool answers by pool, group and member: the seven www answers, never the down member.
    p = "gdns_pool_answers_total"
    given = {n: delta(p, pool=WWW, group="main", member=f"192.0.2.{n}") for n in (10, 11, 12)}
    assert given[10] + given[12] == 7 and given[11] == 0, given


# == /api/v1 =====================================================================================


def test_api_zones_serial_and_sha256(srv):
    zones = {z["origin"]: z for z in api(srv, "/api/v1/zones").json["zones"]}
    assert set(zones) == {"w.example.", "test.example."}
    for origin, zone in zones.items():
        path = srv.zones / f"{origin.rstrip('.')}.yaml"
        assert zone["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        soa = ask(srv, origin, "SOA").answer[0][0]
        assert zone["serial"] == soa.serial
    assert zones["w.example."]["pools"] == [WWW]


def test_api_pools_members_and_shares(srv):
    answered_over(srv, "www.w.example", 200)
    pool = pool_json(srv, WWW)
    assert pool["ttl"] == 30 and pool["strategy"] and pool["when_all_down"]
    members = {m["address"]: m for g in pool["groups"] for m in g["members"]}
    assert [g["name"] for g in pool["groups"]] == ["main"]
    assert {a: m["state"] for a, m in members.items()} == {
        "192.0.2.10": "up",
        "192.0.2.11": "down",
        "192.0.2.12": "up",
    }
    assert "configured status down" in members["192.0.2.11"]["reason"]
    assert members["192.0.2.12"]["weight"] == 3 and members["192.0.2.10"]["weight"] == 1
    for m in members.values():
        assert {"since", "rtt_ms", "override", "check", "configured_status"} <= set(m)
        assert m["override"] is None and m["check"] is None
    shares = [m["share"] or 0 for m in members.values()]
    assert abs(sum(shares) - 1) < 0.01, shares
    assert members["192.0.2.12"]["share"] > members["192.0.2.10"]["share"] > 0  # weight 3 vs 1
    assert api(srv, "/api/v1/overrides").json == {"overrides": {}}


# == admin =======================================================================================


def test_admin_needs_the_right_token(srv):
    body = {"member": KEY_10, "state": "down"}
    for token in (None, "wrong", TOKEN + "x", ""):
        reply = api(srv, "/api/v1/overrides", method="POST", body=body, token=token)
        assert reply.status == 401, (token, reply.status)
        assert "token" in reply.json["error"]
    for given in (None, "wrong"):
        reply = api(srv, "/api/v1/overrides", method="POST", body=body, token=given)
        assert reply.headers["WWW-Authenticate"] == "Bearer"  # RFC 6750: says how to authenticate
    bare = api(srv, "/api/v1/overrides", method="POST", body=body, headers={"Authorization": TOKEN})
    assert bare.status == 401
    basic = api(
        srv, "/api/v1/overrides", method="POST", body=body, headers={"Authorization": f"Basic {TOKEN}"}
    )
    assert basic.status == 401
    assert api(srv, f"/api/v1/overrides?member={KEY_10}", method="DELETE", token="wrong").status == 401
    assert api(srv, "/api/v1/overrides").json == {"overrides": {}}  # nothing changed
    assert member_json(srv, KEY_10)["state"] == "up"


def test_admin_rejects_bad_requests(srv):
    post = "/api/v1/overrides"
    cases = [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (json.dumps({"state": "down"}).encode(), 400),  # no member
        (json.dumps({"member": 7, "state": "down"}).encode(), 400),
        (json.dumps({"member": KEY_10, "state": "sideways"}).encode(), 400),
        (json.dumps({"member": KEY_10}).encode(), 400),  # no state
        (json.dumps({"member": "www.w.example./main/203.0.113.1", "state": "down"}).encode(), 404),
        (b"\xff\xfe", 400),
    ]
    for body, status in cases:
        reply = api(srv, post, method="POST", body=body, token=TOKEN)
        assert reply.status == status, (body, reply.status, reply.body)
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.json["error"]
    state = api(srv, post, method="POST", body={"member": KEY_10, "state": "sideways"}, token=TOKEN)
    assert "up, down, drain" in state.json["error"]
    huge = json.dumps({"member": KEY_10, "state": "down", "pad": "x" * (65 * 1024)}).encode()
    too_big = api(srv, post, method="POST", body=huge, token=TOKEN)
    assert too_big.status == 413 and too_big.json["error"]
    assert api(srv, "/api/v1/overrides?member=nobody", method="DELETE", token=TOKEN).status == 404
    assert api(srv, "/api/v1/overrides", method="DELETE", token=TOKEN).status == 400
    wrong_method = api(srv, "/api/v1/overrides", method="PUT", body={}, token=TOKEN)
    assert wrong_method.status == 405 and wrong_method.json["error"]
    assert set(wrong_method.headers["Allow"].split(",")) >= {"GET", "POST", "DELETE"}
    assert api(srv, "/api/v1/overrides").json == {"overrides": {}}


def test_force_down_drain_and_undo_change_the_answers(srv):
    assert answered_over(srv, "www.w.example", 40) == {"192.0.2.10", "192.0.2.12"}

    down = override(srv, KEY_10, "down")
    assert down.status == 200, down.body
    assert down.json["member"] == KEY_10 and down.json["state"] == "down"
    assert answered_over(srv, "www.w.example", 30) == {"192.0.2.12"}
    assert member_json(srv, KEY_10)["state"] == "down"
    assert member_json(srv, KEY_10)["override"]["state"] == "down"
    samples = metrics(srv)
    assert metric(samples, "gdns_member_up", pool=WWW, group="main", member="192.0.2.10") == 0
    assert (
        metric(samples, "gdns_member_override", pool=WWW, group="main", member="192.0.2.10", state="down")
        == 1
    )

    assert unoverride(srv, KEY_10).status == 200
    assert answered_over(srv, "www.w.example", 40) == {"192.0.2.10", "192.0.2.12"}

    began = time.time()
    drain = override(srv, KEY_12, "drain")
    assert drain.status == 200, drain.body
    assert began - 1 <= drain.json["caches_expire_at"] - 30 <= time.time() + 1  # now + the pool's ttl
    assert drain.json["caches_expire_at_iso"].endswith("Z")
    assert answered_over(srv, "www.w.example", 30) == {"192.0.2.10"}
    m12 = member_json(srv, KEY_12)
    assert m12["state"] == "drain" and m12["override"]["state"] == "drain"
    assert "override" in m12["reason"]
    assert api(srv, "/api/v1/overrides").json["overrides"][KEY_12]["state"] == "drain"
    samples = metrics(srv)
    assert metric(samples, "gdns_member_up", pool=WWW, group="main", member="192.0.2.12") == 0

    assert unoverride(srv, KEY_12).json == {"member": KEY_12, "cleared": True}
    assert answered_over(srv, "www.w.example", 40) == {"192.0.2.10", "192.0.2.12"}
    assert api(srv, "/api/v1/overrides").json == {"overrides": {}}
    samples = metrics(srv)
    assert metric(samples, "gdns_member_up", pool=WWW, group="main", member="192.0.2.12") == 1
    assert not [k for k in samples if k[0] == "gdns_member_override"]

    # Force up beats the zone file's `status: down`.
    assert override(srv, KEY_11, "up").status == 200
    assert "192.0.2.11" in answered_over(srv, "www.w.example", 60)
    assert unoverride(srv, KEY_11).status == 200
    assert "192.0.2.11" not in answered_over(srv, "www.w.example", 30)

    # Every member out by hand (.11 by the zone file): `when_all_down: all` does not bring them
    # back, since they were taken out on purpose; the pool answers NODATA.
    assert override(srv, KEY_10, "down").status == 200
    assert override(srv, KEY_12, "drain").status == 200
    reply = ask(srv, "www.w.example")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert [rr.rdtype for rr in reply.authority] == [dns.rdatatype.SOA]
    assert unoverride(srv, KEY_10).status == 200
    assert unoverride(srv, KEY_12).status == 200
    assert answered_over(srv, "www.w.example", 40) == {"192.0.2.10", "192.0.2.12"}


def test_admin_is_off_without_a_token(tmp_path, start_server, monkeypatch):
    monkeypatch.delenv("GDNS_ADMIN_TOKEN", raising=False)
    write_zone(tmp_path, ORIGIN, www_pool())
    server = start_server(tmp_path)
    for token in (None, TOKEN):
        reply = override(server, KEY_10, "down", token=token)
        assert reply.status == 403 and "admin-token-file" in reply.json["error"]
    assert unoverride(server, KEY_10).status == 403
    assert api(server, "/api/v1/pools").status == 200  # reading stays open


def test_admin_token_from_the_environment(tmp_path, start_server, monkeypatch):
    monkeypatch.setenv("GDNS_ADMIN_TOKEN", "from-the-env")
    write_zone(tmp_path, ORIGIN, www_pool())
    server = start_server(tmp_path)
    assert override(server, KEY_10, "down", token=TOKEN).status == 401
    assert override(server, KEY_10, "down", token="from-the-env").status == 200
    assert answered_over(server, "www.w.example", 20) == {"192.0.2.12"}
    lower = api(
        server,
        f"/api/v1/overrides?member={KEY_10}",
        method="DELETE",
        headers={"Authorization": "bearer from-the-env"},
    )  # the scheme is case-insensitive
    assert lower.status == 200, lower.body
    assert answered_over(server, "www.w.example", 40) == {"192.0.2.10", "192.0.2.12"}


def test_a_hand_edited_state_file_keeps_its_good_entries(tmp_path, start_server):
    zones = tmp_path / "zones"
    zones.mkdir()
    write_zone(zones, ORIGIN, www_pool())
    state = tmp_path / "state.json"
    entries = {
        KEY_10: {"state": "down", "since": "yesterday"},  # a bad time: still down, since unknown
        KEY_12: {"state": "sideways"},  # not a state: ignored
        KEY_11: {"state": "up", "since": None},
    }
    state.write_text(json.dumps({"overrides": entries}))
    server = start_server(zones, "--state-file", str(state))
    table = api(server, "/api/v1/overrides").json["overrides"]
    assert table == {
        KEY_10: {"state": "down", "since": 0.0, "stale": False},
        KEY_11: {"state": "up", "since": 0.0, "stale": False},
    }
    assert answered_over(server, "www.w.example", 40) == {"192.0.2.11", "192.0.2.12"}
    assert "ignoring the override of" in server.log()

    state.write_text("{not json")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gdns",
            "serve",
            "--zones",
            str(zones),
            "--listen",
            "127.0.0.1:0",
            "--web",
            "127.0.0.1:0",
            "--state-file",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"gdns: error: state file {state}: cannot be read")


def test_overrides_survive_a_restart(tmp_path, start_server, token_file):
    zones = tmp_path / "zones"
    zones.mkdir()
    write_zone(zones, ORIGIN, www_pool())
    state = tmp_path / "state" / "overrides.json"
    state.parent.mkdir()
    args = ("--admin-token-file", str(token_file), "--state-file", str(state))
    first = start_server(zones, *args)
    assert override(first, KEY_12, "drain").status == 200
    assert override(first, KEY_10, "down").status == 200
    assert unoverride(first, KEY_10).status == 200
    saved = json.loads(state.read_text())
    assert set(saved["overrides"]) == {KEY_12} and saved["overrides"][KEY_12]["state"] == "drain"
    assert not [p.name for p in state.parent.iterdir() if p.name != state.name]  # no temporary left
    since = saved["overrides"][KEY_12]["since"]
    assert first.stop() == 0

    second = start_server(zones, *args)
    table = api(second, "/api/v1/overrides").json["overrides"]
    assert table == {KEY_12: {"state": "drain", "since": since, "stale": False}}
    assert member_json(second, KEY_12)["state"] == "drain"
    assert answered_over(second, "www.w.example", 30) == {"192.0.2.10"}
    assert unoverride(second, KEY_12).status == 200
    assert json.loads(state.read_text()) == {"overrides": {}}


def test_an_override_during_a_reload_applies_at_once(tmp_path, start_server, backend, token_file):
    """A reload waits (up to --first-probe-deadline) for the first probes of its new targets;
    an override set meanwhile changes the answers of the zones being served at once, and
    stays in force in the reloaded zones."""
    hang = backend("127.0.0.63")
    hang.delay = 60  # the reload's new target never answers: the reload waits the deadline
    write_zone(tmp_path, ORIGIN, www_pool())
    args = ("--admin-token-file", str(token_file), "--reload-interval", "0.05", "--first-probe-deadline", "4")
    server = start_server(tmp_path, *args)
    assert answered_over(server, "www.w.example", 30) == {"192.0.2.10", "192.0.2.12"}
    mark = len(server.lines)
    pools = www_pool() | {"slow": {"members": [{"address": "127.0.0.63", "check": "slow"}]}}
    write_zone(tmp_path, ORIGIN, pools, {"slow": http_check(hang, 30, 20)})
    assert wait_for(lambda: hang.arrived >= 1, timeout=3)  # the reload is in its probe round
    assert override(server, KEY_12, "down").status == 200
    assert answered_over(server, "www.w.example", 30) == {"192.0.2.10"}  # at once ...
    assert not server.wait_for_log("zones reloaded", 0, start=mark)  # ... before the swap
    assert server.wait_for_log("zones reloaded", 8, start=mark)
    assert answered_over(server, "www.w.example", 30) == {"192.0.2.10"}  # and after it
    assert member_json(server, KEY_12)["state"] == "down"


def test_overrides_of_members_that_are_gone_are_kept_stale_and_can_be_deleted(
    tmp_path, start_server, token_file
):
    """An override whose member a reload (or an edit while gdns was stopped) removed is kept,
    without effect, shown as stale in the API and metrics and logged; it applies again if the
    member comes back, and DELETE removes it."""
    zones = tmp_path / "zones"
    zones.mkdir()
    write_zone(zones, ORIGIN, www_pool())
    gone = f"old.{ORIGIN}./default/192.0.2.99"
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"overrides": {gone: {"state": "down", "since": 1.0}}}))
    args = ("--admin-token-file", str(token_file), "--state-file", str(state), "--reload-interval", "0.05")
    server = start_server(zones, *args)
    assert server.wait_for_log(f"override of {gone} (down) is stale: no such member in the zones", 1)
    assert api(server, "/api/v1/overrides").json["overrides"] == {
        gone: {"state": "down", "since": 1.0, "stale": True}
    }
    assert metric(metrics(server), "gdns_member_overrides_stale") == 1

    # A reload takes .12 away while it is drained: stale, logged once, kept in the state file.
    assert override(server, KEY_12, "drain").status == 200
    assert api(server, "/api/v1/overrides").json["overrides"][KEY_12]["stale"] is False
    mark = len(server.lines)
    pool = www_pool()
    pool["www"]["groups"]["main"]["members"].pop()
    write_zone(zones, ORIGIN, pool)
    assert server.wait_for_log(f"override of {KEY_12} (drain) is stale", 5, start=mark)
    table = api(server, "/api/v1/overrides").json["overrides"]
    assert {key: entry["stale"] for key, entry in table.items()} == {gone: True, KEY_12: True}
    assert metric(metrics(server), "gdns_member_overrides_stale") == 2
    assert set(json.loads(state.read_text())["overrides"]) == {gone, KEY_12}

    # It comes back: the drain applies again, as the operator left it.
    mark = len(server.lines)
    write_zone(zones, ORIGIN, www_pool())
    assert server.wait_for_log(f"override of {KEY_12} (drain) applies again", 5, start=mark)
    assert member_json(server, KEY_12)["state"] == "drain"
    assert answered_over(server, "www.w.example", 30) == {"192.0.2.10"}

    # The one that stays gone is deleted through the API.
    assert unoverride(server, gone).status == 200
    assert api(server, "/api/v1/overrides").json["overrides"] == {
        KEY_12: {"state": "drain", "since": table[KEY_12]["since"], "stale": False}
    }
    assert metric(metrics(server), "gdns_member_overrides_stale") == 0
    assert set(json.loads(state.read_text())["overrides"]) == {KEY_12}
    assert server.log().count(f"override of {KEY_12} (drain) is stale") == 1


@pytest.mark.parametrize("where", ["parent-is-a-file", "proc"])
def test_an_unwritable_state_file_is_507(tmp_path, start_server, token_file, where):
    write_zone(tmp_path, ORIGIN, www_pool())
    if where == "proc":
        path = "/proc/gdns-state.json"  # /proc takes no new files, not even for root
    else:
        (tmp_path / "plain-file").write_text("")
        path = str(tmp_path / "plain-file" / "state.json")
    server = start_server(tmp_path, "--admin-token-file", str(token_file), "--state-file", path)
    reply = override(server, KEY_10, "down")
    assert reply.status == 507, reply.body
    assert f"state file {path}: cannot be written" in reply.json["error"]
    # Nothing changed: not in the table, not in the answers.
    assert api(server, "/api/v1/overrides").json == {"overrides": {}}
    assert member_json(server, KEY_10)["state"] == "up"
    assert answered_over(server, "www.w.example", 30) == {"192.0.2.10", "192.0.2.12"}


def test_web_beyond_loopback_needs_a_token(tmp_path, start_server, token_file):
    write_zone(tmp_path, ORIGIN, www_pool())
    env = {k: v for k, v in os.environ.items() if k != "GDNS_ADMIN_TOKEN"}
    cmd = [sys.executable, "-m", "gdns", "serve", "--zones", str(tmp_path), "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*cmd, "--web", "0.0.0.0:0"], capture_output=True, text=True, timeout=30, env=env, cwd=ROOT
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gdns: error: refusing to serve the web side on 0.0.0.0")
    assert "token" in lines[0] and "Traceback" not in done.stderr

    server = start_server(tmp_path, "--web", "0.0.0.0:0", "--admin-token-file", str(token_file))
    assert server.web is not None
    port = int(server.web.rsplit(":", 1)[1])
    local = f"http://127.0.0.1:{port}"
    assert http(local + "/healthz").status == 200
    reply = http(local + "/api/v1/overrides", "POST", {"member": KEY_10, "state": "down"}, token=TOKEN)
    assert reply.status == 200


# == readiness, probes, reloads ===============================================================


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readyz_is_503_during_a_slow_first_probe_round(tmp_path, backend, token_file):
    hang = backend("127.0.0.61")
    hang.delay = 60  # answers nothing until the backend closes
    members = [{"address": "127.0.0.61", "check": "slow"}, {"address": "192.0.2.20"}]
    write_zone(tmp_path, ORIGIN, {"www": {"members": members}}, {"slow": http_check(hang, 30, 20)})
    port = _free_port()
    started: list[GdnsServer] = []
    args = (
        "--web",
        f"127.0.0.1:{port}",
        "--first-probe-deadline",
        "3",
        "--admin-token-file",
        str(token_file),
    )
    thread = threading.Thread(
        target=lambda: started.append(GdnsServer(tmp_path, *args)),
        daemon=True,
    )
    began = time.monotonic()
    thread.start()
    try:
        seen: list[tuple[int, str]] = []

        def not_ready() -> bool:
            with contextlib.suppress(OSError):
                reply = http(f"http://127.0.0.1:{port}/readyz")
                seen.append((reply.status, reply.json.get("reason", "")))
                return reply.status == 503
            return False

        assert wait_for(not_ready, timeout=3), seen
        assert "first probe round" in seen[-1][1]
        assert http(f"http://127.0.0.1:{port}/healthz").status == 200  # alive while not ready
        assert http(f"http://127.0.0.1:{port}/api/v1/zones").status == 503  # nothing loaded yet
        early = http(
            f"http://127.0.0.1:{port}/api/v1/overrides", "POST", {"member": "x", "state": "up"}, TOKEN
        )
        assert early.status == 503 and early.json["error"] == "zones are not loaded yet"
        assert http(f"http://127.0.0.1:{port}/api/v1/overrides?member=x", "DELETE", token=TOKEN).status == 503
        assert wait_for(lambda: http(f"http://127.0.0.1:{port}/readyz").status == 200, timeout=8)
        took = time.monotonic() - began
        assert 2.5 <= took <= 8, took
        assert hang.arrived >= 1  # the probe reached it, and hangs there
        thread.join(10)
        server = started[0]
        assert http(server.web + "/readyz").json == {"status": "ready"}
        group = pool_json(server, WWW)["groups"][0]
        m = next(m for m in group["members"] if m["address"] == "127.0.0.61")
        assert m["state"] == "up" and m["reason"] == "not probed yet"  # counted up until probed
    finally:
        thread.join(15)
        for server in started:
            server.stop()


def test_queries_during_the_first_probe_round_wait_and_are_answered(tmp_path, backend):
    """UDP and TCP alike: the sockets are bound (and TCP listening) before the first probe
    round, so a TCP client is not refused in that window; its query waits, like a datagram in
    the UDP buffer, and both are answered once gdns is ready (bounded by the deadline)."""
    hang = backend("127.0.0.62")
    hang.delay = 60
    members = [{"address": "127.0.0.62", "check": "slow"}, {"address": "192.0.2.20"}]
    write_zone(tmp_path, ORIGIN, {"www": {"members": members}}, {"slow": http_check(hang, 30, 20)})
    web_port, dns_port = _free_port(), _free_port()
    args = ("--web", f"127.0.0.1:{web_port}", "--first-probe-deadline", "3")
    started: list[GdnsServer] = []
    thread = threading.Thread(target=lambda: started.append(GdnsServer(tmp_path, *args, dns_port=dns_port)))
    thread.daemon = True
    thread.start()
    try:

        def not_ready() -> bool:
            with contextlib.suppress(OSError):
                return http(f"http://127.0.0.1:{web_port}/readyz").status == 503
            return False

        assert wait_for(not_ready, timeout=3)
        query = dns.message.make_query(f"ns1.{ORIGIN}", "A")
        wire = query.to_wire()
        with (
            socket.create_connection(("127.0.0.1", dns_port), timeout=1) as tcp,  # not refused
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        ):
            tcp.sendall(struct.pack("!H", len(wire)) + wire)
            udp.sendto(wire, ("127.0.0.1", dns_port))
            sent = time.monotonic()
            assert http(f"http://127.0.0.1:{web_port}/readyz").status == 503  # still in the round
            tcp.settimeout(8)
            udp.settimeout(8)
            size = struct.unpack("!H", _read_exactly(tcp, 2))[0]
            over_tcp = dns.message.from_wire(_read_exactly(tcp, size))
            over_udp = dns.message.from_wire(udp.recv(65535))
        waited = time.monotonic() - sent
        for reply in (over_tcp, over_udp):
            assert reply.id == query.id and reply.rcode() == dns.rcode.NOERROR
            assert [rr.address for rr in reply.answer[0]] == ["192.0.2.53"]
        assert waited > 0.5, waited  # held until the round ended, not answered early
    finally:
        thread.join(15)
        for server in started:
            server.stop()


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_member_up_follows_probes_and_overrides(tmp_path, start_server, backend, token_file):
    b = backend("127.0.0.62")
    members = [
        {"address": "127.0.0.62", "check": "c"},
        {"address": "192.0.2.20"},
        {"address": "192.0.2.21", "status": "down"},
    ]
    write_zone(tmp_path, ORIGIN, {"hc": {"ttl": 20, "members": members}}, {"c": http_check(b)})
    server = start_server(tmp_path, "--admin-token-file", str(token_file))
    pool = f"hc.{ORIGIN}."
    group = pool_json(server, pool)["groups"][0]["name"]
    key = f"{pool}/{group}/127.0.0.62"

    def up(address: str) -> float:
        return metric(metrics(server), "gdns_member_up", pool=pool, group=group, member=address)

    assert wait_for(lambda: member_json(server, key)["check"]["last"]["ok"] is True, timeout=5)
    assert up("127.0.0.62") == 1 and up("192.0.2.20") == 1 and up("192.0.2.21") == 0
    m = member_json(server, key)
    assert m["state"] == "up" and m["reason"] == "status 200" and m["since"] > 0
    assert m["rtt_ms"] is not None and 0 < m["rtt_ms"] < 1000
    check = m["check"]
    assert (check["rise"], check["fall"], check["interval"], check["timeout"]) == (1, 1, 0.2, 0.15)
    assert check["port"] == b.port and check["path"] == "/health" and check["type"] == "http"
    assert check["last"]["reason"] == "status 200" and abs(check["last"]["time"] - time.time()) < 10
    before = metrics(server)
    assert metric(before, "gdns_health_checks_total", result="success", reason="ok") >= 1
    assert metric(before, "gdns_health_transitions_total", to="up") >= 1
    assert metric(before, "gdns_health_probe_duration_seconds_count", type="http") >= 1

    b.status = 503  # a real probe failure: down after one (fall 1)
    assert wait_for(lambda: up("127.0.0.62") == 0, timeout=5)
    m = member_json(server, key)
    assert m["state"] == "down" and m["reason"] == "status 503"
    assert m["check"]["last"] == {"ok": False, "reason": "status 503", "time": m["check"]["last"]["time"]}
    after = metrics(server)
    assert metric(after, "gdns_health_checks_total", result="failure", reason="status") >= 1
    assert metric(after, "gdns_health_transitions_total", to="down") == 1
    assert metric(after, "gdns_health_probe_duration_seconds_count", type="http") > metric(
        before, "gdns_health_probe_duration_seconds_count", type="http"
    )
    assert answered_over(server, "hc.w.example", 10) == {"192.0.2.20"}

    assert override(server, key, "up").status == 200  # the operator beats the probe
    assert up("127.0.0.62") == 1
    assert metric(
        metrics(server), "gdns_member_override", pool=pool, group=group, member="127.0.0.62", state="up"
    )
    assert "127.0.0.62" in answered_over(server, "hc.w.example", 40)
    assert unoverride(server, key).status == 200
    assert up("127.0.0.62") == 0
    b.status = 200
    assert wait_for(lambda: up("127.0.0.62") == 1, timeout=5)
    assert metric(metrics(server), "gdns_health_transitions_total", to="up") >= 2


def test_reload_results_in_metrics_and_api(tmp_path, start_server):
    path = write_zone(tmp_path, ORIGIN, www_pool())
    server = start_server(tmp_path, "--reload-interval", "0.1")
    assert api(server, "/api/v1/reload").json["last"] is None
    start = metrics(server)
    loaded = metric(start, "gdns_zone_last_reload_success_timestamp_seconds")
    assert loaded > 0

    path.write_text(path.read_text() + "broken: [unclosed\n")
    assert wait_for(lambda: api(server, "/api/v1/reload").json["last"] is not None, timeout=5)
    last = api(server, "/api/v1/reload").json["last"]
    assert last["ok"] is False and last["errors"]
    assert any(f"{ORIGIN}.yaml:" in error for error in last["errors"]), last["errors"]
    failed = metrics(server)
    assert metric(failed, "gdns_zone_reloads_total", result="failure") == 1
    assert metric(failed, "gdns_zone_reloads_total", result="success") == 0
    assert metric(failed, "gdns_zone_last_reload_success_timestamp_seconds") == loaded
    assert answered_over(server, "www.w.example", 5)  # still serving the previous zones

    time.sleep(0.05)
    good = write_zone(tmp_path, ORIGIN, www_pool(ttl=45))
    assert wait_for(lambda: api(server, "/api/v1/reload").json["last"]["ok"] is True, timeout=5)
    assert api(server, "/api/v1/reload").json["last"]["errors"] == []
    done = metrics(server)
    assert metric(done, "gdns_zone_reloads_total", result="success") == 1
    assert metric(done, "gdns_zone_reloads_total", result="failure") == 1
    assert metric(done, "gdns_zone_last_reload_success_timestamp_seconds") > loaded
    zone = api(server, "/api/v1/zones").json["zones"][0]
    assert zone["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert pool_json(server, WWW)["ttl"] == 45
    assert ask(server, "www.w.example").answer[0].ttl == 45
