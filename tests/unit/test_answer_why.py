"""The in-band trace (`TXT _why.<pool>`) in the engine alone: who may ask, what it says."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from types import MappingProxyType

import pytest
from dnslib import CLASS, QTYPE

from gdns.answer import why
from gdns.answer.engine import NOERROR, NXDOMAIN, Engine
from gdns.answer.types import Answer, Query
from gdns.explain import parse_ecs
from gdns.health.snapshot import HealthSnapshot, MemberHealth
from gdns.zone.loader import load_folder

ZONES = Path(__file__).resolve().parents[2] / "zones"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.fixture(scope="module")
def zones():
    return load_folder(str(ZONES))


@pytest.fixture
def engine(zones) -> Engine:
    return Engine(zones, why_from=LOOPBACK)


def ask(engine: Engine, name: str, qtype: int = QTYPE.TXT, client: str = "127.0.0.1", ecs=None) -> Answer:
    labels = tuple(label.encode() for label in name.rstrip(".").split("."))
    subnet = parse_ecs(ecs) if ecs else None
    query = Query(1, 0, labels, qtype, CLASS.IN, "udp", (client, 5353), edns=True, ecs=subnet)
    return engine.answer(query)


def lines(answer: Answer) -> list[str]:
    """The trace text, numbers stripped, in record order."""
    out = []
    for rr in answer.answer:
        assert rr.rtype == QTYPE.TXT and rr.ttl == 0
        [string] = rr.rdata.data
        assert len(string) <= 255
        number, text = string.decode().split(" ", 1)
        out.append((int(number), text))
    assert [n for n, _ in out] == list(range(len(out)))
    return [text for _, text in out]


def same(a: Answer, b: Answer) -> bool:
    def rrs(records):
        return [str(rr) for rr in records]

    return (a.rcode, a.aa, rrs(a.answer), rrs(a.authority), rrs(a.additional)) == (
        b.rcode,
        b.aa,
        rrs(b.answer),
        rrs(b.authority),
        rrs(b.additional),
    )


def test_trace_for_an_allowed_resolver(engine):
    answer = ask(engine, "_why.app.gslb.example.com")
    assert answer.rcode == NOERROR and answer.aa
    text = lines(answer)
    assert text[0].startswith("gdns trace for resolver 127.0.0.1, no ECS")
    assert "app.gslb.example.com. A from 127.0.0.1" in text
    assert "pool app.gslb.example.com. strategy weighted sticky, answers 1" in text
    assert "group order: main" in text
    picked = [t for t in text if t.endswith("<- picked")]
    assert len(picked) == 1 and "up (configured status up)" in picked[0]
    assert "ttl 30: normal, the pool's ttl (no degraded_ttl set)" in text
    assert "ECS scope /24" in text  # sticky on the resolver's /24
    assert answer.ecs_scope == 0  # no ECS in the query: nothing to scope


def test_the_trace_names_the_member_the_client_gets(engine):
    for client in ("127.0.0.1", "127.1.2.3", "127.200.0.9"):
        got = ask(engine, "app.gslb.example.com", QTYPE.A, client)
        [rr] = got.answer
        text = lines(ask(engine, "_why.app.gslb.example.com", client=client))
        assert f"outcome answer: {rr.rdata}; ttl 30" in text
        assert any(t.startswith(f"{rr.rdata} ") and t.endswith("<- picked") for t in text)


def test_why6_asks_about_aaaa(engine):
    text = lines(ask(engine, "_WHY6.App.Gslb.Example.Com"))
    assert "App.Gslb.Example.Com. AAAA from 127.0.0.1" in text
    assert "outcome answer: 2001:db8::10; ttl 30" in text


@pytest.mark.parametrize(
    ("label", "listed", "not_listed"),
    [("_why6", "2001:db8::", "192.0.2."), ("_why", "192.0.2.", "2001:db8::")],
)
def test_the_trace_lists_only_the_asked_familys_members(engine, label, listed, not_listed):
    """app has 192.0.2.10, .11 and 2001:db8::10 in one group: an AAAA trace shows the IPv6
    member only, an A trace the IPv4 ones (the others play no part in the decision)."""
    text = lines(ask(engine, f"{label}.app.gslb.example.com"))
    members = [t for t in text if " weight " in t]
    assert members and all(t.startswith(listed) for t in members), members
    assert not any(t.startswith(not_listed) for t in text)


def test_owner_is_the_query_name_in_lower_case(engine):
    # The codec puts the client's spelling back on the wire (owner names point at the question).
    answer = ask(engine, "_Why.APP.gslb.example.com")
    assert answer.answer and not answer.shared
    assert all(str(rr.rname) == "_why.app.gslb.example.com." for rr in answer.answer)


def test_ecs_changes_the_trace_and_scopes_the_reply(engine):
    inside = lines(ask(engine, "_why.geo.gslb.example.com", ecs="203.0.113.0/24"))
    outside = lines(ask(engine, "_why.geo.gslb.example.com", ecs="198.51.100.0/24"))
    assert any("ECS 203.0.113.0/24: deciding on the client subnet" in t for t in inside)
    assert "decision: rule 0 (subnet 203.0.113.0/24): groups ap, eu" in inside
    assert "group order: ap > eu" in inside
    assert "outcome answer: 203.0.113.20; ttl 30" in inside
    assert "group order: eu > ap" in outside
    assert "outcome answer: 192.0.2.20; ttl 30" in outside
    answer = ask(engine, "_why.geo.gslb.example.com", ecs="203.0.113.0/24")
    assert answer.ecs_scope == 24  # the trace is about this subnet only


def test_degraded_ttl_and_health_reasons(zones):
    health = HealthSnapshot.from_zones(zones)
    table = dict(health.members)
    for key in table:
        if key.startswith("web.gslb.example.com./primary/"):
            table[key] = MemberHealth("down", None, "connection refused")
    engine = Engine(zones, health=HealthSnapshot(MappingProxyType(table)), why_from=LOOPBACK)
    text = lines(ask(engine, "_why.web.gslb.example.com"))
    assert "127.0.0.21 weight 1, down (connection refused)" in text
    assert "group primary (no usable member)" in text
    assert "outcome answer: 127.0.0.22; ttl 5" in text
    assert "ttl 5: degraded (degraded_ttl 5; not up: 127.0.0.21)" in text
    table = {k: MemberHealth("up", None, "200 OK") for k in table}
    engine.health = HealthSnapshot(MappingProxyType(table))
    text = lines(ask(engine, "_why.web.gslb.example.com"))
    assert "outcome answer: 127.0.0.21; ttl 30" in text
    assert "ttl 30: normal, the pool's ttl (every IPv4 member up)" in text


def test_all_down_and_no_family(engine):
    text = lines(ask(engine, "_why.maintenance.gslb.example.com"))
    assert "no healthy IPv4 member in any group: when_all_down is fallback" in text
    assert any(t.startswith("outcome all-down:fallback: 192.0.2.250") for t in text)
    text = lines(ask(engine, "_why6.api.gslb.example.com"))
    assert "the pool has no IPv6 members" in text
    assert "ttl: none, NODATA (its negative TTL comes from the SOA minimum)" in text


def test_round_robin_turns_are_not_taken_by_the_trace(engine):
    first = [str(rr.rdata) for rr in ask(engine, "rr.gslb.example.com", QTYPE.A).answer]
    for _ in range(3):
        ask(engine, "_why.rr.gslb.example.com")
    second = [str(rr.rdata) for rr in ask(engine, "rr.gslb.example.com", QTYPE.A).answer]
    assert second == first[1:] + [a for a in ("192.0.2.40", "192.0.2.41", "192.0.2.42") if a not in first][:1]


@pytest.mark.parametrize(
    ("name", "qtype", "client"),
    [
        ("_why.app.gslb.example.com", QTYPE.TXT, "192.0.2.1"),  # not an allowed resolver
        ("_why.app.gslb.example.com", QTYPE.TXT, "::ffff:192.0.2.1"),
        ("_why.app.gslb.example.com", QTYPE.A, "127.0.0.1"),  # not TXT
        ("_why.www.gslb.example.com", QTYPE.TXT, "127.0.0.1"),  # not a pool
        ("_why.nothere.gslb.example.com", QTYPE.TXT, "127.0.0.1"),
        ("_why.gslb.example.com", QTYPE.TXT, "127.0.0.1"),
        ("_whyx.app.gslb.example.com", QTYPE.TXT, "127.0.0.1"),
        ("x._why.app.gslb.example.com", QTYPE.TXT, "127.0.0.1"),
    ],
)
def test_otherwise_answered_as_without_the_feature(zones, engine, name, qtype, client):
    plain = Engine(zones)
    assert same(ask(engine, name, qtype, client), ask(plain, name, qtype, client))


def test_off_by_default(zones):
    answer = ask(Engine(zones), "_why.app.gslb.example.com")
    assert answer.rcode == NXDOMAIN and not answer.answer


def test_the_ecs_subnet_does_not_make_a_resolver_allowed(zones):
    engine = Engine(zones, why_from=[ipaddress.ip_network("203.0.113.0/24")])
    answer = ask(engine, "_why.app.gslb.example.com", client="192.0.2.1", ecs="203.0.113.0/24")
    assert answer.rcode == NXDOMAIN
    assert ask(engine, "_why.app.gslb.example.com", client="203.0.113.9").rcode == NOERROR


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("128.0.0.1", False),
        ("::2", False),
        ("fe80::1%eth0", False),
        ("", False),
    ],
)
def test_allowed(address, expected):
    assert why.allowed(address, LOOPBACK) is expected


def test_numbered_strings_fit_and_split_on_characters():
    long = "x" * 600
    wide = "é" * 200  # 400 bytes: a cut must not split a character
    chunks = why.numbered(["short", long, wide])
    assert all(len(c) <= 255 for c in chunks)
    texts = [c.split(b" ", 1)[1] for c in chunks]
    assert texts[0] == b"short"
    assert b"".join(texts[1:4]) == long.encode()
    assert b"".join(texts[4:]).decode() == wide
    for t in texts:
        t.decode()  # each string is valid UTF-8 on its own
    assert [c.split(b" ", 1)[0] for c in chunks] == [b"%d" % i for i in range(len(chunks))]


def test_numbers_are_zero_padded_to_sort_as_text():
    chunks = why.numbered([str(i) for i in range(12)])
    assert chunks[0] == b"00 0" and chunks[11] == b"11 11"
