"""`gdns serve --why-from CIDR`: `TXT _why.<pool>` answers the decision trace, end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

DIG = shutil.which("dig")


def trace(response: dns.message.Message) -> list[str]:
    """The trace lines of a `_why` answer, in order, after checking each record's shape."""
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    out = []
    for rrset in response.answer:
        assert rrset.rdtype == dns.rdatatype.TXT and rrset.ttl == 0
        for rdata in rrset:
            [string] = rdata.strings  # one line per TXT string
            assert len(string) <= 255
            number, text = string.decode().split(" ", 1)
            out.append((int(number), text))
    out.sort()
    assert [n for n, _ in out] == list(range(len(out)))
    return [text for _, text in out]


def ecs(subnet: str, prefix: int) -> list:
    return [dns.edns.ECSOption(subnet, prefix)]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(enabled for 127.0.0.0/8, enabled for somebody else only, feature off)."""
    from tests.conftest import EXAMPLE_ZONES, GdnsServer

    folder = tmp_path_factory.mktemp("zones")
    for path in EXAMPLE_ZONES.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    started = []
    try:
        for extra in (
            ["--why-from", "192.0.2.0/24", "--why-from", "127.0.0.0/8"],
            ["--why-from", "192.0.2.0/24"],
            [],
        ):
            started.append(GdnsServer(folder, "--no-web", *extra))
        yield started
    finally:
        for server in started:
            server.stop()


def test_trace_over_udp_and_tcp(servers):
    on = servers[0]
    for tcp in (False, True):
        text = trace(on.query("_why.app.gslb.example.com", "TXT", tcp=tcp, use_edns=0))
        assert text[0] == "gdns trace for resolver 127.0.0.1, no ECS: deciding on the resolver's address"
        assert "pool app.gslb.example.com. strategy weighted sticky, answers 1" in text
        assert "group order: main" in text
        assert sum(t.endswith("<- picked") for t in text) == 1
        assert "ttl 30: normal, the pool's ttl (no degraded_ttl set)" in text
        assert "ECS scope /24" in text


def test_trace_matches_the_answer_the_client_gets(servers):
    on = servers[0]
    [rrset] = on.query("app.gslb.example.com", "A").answer
    [address] = [r.address for r in rrset]
    text = trace(on.query("_why.app.gslb.example.com", "TXT", use_edns=0))
    assert f"outcome answer: {address}; ttl 30" in text


def test_health_reasons_and_degraded_ttl_from_live_probes(servers):
    # The example's `web` pool probes 127.0.0.21/22:8080, where nothing listens.
    text = trace(servers[0].query("_why.web.gslb.example.com", "TXT", use_edns=0))
    assert "127.0.0.21 weight 1, down (connection refused) <- picked" in text
    assert "no healthy IPv4 member in any group: when_all_down is all" in text
    assert "ttl 5: degraded (degraded_ttl 5; not up: 127.0.0.21, 127.0.0.22)" in text


def test_why6_traces_aaaa(servers):
    text = trace(servers[0].query("_why6.app.gslb.example.com", "TXT", use_edns=0))
    assert "app.gslb.example.com. AAAA from 127.0.0.1" in text
    assert "outcome answer: 2001:db8::10; ttl 30" in text


def test_ecs_changes_the_trace(servers):
    on = servers[0]
    ap = on.query("_why.geo.gslb.example.com", "TXT", use_edns=0, options=ecs("203.0.113.0", 24))
    eu = on.query("_why.geo.gslb.example.com", "TXT", use_edns=0, options=ecs("198.51.100.0", 24))
    ap_text, eu_text = trace(ap), trace(eu)
    assert "decision: rule 0 (subnet 203.0.113.0/24): groups ap, eu" in ap_text
    assert "outcome answer: 203.0.113.20; ttl 30" in ap_text
    assert "reply carries ECS 203.0.113.0/24 with scope /24" in ap_text
    assert "group order: eu > ap" in eu_text
    assert "outcome answer: 192.0.2.20; ttl 30" in eu_text
    [option] = ap.options
    assert option.scopelen == 24  # the trace is valid for this subnet only


@pytest.mark.parametrize(
    ("name", "qtype"),
    [
        ("_why.app.gslb.example.com", "TXT"),
        ("_why6.app.gslb.example.com", "TXT"),
        ("_why.app.gslb.example.com", "A"),
        ("_why.www.gslb.example.com", "TXT"),
    ],
)
def test_not_allowed_or_off_answers_as_without_the_feature(servers, name, qtype):
    on, elsewhere, off = servers
    plain = off.query(name, qtype)
    assert plain.rcode() == dns.rcode.NXDOMAIN
    for server in [elsewhere] + ([on] if qtype != "TXT" or "www" in name else []):
        response = server.query(name, qtype)
        assert response.rcode() == plain.rcode() and response.flags == plain.flags
        assert (response.answer, response.authority, response.additional) == (
            plain.answer,
            plain.authority,
            plain.additional,
        )


def test_a_long_trace_is_truncated_over_udp_and_whole_over_tcp(servers):
    on = servers[0]
    small = on.query("_why.geo.gslb.example.com", "TXT")  # no EDNS: 512 bytes at most
    assert small.flags & dns.flags.TC
    assert len(trace(on.query("_why.geo.gslb.example.com", "TXT", tcp=True))) > 10


@pytest.mark.skipif(DIG is None, reason="dig is not installed")
def test_dig(servers):
    on = servers[0]
    cmd = [DIG, f"@{on.host}", "-p", str(on.port), "+time=2", "+tries=1", "TXT", "_why.geo.gslb.example.com"]
    out = subprocess.run([*cmd, "+subnet=203.0.113.0/24"], capture_output=True, text=True, timeout=15).stdout
    assert "status: NOERROR" in out and "flags: qr aa" in out
    assert '\tTXT\t"06 group order: ap > eu"' in out
    assert "_why.geo.gslb.example.com. 0\tIN\tTXT" in out
    short = subprocess.run([*cmd, "+short"], capture_output=True, text=True, timeout=15).stdout
    assert '"06 group order: eu > ap"' in short.splitlines()


@pytest.mark.parametrize(
    ("option", "value"), [("--why-from", "not-a-network"), ("--query-log-sample", "1.5")]
)
def test_bad_options_are_refused(option, value):
    result = subprocess.run(
        [sys.executable, "-m", "gdns", "serve", option, value], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert f"argument {option}" in result.stderr
