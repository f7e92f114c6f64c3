"""Record data parsers: presentation strings and RFC-field mappings, and their errors."""

import pytest
from dnslib import DNSLabel

from gdns.zone.rdata import PARSERS, RdataError, absolute_name, check_labels, target_of


def parse(rtype: str, value):
    return PARSERS[rtype](value)


def fails(rtype: str, value) -> RdataError:
    with pytest.raises(RdataError) as info:
        parse(rtype, value)
    return info.value


# -- names -------------------------------------------------------------------


def test_absolute_name_accepts_fully_qualified_name():
    assert absolute_name("www.example.com.") == DNSLabel("www.example.com.")


def test_absolute_name_requires_trailing_dot():
    assert "fully qualified" in str(pytest.raises(RdataError, absolute_name, "www.example.com").value)


def test_root_only_where_allowed():
    assert absolute_name(".", allow_root=True) == DNSLabel(".")
    with pytest.raises(RdataError):
        absolute_name(".")


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("a..example.com.", "empty label"),
        ("-a.example.com.", "invalid label"),
        ("a-.example.com.", "invalid label"),
        ("a b.example.com.", "invalid label"),
        ("*.example.com.", "'*'"),
        ("x" * 64 + ".example.com.", "longer than 63"),
        (".".join(["a" * 63] * 4) + ".", "255 octets"),
        ("bücher.example.com.", "invalid label"),
    ],
)
def test_bad_names(name, fragment):
    assert fragment in str(pytest.raises(RdataError, absolute_name, name).value)


def test_name_must_be_a_string():
    assert "got a number" in str(pytest.raises(RdataError, absolute_name, 5).value)


def test_underscore_labels_are_allowed():
    assert absolute_name("_sip._udp.example.com.") == DNSLabel("_sip._udp.example.com.")


def test_wildcard_only_as_whole_leftmost_label():
    check_labels(["*", "example", "com"], allow_wildcard=True)
    with pytest.raises(RdataError, match="leftmost"):
        check_labels(["a", "*", "example", "com"], allow_wildcard=True)
    with pytest.raises(RdataError, match="whole leftmost"):
        check_labels(["a*", "example", "com"], allow_wildcard=True)


# -- addresses ---------------------------------------------------------------


def test_a():
    assert str(parse("A", "192.0.2.1")) == "192.0.2.1"


@pytest.mark.parametrize("value", ["192.0.2.256", "192.0.2", "2001:db8::1", "010.0.2.1", "", "192.0.2.1/32"])
def test_a_rejects_non_ipv4(value):
    assert "not an IPv4 address" in str(fails("A", value))


def test_a_rejects_non_string():
    assert "got a number" in str(fails("A", 1))


def test_aaaa():
    assert str(parse("AAAA", "2001:db8::1")) == "2001:db8::1"


@pytest.mark.parametrize("value", ["192.0.2.1", "2001:db8::g", "2001:db8:::1"])
def test_aaaa_rejects_non_ipv6(value):
    assert "not an IPv6 address" in str(fails("AAAA", value))


def test_aaaa_rejects_scope_id():
    assert "scope id" in str(fails("AAAA", "fe80::1%eth0"))


# -- names as data -----------------------------------------------------------


@pytest.mark.parametrize("rtype", ["CNAME", "NS", "PTR"])
def test_name_types(rtype):
    rd = parse(rtype, "target.example.net.")
    assert target_of(rtype, rd) == DNSLabel("target.example.net.")


@pytest.mark.parametrize("rtype", ["CNAME", "NS", "PTR"])
def test_name_types_require_fully_qualified_target(rtype):
    assert "fully qualified" in str(fails(rtype, "target.example.net"))


# -- MX ----------------------------------------------------------------------


def test_mx_from_string():
    rd = parse("MX", "10 mail.example.com.")
    assert (rd.preference, rd.label) == (10, DNSLabel("mail.example.com."))
    assert target_of("MX", rd) == DNSLabel("mail.example.com.")


def test_mx_from_mapping():
    rd = parse("MX", {"preference": 20, "exchange": "mail.example.com."})
    assert (rd.preference, rd.label) == (20, DNSLabel("mail.example.com."))


def test_mx_null_exchange_is_allowed():
    assert parse("MX", "0 .").label == DNSLabel(".")


def test_mx_mapping_unknown_field_points_at_it():
    error = fails("MX", {"preference": 10, "exchange": "mail.example.com.", "priority": 1})
    assert error.path == ("priority",)
    assert "unknown MX field 'priority'" in str(error)


def test_mx_mapping_missing_field():
    assert "missing field 'exchange'" in str(fails("MX", {"preference": 10}))


def test_mx_mapping_bad_exchange_points_at_it():
    error = fails("MX", {"preference": 10, "exchange": "mail"})
    assert error.path == ("exchange",)


@pytest.mark.parametrize("pref", [-1, 65536, "x", True, 1.5])
def test_mx_mapping_bad_preference_points_at_it(pref):
    error = fails("MX", {"preference": pref, "exchange": "mail.example.com."})
    assert error.path == ("preference",)
    assert "preference" in str(error)


@pytest.mark.parametrize("value", ["mail.example.com.", "10", "10 mail.example.com. extra"])
def test_mx_string_wrong_field_count(value):
    assert "needs 2 fields" in str(fails("MX", value))


@pytest.mark.parametrize("digits", ["²", "١٠"])
def test_non_ascii_digits_are_an_error_not_a_crash(digits):
    assert "must be an integer" in str(fails("MX", f"{digits} mail.example.com."))


def test_mx_rejects_other_kinds():
    assert "got a list" in str(fails("MX", [10, "mail.example.com."]))


# -- SRV ---------------------------------------------------------------------


def test_srv_from_string():
    rd = parse("SRV", "10 60 5060 sip.example.com.")
    assert (rd.priority, rd.weight, rd.port, rd.target) == (10, 60, 5060, DNSLabel("sip.example.com."))
    assert target_of("SRV", rd) == DNSLabel("sip.example.com.")


def test_srv_from_mapping():
    rd = parse("SRV", {"priority": 1, "weight": 2, "port": 443, "target": "."})
    assert (rd.priority, rd.weight, rd.port, rd.target) == (1, 2, 443, DNSLabel("."))


@pytest.mark.parametrize("field", ["priority", "weight", "port"])
def test_srv_mapping_out_of_range_field_points_at_it(field):
    value = {"priority": 1, "weight": 2, "port": 3, "target": "t.example.com."}
    value[field] = 70000
    error = fails("SRV", value)
    assert error.path == (field,)
    assert "between 0 and 65535" in str(error)


def test_srv_mapping_bad_target_points_at_it():
    error = fails("SRV", {"priority": 1, "weight": 2, "port": 3, "target": "t.example.com"})
    assert error.path == ("target",)


def test_srv_string_wrong_field_count():
    assert "needs 4 fields" in str(fails("SRV", "10 60 sip.example.com."))


# -- CAA ---------------------------------------------------------------------


def test_caa_from_quoted_string():
    rd = parse("CAA", '0 issue "ca.example.net"')
    assert (rd.flags, rd.tag, rd.value) == (0, "issue", "ca.example.net")


def test_caa_from_bare_string():
    rd = parse("CAA", "128 iodef mailto:security@example.com")
    assert (rd.flags, rd.tag, rd.value) == (128, "iodef", "mailto:security@example.com")


def test_caa_string_unescapes_quotes():
    assert parse("CAA", r'0 issue "ca.example.net; a=\"b\""').value == 'ca.example.net; a="b"'


def test_caa_from_mapping():
    rd = parse("CAA", {"flags": 0, "tag": "issuewild", "value": ";"})
    assert (rd.flags, rd.tag, rd.value) == (0, "issuewild", ";")


def test_caa_flags_out_of_range():
    assert fails("CAA", {"flags": 256, "tag": "issue", "value": "x"}).path == ("flags",)
    assert "between 0 and 255" in str(fails("CAA", '256 issue "x"'))


def test_caa_bad_tag():
    assert "tag" in str(fails("CAA", {"flags": 0, "tag": "is-sue", "value": "x"}))


def test_caa_value_must_be_string():
    assert fails("CAA", {"flags": 0, "tag": "issue", "value": 5}).path == ("value",)


def test_caa_malformed_string():
    assert "CAA must look like" in str(fails("CAA", "issue ca.example.net"))


# -- TXT ---------------------------------------------------------------------


def test_txt():
    assert parse("TXT", "v=spf1 -all").data == [b"v=spf1 -all"]


def test_long_txt_is_split_into_character_strings():
    rd = parse("TXT", "a" * 300)
    assert [len(chunk) for chunk in rd.data] == [255, 45]


def test_empty_txt():
    assert parse("TXT", "").data == [b""]


@pytest.mark.parametrize("value, kind", [(5, "a number"), (True, "a boolean"), (None, "null")])
def test_txt_must_be_a_string(value, kind):
    assert kind in str(fails("TXT", value))


def test_target_of_types_without_targets():
    assert target_of("A", parse("A", "192.0.2.1")) is None
    assert target_of("TXT", parse("TXT", "x")) is None
