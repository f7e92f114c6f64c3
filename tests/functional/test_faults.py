"""Faults end to end: the real `gdns serve` facing backends that hang, reset, send garbage or
bodies without end; zone files half-written, unreadable or gone; a GeoIP database that is
missing, corrupt or replaced while it runs; a state file on a full disk. Each gets a clear
error, and the server keeps answering from its last good state.

Backends are real servers on 127.0.0.x (tests/backends.py); nothing leaves the host.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import yaml

from tests.backends import Backend, InThread, RawServer
from tests.conftest import wait_for
from tests.functional import test_web as web
from tests.functional.test_web import api, metric, metrics

# -- zone files ------------------------------------------------------------------------------


def write_zone(folder: Path, origin: str, pools: dict | None = None, checks: dict | None = None, **more):
    """One zone file, written as careful tools do (a temporary file renamed over the old)."""
    doc = {
        "origin": f"{origin}.",
        "ttl": 300,
        "soa": {"mname": f"ns1.{origin}.", "rname": f"hostmaster.{origin}."},
        "ns": [f"ns1.{origin}."],
        "records": {"ns1": {"A": "192.0.2.53"}, "www": {"A": "192.0.2.80"}},
        **more,
    }
    if checks:
        doc["checks"] = checks
    if pools:
        doc["pools"] = pools
    path = folder / f"{origin}.yaml"
    tmp = folder / f".{origin}.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)
    return path


def http_check(port: int, interval: float = 0.3, timeout: float = 0.2, **more) -> dict:
    check = {"type": "http", "port": port, "interval": interval, "timeout": timeout, "rise": 1, "fall": 1}
    return check | more


def addresses(reply: dns.message.Message) -> set[str]:
    return {rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


def answered(server, name: str, tcp: bool = False) -> set[str]:
    reply = server.query(name, "A", tcp=tcp, timeout=2.0)
    assert reply.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(reply.rcode())
    return addresses(reply)


def members(server) -> dict[str, dict]:
    """Every member of every pool, by address, as /api/v1/pools shows it."""
    out = {}
    for pool in api(server, "/api/v1/pools").json["pools"]:
        for group in pool["groups"]:
            for m in group["members"]:
                out[m["address"]] = m
    return out


@pytest.fixture
def servers():
    """Factory: servers(InThread-able server) -> InThread, closed at teardown."""
    made: list[InThread] = []

    def make(server) -> InThread:
        made.append(InThread(server))
        return made[-1]

    yield make
    for server in made:
        server.close()


# == backends ===================================================================================


def test_a_hanging_backend_goes_down_after_fall_and_answers_stay_prompt(tmp_path, start_server, servers):
    """A backend that accepts and never answers: each probe gives up at the check's timeout,
    the member goes down after `fall` of them, and meanwhile DNS (UDP on its threads, TCP on
    the event loop the probes share) answers at once."""
    good = servers(Backend("127.0.0.31"))
    timeout, interval, fall = 0.4, 0.5, 2
    check = http_check(good.port, interval, timeout, fall=fall, down_interval=interval)
    listed = [{"address": "127.0.0.31", "check": "c"}, {"address": "192.0.2.9"}]
    pools = {"www2": {"answers": 2, "members": listed}}
    write_zone(tmp_path, "f.example", pools, {"c": check})
    server = start_server(tmp_path)
    assert answered(server, "www2.f.example") == {"127.0.0.31", "192.0.2.9"}

    good.server.delay = 30  # from now on every request hangs (until the backend closes)
    began = time.monotonic()
    slowest, count = 0.0, 0
    while "127.0.0.31" in answered(server, "www2.f.example") and time.monotonic() - began < 5:
        for tcp in (False, True):
            sent = time.monotonic()
            answered(server, "www2.f.example", tcp=tcp)
            slowest, count = max(slowest, time.monotonic() - sent), count + 1
        time.sleep(0.01)
    went_down = time.monotonic() - began
    assert "127.0.0.31" not in answered(server, "www2.f.example")
    # At least `fall` probes timed out (a probe may have begun just before the change), and
    # not many more: one interval and one timeout per probe, plus scheduling slack.
    assert (fall - 1) * interval + timeout <= went_down <= fall * (interval * 1.1 + timeout) + interval + 0.5
    assert count > 20 and slowest < timeout / 4, (count, slowest)
    line = f"127.0.0.31:{good.port} (check c) is DOWN (timeout after 0.4s; 2 failure(s) in a row)"
    assert server.wait_for_log(line)
    assert members(server)["127.0.0.31"]["reason"] == "timeout after 0.4s"
    assert metric(metrics(server), "gdns_health_checks_total", result="failure", reason="timeout") >= fall


def test_misbehaving_backends_each_get_a_reason_and_a_reason_class(tmp_path, start_server, servers):
    """Reset, not HTTP, a broken status line, a body that breaks off, a body without end: each
    member goes down with its own reason, counted under a bounded reason class."""
    reset = servers(RawServer("reset", "127.0.0.32"))
    garbage = servers(RawServer("garbage", "127.0.0.33"))
    status = servers(RawServer("bad-status", "127.0.0.34"))
    short = servers(RawServer("short-body", "127.0.0.35"))
    endless = servers(Backend("127.0.0.36"))
    checks = {
        "reset": http_check(reset.port),
        "garbage": http_check(garbage.port),
        "status": http_check(status.port),
        "short": http_check(short.port, body="abc"),
        "endless": http_check(endless.port, path="/endless", body="NEVER", timeout=1.0, interval=1.5),
    }
    listed = [{"address": f"127.0.0.{n}", "check": c} for n, c in zip(range(32, 37), checks, strict=True)]
    pools = {"www2": {"answers": 5, "members": [*listed, {"address": "192.0.2.9"}]}}
    write_zone(tmp_path, "f.example", pools, checks)
    server = start_server(tmp_path)
    assert answered(server, "www2.f.example") == {"192.0.2.9"}  # the first probe round decided

    expected = {
        "127.0.0.32": ("connection reset", "reset"),
        "127.0.0.33": ("bad response: Bad status line", "protocol"),
        "127.0.0.34": ("bad response: Bad status line: Invalid status code", "protocol"),
        "127.0.0.35": ("bad response body: Response payload is not completed", "body"),
        "127.0.0.36": ("body does not contain 'NEVER'", "body"),
    }
    shown = members(server)
    for address, (reason, _) in expected.items():
        assert shown[address]["state"] == "down", shown[address]
        assert shown[address]["reason"].startswith(reason), shown[address]["reason"]
        assert len(shown[address]["reason"]) <= 200 and "\n" not in shown[address]["reason"]
        assert server.wait_for_log(f"{address}:", timeout=1)  # the transition's log line names it
    samples = metrics(server)
    for label in ("reset", "protocol", "body"):
        assert metric(samples, "gdns_health_checks_total", result="failure", reason=label) >= 1, label
    assert metric(samples, "gdns_health_checks_total", result="failure", reason="error") == 0
    # The endless body was read only up to the limit: the backend gave up soon after.
    assert endless.server.endless_sent < 16 * 1024 * 1024


# == the override state file on a full disk =====================================================


def _tmpfs_in_a_mount_namespace(folder: Path) -> bool:
    """Whether this host lets us mount a small tmpfs in a private mount namespace (root with
    CAP_SYS_ADMIN, unshare(1)): the mount is gone when the namespace's last process ends."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=16k gdns-test {shlex.quote(str(folder))}"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.mark.parametrize("how", ["full-tmpfs", "file-size-limit"])
def test_a_full_disk_for_the_state_file_is_507_and_changes_nothing(tmp_path, start_server, how):
    """The admin API answers 507, logs why, changes nothing (not the table, not the answers,
    no temporary file left behind) and the server keeps serving; once there is room again the
    same request works. A 16 KiB tmpfs, filled up, is a real full disk (ENOSPC); where mounts
    are not allowed, a file size limit of 0 (EFBIG) fails the same write."""
    zones, state_dir = tmp_path / "zones", tmp_path / "state"
    zones.mkdir()
    state_dir.mkdir()
    web.write_zone(zones, web.ORIGIN, web.www_pool())
    (tmp_path / "token").write_text(web.TOKEN)
    state = state_dir / "state.json"
    if how == "full-tmpfs":
        if not _tmpfs_in_a_mount_namespace(state_dir):
            pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs root and unshare)")
        folder = shlex.quote(str(state_dir))
        script = f"mount -t tmpfs -o size=16k gdns-full {folder} && (head -c 1M /dev/zero > {folder}/fill)"
        launcher = lambda cmd: ["unshare", "-m", "sh", "-c", script + ' 2>/dev/null; exec "$@"', "sh", *cmd]  # noqa: E731
        error = "No space left on device"
    else:
        launcher = lambda cmd: ["sh", "-c", 'ulimit -f 0 && exec "$@"', "sh", *cmd]  # noqa: E731
        error = "File too large"
    args = ("--admin-token-file", str(tmp_path / "token"), "--state-file", str(state))
    server = start_server(zones, *args, launcher=launcher)
    # The server's own view of the folder: through /proc, into its mount namespace.
    seen = Path(f"/proc/{server.proc.pid}/root{state_dir}")

    mark = len(server.lines)
    reply = web.override(server, web.KEY_10, "down")
    assert reply.status == 507, reply.body
    assert reply.json["error"] == f"state file {state}: cannot be written ({error})"
    assert server.wait_for_log(
        f"state file {state}: cannot be written ({error}); the overrides are unchanged", start=mark
    )
    assert web.api(server, "/api/v1/overrides").json == {"overrides": {}}
    assert web.member_json(server, web.KEY_10)["state"] == "up"
    assert web.answered_over(server, "www.w.example", 30) == {"192.0.2.10", "192.0.2.12"}
    assert sorted(p.name for p in seen.iterdir()) == (["fill"] if how == "full-tmpfs" else [])
    assert server.proc.poll() is None

    if how == "full-tmpfs":  # room again: the same request works, and is on disk
        (seen / "fill").unlink()
        assert web.override(server, web.KEY_10, "down").status == 200
        assert json.loads((seen / "state.json").read_text())["overrides"][web.KEY_10]["state"] == "down"
        assert web.answered_over(server, "www.w.example", 20) == {"192.0.2.12"}


# == zone files =================================================================================

ZONE = """\
origin: {origin}.
ttl: 300
soa: {{mname: ns1.{origin}., rname: hostmaster.{origin}.}}
ns: [ns1.{origin}.]
records:
  ns1: {{A: 192.0.2.53}}
  www: {{A: {address}}}
  api: {{A: [192.0.2.90, 192.0.2.91]}}
"""


def zone_text(origin: str, address: str) -> str:
    return ZONE.format(origin=origin, address=address)


def put(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def www(server, origin: str = "f.example") -> str | None:
    reply = server.query(f"www.{origin}", "A", timeout=2.0)
    return reply.answer[0][0].address if reply.rcode() == dns.rcode.NOERROR and reply.answer else None


def test_a_half_written_zone_file_keeps_the_last_good_zones(tmp_path, start_server):
    """A writer that is not atomic, caught half-way (the file cut inside a line): the reload
    names the file and position, the last good zones keep answering, and the rest of the
    write brings the new version in."""
    path = tmp_path / "f.example.yaml"
    put(path, zone_text("f.example", "192.0.2.80"))
    server = start_server(tmp_path, "--reload-interval", "0.2")
    assert www(server) == "192.0.2.80"

    new = zone_text("f.example", "192.0.2.81")
    cut = new.index("192.0.2.91") + 4  # inside the last line's flow sequence: not YAML yet
    mark = len(server.lines)
    with path.open("w") as f:
        f.write(new[:cut])
        f.flush()
        # The error, with file and position (where the cut left the sequence unclosed).
        assert server.wait_for_log(
            f"{path}:9:1: (document): YAML syntax: did not find expected ','", start=mark
        )
        assert server.wait_for_log("still serving the previous zones", start=mark)
        for _ in range(10):
            assert www(server) == "192.0.2.80"
        assert len(server.query("api.f.example", "A").answer[0]) == 2
        f.write(new[cut:])
    assert wait_for(lambda: www(server) == "192.0.2.81", timeout=5)
    assert web.api(server, "/api/v1/reload").json["last"]["ok"] is True


@pytest.mark.parametrize("how", ["a-folder", "a-dangling-symlink", "no-permission"])
def test_an_unreadable_zone_file_is_named_and_the_last_good_zones_stay(tmp_path, start_server, how):
    put(tmp_path / "f.example.yaml", zone_text("f.example", "192.0.2.80"))
    other = tmp_path / "g.example.yaml"
    put(other, zone_text("g.example", "192.0.2.70"))
    if how == "no-permission" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode; the other cases cover an unreadable file")
    server = start_server(tmp_path, "--reload-interval", "0.2")
    assert www(server, "g.example") == "192.0.2.70"

    mark = len(server.lines)
    if how == "a-folder":
        other.unlink()
        other.mkdir()
        expected = f"{other}: cannot read: Is a directory"
    elif how == "a-dangling-symlink":
        other.unlink()
        other.symlink_to(tmp_path / "nowhere.yaml")
        expected = f"{other}: cannot read: No such file or directory"
    else:
        other.chmod(0)
        expected = f"{other}: cannot read: Permission denied"
    assert server.wait_for_log(expected, start=mark), server.log()[-2000:]
    assert server.wait_for_log("failed with 1 problem(s); still serving the previous zones", start=mark)
    assert www(server, "g.example") == "192.0.2.70" and www(server) == "192.0.2.80"
    assert web.api(server, "/api/v1/reload").json["last"]["errors"] == [expected]

    if other.is_dir() and not other.is_symlink():
        other.rmdir()
    else:
        other.unlink(missing_ok=True)
    put(other, zone_text("g.example", "192.0.2.71"))  # mended
    assert wait_for(lambda: www(server, "g.example") == "192.0.2.71", timeout=5)


def test_a_deleted_zone_file_or_folder(tmp_path, start_server):
    """A file removed is a zone removed (the folder is the truth), said in the log. The whole
    folder removed, or emptied, is taken for an accident: the last good zones stay."""
    folder = tmp_path / "zones"
    folder.mkdir()
    put(folder / "f.example.yaml", zone_text("f.example", "192.0.2.80"))
    put(folder / "g.example.yaml", zone_text("g.example", "192.0.2.70"))
    server = start_server(folder, "--reload-interval", "0.2")

    mark = len(server.lines)
    (folder / "g.example.yaml").unlink()
    gone = f"zone g.example. is no longer served: its file {folder / 'g.example.yaml'} is gone"
    assert server.wait_for_log(gone, start=mark)
    assert server.query("www.g.example", "A").rcode() == dns.rcode.REFUSED
    assert www(server) == "192.0.2.80"

    mark = len(server.lines)
    shutil.rmtree(folder)
    assert server.wait_for_log(f"{folder}: zones folder does not exist", start=mark)
    assert server.wait_for_log("still serving the previous zones", start=mark)
    time.sleep(0.5)  # polling on: the error is said once, not at every look
    assert sum("zones folder does not exist" in line for line in server.lines[mark:]) == 1
    assert www(server) == "192.0.2.80"

    folder.mkdir()
    put(folder / "f.example.yaml", zone_text("f.example", "192.0.2.81"))
    assert wait_for(lambda: www(server) == "192.0.2.81", timeout=5)


# == the GeoIP database =========================================================================

GEO_POOL = {
    "geo": {
        "strategy": "geo",
        "groups": {
            "eu": {"members": [{"address": "192.0.2.20"}]},
            "us": {"members": [{"address": "198.51.100.20"}]},
        },
        "rules": [{"countries": ["DE"], "groups": ["eu"]}, {"groups": ["us"]}],
    }
}


def geo_db(path: Path, country: str) -> bytes:
    """A database placing loopback (where the test's queries come from) in `country`."""
    from tests.geodb import NETWORKS, build

    where = {"DE": ("DE", "EU", 50.11, 8.68), "US": ("US", "NA", 39.04, -77.49)}[country]
    return build(path, dict(NETWORKS, **{"127.0.0.0/8": where})).read_bytes()


def test_a_geoip_database_that_cannot_be_used_at_start_is_one_clear_error(tmp_path):
    write_zone(tmp_path, "f.example", GEO_POOL)
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(geo_db(tmp_path / "good.mmdb", "DE")[:200])  # truncated
    cmd = [sys.executable, "-m", "gdns", "serve", "--zones", str(tmp_path), "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*cmd, "--no-web", "--geoip-db", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"gdns: error: GeoIP database {bad}: cannot be read (Error opening database file"
    )
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_geoip_database_replaced_at_run_time(tmp_path, start_server, workers):
    """Rewritten in place (as `cp` does) with a broken file: no crash, an error, the old
    database answers. Replaced with a good one: taken (by every worker), and geo answers
    remembered for a client are forgotten. Deleted: the one in memory goes on."""
    zones = tmp_path / "zones"
    zones.mkdir()
    write_zone(zones, "f.example", GEO_POOL)
    path = tmp_path / "city.mmdb"
    path.write_bytes(geo_db(tmp_path / "de.mmdb", "DE"))
    us = geo_db(tmp_path / "us.mmdb", "US")
    server = start_server(
        zones, "--geoip-db", str(path), "--reload-interval", "0.2", "--workers", str(workers)
    )

    def all_answers(expected: set[str]) -> bool:
        return all(answered(server, "geo.f.example") == expected for _ in range(20))

    assert all_answers({"192.0.2.20"})  # loopback is in DE: the eu group

    mark = len(server.lines)
    with path.open("r+b") as f:  # in place, as `cp broken.mmdb city.mmdb` would
        f.truncate(0)
        f.write(us[:300])
    assert server.wait_for_log(f"GeoIP database {path}: cannot be read", start=mark)
    assert server.wait_for_log("still using the database read before (GeoIP2-City, built", start=mark)
    assert all_answers({"192.0.2.20"})
    assert server.proc.poll() is None

    mark = len(server.lines)
    with path.open("r+b") as f:
        f.truncate(0)
        f.write(us)
    assert wait_for(lambda: all_answers({"198.51.100.20"}), timeout=5)
    reloaded = f"GeoIP database {path} reloaded: GeoIP2-City"
    assert wait_for(
        lambda: sum(reloaded in line for line in server.lines[mark:]) == 1 + (workers > 1) * workers
    )
    samples = metrics(server)
    assert metric(samples, "gdns_geoip_reloads_total", result="failure") == 1
    assert metric(samples, "gdns_geoip_reloads_total", result="success") == 1

    path.unlink()
    time.sleep(0.5)
    assert all_answers({"198.51.100.20"})
    assert server.proc.poll() is None
