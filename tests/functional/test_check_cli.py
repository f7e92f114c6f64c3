"""`gdns check` as an operator runs it: every problem as file:line:column: path: message."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<path>\S+): (?P<message>.+)$")

GOOD = """\
origin: example.com.
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com.]
records:
  ns1: {A: 192.0.2.1}
  www: {A: [192.0.2.10, 192.0.2.11], AAAA: "2001:db8::10"}
"""

BAD = """\
origin: example.org.
soa: {mname: ns1.example.org., rname: hostmaster.example.org., refesh: 10}
ns: [ns1.example.org.]
records:
  ns1: {A: 198.51.100.300}
  www: {CNAME: web.example.net., A: 203.0.113.1}
  country: {TXT: NO}
"""


def check(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gdns", "check", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
    )


def test_shipped_example_zones_pass():
    result = check("zones")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("zones/gslb.example.com.yaml: ok: gslb.example.com. serial ")
    assert result.stderr == ""


def test_valid_folder_prints_an_ok_line_per_zone(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yml").write_text(GOOD.replace("example.com.", "example.net."))
    result = check(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'a.yaml'}: ok: example.com. serial ")
    assert lines[1].startswith(f"{tmp_path / 'b.yml'}: ok: example.net. serial ")


def test_every_problem_is_printed_with_its_position_and_exit_is_1(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    result = check(tmp_path)
    assert result.returncode == 1
    bad = tmp_path / "bad.yaml"
    *problems, summary = result.stderr.splitlines()
    assert problems == [
        f"{bad}:2:64: soa.refesh: unknown key 'refesh' (did you mean 'refresh'?)",
        f"{bad}:3:5: ns: name server ns1.example.org. is inside the zone but has no A or AAAA record",
        f"{bad}:5:12: records.ns1.A: '198.51.100.300' is not an IPv4 address",
        f"{bad}:6:9: records.www.CNAME: a CNAME cannot stand beside other data (A)",
    ]
    assert summary == "4 problem(s) in 1 file(s)"
    assert all(ERROR_LINE.match(line) for line in problems)


def test_duplicate_key_is_reported_with_its_position(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD + "  www: {TXT: again}\n")
    result = check(tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'a.yaml'}:7:3: records.www: duplicate key 'www' (first defined at line 6)" in (
        result.stderr.splitlines()
    )


def test_duplicate_zones_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    result = check(tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"{tmp_path / 'b.yaml'}:1:9: origin: zone example.com. is also defined in {tmp_path / 'a.yaml'}"
    )


def test_files_and_folders_can_be_mixed(tmp_path):
    folder = tmp_path / "zones"
    folder.mkdir()
    (folder / "a.yaml").write_text(GOOD)
    single = tmp_path / "single.yaml"
    single.write_text(GOOD.replace("example.com.", "example.net."))
    result = check(folder, single)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_folder_without_zone_files_fails(tmp_path):
    result = check(tmp_path)
    assert result.returncode == 1
    assert "no zone files" in result.stderr


def test_a_file_inside_a_checked_folder_is_not_its_own_duplicate(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    result = check(tmp_path, tmp_path / "a.yaml")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_a_missing_path_does_not_hide_problems_in_the_others(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "good.yaml").write_text(GOOD)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad.yaml").write_text(BAD)
    result = check(tmp_path / "missing", bad, good)
    assert result.returncode == 1
    assert f"{tmp_path / 'missing'}: zones folder does not exist" in result.stderr
    assert f"{bad / 'bad.yaml'}:5:" in result.stderr  # the later path was still checked


GEO = """\
origin: geo.example.
soa: {mname: ns1.geo.example., rname: hostmaster.geo.example.}
ns: [ns1.geo.example.]
records:
  ns1: {A: 192.0.2.1}
pools:
  www:
    strategy: geo
    groups:
      eu: {location: [50.11, 8.68], members: [{address: 192.0.2.20}]}
      us: {location: [39.04, -77.49], members: [{address: 198.51.100.20}]}
    rules:
      - {countries: [DE, "NO"], groups: [eu]}
      - {groups: nearest}
"""


def test_geo_rules_need_a_geoip_database(tmp_path, geoip_db):
    (tmp_path / "geo.yaml").write_text(GEO)
    without = check(tmp_path)
    assert without.returncode == 1
    assert "pools.www.rules[0].countries: this rule needs a GeoIP database" in without.stderr
    assert "pools.www.rules[1].groups: this rule needs a GeoIP database" in without.stderr
    with_db = check(tmp_path, "--geoip-db", geoip_db)
    assert with_db.returncode == 0, with_db.stderr


def test_unreadable_geoip_database_is_reported(tmp_path):
    (tmp_path / "geo.yaml").write_text(GEO)
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_text("not a database")
    result = check(tmp_path, "--geoip-db", bogus)
    assert result.returncode == 1
    assert f"{bogus}: cannot be read" in result.stderr
    assert (
        f"{tmp_path / 'nope.mmdb'}: no such file"
        in check(tmp_path, "--geoip-db", tmp_path / "nope.mmdb").stderr
    )


def test_a_missing_ca_file_is_a_zone_error_with_its_position(tmp_path):
    zone = GOOD + (
        "checks:\n"
        "  web: {type: https, ca: /nonexistent/ca.pem}\n"
        "pools:\n"
        "  app: {check: web, members: [{address: 192.0.2.10}]}\n"
    )
    (tmp_path / "a.yaml").write_text(zone)
    result = check(tmp_path / "a.yaml")
    assert result.returncode == 1
    line = result.stderr.splitlines()[0]
    match = ERROR_LINE.match(line)
    assert match, result.stderr
    assert (match["line"], match["path"]) == ("8", "checks.web.ca"), line
    assert match["message"] == "cannot read the CA file '/nonexistent/ca.pem': No such file or directory"
