"""Health checks end to end: the real `gdns serve` subprocess probing real aiohttp backends on
loopback, queried over real UDP and TCP with dnspython.

Every member that has a check is a 127.0.0.x address with its own backend listening there
(ports are ephemeral and written into the check's `port`), so the members themselves are the
probed backends. Backends run in a thread with their own event loop; the test flips their
behaviour (status, delay, body) from plain synchronous code. Intervals are 0.1-0.3 s, so the
timing bounds below are tight but leave an allowance for process and loop scheduling.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import yaml

from tests.backends import ThreadedBackend as Backend
from tests.conftest import wait_for

# Slack for scheduling: the server's and the backends' event loops, the publish on the next loop
# turn, and our 10 ms query polling.
ALLOWANCE = 0.5


# -- zone files --------------------------------------------------------------------------


def check(backend: Backend, interval: float = 0.2, timeout: float = 0.1, **more) -> dict:
    return {
        "type": "http",
        "port": backend.port,
        "path": "/health",
        "interval": interval,
        "timeout": timeout,
        "rise": 2,
        "fall": 2,
        **more,
    }


def write_zone(folder: Path, origin: str, pools: dict, checks: dict | None = None) -> None:
    """One zone file, written as careful tools do (a temporary file renamed over the old)."""
    doc = {
        "origin": f"{origin}.",
        "ttl": 300,
        "soa": {"mname": f"ns1.{origin}.", "rname": f"hostmaster.{origin}."},
        "ns": [f"ns1.{origin}."],
        "records": {"ns1": {"A": "192.0.2.53"}},
    }
    if checks:
        doc["checks"] = checks
    doc["pools"] = pools
    tmp = folder / f".{origin}.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, folder / f"{origin}.yaml")


def member(address: str, **more) -> dict:
    return {"address": address, **more}


# -- queries -----------------------------------------------------------------------------


def ask(server, name: str, tcp: bool = False) -> dns.message.Message:
    return server.query(name, "A", tcp=tcp, timeout=2.0)


def addresses(reply: dns.message.Message) -> set[str]:
    return {rd.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset}


def answered(server, name: str, tcp: bool = False) -> set[str]:
    reply = ask(server, name, tcp)
    assert reply.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(reply.rcode())
    return addresses(reply)


def seconds_until(predicate: Callable[[], bool], since: float, limit: float) -> float | None:
    """Seconds from `since` until `predicate` is first true (polled every 10 ms), or None."""
    deadline = since + limit
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic() - since
        time.sleep(0.01)
    return None


def stable(predicate: Callable[[], bool], count: int = 20) -> bool:
    """`predicate` holds for `count` queries in a row."""
    return all(predicate() for _ in range(count))


# -- failover and recovery timing ----------------------------------------------------------


def test_failover_and_recovery_within_the_hysteresis_bounds(tmp_path, start_server, backend):
    interval, fall, rise = 0.2, 2, 2
    primary, backup = backend("127.0.0.1"), backend("127.0.0.2")
    checks = {
        "p": check(primary, interval, fall=fall, rise=rise, down_interval=interval),
        "b": check(backup, interval, fall=fall, rise=rise, down_interval=interval),
    }
    pools = {
        "www": {
            "strategy": "failover",
            "groups": {
                "primary": {"members": [member("127.0.0.1", check="p")]},
                "backup": {"members": [member("127.0.0.2", check="b")]},
            },
        }
    }
    write_zone(tmp_path, "hc.example", pools, checks)
    server = start_server(tmp_path)
    assert answered(server, "www.hc.example") == {"127.0.0.1"}

    # Down: at most `fall` failed probes, one interval apart, after the last good one.
    flip = time.monotonic()
    primary.status = 500
    failover = seconds_until(lambda: answered(server, "www.hc.example") == {"127.0.0.2"}, flip, 5)
    assert failover is not None, "the failing primary was never left"
    failures = primary.answered_since(flip, ok=False)
    bound = interval * fall + interval
    print(f"\nfailover: {failover:.3f}s (bound {bound:.2f}s + {ALLOWANCE}s), after {failures} failed probes")
    assert failures >= fall, f"left after {failures} failed probe(s); fall is {fall}"
    assert failover <= bound + ALLOWANCE
    assert server.wait_for_log("is DOWN (status 500;", timeout=2)

    # Up again: `rise` successful probes; queried over TCP this time.
    flip = time.monotonic()
    primary.status = 200
    recovery = seconds_until(lambda: answered(server, "www.hc.example", tcp=True) == {"127.0.0.1"}, flip, 5)
    assert recovery is not None, "the recovered primary never came back"
    successes = primary.answered_since(flip, ok=True)
    bound = interval * rise + interval
    print(f"recovery: {recovery:.3f}s (bound {bound:.2f}s + {ALLOWANCE}s), after {successes} good probes")
    assert successes >= rise, f"back after {successes} good probe(s); rise is {rise}"
    assert recovery <= bound + ALLOWANCE
    assert server.wait_for_log("success(es) in a row", timeout=2)


def test_recovery_of_a_down_member_is_paced_by_down_interval(tmp_path, start_server, backend):
    """A failing target is probed every down_interval (2 x interval by default); after its
    first success the normal interval resumes, so recovery takes at most one down_interval
    plus rise x interval (+ one interval of jitter and scheduling)."""
    interval, rise = 0.1, 2
    down_interval = 2 * interval
    b = backend("127.0.0.3")
    b.status = 503
    checks = {"c": check(b, interval, timeout=0.05, rise=rise)}
    pools = {"www": {"answers": 2, "members": [member("127.0.0.3", check="c"), member("127.0.0.4")]}}
    write_zone(tmp_path, "hc.example", pools, checks)
    server = start_server(tmp_path)
    assert answered(server, "www.hc.example") == {"127.0.0.4"}
    flip = time.monotonic()
    b.status = 200
    recovery = seconds_until(lambda: "127.0.0.3" in answered(server, "www.hc.example"), flip, 5)
    assert recovery is not None
    bound = down_interval + rise * interval + interval
    print(f"\nrecovery at the default down_interval {down_interval:g}s: {recovery:.3f}s (bound {bound:.2f}s)")
    assert b.answered_since(flip, ok=True) >= rise
    assert recovery <= bound + ALLOWANCE


# -- reasons and strategies ----------------------------------------------------------------


def test_slow_backend_is_down_with_reason_timeout(tmp_path, start_server, backend):
    slow, other = backend("127.0.0.5"), backend("127.0.0.6")
    checks = {"s": check(slow, 0.2, timeout=0.1), "o": check(other, 0.2, timeout=0.1)}
    pools = {
        "www": {"answers": 2, "members": [member("127.0.0.5", check="s"), member("127.0.0.6", check="o")]}
    }
    write_zone(tmp_path, "hc.example", pools, checks)
    server = start_server(tmp_path)
    assert answered(server, "www.hc.example") == {"127.0.0.5", "127.0.0.6"}
    slow.delay = 0.5  # longer than the 0.1 s timeout: the probe gives up, the backend never fails
    assert wait_for(lambda: answered(server, "www.hc.example") == {"127.0.0.6"}, timeout=5)
    assert server.wait_for_log(f"127.0.0.5:{slow.port} (check s) is DOWN (timeout after 0.1s", timeout=2)
    assert "127.0.0.6" not in "".join(line for line in server.lines if "is DOWN" in line)


def test_body_and_tcp_checks(tmp_path, start_server, backend):
    web_, tcp_ = backend("127.0.0.23"), backend("127.0.0.24")
    web_.body = "status: healthy"
    with socket.socket() as sock:  # a port where nothing listens, on the member's own address
        sock.bind(("127.0.0.25", 0))
        closed = sock.getsockname()[1]
    checks = {
        "body": check(web_, body="healthy"),
        "open": {"type": "tcp", "port": tcp_.port, "interval": 0.2, "timeout": 0.1},
        "shut": {"type": "tcp", "port": closed, "interval": 0.2, "timeout": 0.1},
    }
    members = [
        member("127.0.0.23", check="body"),
        member("127.0.0.24", check="open"),
        member("127.0.0.25", check="shut"),
    ]
    write_zone(tmp_path, "hc.example", {"www": {"answers": 3, "members": members}}, checks)
    server = start_server(tmp_path)
    assert answered(server, "www.hc.example") == {"127.0.0.23", "127.0.0.24"}
    assert f"tcp 127.0.0.24:{tcp_.port} (check open) is UP (connected" in server.log()
    assert f"tcp 127.0.0.25:{closed} (check shut) is DOWN (connection refused" in server.log()
    web_.body = "status: sick"  # still 200, but not what the check looks for
    assert wait_for(lambda: answered(server, "www.hc.example") == {"127.0.0.24"}, timeout=3)
    assert server.wait_for_log("(check body) is DOWN (body does not contain 'healthy'", timeout=2)


def test_latency_strategy_prefers_the_faster_backend(tmp_path, start_server, backend):
    slow, fast = backend("127.0.0.7"), backend("127.0.0.8")
    slow.delay = 0.05
    checks = {"s": check(slow, 0.2, timeout=0.15), "f": check(fast, 0.2, timeout=0.15)}
    pools = {
        "www": {
            "strategy": "latency",
            "groups": {  # the slow one first: the written order would answer it
                "far": {"members": [member("127.0.0.7", check="s")]},
                "near": {"members": [member("127.0.0.8", check="f")]},
            },
        }
    }
    write_zone(tmp_path, "hc.example", pools, checks)
    server = start_server(tmp_path)
    assert wait_for(lambda: slow.requests >= 3 and fast.requests >= 3, timeout=5)  # a few probe rounds
    assert wait_for(lambda: answered(server, "www.hc.example") == {"127.0.0.8"}, timeout=3)
    assert stable(lambda: answered(server, "www.hc.example") == {"127.0.0.8"})
    assert stable(lambda: answered(server, "www.hc.example", tcp=True) == {"127.0.0.8"}, 5)
    # The preference follows the measurements, not the first impression.
    slow.delay, fast.delay = 0.0, 0.05
    assert wait_for(lambda: answered(server, "www.hc.example") == {"127.0.0.7"}, timeout=6)


def test_probes_are_deduplicated_across_pools_and_zones(tmp_path, start_server, backend):
    interval = 0.2
    b = backend("127.0.0.9")
    shared = member("127.0.0.9", check="web")
    pools = {
        "www": {"members": [shared]},
        "api": {"strategy": "failover", "groups": {"one": {"members": [shared]}}},
    }
    write_zone(tmp_path, "hc.example", pools, {"web": check(b, interval)})
    # Another zone: an equal check under another name is the same probe.
    write_zone(
        tmp_path, "other.example", {"app": {"members": [shared | {"check": "same"}]}}, {"same": check(b)}
    )
    server = start_server(tmp_path)
    assert server.wait_for_log("first probe round: 1 target(s), 1 up", timeout=1)
    window = 2.0
    before = b.requests
    time.sleep(window)
    rate = (b.requests - before) / window
    print(f"\none target for three pools: {rate:.1f} requests/s (one per {interval}s = {1 / interval:g}/s)")
    assert 0.6 / interval <= rate <= 1.4 / interval
    for name in ("www.hc.example", "api.hc.example", "app.other.example"):
        assert answered(server, name) == {"127.0.0.9"}


# -- all down ------------------------------------------------------------------------------


def test_all_down_answers_as_configured(tmp_path, start_server, backend):
    one, two = backend("127.0.0.10"), backend("127.0.0.11")
    one.status = two.status = 500
    members = [member("127.0.0.10", check="one"), member("127.0.0.11", check="two")]

    def pool(policy: str, **more) -> dict:
        return {"ttl": 60, "degraded_ttl": 10, "members": members, "when_all_down": policy, **more}

    pools = {
        "all": pool("all"),
        "fallback": pool("fallback", fallback=["192.0.2.99"]),
        "nodata": pool("nodata"),
        "servfail": pool("servfail"),
    }
    write_zone(tmp_path, "hc.example", pools, {"one": check(one), "two": check(two)})
    server = start_server(tmp_path)
    assert server.wait_for_log("first probe round: 2 target(s), 0 up", timeout=1)
    for tcp in (False, True):
        reply = ask(server, "all.hc.example", tcp)
        assert reply.rcode() == dns.rcode.NOERROR
        assert addresses(reply) == {"127.0.0.10", "127.0.0.11"}
        assert reply.answer[0].ttl == 10
        assert answered(server, "fallback.hc.example", tcp) == {"192.0.2.99"}
        reply = ask(server, "nodata.hc.example", tcp)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
        [soa] = reply.authority
        assert soa.rdtype == dns.rdatatype.SOA
        assert ask(server, "servfail.hc.example", tcp).rcode() == dns.rcode.SERVFAIL
    # One member back: every policy gives way to it.
    two.status = 200
    for name in ("all", "fallback", "nodata", "servfail"):
        assert wait_for(lambda n=name: answered(server, f"{n}.hc.example") == {"127.0.0.11"}, timeout=3), name


# -- start-up ------------------------------------------------------------------------------


def test_first_answers_follow_the_first_probe_round(tmp_path, start_server, backend):
    down, up = backend("127.0.0.12"), backend("127.0.0.13")
    down.status = 503
    checks = {"d": check(down, 0.3, timeout=0.2), "u": check(up, 0.3, timeout=0.2)}
    pools = {
        "www": {
            "strategy": "failover",
            "groups": {
                "primary": {"members": [member("127.0.0.12", check="d")]},
                "backup": {"members": [member("127.0.0.13", check="u")]},
            },
        }
    }
    write_zone(tmp_path, "hc.example", pools, checks)
    server = start_server(tmp_path)  # returns as soon as the server logs "ready"
    seen = [answered(server, "www.hc.example") for _ in range(30)]  # at once, then in a tight loop
    assert all(s == {"127.0.0.13"} for s in seen), seen
    assert down.requests >= 1
    assert "first probe round: 2 target(s), 1 up, 0 unprobed" in server.log()
    assert "is DOWN (status 503; first probe)" in server.log()


def test_a_hanging_backend_does_not_hold_up_start(tmp_path, start_server, backend):
    hang = backend("127.0.0.14")
    hang.delay = 30.0  # far past the deadline and the check's timeout; ends when the backend closes
    checks = {"h": check(hang, interval=5, timeout=4)}
    write_zone(tmp_path, "hc.example", {"www": {"members": [member("127.0.0.14", check="h")]}}, checks)
    deadline = 0.3
    server = start_server(tmp_path, "--first-probe-deadline", str(deadline))
    match = re.search(
        r"first probe round: 1 target\(s\), 0 up, 1 unprobed \(counted as up\) after ([\d.]+)s", server.log()
    )
    assert match, server.log()
    assert float(match.group(1)) < deadline + ALLOWANCE
    assert wait_for(lambda: hang.arrived == 1, timeout=2)
    assert hang.requests == 0  # the first probe is still waiting for its answer
    assert answered(server, "www.hc.example") == {"127.0.0.14"}  # unprobed counts as up


# -- TTL and overrides -------------------------------------------------------------------


def test_degraded_ttl_while_a_member_is_down(tmp_path, start_server, backend):
    one, two = backend("127.0.0.15"), backend("127.0.0.16")
    members = [member("127.0.0.15", check="one"), member("127.0.0.16", check="two")]
    pools = {"www": {"ttl": 60, "degraded_ttl": 5, "answers": 2, "members": members}}
    write_zone(tmp_path, "hc.example", pools, {"one": check(one), "two": check(two, down_interval=0.2)})
    server = start_server(tmp_path)

    def state() -> tuple[set[str], int]:
        reply = ask(server, "www.hc.example")
        return addresses(reply), reply.answer[0].ttl

    assert state() == ({"127.0.0.15", "127.0.0.16"}, 60)
    two.status = 500
    assert wait_for(lambda: state() == ({"127.0.0.15"}, 5), timeout=3)
    assert stable(lambda: state() == ({"127.0.0.15"}, 5), 5)
    two.status = 200
    assert wait_for(lambda: state() == ({"127.0.0.15", "127.0.0.16"}, 60), timeout=3)


def test_configured_status_beats_a_passing_probe(tmp_path, start_server, backend):
    forced, drained, normal = backend("127.0.0.17"), backend("127.0.0.18"), backend("127.0.0.19")
    checks = {"f": check(forced), "d": check(drained), "n": check(normal)}
    members = [
        member("127.0.0.17", check="f", status="down"),
        member("127.0.0.18", check="d", status="drain"),
        member("127.0.0.19", check="n"),
    ]
    write_zone(tmp_path, "hc.example", {"www": {"answers": 3, "members": members}}, checks)
    server = start_server(tmp_path)
    # Their probes pass...
    assert server.wait_for_log(f"127.0.0.17:{forced.port} (check f) is UP (status 200", timeout=2)
    assert server.wait_for_log(f"127.0.0.18:{drained.port} (check d) is UP (status 200", timeout=2)
    assert wait_for(lambda: forced.requests >= 3, timeout=3)
    # ...and the human override still wins.
    assert stable(lambda: answered(server, "www.hc.example") == {"127.0.0.19"})


# -- reload ----------------------------------------------------------------------------------


def test_reload_stops_and_starts_probing(tmp_path, start_server, backend):
    interval = 0.1
    b = backend("127.0.0.20")
    checks = {"c": check(b, interval, timeout=0.05)}

    def write(with_check: bool) -> None:
        probed = member("127.0.0.20", check="c") if with_check else member("127.0.0.20")
        pools = {"www": {"answers": 2, "members": [probed, member("127.0.0.21")]}}
        write_zone(tmp_path, "hc.example", pools, checks)

    write(with_check=True)
    server = start_server(tmp_path, "--reload-interval", "0.1")
    assert wait_for(lambda: b.requests >= 3, timeout=2)

    mark = len(server.lines)
    write(with_check=False)
    assert server.wait_for_log("stopped probing", timeout=3, start=mark)
    time.sleep(2 * interval)  # a probe in flight at the reload may still land
    before = b.requests
    b.status = 500  # nobody looks: an unchecked member stays in the answers
    time.sleep(10 * interval)
    assert b.requests == before, f"{b.requests - before} probe(s) after the check was removed"
    assert answered(server, "www.hc.example") == {"127.0.0.20", "127.0.0.21"}

    mark = len(server.lines)
    write(with_check=True)
    assert wait_for(lambda: b.requests >= before + 3, timeout=3), "probing did not start again"
    assert wait_for(lambda: answered(server, "www.hc.example") == {"127.0.0.21"}, timeout=3)
    assert server.wait_for_log("is DOWN (status 500", timeout=2, start=mark)


def test_reload_keeps_what_probes_learned(tmp_path, start_server, backend):
    """A reload that keeps a member's check keeps its state: a down member does not come back
    as "not probed yet" (counted as up) for a moment after every unrelated zone change."""
    down, up = backend("127.0.0.26"), backend("127.0.0.27")
    down.status = 500
    checks = {"d": check(down, 0.3, timeout=0.1), "u": check(up, 0.3, timeout=0.1)}

    def write(ttl: int) -> None:
        members = [member("127.0.0.26", check="d"), member("127.0.0.27", check="u")]
        write_zone(tmp_path, "hc.example", {"www": {"ttl": ttl, "answers": 2, "members": members}}, checks)

    write(30)
    server = start_server(tmp_path, "--reload-interval", "0.1")
    assert answered(server, "www.hc.example") == {"127.0.0.27"}
    seen: list[set[str]] = []
    wanted_ttl = [0]

    def reloaded() -> bool:
        reply = ask(server, "www.hc.example")
        seen.append(addresses(reply))
        return reply.answer[0].ttl == wanted_ttl[0]

    for ttl in (31, 32):
        mark = len(server.lines)
        wanted_ttl[0] = ttl
        write(ttl)
        assert wait_for(reloaded, timeout=5), server.log()[-2000:]
        seen.extend(answered(server, "www.hc.example") for _ in range(10))
        assert all(s == {"127.0.0.27"} for s in seen), seen
        assert "stopped probing" not in "".join(server.lines[mark:])


# -- the probe address -------------------------------------------------------------------


def test_member_is_probed_at_its_probe_address(tmp_path, start_server, backend):
    b = backend("127.0.0.22")
    members = [
        member("192.0.2.10", check="c", probe="127.0.0.22"),  # answered, never probed itself
        member("192.0.2.11"),  # no check: no traffic to it
    ]
    write_zone(tmp_path, "hc.example", {"www": {"answers": 2, "members": members}}, {"c": check(b)})
    server = start_server(tmp_path)
    assert wait_for(lambda: b.requests >= 2, timeout=2)
    assert f"http 127.0.0.22:{b.port} (check c) is UP" in server.log()
    assert "192.0.2.10:" not in server.log()
    for tcp in (False, True):
        assert answered(server, "www.hc.example", tcp) == {"192.0.2.10", "192.0.2.11"}
    b.status = 500  # the probe address fails: the member it stands for leaves the answers
    assert wait_for(lambda: answered(server, "www.hc.example") == {"192.0.2.11"}, timeout=3)


def test_a_member_added_by_reload_is_probed_before_it_is_answered(tmp_path, start_server, backend):
    """A reload gives new targets a first probe round before its zones are served, so a
    failing new member is never answered, not even in the moment after the swap."""
    b = backend("127.0.0.30")
    b.status = 503
    checks = {"c": check(b, 0.2, timeout=0.1)}

    def write(with_new: bool) -> None:
        members = [member("127.0.0.31")] + ([member("127.0.0.30", check="c")] if with_new else [])
        write_zone(tmp_path, "hc.example", {"www": {"answers": 2, "members": members}}, checks)

    write(with_new=False)
    server = start_server(tmp_path, "--reload-interval", "0.05")
    mark = len(server.lines)
    write(with_new=True)
    seen: set[str] = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not server.wait_for_log("zones reloaded", 0.01, start=mark):
        seen |= answered(server, "www.hc.example")
    for _ in range(20):  # and right after the swap
        seen |= answered(server, "www.hc.example")
    assert server.wait_for_log("zones reloaded", 2, start=mark)
    assert server.wait_for_log("is DOWN (status 503; first probe)", 2, start=mark)
    assert seen == {"127.0.0.31"}
    assert b.requests >= 1
