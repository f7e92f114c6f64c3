"""Zone compiler: structure, DNS semantics, positioned errors, serial and negative TTL."""

import textwrap

import pytest
from dnslib import QTYPE, DNSLabel

from gdns.zone.compile import compile_zone
from gdns.zone.yamlsafe import load

HEAD = """\
origin: example.com.
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com.]
records:
  ns1: {A: 192.0.2.1}
"""


def compile_text(text: str):
    return compile_zone(load(textwrap.dedent(text), "z.yaml"), "digest")


def zone_of(text: str):
    zone, errors = compile_text(text)
    assert errors == []
    return zone


def errors_of(text: str) -> list[str]:
    zone, errors = compile_text(text)
    assert zone is None
    assert errors
    return [str(e) for e in sorted(errors)]


def one_error(text: str) -> str:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]


def rrset(zone, name: str, rtype: str):
    key = tuple(DNSLabel(name).label)
    return zone.nodes[key].rrsets[getattr(QTYPE, rtype)]


def records(body: str) -> str:
    """HEAD plus more entries under `records:`, written at any indentation in `body`."""
    return HEAD + textwrap.indent(textwrap.dedent(body), "  ")


# -- a valid zone --------------------------------------------------------------


def test_minimal_zone():
    zone = zone_of(HEAD)
    assert zone.origin == (b"example", b"com")
    assert zone.file == "z.yaml"
    assert zone.digest == "digest"
    assert [str(rd.label) for rd in rrset(zone, "example.com.", "NS").rdatas] == ["ns1.example.com."]
    assert str(rrset(zone, "ns1.example.com.", "A").rdatas[0]) == "192.0.2.1"


def test_defaults():
    zone = zone_of(HEAD)
    soa = zone.soa.rdatas[0]
    assert soa.times[1:] == (3600, 600, 1209600, 60)
    assert zone.soa.ttl == 300
    assert rrset(zone, "ns1.example.com.", "A").ttl == 300


def test_soa_fields():
    zone = zone_of("""\
        origin: example.com.
        ttl: 3600
        soa:
          mname: ns1.example.com.
          rname: hostmaster.example.com.
          serial: 7
          refresh: 1h
          retry: 10m
          expire: 2w
          minimum: 90s
        ns: ns.example.net.
        """)
    soa = zone.soa.rdatas[0]
    assert str(soa.mname) == "ns1.example.com."
    assert str(soa.rname) == "hostmaster.example.com."
    assert soa.times == (7, 3600, 600, 1209600, 90)
    assert zone.serial == 7
    assert zone.soa.ttl == 3600


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("300", 300),
        ("'300'", 300),
        ("5m", 300),
        ("1h30m", 5400),
        ("1d12h", 129600),
        ("2w", 1209600),
        ("1.5h", 5400),
        ("2000ms", 2),
        ("300.0", 300),
    ],
)
def test_durations(text, seconds):
    zone = zone_of(HEAD.replace("origin: example.com.\n", f"origin: example.com.\nttl: {text}\n"))
    assert rrset(zone, "ns1.example.com.", "A").ttl == seconds


@pytest.mark.parametrize(
    "text, message",
    [
        ("1.5s", "'1.5s' is not a whole number of seconds: TTLs and SOA timers are whole seconds"),
        ("500ms", "'500ms' is not a whole number of seconds: TTLs and SOA timers are whole seconds"),
        ("1.5", "1.5 is not a whole number of seconds: TTLs and SOA timers are whole seconds"),
        ("30m1h", "'30m1h' is not a duration: give each unit once, largest first (e.g. 1h30m)"),
        ("5m5m", "'5m5m' is not a duration: give each unit once, largest first (e.g. 1h30m)"),
        ("1m30", "'1m30' is not a duration (e.g. 300, 30s, 5m, 1h30m, 1d, 500ms)"),
        ("5M", "'5M' is not a duration (e.g. 300, 30s, 5m, 1h30m, 1d, 500ms)"),
    ],
)
def test_ttl_duration_errors(text, message):
    """One duration syntax with checks, but a TTL must come to whole seconds."""
    text = HEAD.replace("origin: example.com.\n", f"origin: example.com.\nttl: {text}\n")
    assert one_error(text) == f"z.yaml:2:6: ttl: {message}"


def test_every_record_type():
    zone = zone_of(
        records("""\
          "@":
            MX: 10 mail.example.com.
            TXT: "v=spf1 -all"
            CAA: '0 issue "ca.example.net"'
          mail: {A: 192.0.2.25, AAAA: "2001:db8::25"}
          www: {CNAME: mail.example.com.}
          _sip._udp: {SRV: "10 60 5060 mail.example.com."}
          25.2.0.192: {PTR: mail.example.com.}
          sub: {NS: ns.example.net.}
        """)
    )
    assert str(rrset(zone, "example.com.", "MX").rdatas[0].label) == "mail.example.com."
    assert rrset(zone, "example.com.", "TXT").rdatas[0].data == [b"v=spf1 -all"]
    assert rrset(zone, "example.com.", "CAA").rdatas[0].tag == "issue"
    assert str(rrset(zone, "mail.example.com.", "AAAA").rdatas[0]) == "2001:db8::25"
    assert str(rrset(zone, "www.example.com.", "CNAME").rdatas[0].label) == "mail.example.com."
    assert rrset(zone, "_sip._udp.example.com.", "SRV").rdatas[0].port == 5060
    assert str(rrset(zone, "25.2.0.192.example.com.", "PTR").rdatas[0].label) == "mail.example.com."
    assert zone.cuts == {(b"sub", b"example", b"com")}


def test_one_value_or_a_list():
    zone = zone_of(records("  a: {A: 192.0.2.10}\n  b: {A: [192.0.2.10, 192.0.2.11]}\n"))
    assert len(rrset(zone, "a.example.com.", "A").rdatas) == 1
    assert len(rrset(zone, "b.example.com.", "A").rdatas) == 2


def test_per_rrset_ttl():
    zone = zone_of(records("  www: {A: {ttl: 60, values: [192.0.2.10, 192.0.2.11]}, AAAA: '2001:db8::1'}\n"))
    assert rrset(zone, "www.example.com.", "A").ttl == 60
    assert len(rrset(zone, "www.example.com.", "A").rdatas) == 2
    assert rrset(zone, "www.example.com.", "AAAA").ttl == 300


def test_per_rrset_ttl_with_one_value_and_duration():
    zone = zone_of(records("  www: {A: {ttl: 2m, values: 192.0.2.10}}\n"))
    assert rrset(zone, "www.example.com.", "A").ttl == 120


@pytest.mark.parametrize(
    "rtype, mapping, string",
    [
        ("MX", "{preference: 10, exchange: mail.example.com.}", "10 mail.example.com."),
        ("SRV", "{priority: 1, weight: 2, port: 443, target: www.example.com.}", "1 2 443 www.example.com."),
        ("CAA", '{flags: 0, tag: issue, value: "ca.example.net"}', '0 issue "ca.example.net"'),
    ],
)
def test_mapping_and_presentation_string_are_the_same(rtype, mapping, string):
    zone = zone_of(records(f"  a: {{{rtype}: {mapping}}}\n  b: {{{rtype}: '{string}'}}\n"))
    a = rrset(zone, "a.example.com.", rtype).rdatas
    b = rrset(zone, "b.example.com.", rtype).rdatas
    assert a == b


def test_mx_list_mixing_mapping_and_string():
    zone = zone_of(
        records("  '@': {MX: [{preference: 10, exchange: a.example.net.}, '20 b.example.net.']}\n")
    )
    assert [rd.preference for rd in rrset(zone, "example.com.", "MX").rdatas] == [10, 20]


def test_owner_names_apex_wildcard_absolute_and_case():
    zone = zone_of(
        records("""\
          "@": {TXT: apex}
          "*.static": {A: 192.0.2.99}
          abs.example.com.: {A: 192.0.2.7}
          MiXeD: {A: 192.0.2.8}
          deep.ABS.Example.COM.: {A: 192.0.2.9}
        """)
    )
    assert (b"*", b"static", b"example", b"com") in zone.nodes
    assert (b"abs", b"example", b"com") in zone.nodes
    assert (b"mixed", b"example", b"com") in zone.nodes
    assert (b"deep", b"abs", b"example", b"com") in zone.nodes
    assert rrset(zone, "example.com.", "TXT").rdatas[0].data == [b"apex"]


def test_empty_non_terminals():
    zone = zone_of(records("  a.b.c: {A: 192.0.2.3}\n"))
    assert zone.empty_nonterminals == {(b"b", b"c", b"example", b"com"), (b"c", b"example", b"com")}


def test_no_string_traps_in_record_data():
    zone = zone_of(records("  country: {TXT: [NO, yes, 010, '1:30']}\n"))
    assert [rd.data for rd in rrset(zone, "country.example.com.", "TXT").rdatas] == [
        [b"NO"],
        [b"yes"],
        [b"010"],
        [b"1:30"],
    ]


def test_glue_for_in_zone_name_servers():
    zone = zone_of(
        records("  sub: {NS: [ns.sub.example.com., ns.example.net.]}\n  ns.sub: {A: 192.0.2.53}\n")
    )
    assert zone.cuts == {(b"sub", b"example", b"com")}


def test_aaaa_alone_is_enough_glue():
    zone_of(records("  sub: {NS: ns.sub.example.com.}\n  ns.sub: {AAAA: '2001:db8::53'}\n"))


def test_out_of_zone_name_servers_need_no_glue():
    zone_of("""\
        origin: example.com.
        soa: {mname: ns.example.net., rname: hostmaster.example.com.}
        ns: [ns1.example.net., ns2.example.org.]
        """)


def test_glue_at_the_delegation_point_itself():
    zone_of(records("  sub: {NS: sub.example.com., A: 192.0.2.53}\n"))


def test_root_zone_origin():
    zone = zone_of("""\
        origin: .
        soa: {mname: a.root-servers.example., rname: nstld.example.}
        ns: a.root-servers.example.
        records:
          a.root-servers.example.: {A: 198.51.100.4}
        """)
    assert zone.origin == ()


# -- duplicates ------------------------------------------------------------------


def test_duplicate_value_is_an_error():
    assert one_error(records("  a: {A: [192.0.2.1, 192.0.2.1]}\n")) == (
        "z.yaml:6:22: records.a.A[1]: duplicate A value '192.0.2.1'"
    )


def test_names_in_data_are_compared_case_insensitively():
    assert "duplicate MX" in one_error(records("  a: {MX: ['10 M.example.net.', '10 m.example.net.']}\n"))


@pytest.mark.parametrize(
    "body",
    [
        "  a: {A: [192.0.2.65, 192.0.2.97]}\n",  # bytes 'A' and 'a'
        "  a: {AAAA: ['2001:db8::41', '2001:db8::61']}\n",
        "  a: {TXT: [Hello, hello]}\n",
        "  a: {MX: ['65 mail.example.net.', '97 mail.example.net.']}\n",
        "  a: {CAA: ['0 issue \"CA.example.net\"', '0 issue \"ca.example.net\"']}\n",
    ],
)
def test_values_differing_only_in_byte_case_are_not_duplicates(body):
    zone_of(records(body))


def test_same_owner_twice_is_an_error():
    assert one_error(records("  www: {A: 192.0.2.1}\n  WWW.example.com.: {AAAA: '2001:db8::1'}\n")) == (
        'z.yaml:7:3: records."WWW.example.com.": same name as records.www; merge them'
    )


def test_apex_twice_is_an_error():
    assert "same name as records.@" in one_error(records("  '@': {TXT: a}\n  example.com.: {TXT: b}\n"))


# -- errors, each with its position -----------------------------------------------


def test_bad_address_position():
    text = records("""\
      www:
        A:
          - 192.0.2.1
          - 192.0.2.300
    """)
    assert one_error(text) == "z.yaml:9:9: records.www.A[1]: '192.0.2.300' is not an IPv4 address"


def test_bad_field_in_mapping_position():
    text = records("  mx: {MX: [{preference: 70000, exchange: mail.example.com.}]}\n")
    assert one_error(text) == (
        "z.yaml:6:26: records.mx.MX[0].preference: preference must be between 0 and 65535, got 70000"
    )


def test_bad_value_inside_rrset_form_position():
    assert one_error(records("  www: {A: {ttl: 60, values: [192.0.2.1, nope]}}\n")).startswith(
        "z.yaml:6:42: records.www.A.values[1]: "
    )


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("  www: {CNAME: target.example.net}\n", "must be fully qualified"),
        ("  www: {MX: '10 mail..example.com.'}\n", "empty label"),
        ("  www: {NS: ns.example.net.}\n  x.www: {CNAME: a-.example.net.}\n", "invalid label"),
        ("  www: {AAAA: 192.0.2.1}\n", "not an IPv6 address"),
        ("  www: {TXT: 5}\n", "TXT must be a string"),
        ("  www: {A: []}\n", "needs at least one value"),
        ("  www: {A: {ttl: 60}}\n", "missing required key 'values'"),
        ("  www: {A: {ttl: -1, values: 192.0.2.1}}\n", "greater than or equal to 0"),
        ("  www: {A: {ttl: 60, values: 192.0.2.1, extra: 1}}\n", "unknown key 'extra'"),
        ("  www:\n", "expected a mapping of record types, got nothing (null)"),
        ("  www: [192.0.2.1]\n", "expected a mapping of record types, got a list"),
    ],
)
def test_record_errors(body, fragment):
    assert fragment in one_error(records(body))


@pytest.mark.parametrize(
    "key, fragment",
    [
        ("www.example.net.", "outside the zone's origin"),
        ("com.", "outside the zone's origin"),
        ("notexample.com.", "outside the zone's origin"),
        ("a.*.b", "leftmost"),
        ("a..b", "empty label"),
        ("-x", "invalid label"),
        ("bücher", "must be ASCII"),
        ("x" * 64, "longer than 63"),
    ],
)
def test_bad_owner_names(key, fragment):
    error = one_error(records(f"  '{key}': {{A: 192.0.2.1}}\n"))
    assert error.startswith("z.yaml:6:3: ")
    assert fragment in error


@pytest.mark.parametrize(
    "rtype, fragment",
    [
        ("a", "must be written in capitals: 'A'"),
        ("SOA", "top-level 'soa' key"),
        ("SPF", "unsupported record type 'SPF'"),
        ("AAA", "did you mean"),
    ],
)
def test_unknown_record_types(rtype, fragment):
    error = one_error(records(f"  www: {{{rtype}: x}}\n"))
    assert error.startswith(f"z.yaml:6:9: records.www.{rtype}: ")
    assert fragment in error


def test_apex_ns_belongs_in_top_level_ns_key():
    assert "top-level 'ns' key" in one_error(records("  '@': {NS: ns.example.net.}\n"))


def test_cname_beside_other_data():
    assert one_error(records("  www: {A: 192.0.2.1, CNAME: x.example.net.}\n")) == (
        "z.yaml:6:23: records.www.CNAME: a CNAME cannot stand beside other data (A)"
    )


def test_cname_at_apex():
    assert "cannot be at the zone apex" in one_error(records("  '@': {CNAME: x.example.net.}\n"))


def test_at_most_one_cname():
    assert "at most one CNAME" in one_error(records("  www: {CNAME: [a.example.net., b.example.net.]}\n"))


def test_records_at_a_delegation_other_than_glue():
    error = one_error(records("  sub: {NS: ns.example.net., TXT: hello}\n"))
    assert error == (
        "z.yaml:6:30: records.sub.TXT: "
        "only NS and glue (A/AAAA) may stand at delegation point sub.example.com."
    )


def test_records_under_a_delegation_other_than_glue():
    error = one_error(records("  sub: {NS: ns.example.net.}\n  www.sub: {MX: '10 mail.example.net.'}\n"))
    assert error.startswith('z.yaml:7:13: records."www.sub".MX: MX records under delegation sub.example.com.')


def test_glue_under_a_delegation_is_allowed():
    zone_of(records("  sub: {NS: ns.deep.sub.example.com.}\n  ns.deep.sub: {A: 192.0.2.53}\n"))


def test_delegation_under_a_delegation_is_an_error():
    assert "under delegation" in one_error(
        records("  sub: {NS: ns.example.net.}\n  x.sub: {NS: ns.example.net.}\n")
    )


def test_wildcard_delegation_is_an_error():
    assert "wildcard name cannot be a delegation" in one_error(records("  '*.w': {NS: ns.example.net.}\n"))


def test_missing_glue_for_delegation():
    assert one_error(records("  sub: {NS: [ns.sub.example.com., ns.example.net.]}\n")) == (
        "z.yaml:6:13: records.sub.NS: "
        "name server ns.sub.example.com. is inside the zone but has no A or AAAA record"
    )


def test_missing_glue_for_apex_name_server():
    text = HEAD.replace("  ns1: {A: 192.0.2.1}\n", "  ns1: {TXT: not an address}\n")
    assert one_error(text) == (
        "z.yaml:3:5: ns: name server ns1.example.com. is inside the zone but has no A or AAAA record"
    )


@pytest.mark.parametrize(
    "ns, where",
    [
        ("  sub: {NS: [nsp.example.com., ns.example.net.]}\n", "z.yaml:6:13: records.sub.NS"),
        ("", "z.yaml:3:5: ns"),
    ],
)
def test_name_server_that_is_a_pool(ns, where):
    """Not "has no A or AAAA record" (a pool answers A): a name server's addresses must be static."""
    text = HEAD if ns else HEAD.replace("[ns1.example.com.]", "[ns1.example.com., nsp.example.com.]")
    text += ns + "pools:\n  nsp: {members: [{address: 192.0.2.53}]}\n"
    assert one_error(text) == (
        f"{where}: name server nsp.example.com. is a pool (pools.nsp); "
        "a name server's addresses must be static A/AAAA records, not a pool"
    )


def test_name_server_that_is_a_cname_has_no_glue():
    text = HEAD.replace("  ns1: {A: 192.0.2.1}\n", "  ns1: {CNAME: ns.example.net.}\n")
    assert "has no A or AAAA record" in one_error(text)


# -- the document's structure ---------------------------------------------------------


def test_unknown_top_level_key_with_hint():
    assert one_error(HEAD + "recrods: {}\n") == (
        "z.yaml:6:1: recrods: unknown key 'recrods' (did you mean 'records'?)"
    )


def test_unknown_soa_key():
    text = HEAD.replace("hostmaster.example.com.}", "hostmaster.example.com., refesh: 10}")
    error = one_error(text)
    assert error.startswith("z.yaml:2:64: soa.refesh: unknown key 'refesh'")
    assert "did you mean 'refresh'" in error


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("refresh", "true", "expected an integer, got a boolean"),
        ("retry", "1.5", "1.5 is not a whole number of seconds"),
        ("retry", "1500ms", "'1500ms' is not a whole number of seconds"),
        ("expire", "soon", "is not a duration"),
        ("serial", "'2024'", "expected an integer, got the string '2024'"),
        ("serial", "0", "greater than or equal to 1"),
        ("serial", "4294967296", "less than or equal to 4294967295"),
        ("minimum", "[1]", "expected an integer, got a list"),
    ],
)
def test_wrong_types_in_soa(key, value, fragment):
    text = HEAD.replace("hostmaster.example.com.}", f"hostmaster.example.com., {key}: {value}}}")
    error = one_error(text)
    assert error.startswith(f"z.yaml:2:{64 + len(key) + 2}: soa.{key}: ")
    assert fragment in error


@pytest.mark.parametrize(
    "missing, fragment", [("soa", "missing required key 'soa'"), ("ns", "missing required key 'ns'")]
)
def test_missing_required_keys(missing, fragment):
    text = "".join(line + "\n" for line in HEAD.splitlines() if not line.startswith(missing + ":"))
    assert one_error(text) == f"z.yaml:1:1: (document): {fragment}"


def test_missing_soa_field():
    assert "soa: missing required key 'rname'" in one_error(
        HEAD.replace(", rname: hostmaster.example.com.", "")
    )


def test_origin_must_be_fully_qualified():
    assert one_error(HEAD.replace("origin: example.com.", "origin: example.com")) == (
        "z.yaml:1:9: origin: name 'example.com' must be fully qualified (end with '.')"
    )


def test_origin_must_be_a_string():
    assert "origin: expected a string, got a number" in one_error(HEAD.replace("example.com.\n", "5\n", 1))


def test_records_must_be_a_mapping():
    errors = errors_of(HEAD.replace("records:\n  ns1:", "records:\n  - ns1:"))
    assert "z.yaml:5:3: records: expected a mapping, got a list" in errors


def test_zone_must_be_a_mapping():
    assert one_error("- a\n- b\n") == (
        "z.yaml:1:1: (document): a zone file must be a mapping with origin, soa, ns and records"
    )


def test_bad_soa_names():
    errors = errors_of(
        HEAD.replace("hostmaster.example.com.}", "hostmaster@example.com.}").replace(
            "mname: ns1.example.com.", "mname: ns1"
        )
    )
    assert [e.split(": ")[1] for e in errors] == ["soa.mname", "soa.rname"]


# -- every problem at once --------------------------------------------------------------


def test_all_errors_are_reported_at_once():
    text = """\
        origin: example.com.
        ttl: -5
        soa: {mname: ns1.example.com., rname: hostmaster.example.com., color: blue}
        ns: [ns1.example.com.]
        records:
          www: {A: 192.0.2.300, CNAME: x.example.net.}
          mail: {MX: 'ten mail.example.com.'}
          out.example.org.: {A: 192.0.2.1}
          sub: {NS: ns.example.net., TXT: x}
        extra: 1
        """
    errors = errors_of(text)
    assert [e.split(": ")[0] for e in errors] == [
        "z.yaml:2:6",  # ttl
        "z.yaml:3:64",  # soa.color
        "z.yaml:4:5",  # ns1 has no glue
        "z.yaml:6:12",  # bad address
        "z.yaml:7:14",  # MX preference
        "z.yaml:8:3",  # outside origin
        "z.yaml:9:30",  # TXT at delegation
        "z.yaml:10:1",  # extra
    ]


def test_errors_after_a_bad_origin_are_still_reported():
    text = """\
        origin: example.com
        soa: {mname: ns1, rname: hostmaster.example.com.}
        ns: [ns1.example.com.]
        records:
          www: {A: 192.0.2.300}
          abs.example.com.: {TXT: hi}
        """
    assert [e.split(": ")[1] for e in errors_of(text)] == ["origin", "soa.mname", "records.www.A"]


# -- serial ---------------------------------------------------------------------------------


def serial(text: str) -> int:
    return zone_of(text).serial


def test_explicit_serial_is_used():
    assert serial(
        HEAD.replace("hostmaster.example.com.}", "hostmaster.example.com., serial: 2024010101}")
    ) == (2024010101)


def test_explicit_serial_does_not_follow_content():
    with_serial = HEAD.replace("hostmaster.example.com.}", "hostmaster.example.com., serial: 5}")
    assert serial(with_serial) == serial(with_serial.replace("192.0.2.1", "192.0.2.2")) == 5


def test_serial_is_identical_for_identical_content():
    assert serial(HEAD) == serial(HEAD)


def test_serial_is_a_valid_nonzero_32_bit_number():
    assert 1 <= serial(HEAD) < 2**32


def test_serial_changes_when_content_changes():
    assert serial(HEAD) != serial(HEAD.replace("192.0.2.1", "192.0.2.2"))
    assert serial(HEAD) != serial(HEAD + "  www: {A: 192.0.2.10}\n")
    assert serial(HEAD) != serial(HEAD.replace("origin: example.com.\n", "origin: example.com.\nttl: 60\n"))


def test_serial_ignores_comments_and_formatting():
    reformatted = """\
        # The same zone, written differently.
        origin:   example.com.      # a comment
        soa:
          rname: hostmaster.example.com.
          mname: ns1.example.com.

        ns:
          - ns1.example.com.
        records:
          ns1:
            A: "192.0.2.1"
        """
    assert serial(HEAD) == serial(reformatted)


# -- negative TTL (RFC 2308) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "soa_extra, zone_ttl, negative",
    [
        (", minimum: 120, ttl: 600", 3600, 120),  # minimum is smaller
        (", minimum: 900, ttl: 600", 3600, 600),  # SOA TTL is smaller
        (", minimum: 900", 30, 30),  # SOA TTL defaults to the zone TTL
        ("", 3600, 60),  # minimum defaults to 60
    ],
)
def test_negative_ttl_is_min_of_soa_ttl_and_minimum(soa_extra, zone_ttl, negative):
    text = HEAD.replace("hostmaster.example.com.}", f"hostmaster.example.com.{soa_extra}}}").replace(
        "origin: example.com.\n", f"origin: example.com.\nttl: {zone_ttl}\n"
    )
    zone = zone_of(text)
    assert zone.negative_ttl == negative
    assert zone.negative_soa().ttl == negative


# -- reporting everything at once, and hints -------------------------------------


def test_soa_names_checked_even_when_another_top_level_key_is_wrong():
    errors = errors_of(
        """\
        origin: example.com.
        soa: {mname: ns1.example.com, rname: hostmaster.example.com.}
        ns: [ns1.example.com.]
        colour: blue
        records:
          ns1: {A: 192.0.2.1}
        """
    )
    assert any("colour: unknown key" in e for e in errors)
    assert any("soa.mname: name 'ns1.example.com' must be fully qualified" in e for e in errors)


def test_name_without_records_is_an_error():
    error = one_error(records("www: {}\n"))
    assert error.startswith("z.yaml:6:")
    assert "records.www: no records at this name" in error


def test_ttl_written_as_a_record_type_gets_a_hint():
    error = one_error(records("www: {TTL: 60, A: 192.0.2.5}\n"))
    assert "records.www.TTL:" in error and "{ttl: 60, values:" in error
