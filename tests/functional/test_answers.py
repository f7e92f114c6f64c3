"""Authoritative answers end to end, over real UDP and TCP, read by dnspython.

Every rule is checked on both transports: the header bits (AA, RA, RD, CD, ID, 0x20 case),
negative answers with the SOA and the RFC 2308 TTL, CNAME chasing, wildcards (RFC 4592),
referrals, REFUSED, opcodes, ANY (RFC 8482), CHAOS and IPv6.
"""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.conftest import HAS_IPV6
from tests.wire import read_exact

NEGATIVE_TTL = 120  # min(SOA TTL 600, SOA minimum 120) in tests/data/test.example.yaml
A, AAAA, CNAME, NS, SOA, TXT = (
    dns.rdatatype.A,
    dns.rdatatype.AAAA,
    dns.rdatatype.CNAME,
    dns.rdatatype.NS,
    dns.rdatatype.SOA,
    dns.rdatatype.TXT,
)


@pytest.fixture(params=[False, True], ids=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param


@pytest.fixture
def ask(example_server, tcp):
    def query(qname: str, qtype: str = "A", **kwargs) -> dns.message.Message:
        return example_server.query(qname, qtype, tcp=tcp, **kwargs)

    return query


def rrset(section, name: str, rdtype: int):
    """The one rrset of `rdtype` owned by `name` in a section, or fail."""
    found = [r for r in section if r.name == dns.name.from_text(name) and r.rdtype == rdtype]
    assert len(found) == 1, f"{name} {dns.rdatatype.to_text(rdtype)} not in {section}"
    return found[0]


def assert_negative(reply: dns.message.Message, rcode: int) -> None:
    assert reply.rcode() == rcode
    assert reply.flags & dns.flags.AA
    assert len(reply.authority) == 1
    soa = reply.authority[0]
    assert soa.rdtype == SOA and soa.name == dns.name.from_text("test.example.")
    assert soa.ttl == NEGATIVE_TTL
    assert soa[0].minimum == NEGATIVE_TTL


def raw_exchange(server, wire: bytes, tcp: bool, where: int = 0, timeout: float = 3.0) -> bytes:
    host, port = server.addresses[where]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", read_exact(sock, 2))[0]
            return read_exact(sock, size)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, (host, port))
        return sock.recv(65535)


# -- header ------------------------------------------------------------------------------


def test_header_bits_id_and_0x20_case(ask):
    query = dns.message.make_query("HoSt.TeSt.ExAmPlE", "A")
    query.id = 0xBEEF
    query.flags |= dns.flags.RD | dns.flags.CD | dns.flags.AD
    reply = ask("", message=query)
    assert reply.id == 0xBEEF
    assert reply.flags & dns.flags.QR
    assert reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.RA
    assert reply.flags & dns.flags.RD  # copied
    assert not reply.flags & (dns.flags.CD | dns.flags.AD | dns.flags.TC)
    assert reply.question[0].name.to_text() == "HoSt.TeSt.ExAmPlE."  # the client's case, exactly
    assert reply.answer[0].name.to_text() == "HoSt.TeSt.ExAmPlE."
    assert [rr.address for rr in reply.answer[0]] == ["192.0.2.2"]
    assert reply.answer[0].ttl == 3600


def test_rd_clear_stays_clear(ask):
    query = dns.message.make_query("host.test.example", "AAAA")
    query.flags &= ~dns.flags.RD
    reply = ask("", message=query)
    assert reply.id == query.id
    assert not reply.flags & (dns.flags.RD | dns.flags.RA)
    assert [rr.address for rr in reply.answer[0]] == ["2001:db8::2"]


@pytest.mark.parametrize("qname", ["nothere.test.example", "example.org"])
def test_error_replies_echo_id_and_rd_and_never_set_ra(ask, qname):
    query = dns.message.make_query(qname, "A")
    query.id = 4242
    reply = ask("", message=query)
    assert reply.id == 4242 and reply.flags & dns.flags.RD
    assert not reply.flags & dns.flags.RA


# -- negative answers ----------------------------------------------------------------------


def test_nxdomain_has_soa_with_negative_ttl(ask):
    reply = ask("nothere.test.example", "A")
    assert_negative(reply, dns.rcode.NXDOMAIN)
    assert not reply.answer


def test_nodata_for_a_missing_type_has_soa(ask):
    reply = ask("host.test.example", "MX")
    assert_negative(reply, dns.rcode.NOERROR)
    assert not reply.answer


@pytest.mark.parametrize("qname", ["b.c.test.example", "c.test.example", "ent.wild.test.example"])
def test_empty_non_terminal_is_nodata_not_nxdomain(ask, qname):
    reply = ask(qname, "A")
    assert_negative(reply, dns.rcode.NOERROR)
    assert not reply.answer
    assert ask("a.b.c.test.example", "A").answer  # the name that makes them exist


@pytest.mark.parametrize("qtype", ["TYPE65280", "TYPE4000", "NSEC"])
def test_unknown_or_absent_types_are_nodata(ask, qtype):
    reply = ask("host.test.example", qtype)
    assert_negative(reply, dns.rcode.NOERROR)
    assert not reply.answer


def test_name_below_an_existing_name_is_nxdomain(ask):
    assert_negative(ask("under.host.test.example", "A"), dns.rcode.NXDOMAIN)


# -- positive answers at the apex ------------------------------------------------------------


def test_apex_soa_and_ns_with_glue(ask):
    soa = ask("test.example", "SOA")
    assert soa.rcode() == dns.rcode.NOERROR and soa.flags & dns.flags.AA
    assert rrset(soa.answer, "test.example.", SOA).ttl == 600
    ns = ask("test.example", "NS")
    assert [r.target.to_text() for r in rrset(ns.answer, "test.example.", NS)] == ["ns1.test.example."]
    assert [r.address for r in rrset(ns.additional, "ns1.test.example.", A)] == ["192.0.2.1"]


def test_mx_targets_in_zone_get_addresses_in_additional(ask):
    reply = ask("mail.test.example", "MX")
    assert sorted(r.preference for r in reply.answer[0]) == [10, 20]
    assert [r.address for r in rrset(reply.additional, "host.test.example.", A)] == ["192.0.2.2"]
    assert [r.address for r in rrset(reply.additional, "host.test.example.", AAAA)] == ["2001:db8::2"]


# -- CNAME -----------------------------------------------------------------------------------


def test_cname_chain_is_followed_to_the_address(ask):
    reply = ask("chain1.test.example", "A")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert [(r.name.to_text(), r.rdtype) for r in reply.answer] == [
        ("chain1.test.example.", CNAME),
        ("chain2.test.example.", CNAME),
        ("host.test.example.", A),
    ]
    assert rrset(reply.answer, "chain1.test.example.", CNAME)[0].target.to_text() == "chain2.test.example."
    assert [r.address for r in rrset(reply.answer, "host.test.example.", A)] == ["192.0.2.2"]


def test_cname_owner_keeps_the_client_case(ask):
    reply = ask("ChAiN2.tEsT.eXaMpLe", "TXT")
    assert reply.answer[0].name.to_text() == "ChAiN2.tEsT.eXaMpLe."
    assert [b"".join(r.strings) for r in rrset(reply.answer, "host.test.example.", TXT)] == [b"hello"]


def test_cname_query_is_not_chased(ask):
    reply = ask("chain1.test.example", "CNAME")
    assert [(r.name.to_text(), r.rdtype) for r in reply.answer] == [("chain1.test.example.", CNAME)]


def test_cname_loop_terminates(ask):
    reply = ask("loop1.test.example", "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert {r.rdtype for r in reply.answer} == {CNAME}
    assert {r.name.to_text() for r in reply.answer} == {"loop1.test.example.", "loop2.test.example."}
    assert len(reply.answer) == 2


def test_dangling_cname_is_nxdomain_with_cname_and_soa(ask):
    reply = ask("dangling.test.example", "A")
    assert_negative(reply, dns.rcode.NXDOMAIN)  # RFC 6604: the rcode is the last name's
    target = rrset(reply.answer, "dangling.test.example.", CNAME)[0].target
    assert target.to_text() == "nothere.test.example."


def test_cname_to_a_missing_type_is_nodata_with_cname(ask):
    reply = ask("chain1.test.example", "MX")
    assert_negative(reply, dns.rcode.NOERROR)
    assert [r.rdtype for r in reply.answer] == [CNAME, CNAME]


def test_cname_out_of_zone_is_just_the_cname(ask):
    reply = ask("outside.test.example", "A")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert len(reply.answer) == 1
    assert reply.answer[0][0].target.to_text() == "www.example.net."
    assert not reply.authority


def test_cname_into_another_served_zone_is_followed_to_its_pool(ask):
    """tozone.test.example -> api.gslb.example.com (zones/, a failover pool whose primary is
    down): gdns serves both zones, so it follows into the other one (RFC 1034 4.3.2)."""
    reply = ask("tozone.test.example", "A")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert [(r.name.to_text(), r.rdtype) for r in reply.answer] == [
        ("tozone.test.example.", CNAME),
        ("api.gslb.example.com.", A),
    ]
    assert [r.address for r in rrset(reply.answer, "api.gslb.example.com.", A)] == ["198.51.100.30"]
    assert not reply.authority


# -- wildcards (RFC 4592) ----------------------------------------------------------------------


@pytest.mark.parametrize("qname", ["x.wild.test.example", "A.b.WiLd.test.example"])
def test_wildcard_synthesises_with_the_query_name(ask, qname):
    reply = ask(qname, "A")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert len(reply.answer) == 1
    assert reply.answer[0].name.to_text() == qname + "."  # never "*.wild"
    assert [r.address for r in reply.answer[0]] == ["192.0.2.4"]
    txt = ask(qname, "TXT")
    assert [b"".join(r.strings) for r in txt.answer[0]] == [b"wildcard"]


def test_wildcard_nodata_for_a_type_it_lacks(ask):
    reply = ask("x.wild.test.example", "MX")
    assert_negative(reply, dns.rcode.NOERROR)
    assert not reply.answer


def test_existing_name_below_wildcard_parent_is_not_covered(ask):
    reply = ask("exists.wild.test.example", "A")
    assert_negative(reply, dns.rcode.NOERROR)  # NODATA, not the wildcard's 192.0.2.4
    assert not reply.answer
    own = ask("exists.wild.test.example", "AAAA")
    assert [r.address for r in own.answer[0]] == ["2001:db8::5"]
    # Below an existing name the closest encloser is that name, which has no wildcard.
    assert_negative(ask("sub.exists.wild.test.example", "A"), dns.rcode.NXDOMAIN)


def test_wildcard_cname_is_synthesised_and_chased(ask):
    reply = ask("anything.wcname.test.example", "A")
    assert reply.rcode() == dns.rcode.NOERROR
    cname = rrset(reply.answer, "anything.wcname.test.example.", CNAME)
    assert cname[0].target.to_text() == "host.test.example."
    assert [r.address for r in rrset(reply.answer, "host.test.example.", A)] == ["192.0.2.2"]


def test_literal_wildcard_name_answers_its_own_records(ask):
    reply = ask("*.wild.test.example", "A")
    assert [r.address for r in reply.answer[0]] == ["192.0.2.4"]


# -- delegation --------------------------------------------------------------------------------


BELOW_CUT = [
    "child.test.example",
    "www.child.test.example",
    "a.b.child.test.example",
    "ns.child.test.example",
]


@pytest.mark.parametrize("qname", BELOW_CUT)
def test_names_at_or_below_a_delegation_get_a_referral(ask, qname):
    reply = ask(qname, "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA
    assert not reply.answer
    ns = rrset(reply.authority, "child.test.example.", NS)
    assert sorted(r.target.to_text() for r in ns) == ["ns.child.test.example.", "ns.example.net."]
    assert [r.address for r in rrset(reply.additional, "ns.child.test.example.", A)] == ["192.0.2.53"]
    assert [r.address for r in rrset(reply.additional, "ns.child.test.example.", AAAA)] == ["2001:db8::53"]
    assert not any(r.rdtype == SOA for r in reply.authority)


def test_ds_at_the_delegation_is_answered_by_the_parent(ask):
    reply = ask("child.test.example", "DS")
    assert_negative(reply, dns.rcode.NOERROR)  # AA set, SOA, no referral
    assert not reply.answer
    below = ask("x.child.test.example", "DS")  # below the cut it is the child's: referral
    assert not below.flags & dns.flags.AA and rrset(below.authority, "child.test.example.", NS)


# -- outside our zones, other classes, transfers -------------------------------------------------


@pytest.mark.parametrize("qname", ["example.org", "example", "example.com", "www.example.net", "."])
def test_outside_every_zone_is_refused(ask, qname):
    reply = ask(qname, "A")
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & dns.flags.AA
    assert not reply.answer and not reply.authority


def test_other_zone_is_served_too(ask):
    reply = ask("www.gslb.example.com", "A")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA


def test_zone_transfer_is_refused(ask):
    assert ask("test.example", "AXFR").rcode() == dns.rcode.REFUSED


def test_unknown_class_is_refused(ask):
    reply = ask("host.test.example", "A", rdclass=dns.rdataclass.HS)
    assert reply.rcode() == dns.rcode.REFUSED


# -- opcodes, ANY, CHAOS ---------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 6, 15])  # IQUERY, STATUS, NOTIFY, UPDATE, DSO, unassigned
def test_other_opcodes_get_notimp(example_server, tcp, opcode):
    query = dns.message.make_query("host.test.example", "SOA")
    query.id = 777
    wire = bytearray(query.to_wire())
    wire[2] = (wire[2] & 0x87) | (opcode << 3)
    reply = dns.message.from_wire(raw_exchange(example_server, bytes(wire), tcp))
    assert reply.id == 777
    assert reply.rcode() == dns.rcode.NOTIMP
    assert dns.opcode.from_flags(reply.flags) == opcode
    assert not reply.flags & (dns.flags.AA | dns.flags.RA)
    assert not reply.answer


@pytest.mark.parametrize("qname", ["test.example", "host.test.example", "x.wild.test.example"])
def test_any_gets_one_rrset(ask, qname):
    reply = ask(qname, "ANY")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert len(reply.answer) == 1  # RFC 8482: a small answer, one RRset
    assert reply.answer[0].name.to_text() == qname + "."


def test_chaos_version_bind_when_configured(ask):
    reply = ask("VERSION.bind", "TXT", rdclass=dns.rdataclass.CH)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0].rdclass == dns.rdataclass.CH
    assert [b"".join(r.strings) for r in reply.answer[0]] == [b"gdns-test"]
    assert ask("version.server", "TXT", rdclass=dns.rdataclass.CH).answer


@pytest.mark.parametrize("qname", ["id.server", "hostname.bind", "authors.bind"])
def test_chaos_names_not_configured_are_refused(ask, qname):
    reply = ask(qname, "TXT", rdclass=dns.rdataclass.CH)
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.answer


def test_chaos_version_refused_without_the_option(start_server, zone_dir):
    server = start_server(zone_dir)
    for tcp in (False, True):
        reply = server.query("version.bind", "TXT", tcp=tcp, rdclass=dns.rdataclass.CH)
        assert reply.rcode() == dns.rcode.REFUSED
        assert not reply.answer


# -- IPv6 --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 on this host")
def test_answers_on_ipv6_loopback(example_server, tcp):
    assert example_server.addresses[1][0] == "::1"
    reply = example_server.query("HoSt.TeSt.ExAmPlE", "AAAA", tcp=tcp, where=1)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert reply.question[0].name.to_text() == "HoSt.TeSt.ExAmPlE."
    assert [r.address for r in reply.answer[0]] == ["2001:db8::2"]
    assert_negative(example_server.query("nothere.test.example", tcp=tcp, where=1), dns.rcode.NXDOMAIN)
