"""`gdns serve --workers 2` end to end: real worker processes sharing the port (SO_REUSEPORT),
queried over real UDP and TCP with dnspython from fresh sockets (each has its own source
port, which is what the kernel spreads queries over), and watched through /metrics.

Which worker answered is read from gdns_worker_queries_total{worker="N"}: each worker counts
its own queries and reports them to the instance every second. A check that "every worker"
sees something sends QUERIES queries from fresh sockets, asserts every answer, and asserts
that each worker's counter moved: with two workers, all of them landing on one worker has a
chance of 2**-(QUERIES - 1).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse

import dns.rcode
import dns.rdatatype
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.backends import ThreadedBackend
from tests.conftest import ROOT, GdnsServer, wait_for
from tests.functional.test_web import api

TOKEN = "workers-test-token"
ORIGIN = "wk.example"
QUERIES = 40
OVER = f"over.{ORIGIN}."
KEY_10 = f"{OVER}/default/192.0.2.10"
_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def write_zone(folder, generation: int, primary: ThreadedBackend, secondary: ThreadedBackend) -> None:
    def check(b: ThreadedBackend) -> dict:
        return {"type": "http", "port": b.port, "path": "/health", "interval": 0.2, "timeout": 0.1}

    doc = {
        "origin": f"{ORIGIN}.",
        "ttl": 60,
        "soa": {"mname": f"ns1.{ORIGIN}.", "rname": f"hostmaster.{ORIGIN}."},
        "ns": [f"ns1.{ORIGIN}."],
        "records": {"ns1": {"A": "192.0.2.53"}, "marker": {"TXT": f"generation-{generation}"}},
        "checks": {
            "a": {**check(primary), "rise": 1, "fall": 1},
            "b": {**check(secondary), "rise": 1, "fall": 1},
        },
        "pools": {
            "over": {"members": [{"address": "192.0.2.10"}, {"address": "192.0.2.11"}]},
            "checked": {
                "members": [
                    {"address": primary.host, "check": "a"},
                    {"address": secondary.host, "check": "b"},
                ]
            },
        },
    }
    tmp = folder / f".{ORIGIN}.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, folder / f"{ORIGIN}.yaml")


# -- helpers --------------------------------------------------------------------------------


def worker_pids(server: GdnsServer) -> dict[int, int]:
    """The latest PID of each worker, from the instance's log."""
    pids: dict[int, int] = {}
    for line in list(server.lines):
        match = _STARTED.search(line)
        if match:
            pids[int(match.group(1))] = int(match.group(2))
    return pids


def samples(server: GdnsServer) -> list:
    text = api(server, "/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def per_worker(server: GdnsServer) -> dict[str, float]:
    return {s.labels["worker"]: s.value for s in samples(server) if s.name == "gdns_worker_queries_total"}


def total_queries(server: GdnsServer) -> float:
    return sum(s.value for s in samples(server) if s.name == "gdns_dns_queries_total")


def from_every_worker(server: GdnsServer, ask, count: int = QUERIES) -> list:
    """`ask()` `count` times (each from a fresh socket); returns the results once every worker's
    counter shows it answered some of them (reports come every second)."""
    before = per_worker(server)
    results = [ask(i) for i in range(count)]

    def moved() -> dict[str, float]:
        now = per_worker(server)
        return {w: now[w] - before.get(w, 0) for w in now}

    assert wait_for(lambda: sum(moved().values()) >= count, timeout=5), (before, per_worker(server))
    deltas = moved()
    assert len(deltas) == 2 and all(d > 0 for d in deltas.values()), deltas
    return results


def settled(check) -> bool:
    """`check()` holds for ten queries in a row (a change reaches the workers within
    milliseconds of the instance making it, but a query may beat it there)."""
    return wait_for(lambda: all(check() for _ in range(10)), timeout=5)


def a_records(server: GdnsServer, name: str, tcp: bool = False) -> set[str]:
    reply = server.query(name, "A", tcp=tcp, timeout=2.0)
    assert reply.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(reply.rcode())
    return {rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


def marker(server: GdnsServer, tcp: bool = False) -> str:
    reply = server.query(f"marker.{ORIGIN}.", "TXT", tcp=tcp, timeout=2.0)
    return b"".join(rd.strings[0] for rrset in reply.answer for rd in rrset).decode()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- one instance with two workers for most tests ---------------------------------------------


@pytest.fixture(scope="module")
def backends():
    made = [ThreadedBackend("127.0.0.31"), ThreadedBackend("127.0.0.32")]
    yield made
    for b in made:
        b.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, backends):
    base = tmp_path_factory.mktemp("workers")
    zones = base / "zones"
    zones.mkdir()
    write_zone(zones, 1, *backends)
    (base / "token").write_text(TOKEN)
    server = GdnsServer(
        zones, "--workers", "2", "--reload-interval", "0", "--admin-token-file", str(base / "token")
    )
    yield server
    server.stop()


def test_every_worker_answers_and_metrics_count_them(srv):
    assert sorted(worker_pids(srv)) == [1, 2]
    assert api(srv, "/readyz").json == {"status": "ready"}
    before = total_queries(srv)
    answers = from_every_worker(srv, lambda i: a_records(srv, OVER, tcp=i % 4 == 0))
    assert all(len(a) == 1 and a <= {"192.0.2.10", "192.0.2.11"} for a in answers)
    # The instance answers nothing itself: what /metrics counts came from the workers.
    assert wait_for(lambda: total_queries(srv) >= before + QUERIES, timeout=3)
    shares = {
        m["key"]: m["answers_recent"]
        for p in api(srv, "/api/v1/pools").json["pools"]
        for g in p["groups"]
        for m in g["members"]
    }
    assert shares[KEY_10] + shares[f"{OVER}/default/192.0.2.11"] >= QUERIES


def test_an_override_reaches_every_worker(srv):
    reply = api(
        srv, "/api/v1/overrides", method="POST", body={"member": KEY_10, "state": "down"}, token=TOKEN
    )
    assert reply.status == 200, reply.text
    assert settled(lambda: a_records(srv, OVER) == {"192.0.2.11"})
    answers = from_every_worker(srv, lambda i: a_records(srv, OVER, tcp=i % 4 == 0))
    assert all(a == {"192.0.2.11"} for a in answers)
    quoted = urllib.parse.quote(KEY_10)
    assert api(srv, f"/api/v1/overrides?member={quoted}", method="DELETE", token=TOKEN).status == 200
    answers = from_every_worker(srv, lambda i: a_records(srv, OVER))
    assert {"192.0.2.10"} in answers  # back in the answers


def test_a_health_change_reaches_every_worker(srv, backends):
    primary, secondary = backends
    start = len(srv.lines)
    primary.status = 503
    try:
        assert srv.wait_for_log(f"{primary.host}:{primary.port} (check a) is DOWN", start=start)
        assert settled(lambda: a_records(srv, f"checked.{ORIGIN}.") == {secondary.host})
        answers = from_every_worker(srv, lambda i: a_records(srv, f"checked.{ORIGIN}.", tcp=i % 4 == 0))
        assert all(a == {secondary.host} for a in answers)
    finally:
        primary.status = 200
    assert srv.wait_for_log(f"{primary.host}:{primary.port} (check a) is UP", start=start)


def test_a_reload_reaches_every_worker(srv, backends):
    assert marker(srv) == "generation-1"
    start = len(srv.lines)
    write_zone(srv.zones, 2, *backends)
    srv.signal(signal.SIGHUP)
    assert srv.wait_for_log("zones reloaded (SIGHUP)", start=start)
    assert wait_for(lambda: api(srv, "/readyz").status == 200, timeout=5)
    for n in (1, 2):
        assert srv.wait_for_log(f"[worker {n}]: serving zones generation 2", start=start, timeout=1)
    markers = from_every_worker(srv, lambda i: marker(srv, tcp=i % 4 == 0))
    assert set(markers) == {"generation-2"}


def test_a_killed_worker_is_restarted(srv):
    pids = worker_pids(srv)
    before = total_queries(srv)
    start = len(srv.lines)
    os.kill(pids[1], signal.SIGKILL)
    assert srv.wait_for_log(
        f"worker 1 (pid {pids[1]}) was killed by signal 9 (SIGKILL); restarting it", start=start
    )
    assert wait_for(lambda: worker_pids(srv)[1] != pids[1])
    assert wait_for(lambda: api(srv, "/readyz").status == 200, timeout=5)
    assert worker_pids(srv)[2] == pids[2]
    markers = from_every_worker(srv, lambda i: marker(srv, tcp=i % 4 == 0))
    assert set(markers) == {"generation-2"}  # the restarted worker got the current zones
    restarts = {s.labels["worker"]: s.value for s in samples(srv) if s.name == "gdns_worker_restarts_total"}
    assert restarts == {"1": 1.0, "2": 0.0}
    assert total_queries(srv) >= before + QUERIES  # the dead worker's counts are kept


# -- stopping ---------------------------------------------------------------------------------


def test_sigterm_stops_every_worker(zone_dir, start_server):
    server = start_server(zone_dir, "--workers", "2")
    pids = worker_pids(server)
    assert len(pids) == 2 and all(alive(p) for p in pids.values())
    assert server.query("www.gslb.example.com.", "A").rcode() == dns.rcode.NOERROR
    assert server.stop() == 0
    assert not any(alive(p) for p in pids.values())
    assert "restarting" not in server.log()


def test_workers_exit_when_the_instance_dies(zone_dir, start_server):
    server = start_server(zone_dir, "--workers", "2")
    pids = worker_pids(server)
    server.proc.kill()
    server.proc.wait(5)
    assert wait_for(lambda: not any(alive(p) for p in pids.values()), timeout=5)


def test_workers_that_keep_dying_stop_the_instance(zone_dir, start_server):
    server = start_server(zone_dir, "--workers", "2", "--no-web")
    first = worker_pids(server)
    killed: set[int] = set()
    deadline = time.monotonic() + 20
    while server.proc.poll() is None and time.monotonic() < deadline:
        pid = worker_pids(server)[1]
        if pid not in killed and alive(pid):
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.01)
    assert server.proc.wait(10) == 1
    assert len(killed) == 6  # five restarts, then the instance gives up
    message = "worker processes keep dying (5 restarts in the last 60 s); stopping"
    assert server.log().rstrip().endswith(f"gdns: error: {message}")
    assert not alive(first[2])


def test_a_port_in_use_is_one_line_even_with_workers(zone_dir, start_server):
    first = start_server(zone_dir, "--workers", "2", "--no-web")
    second = subprocess.run(
        [sys.executable, "-m", "gdns", "serve", "--zones", str(zone_dir), "--no-web", "--workers", "2"]
        + ["--listen", f"127.0.0.1:{first.port}"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
    )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        f"gdns: error: cannot listen on 127.0.0.1:{first.port}: the port is already in use"
    )
    assert first.query("www.gslb.example.com.", "A").rcode() == dns.rcode.NOERROR


def test_one_worker_is_the_single_process(zone_dir, start_server):
    server = start_server(zone_dir, "--workers", "1")
    assert server.query("www.gslb.example.com.", "A").rcode() == dns.rcode.NOERROR
    assert not worker_pids(server) and "[worker" not in server.log()


@pytest.mark.parametrize("value", ["0", "-1", "two", "257", "1.5", ""])
def test_bad_workers_values_are_one_line_errors(value, capsys):
    from gdns.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve", "--workers", value])
    assert exc.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        error
        == f"gdns serve: error: argument --workers: must be a number from 1 to 256, or auto; got {value!r}"
    )


def test_workers_auto_is_the_cores():
    from gdns.cli import build_parser

    args = build_parser().parse_args(["serve", "--workers", "auto"])
    assert args.workers == len(os.sched_getaffinity(0))
    assert build_parser().parse_args(["serve"]).workers == 1
