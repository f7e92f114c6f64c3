"""What an operator sees with `dig`: status, flags and sections, over UDP and TCP."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

DIG = shutil.which("dig")
pytestmark = pytest.mark.skipif(
    DIG is None and not os.environ.get("CI"), reason="dig is not installed (required when CI is set)"
)


@pytest.fixture(params=[False, True], ids=["udp", "tcp"])
def tcp(request) -> bool:
    return request.param


def dig(server, *args: str, tcp: bool = False) -> str:
    assert DIG is not None, "dig must be installed in CI"
    cmd = [DIG, f"@{server.host}", "-p", str(server.port), "+time=2", "+tries=1", *args]
    if tcp:
        cmd.append("+tcp")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def header(output: str) -> tuple[str, set[str]]:
    status = re.search(r"status: (\w+)", output)
    flags = re.search(r";; flags: ([a-z ]+);", output)
    assert status and flags, output
    return status.group(1), set(flags.group(1).split())


def section(output: str, name: str) -> list[list[str]]:
    """The records of one section, each split on whitespace."""
    match = re.search(rf";; {name} SECTION:\n(.*?)(?:\n\n|\Z)", output, re.S)
    if match is None:
        return []
    return [line.split() for line in match.group(1).splitlines() if line and not line.startswith(";")]


def test_dig_answer(example_server, tcp):
    out = dig(example_server, "HoSt.TeSt.ExAmPlE", "A", "+norec", tcp=tcp)
    status, flags = header(out)
    assert status == "NOERROR"
    assert flags == {"qr", "aa"}  # no rd (not asked), no ra (we never recurse)
    assert section(out, "ANSWER") == [["HoSt.TeSt.ExAmPlE.", "3600", "IN", "A", "192.0.2.2"]]
    assert ";HoSt.TeSt.ExAmPlE.\t" in out  # the question, in the client's case
    assert "udp: 1232" in out  # our OPT


def test_dig_rd_is_copied_and_ra_stays_clear(example_server, tcp):
    status, flags = header(dig(example_server, "host.test.example", "AAAA", "+rec", tcp=tcp))
    assert status == "NOERROR"
    assert flags == {"qr", "aa", "rd"}


def test_dig_nxdomain_with_soa(example_server, tcp):
    out = dig(example_server, "nothere.test.example", "A", tcp=tcp)
    status, flags = header(out)
    assert status == "NXDOMAIN" and "aa" in flags
    assert not section(out, "ANSWER")
    [soa] = section(out, "AUTHORITY")
    assert soa[:4] == ["test.example.", "120", "IN", "SOA"]
    assert soa[-1] == "120"


def test_dig_referral(example_server, tcp):
    out = dig(example_server, "www.child.test.example", "A", "+norec", tcp=tcp)
    status, flags = header(out)
    assert status == "NOERROR" and flags == {"qr"}
    assert sorted(r[4] for r in section(out, "AUTHORITY")) == ["ns.child.test.example.", "ns.example.net."]
    glue = {(r[0], r[3], r[4]) for r in section(out, "ADDITIONAL")}
    assert glue == {
        ("ns.child.test.example.", "A", "192.0.2.53"),
        ("ns.child.test.example.", "AAAA", "2001:db8::53"),
    }


def test_dig_truncation_and_tcp_fallback(example_server):
    out = dig(example_server, "big.test.example", "A", "+noedns", "+ignore")
    status, flags = header(out)
    assert status == "NOERROR" and "tc" in flags
    full = dig(example_server, "big.test.example", "A", "+noedns")  # dig retries over TCP
    assert "tc" not in header(full)[1]
    assert len(section(full, "ANSWER")) == 40


def test_dig_ecs_echo_and_badvers(example_server, tcp):
    out = dig(example_server, "host.test.example", "A", "+subnet=198.51.100.0/24", tcp=tcp)
    assert "CLIENT-SUBNET: 198.51.100.0/24/0" in out
    assert header(out)[0] == "NOERROR"
    bad = dig(example_server, "host.test.example", "A", "+edns=1", "+noednsnegotiation", tcp=tcp)
    assert header(bad)[0] == "BADVERS"


def test_dig_chaos_version(example_server, tcp):
    out = dig(example_server, "version.bind", "TXT", "CH", "+short", tcp=tcp)
    assert out.strip() == '"gdns-test"'
