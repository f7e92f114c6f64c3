"""The answer engine alone: (Query, ZoneSet) -> Answer, with no sockets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from dnslib import CLASS, QTYPE

from gdns.answer.engine import MAX_CHAIN, NOERROR, NXDOMAIN, REFUSED, Engine, lookup
from gdns.answer.types import Answer, Query
from gdns.zone.loader import load_zones
from gdns.zone.zoneset import Node

EXTRA = (b"extra", b"example")
DATA = Path(__file__).resolve().parent.parent / "data"
A, AAAA, CNAME, NS, SOA, TXT, MX, DS, ANY = (
    QTYPE.A,
    QTYPE.AAAA,
    QTYPE.CNAME,
    QTYPE.NS,
    QTYPE.SOA,
    QTYPE.TXT,
    QTYPE.MX,
    QTYPE.DS,
    QTYPE.ANY,
)

EXTRA_ZONE = """\
origin: extra.example.
soa: {mname: ns1.extra.example., rname: hostmaster.extra.example., minimum: 30}
ns: [ns1.extra.example.]
records:
  ns1: {A: 192.0.2.1}
  tochild: {CNAME: www.sub.extra.example.}
  sub: {NS: ns1.sub.extra.example.}
  ns1.sub: {A: 192.0.2.9}
  apexmx: {MX: "10 extra.example."}
  long1: {CNAME: long2.extra.example.}
  long2: {CNAME: long3.extra.example.}
  long3: {CNAME: long4.extra.example.}
  long4: {CNAME: long5.extra.example.}
  long5: {CNAME: long6.extra.example.}
  long6: {CNAME: long7.extra.example.}
  long7: {CNAME: long8.extra.example.}
  long8: {CNAME: long9.extra.example.}
  long9: {CNAME: long10.extra.example.}
  long10: {CNAME: long11.extra.example.}
  long11: {A: 192.0.2.11}
  loopb: {CNAME: loopa.cross.example.}
  topool: {CNAME: web.cross.example.}
"""

# CNAMEs from one zone into others that gdns also serves (RFC 1034 4.3.2 step 3a).
CROSS_ZONE = """\
origin: cross.example.
soa: {mname: ns1.cross.example., rname: hostmaster.cross.example., minimum: 50}
ns: [ns1.cross.example.]
records:
  ns1: {A: 192.0.2.1}
  toextra: {CNAME: long11.extra.example.}
  tochain: {CNAME: chain1.test.example.}
  todangling: {CNAME: nothere.extra.example.}
  tochild: {CNAME: www.sub.extra.example.}
  todelegated: {CNAME: www.child.test.example.}
  loopa: {CNAME: loopb.extra.example.}
  tolong: {CNAME: long2.extra.example.}
  topool: {CNAME: topool.extra.example.}
pools:
  web:
    ttl: 20
    members: [{address: 192.0.2.70}, {address: "2001:db8::70"}]
"""

NESTED_ZONE = """\
origin: deeper.test.example.
soa: {mname: ns1.test.example., rname: hostmaster.test.example.}
ns: [ns1.test.example.]
records:
  www: {A: 198.51.100.7}
"""


CHILD_ZONE = """\
origin: sub.extra.example.
soa: {mname: ns1.sub.extra.example., rname: hostmaster.extra.example., minimum: 45}
ns: [ns1.sub.extra.example.]
records:
  ns1: {A: 192.0.2.9}
  www: {A: 203.0.113.80}
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Engine:
    folder = tmp_path_factory.mktemp("zones")
    (folder / "extra.yaml").write_text(EXTRA_ZONE)
    (folder / "deeper.yaml").write_text(NESTED_ZONE)
    (folder / "sub.yaml").write_text(CHILD_ZONE)
    (folder / "cross.yaml").write_text(CROSS_ZONE)
    names = ("extra", "deeper", "sub", "cross")
    files = [DATA / "test.example.yaml", *(folder / f"{name}.yaml" for name in names)]
    zones = load_zones(files)
    # A node without rrsets: the loader refuses to build one, the engine must still cope.
    extra = zones.zones[EXTRA]
    bare = (b"bare", *EXTRA)
    zones.zones[EXTRA] = dataclasses.replace(extra, nodes={**extra.nodes, bare: Node(bare, {})})
    return Engine(zones, version="gdns-unit")


def ask(engine: Engine, qname: str, qtype: int = A, qclass: int = CLASS.IN) -> Answer:
    labels = tuple(label.encode() for label in qname.rstrip(".").split(".") if label)
    client = ("192.0.2.99", 0)
    query = Query(id=1, flags=0, qname=labels, qtype=qtype, qclass=qclass, transport="udp", client=client)
    return engine.answer(query)


def rows(records) -> list[tuple[str, str, str]]:
    return [(str(rr.rname), QTYPE.get(rr.rtype), str(rr.rdata)) for rr in records]


def assert_negative(answer: Answer, rcode: int, apex: str = "test.example.", ttl: int = 120) -> None:
    assert answer.rcode == rcode and answer.aa
    [soa] = answer.authority
    assert soa.rtype == SOA and str(soa.rname) == apex and soa.ttl == ttl
    assert not answer.additional


# -- positive ----------------------------------------------------------------------------------


def test_exact_match_answers_in_lower_case(engine):
    # The engine builds names in lower case; the codec puts the client's spelling back
    # (tests/unit/test_codec.py: test_reply_echoes_the_client_spelling).
    answer = ask(engine, "HoSt.TeSt.ExAmPlE")
    assert answer.rcode == NOERROR and answer.aa
    assert rows(answer.answer) == [("host.test.example.", "A", "192.0.2.2")]
    assert not answer.authority


def test_apex_ns_with_in_zone_addresses(engine):
    answer = ask(engine, "test.example", NS)
    assert rows(answer.answer) == [("test.example.", "NS", "ns1.test.example.")]
    assert rows(answer.additional) == [("ns1.test.example.", "A", "192.0.2.1")]


def test_mx_additional_only_for_in_zone_targets(engine):
    answer = ask(engine, "mail.test.example", MX)
    assert len(answer.answer) == 2
    assert rows(answer.additional) == [
        ("host.test.example.", "A", "192.0.2.2"),
        ("host.test.example.", "AAAA", "2001:db8::2"),
    ]


# -- negative ----------------------------------------------------------------------------------


def test_nxdomain(engine):
    answer = ask(engine, "nothere.test.example")
    assert_negative(answer, NXDOMAIN)
    assert not answer.answer


@pytest.mark.parametrize("qtype", [MX, 65280, 0, DS])
def test_nodata(engine, qtype):
    answer = ask(engine, "host.test.example", qtype)
    assert_negative(answer, NOERROR)
    assert not answer.answer


@pytest.mark.parametrize("qname", ["c.test.example", "b.c.test.example", "ent.wild.test.example"])
def test_empty_non_terminals_are_nodata(engine, qname):
    assert_negative(ask(engine, qname), NOERROR)


def test_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum(engine):
    assert_negative(ask(engine, "nothere.extra.example"), NXDOMAIN, "extra.example.", ttl=30)


def test_a_name_with_no_records_exists(engine):
    assert_negative(ask(engine, "bare.extra.example"), NOERROR, "extra.example.", ttl=30)


def test_any_at_a_name_with_no_records_is_nodata_not_a_crash(engine):
    answer = ask(engine, "bare.extra.example", ANY)
    assert_negative(answer, NOERROR, "extra.example.", ttl=30)


# -- CNAME -------------------------------------------------------------------------------------


def test_cname_chain(engine):
    answer = ask(engine, "chain1.test.example")
    assert rows(answer.answer) == [
        ("chain1.test.example.", "CNAME", "chain2.test.example."),
        ("chain2.test.example.", "CNAME", "host.test.example."),
        ("host.test.example.", "A", "192.0.2.2"),
    ]
    assert answer.rcode == NOERROR and not answer.authority


def test_cname_loop_stops(engine):
    answer = ask(engine, "loop1.test.example")
    assert answer.rcode == NOERROR
    assert [QTYPE.get(rr.rtype) for rr in answer.answer] == ["CNAME", "CNAME"]


def test_cname_chain_is_bounded(engine):
    answer = ask(engine, "long1.extra.example")
    assert answer.rcode == NOERROR
    assert 1 <= len(answer.answer) <= 9  # MAX_CHAIN + 1 links at most, then stop
    assert all(rr.rtype == CNAME for rr in answer.answer)


def test_dangling_cname(engine):
    answer = ask(engine, "dangling.test.example")
    assert_negative(answer, NXDOMAIN)
    assert rows(answer.answer) == [("dangling.test.example.", "CNAME", "nothere.test.example.")]


def test_cname_leaving_the_zone(engine):
    answer = ask(engine, "outside.test.example")
    assert rows(answer.answer) == [("outside.test.example.", "CNAME", "www.example.net.")]
    assert answer.rcode == NOERROR and not answer.authority


def test_cname_into_a_delegated_child_we_also_serve_follows_into_it(engine):
    """The child zone is the most specific zone for the target: RFC 1034 4.3.2 picks it."""
    answer = ask(engine, "tochild.extra.example")
    assert rows(answer.answer) == [
        ("tochild.extra.example.", "CNAME", "www.sub.extra.example."),
        ("www.sub.extra.example.", "A", "203.0.113.80"),
    ]
    assert answer.aa and answer.rcode == NOERROR and not answer.authority


def test_cname_into_a_delegated_child_we_do_not_serve_stops_at_the_cname(engine):
    answer = ask(engine, "todelegated.cross.example")
    assert rows(answer.answer) == [("todelegated.cross.example.", "CNAME", "www.child.test.example.")]
    assert answer.aa and answer.rcode == NOERROR and not answer.authority


def test_cname_into_another_zone_we_serve_is_followed(engine):
    answer = ask(engine, "toextra.cross.example")
    assert rows(answer.answer) == [
        ("toextra.cross.example.", "CNAME", "long11.extra.example."),
        ("long11.extra.example.", "A", "192.0.2.11"),
    ]
    assert answer.aa and answer.rcode == NOERROR and not answer.authority


def test_cname_chain_continues_through_the_other_zone(engine):
    answer = ask(engine, "tochain.cross.example")
    assert rows(answer.answer) == [
        ("tochain.cross.example.", "CNAME", "chain1.test.example."),
        ("chain1.test.example.", "CNAME", "chain2.test.example."),
        ("chain2.test.example.", "CNAME", "host.test.example."),
        ("host.test.example.", "A", "192.0.2.2"),
    ]


def test_cname_dangling_in_another_zone_is_nxdomain_with_that_zones_soa(engine):
    """RFC 6604: the rcode is the last name's; the SOA is of the zone that said so."""
    answer = ask(engine, "todangling.cross.example")
    assert rows(answer.answer) == [("todangling.cross.example.", "CNAME", "nothere.extra.example.")]
    assert_negative(answer, NXDOMAIN, "extra.example.", ttl=30)


def test_cname_nodata_in_another_zone(engine):
    answer = ask(engine, "toextra.cross.example", TXT)
    assert answer.answer[0].rtype == CNAME and len(answer.answer) == 1
    assert_negative(answer, NOERROR, "extra.example.", ttl=30)


def test_cname_loop_across_zones_stops(engine):
    answer = ask(engine, "loopa.cross.example")
    assert rows(answer.answer) == [
        ("loopa.cross.example.", "CNAME", "loopb.extra.example."),
        ("loopb.extra.example.", "CNAME", "loopa.cross.example."),
    ]
    assert answer.rcode == NOERROR and not answer.authority


def test_cname_chain_limit_counts_every_zone(engine):
    """tolong -> long2 ... long11: ten CNAMEs, over MAX_CHAIN (8) wherever they are."""
    answer = ask(engine, "tolong.cross.example")
    assert [rr.rtype for rr in answer.answer] == [CNAME] * (MAX_CHAIN + 1)


@pytest.mark.parametrize("qtype, address", [(A, "192.0.2.70"), (AAAA, "2001:db8::70")])
def test_cname_into_a_pool_in_another_zone_answers_from_the_pool(engine, qtype, address):
    """topool.cross -> topool.extra -> web.cross (a pool): answered by the pool's decision."""
    answer = ask(engine, "topool.cross.example", qtype)
    assert rows(answer.answer) == [
        ("topool.cross.example.", "CNAME", "topool.extra.example."),
        ("topool.extra.example.", "CNAME", "web.cross.example."),
        ("web.cross.example.", QTYPE.get(qtype), address),
    ]
    assert answer.answer[-1].ttl == 20
    assert [d.pool.name for d in answer.decisions] == ["web.cross.example."]
    assert answer.pool is None  # not the question's own name: not for the fast path's pool table


def test_cname_query_type_is_not_chased(engine):
    assert rows(ask(engine, "chain1.test.example", CNAME).answer) == [
        ("chain1.test.example.", "CNAME", "chain2.test.example.")
    ]


def test_any_at_a_cname_is_the_cname_alone(engine):
    """RFC 1034 4.3.2: ANY matches the CNAME itself, so there is nothing to chase."""
    answer = ask(engine, "chain1.test.example", ANY)
    assert rows(answer.answer) == [("chain1.test.example.", "CNAME", "chain2.test.example.")]
    assert answer.rcode == NOERROR


# -- wildcards ---------------------------------------------------------------------------------


def test_wildcard_synthesis_uses_the_query_name(engine):
    answer = ask(engine, "One.Two.wild.test.example", TXT)
    assert rows(answer.answer) == [("one.two.wild.test.example.", "TXT", '"wildcard"')]


def test_wildcard_nodata(engine):
    assert_negative(ask(engine, "x.wild.test.example", MX), NOERROR)


def test_existing_names_block_the_wildcard(engine):
    assert_negative(ask(engine, "exists.wild.test.example", A), NOERROR)
    assert_negative(ask(engine, "sub.exists.wild.test.example", A), NXDOMAIN)
    assert_negative(ask(engine, "x.ent.wild.test.example", A), NXDOMAIN)  # ent.wild has no '*'


def test_wildcard_cname(engine):
    answer = ask(engine, "z.wcname.test.example")
    assert rows(answer.answer) == [
        ("z.wcname.test.example.", "CNAME", "host.test.example."),
        ("host.test.example.", "A", "192.0.2.2"),
    ]


def test_lookup_kinds(engine):
    zone = engine.zones.find((b"test", b"example"))
    assert lookup(zone, (b"x", b"wild", b"test", b"example"), A)[0] == 1  # WILDCARD
    assert lookup(zone, (b"c", b"test", b"example"), A) == (2, None)  # EMPTY
    assert lookup(zone, (b"nothere", b"test", b"example"), A) == (3, None)  # MISSING
    assert lookup(zone, (b"x", b"child", b"test", b"example"), DS) == (4, (b"child", b"test", b"example"))


# -- delegation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "qname", ["child.test.example", "deep.www.child.test.example", "ns.child.test.example"]
)
@pytest.mark.parametrize("qtype", [A, NS, ANY])
def test_referral(engine, qname, qtype):
    answer = ask(engine, qname, qtype)
    assert answer.rcode == NOERROR and not answer.aa
    assert not answer.answer
    assert sorted(rows(answer.authority)) == [
        ("child.test.example.", "NS", "ns.child.test.example."),
        ("child.test.example.", "NS", "ns.example.net."),
    ]
    assert rows(answer.additional) == [
        ("ns.child.test.example.", "A", "192.0.2.53"),
        ("ns.child.test.example.", "AAAA", "2001:db8::53"),
    ]


def test_ds_at_the_cut_is_the_parents(engine):
    answer = ask(engine, "child.test.example", DS)
    assert_negative(answer, NOERROR)
    assert not answer.answer


# -- zones, classes, CHAOS -----------------------------------------------------------------------


def test_the_most_specific_zone_answers(engine):
    answer = ask(engine, "www.deeper.test.example")
    assert rows(answer.answer) == [("www.deeper.test.example.", "A", "198.51.100.7")]
    assert_negative(ask(engine, "nothere.deeper.test.example"), NXDOMAIN, "deeper.test.example.", ttl=60)


def test_a_served_child_zone_answers_below_its_cut(engine):
    answer = ask(engine, "www.sub.extra.example")
    assert answer.aa and rows(answer.answer) == [("www.sub.extra.example.", "A", "203.0.113.80")]
    assert ask(engine, "sub.extra.example", NS).aa


def test_ds_at_a_served_child_apex_comes_from_the_served_parent(engine):
    assert_negative(ask(engine, "sub.extra.example", DS), NOERROR, "extra.example.", ttl=30)
    # Without a delegation in the parent, the zone itself answers (no parent side exists).
    assert_negative(ask(engine, "deeper.test.example", DS), NOERROR, "deeper.test.example.", ttl=60)


@pytest.mark.parametrize("qname", ["example.org", "example", "", "test.example.org"])
def test_outside_our_zones_is_refused(engine, qname):
    answer = ask(engine, qname)
    assert answer.rcode == REFUSED and not answer.aa
    assert not answer.answer and not answer.authority


@pytest.mark.parametrize("qtype", [QTYPE.AXFR, QTYPE.IXFR])
def test_transfers_are_refused(engine, qtype):
    assert ask(engine, "test.example", qtype).rcode == REFUSED


@pytest.mark.parametrize("qclass", [4, 255, 254])  # HS, ANY, NONE
def test_other_classes_are_refused(engine, qclass):
    assert ask(engine, "host.test.example", A, qclass).rcode == REFUSED


@pytest.mark.parametrize("qname", ["host.test.example", "test.example", "x.wild.test.example"])
def test_any_is_one_rrset(engine, qname):
    answer = ask(engine, qname, ANY)
    assert answer.rcode == NOERROR and answer.aa
    assert answer.answer and len({rr.rtype for rr in answer.answer}) == 1


def test_chaos(engine):
    answer = ask(engine, "Version.Bind", TXT, CLASS.CH)
    assert answer.rcode == NOERROR
    assert [(str(rr.rname), rr.rclass, str(rr.rdata)) for rr in answer.answer] == [
        ("version.bind.", CLASS.CH, '"gdns-unit"')
    ]
    assert ask(engine, "version.server", ANY, CLASS.CH).answer
    assert ask(engine, "version.bind", A, CLASS.CH).rcode == REFUSED
    assert ask(engine, "id.server", TXT, CLASS.CH).rcode == REFUSED  # no identity configured
    assert ask(engine, "host.test.example", TXT, CLASS.CH).rcode == REFUSED


def test_chaos_refused_when_not_configured(engine):
    bare = Engine(engine.zones)
    assert bare.answer(_chaos_query(b"version")).rcode == REFUSED
    named = Engine(engine.zones, identity="ns-a")
    assert [str(rr.rdata) for rr in named.answer(_chaos_query(b"id", b"server")).answer] == ['"ns-a"']


def _chaos_query(*labels: bytes) -> Query:
    qname = labels if len(labels) > 1 else (*labels, b"bind")
    return Query(id=1, flags=0, qname=qname, qtype=TXT, qclass=CLASS.CH, transport="udp", client=("", 0))
