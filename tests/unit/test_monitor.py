"""gdns.health.monitor.HealthMonitor against real backends on loopback: one probe per
(address, check) target, reloads that keep what probes learned, snapshots where a human
override beats probes, the first round, slower probing of down targets, logged transitions."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import time
from collections.abc import Callable

from gdns.answer.pools import decide
from gdns.health.monitor import HealthMonitor
from gdns.health.snapshot import HealthSnapshot
from gdns.strategy.client import Client
from gdns.zone.compile import compile_zone
from gdns.zone.yamlsafe import load
from gdns.zone.zoneset import ZoneSet
from tests.backends import Backend, RawServer
from tests.poolkit import pool_of, snapshot

HEAD = """\
origin: example.com.
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com.]
records:
  ns1: {A: 192.0.2.1}
"""
WWW = "www: {check: web, members: [{address: 127.0.0.1}]}\n"
FAST = "interval: 100ms, timeout: 80ms, rise: 1, fall: 1"


def zones(checks: str, pools: str) -> ZoneSet:
    text = HEAD + "checks:\n" + textwrap.indent(textwrap.dedent(checks), "  ")
    text += "pools:\n" + textwrap.indent(textwrap.dedent(pools), "  ")
    zone, errors = compile_zone(load(text, "z.yaml"), "d")
    assert errors == [], [str(e) for e in errors]
    return ZoneSet.of([zone])


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


class Monitor:
    """A started HealthMonitor (publishing nowhere), closed on exit."""

    def __init__(self, concurrency: int = 64):
        self.monitor = HealthMonitor(lambda snapshot: None, concurrency)

    async def __aenter__(self) -> HealthMonitor:
        await self.monitor.start()
        return self.monitor

    async def __aexit__(self, *exc) -> None:
        await self.monitor.close()


# -- dedup ------------------------------------------------------------------------------------


def test_one_target_per_address_and_check_and_one_request_per_interval():
    async def main():
        async with Backend() as backend, Monitor() as monitor:
            z = zones(
                f"web: {{port: {backend.port}, {FAST}}}\nsame: {{port: {backend.port}, {FAST}}}\n",
                """\
                www: {check: web, members: [{address: 127.0.0.1}]}
                api: {check: same, members: [{address: 127.0.0.1}]}
                app: {check: web, members: [{address: 192.0.2.50, probe: 127.0.0.1}]}
                """,
            )
            monitor.update(z)
            assert len(monitor.targets) == 1
            (target,) = monitor.targets.values()
            assert target.members == {
                "www.example.com./default/127.0.0.1",
                "api.example.com./default/127.0.0.1",
                "app.example.com./default/192.0.2.50",
            }
            assert await monitor.first_round(2.0) == 0
            before = backend.count
            await asyncio.sleep(1.0)
            return backend.count - before

    requests = asyncio.run(main())
    assert 6 <= requests <= 12, requests  # one target at 100 ms (+-10% jitter); three would be ~30


def test_different_checks_or_addresses_are_different_targets():
    async def main():
        async with Backend() as one, Backend("127.0.0.2") as two, Monitor() as monitor:
            z = zones(
                f"a: {{port: {one.port}, path: /a, {FAST}}}\nb: {{port: {one.port}, path: /b, {FAST}}}\n"
                f"c: {{port: {two.port}, {FAST}}}\n",
                """\
                www: {check: a, members: [{address: 127.0.0.1}]}
                api: {check: b, members: [{address: 127.0.0.1}]}
                two: {check: c, members: [{address: 127.0.0.2}]}
                """,
            )
            monitor.update(z)
            assert await monitor.first_round(2.0) == 0
            return len(monitor.targets), sorted({r.path for r in one.requests}), two.count

    targets, paths, two_count = asyncio.run(main())
    assert targets == 3
    assert paths == ["/a", "/b"]
    assert two_count >= 1


def test_concurrency_limit():
    async def main():
        async with Backend() as backend, Monitor(concurrency=2) as monitor:
            backend.delay = 0.1
            checks = "".join(
                f"{p}: {{port: {backend.port}, path: /{p}, interval: 300ms, timeout: 250ms}}\n"
                for p in "abcde"
            )
            pools = "".join(f"{p}: {{check: {p}, members: [{{address: 127.0.0.1}}]}}\n" for p in "abcde")
            monitor.update(zones(checks, pools))
            assert await monitor.first_round(3.0) == 0
            return backend.max_inflight, backend.count

    most, count = asyncio.run(main())
    assert most == 2, most
    assert count >= 5


# -- reloads ----------------------------------------------------------------------------------


def test_update_stops_removed_targets_and_keeps_the_state_of_kept_ones(caplog):
    caplog.set_level(logging.INFO, logger="gdns.health")

    async def main():
        async with Backend() as kept, Backend("127.0.0.2") as gone, Monitor() as monitor:
            checks = f"k: {{port: {kept.port}, {FAST}}}\ng: {{port: {gone.port}, {FAST}}}\n"
            monitor.update(
                zones(
                    checks,
                    """\
                    www: {check: k, members: [{address: 127.0.0.1}]}
                    old: {check: g, members: [{address: 127.0.0.2}]}
                    """,
                )
            )
            assert await monitor.first_round(2.0) == 0
            kept_target = next(t for (a, _), t in monitor.targets.items() if a == "127.0.0.1")
            gone_target = next(t for (a, _), t in monitor.targets.items() if a == "127.0.0.2")
            state = kept_target.state
            await asyncio.sleep(0.25)
            successes = state.successes

            # reload: `old` is gone, `new` uses the kept target too
            monitor.update(
                zones(
                    checks,
                    """\
                    www: {check: k, members: [{address: 127.0.0.1}]}
                    new: {check: k, members: [{address: 127.0.0.1}]}
                    """,
                )
            )
            await asyncio.sleep(0)  # let the cancellation land
            assert gone_target.task.cancelled() or gone_target.task.done()
            assert list(monitor.targets.values()) == [kept_target]
            assert kept_target.state is state and state.up is True
            assert kept_target.members == {
                "www.example.com./default/127.0.0.1",
                "new.example.com./default/127.0.0.1",
            }
            stopped_at = gone.count
            await asyncio.sleep(0.5)
            return stopped_at, gone.count, successes, state.successes

    stopped_at, gone_later, successes_before, successes_after = asyncio.run(main())
    assert stopped_at >= 1 and gone_later == stopped_at  # no request after the reload
    assert successes_after > successes_before >= 1  # counting on, not starting over
    assert "stopped probing http 127.0.0.2" in caplog.text


def test_update_with_a_changed_check_starts_a_new_target():
    async def main():
        async with Backend() as backend, Monitor() as monitor:
            pools = "www: {check: web, members: [{address: 127.0.0.1}]}\n"
            monitor.update(zones(f"web: {{port: {backend.port}, {FAST}}}\n", pools))
            assert await monitor.first_round(2.0) == 0
            (old,) = monitor.targets.values()
            monitor.update(zones(f"web: {{port: {backend.port}, path: /v2, {FAST}}}\n", pools))
            (new,) = monitor.targets.values()
            assert new is not old and new.state.up is None
            assert await monitor.first_round(2.0) == 0
            return [r.path for r in backend.requests]

    paths = asyncio.run(main())
    assert paths[0] == "/" and paths[-1] == "/v2"


# -- snapshots --------------------------------------------------------------------------------


def test_snapshot_overrides_probes_and_reasons():
    async def main():
        async with Backend() as good, Backend("127.0.0.2") as bad, RawServer("hang", "127.0.0.3") as hang:
            bad.status = 503
            async with Monitor() as monitor:
                z = zones(
                    f"good: {{port: {good.port}, {FAST}}}\nbad: {{port: {bad.port}, {FAST}}}\n"
                    f"hang: {{port: {hang.port}, interval: 2s, timeout: 1500ms}}\n",
                    """\
                    www:
                      groups:
                        a:
                          check: good
                          members:
                            - {address: 127.0.0.1}
                            - {address: 192.0.2.10, probe: 127.0.0.1, status: down}
                            - {address: 192.0.2.11, probe: 127.0.0.1, status: drain}
                        b:
                          check: bad
                          members:
                            - {address: 127.0.0.2}
                        c:
                          members:
                            - {address: 127.0.0.3, check: hang}
                            - {address: 192.0.2.30}
                    """,
                )
                monitor.update(z)
                unprobed = await monitor.first_round(0.5)
                return unprobed, monitor.snapshot(), monitor.version

    began = time.time()
    unprobed, snap, version = asyncio.run(main())
    assert unprobed == 1  # the hanging backend has not answered by the deadline
    key = "www.example.com./{}".format
    up = snap.get(key("a/127.0.0.1"))
    assert up.state == "up" and up.reason == "status 200" and up.rtt is not None and up.rtt < 0.08
    assert snap.get(key("a/192.0.2.10")).state == "down" and snap.get(key("a/192.0.2.10")).forced
    assert snap.get(key("a/192.0.2.10")).reason == "configured status down (overrides probes)"
    assert snap.get(key("a/192.0.2.11")).state == "drain"
    assert snap.get(key("a/192.0.2.11")).reason == "configured status drain (overrides probes)"
    down = snap.get(key("b/127.0.0.2"))
    assert (down.state, down.reason, down.rtt, down.forced) == ("down", "status 503", None, False)
    assert began <= up.since <= time.time() and began <= down.since <= time.time()  # last change
    waiting = snap.get(key("c/127.0.0.3"))
    assert (waiting.state, waiting.reason, waiting.since) == ("up", "not probed yet", None)
    assert (snap.get(key("c/192.0.2.30")).state, snap.get(key("c/192.0.2.30")).reason) == (
        "up",
        "no check: configured status up",
    )
    assert snap.version == version


def test_first_round_with_no_targets_and_all_answered():
    async def main():
        async with Backend() as backend, Monitor() as monitor:
            assert await monitor.first_round(1.0) == 0  # nothing to probe
            monitor.update(zones(f"web: {{port: {backend.port}, {FAST}}}\n", WWW))
            started = time.monotonic()
            result = await monitor.first_round(2.0)
            return result, time.monotonic() - started

    result, took = asyncio.run(main())
    assert result == 0 and took < 0.5  # returns as soon as every target answered


def test_publishes_on_changes():
    key = "www.example.com./default/127.0.0.1"

    async def main():
        published: list[HealthSnapshot] = []
        monitor = HealthMonitor(published.append)
        await monitor.start()
        try:
            async with Backend() as backend:
                monitor.update(zones(f"web: {{port: {backend.port}, {FAST}}}\n", WWW))
                assert await until(lambda: any(s.get(key).reason == "status 200" for s in published))
                backend.status = 500
                assert await until(lambda: published[-1].get(key).state == "down")
        finally:
            await monitor.close()
        return published

    snapshots = asyncio.run(main())
    versions = [s.version for s in snapshots]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert snapshots[-1].get(key).reason == "status 500"


def test_during_a_reload_snapshots_are_for_the_served_zones_and_overrides_apply_at_once():
    """hold() .. release() is a reload before its swap: an override published meanwhile
    reaches the zones being served at once, and is in the new zones' snapshot too."""
    old_key = "old.example.com./default/127.0.0.2"
    www_key = "www.example.com./default/127.0.0.1"

    async def main():
        published: list[HealthSnapshot] = []
        monitor = HealthMonitor(published.append)
        await monitor.start()
        try:
            async with Backend() as kept, Backend("127.0.0.2") as gone:
                checks = f"web: {{port: {kept.port}, {FAST}}}\ng: {{port: {gone.port}, {FAST}}}\n"
                served = zones(checks, WWW + "old: {check: g, members: [{address: 127.0.0.2}]}\n")
                monitor.update(served)
                assert await monitor.first_round(2.0) == 0
                new = zones(checks, WWW + "new: {members: [{address: 192.0.2.7}]}\n")
                monitor.hold()
                monitor.update(new)
                assert monitor.served is served and monitor.zones is new
                (gone_target,) = (t for (a, _), t in monitor.targets.items() if a == "127.0.0.2")
                monitor.overrides.set(www_key, "drain")
                monitor.republish()
                during = published[-1]
                count = gone.count
                await asyncio.sleep(0.3)  # the served zones' own target is still probed
                still_probed = gone.count > count
                monitor.release()
                await asyncio.sleep(0)
                after = monitor.snapshot()
                return during, still_probed, gone_target, monitor, after
        finally:
            await monitor.close()

    during, still_probed, gone_target, monitor, after = asyncio.run(main())
    assert during.get(www_key).state == "drain"  # at once, not at the swap
    assert during.get(www_key).forced and during.get(www_key).reason == "operator override: drain"
    assert during.get(old_key).state == "up" and old_key in during.members  # the served zones'
    assert "new.example.com./default/192.0.2.7" not in during.members
    assert still_probed
    assert gone_target.task.done() and all(a != "127.0.0.2" for a, _ in monitor.targets)
    assert after.get(www_key).state == "drain"  # carried into the new zones
    assert old_key not in after.members and "new.example.com./default/192.0.2.7" in after.members


# -- schedule and logs ------------------------------------------------------------------------


def test_down_targets_are_probed_at_down_interval():
    async def main():
        async with Backend() as up, Backend("127.0.0.2") as down, Monitor() as monitor:
            down.status = 503
            timing = "interval: 100ms, timeout: 80ms, down_interval: 400ms, rise: 1, fall: 1"
            monitor.update(
                zones(
                    f"u: {{port: {up.port}, {timing}}}\nd: {{port: {down.port}, {timing}}}\n",
                    """\
                    www: {check: u, members: [{address: 127.0.0.1}]}
                    api: {check: d, members: [{address: 127.0.0.2}]}
                    """,
                )
            )
            assert await monitor.first_round(2.0) == 0
            counts = up.count, down.count
            await asyncio.sleep(1.2)
            return up.count - counts[0], down.count - counts[1]

    up_requests, down_requests = asyncio.run(main())
    # Every 100 ms and every 400 ms. A busy machine delays probes, never hurries them: the
    # upper bounds are exact, the lower ones compare the two (both slowed alike).
    assert up_requests <= 14 and down_requests <= 4, (up_requests, down_requests)
    assert down_requests >= 1 and up_requests >= 2.5 * down_requests, (up_requests, down_requests)


def test_transitions_are_logged_with_reason(caplog):
    caplog.set_level(logging.INFO, logger="gdns.health")

    timing = "interval: 60ms, timeout: 50ms, down_interval: 60ms, rise: 2, fall: 2"

    async def main():
        async with Backend() as backend, Monitor() as monitor:
            monitor.update(
                zones(
                    f"web: {{port: {backend.port}, {timing}}}\n",
                    WWW,
                )
            )
            (target,) = monitor.targets.values()
            assert await until(lambda: target.state.up is True)
            backend.status = 503
            assert await until(lambda: target.state.up is False)
            backend.status = 200
            assert await until(lambda: target.state.up is True)

    asyncio.run(main())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "gdns.health"]
    label = lines[0][1].split(" is ")[0]
    member = "www.example.com./default/127.0.0.1"
    assert label.startswith("http 127.0.0.1:") and label.endswith("(check web)")
    assert lines == [
        ("INFO", f"{label} is UP (status 200; first probe); members: {member}"),
        (
            "WARNING",
            f"{label} is DOWN (status 503; 2 failure(s) in a row); members: {member}",
        ),
        (
            "INFO",
            f"{label} is UP (status 200; 2 success(es) in a row); members: {member}",
        ),
    ]


def test_close_stops_every_probe():
    async def main():
        async with Backend() as backend:
            async with Monitor() as monitor:
                monitor.update(zones(f"web: {{port: {backend.port}, {FAST}}}\n", WWW))
                assert await monitor.first_round(2.0) == 0
                tasks = [t.task for t in monitor.targets.values()]
            at_close = backend.count
            await asyncio.sleep(0.3)
            return tasks, at_close, backend.count

    tasks, at_close, later = asyncio.run(main())
    assert all(t.done() for t in tasks)
    assert later == at_close


# -- degraded_ttl: what the answer engine makes of a snapshot ---------------------------------

DEGRADED = """\
www:
  ttl: 300
  degraded_ttl: 20
  strategy: failover
  groups:
    a: {members: [{address: 192.0.2.10}, {address: 192.0.2.11}, {address: "2001:db8::10"}]}
    b: {members: [{address: 192.0.2.20}]}
"""


def ttl_of(pool, health, family=4) -> tuple[str, int]:
    decision = decide(pool, family, Client.of("198.51.100.1", health=health), {})
    return decision.outcome, decision.ttl


def test_degraded_ttl_while_any_member_of_the_family_is_not_up():
    pool = pool_of(DEGRADED)
    assert ttl_of(pool, snapshot(pool)) == ("answer", 300)
    assert ttl_of(pool, snapshot(pool, down={"192.0.2.11"})) == ("answer", 20)
    assert ttl_of(pool, snapshot(pool, drain={"192.0.2.20"})) == ("answer", 20)  # unused group, still
    # an IPv6 member down does not shorten IPv4 answers, and the other way round
    assert ttl_of(pool, snapshot(pool, down={"2001:db8::10"})) == ("answer", 300)
    assert ttl_of(pool, snapshot(pool, down={"2001:db8::10"}), family=6) == ("all-down:all", 20)
    assert ttl_of(pool, snapshot(pool, down={"192.0.2.10"}), family=6) == ("answer", 300)


def test_degraded_ttl_when_all_are_down():
    pool = pool_of(DEGRADED)
    everything = {m.address for m in pool.members()}
    assert ttl_of(pool, snapshot(pool, down=everything)) == ("all-down:all", 20)


def test_degraded_ttl_never_lengthens_and_is_optional():
    longer = pool_of(DEGRADED.replace("degraded_ttl: 20", "degraded_ttl: 600"))
    assert ttl_of(longer, snapshot(longer, down={"192.0.2.10"})) == ("answer", 300)
    plain = pool_of(DEGRADED.replace("  degraded_ttl: 20\n", ""))
    assert plain.degraded_ttl is None
    assert ttl_of(plain, snapshot(plain, down={"192.0.2.10"})) == ("answer", 300)


def test_degraded_ttl_from_a_probed_snapshot():
    """A real backend failing its check shortens the TTL of the pool's answers."""

    async def main():
        async with Backend() as good, Backend("127.0.0.2") as bad, Monitor() as monitor:
            bad.status = 503
            z = zones(
                f"web: {{port: {good.port}, {FAST}}}\nalt: {{port: {bad.port}, {FAST}}}\n",
                """\
                www:
                  ttl: 300
                  degraded_ttl: 15
                  check: web
                  members: [{address: 127.0.0.1}, {address: 127.0.0.2, check: alt}]
                """,
            )
            monitor.update(z)
            assert await monitor.first_round(2.0) == 0
            return z, monitor.snapshot()

    z, snap = asyncio.run(main())
    (pool,) = next(iter(z.zones.values())).pools.values()
    decision = decide(pool, 4, Client.of("198.51.100.1", health=snap), {})
    assert [m.address for m in decision.picked] == ["127.0.0.1"]
    assert decision.ttl == 15
