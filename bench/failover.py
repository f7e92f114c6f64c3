"""Failover and recovery times of `gdns serve` with real HTTP health checks, measured.

    python bench/failover.py [--flips 5] [--interval 0.5] [--fall 2] [--rise 2] [--down-interval S]

Starts two aiohttp backends (127.0.0.2 primary, 127.0.0.3 backup, ephemeral ports) and gdns on
127.0.0.1 with a failover pool over them, then flips the primary's health endpoint to 500 and
back `--flips` times. Each time it measures, with a UDP query every 10 ms, the seconds from the
flip to the first answer that follows it (the backup when failing over, the primary when
recovering), and prints min/median/max with the bounds the hysteresis promises:

    failover <= interval x fall + interval
    recovery <= down_interval + interval x rise + interval   (down_interval defaults to 2 x interval;
                                                           after the first success the interval resumes)

Flips are spaced by a random fraction of an interval so they land at different points of
the probe cycle. Every wait is bounded; all traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
PRIMARY, BACKUP = "127.0.0.2", "127.0.0.3"


class Backend:
    """A health endpoint on a loopback address; `status` is read per request."""

    def __init__(self, host: str):
        self.host, self.status, self.port = host, 200, 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = self._runner.addresses[0][1]

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text="ok")

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def zone(primary: Backend, backup: Backend, args: argparse.Namespace) -> str:
    def check(b: Backend) -> dict:
        c = {"port": b.port, "path": "/health", "interval": args.interval, "timeout": args.interval / 2}
        c |= {"fall": args.fall, "rise": args.rise}
        if args.down_interval is not None:
            c["down_interval"] = args.down_interval
        return c

    return yaml.safe_dump(
        {
            "origin": "bench.example.",
            "soa": {"mname": "ns1.bench.example.", "rname": "hostmaster.bench.example."},
            "ns": ["ns1.bench.example."],
            "records": {"ns1": {"A": "192.0.2.53"}},
            "checks": {"primary": check(primary), "backup": check(backup)},
            "pools": {
                "www": {
                    "strategy": "failover",
                    "groups": {
                        "primary": {"members": [{"address": PRIMARY, "check": "primary"}]},
                        "backup": {"members": [{"address": BACKUP, "check": "backup"}]},
                    },
                }
            },
        },
        sort_keys=False,
    )


def start_gdns(folder: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "gdns", "serve", "--zones", folder, "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    port = None
    deadline = time.monotonic() + 20
    for line in proc.stderr:  # ends at "ready", or at EOF if gdns exits
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
        if line.rstrip().endswith(": ready") or time.monotonic() > deadline:
            break
    if port is None:
        proc.kill()
        raise SystemExit("gdns did not start")
    # Keep draining its log so a chatty server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, port


def answer(port: int) -> set[str]:
    reply = dns.query.udp(dns.message.make_query("www.bench.example", "A"), "127.0.0.1", port=port, timeout=2)
    return {rd.address for rrset in reply.answer for rd in rrset}


def time_until(port: int, want: str, since: float, limit: float) -> float:
    while time.monotonic() < since + limit:
        if answer(port) == {want}:
            return time.monotonic() - since
        time.sleep(0.01)
    raise SystemExit(f"no answer {want} within {limit:.1f}s of the flip")


def summary(name: str, values: list[float], bound: float) -> str:
    return (
        f"{name:9} min {min(values):.3f}s  median {statistics.median(values):.3f}s  "
        f"max {max(values):.3f}s  (bound {bound:.2f}s, n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flips", type=int, default=5, help="down/up cycles, 1-100 (default 5)")
    parser.add_argument("--interval", type=float, default=0.5, help="check interval, seconds (default 0.5)")
    parser.add_argument("--fall", type=int, default=2, help="failures in a row to go down (default 2)")
    parser.add_argument("--rise", type=int, default=2, help="successes in a row to come up (default 2)")
    parser.add_argument(
        "--down-interval", type=float, default=None, help="probe interval while down (default: 2 x interval)"
    )
    args = parser.parse_args()
    if not 1 <= args.flips <= 100 or not 0.05 <= args.interval <= 10:
        parser.error("--flips must be 1-100 and --interval 0.05-10")
    down_interval = args.down_interval or 2 * args.interval
    failover_bound = args.interval * args.fall + args.interval
    recovery_bound = down_interval + args.interval * args.rise + args.interval
    limit = 5 * max(failover_bound, recovery_bound)

    primary, backup = Backend(PRIMARY), Backend(BACKUP)
    proc = None
    try:
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "bench.example.yaml").write_text(zone(primary, backup, args))
            proc, port = start_gdns(folder)
            if answer(port) != {PRIMARY}:
                raise SystemExit("the primary is not answered at start")
            failovers, recoveries = [], []
            print(
                f"interval {args.interval:g}s, down_interval {down_interval:g}s, "
                f"fall {args.fall}, rise {args.rise}: {args.flips} flips"
            )
            for i in range(args.flips):
                time.sleep(random.uniform(0, args.interval))
                flip = time.monotonic()
                primary.status = 500
                failovers.append(time_until(port, BACKUP, flip, limit))
                time.sleep(random.uniform(0, down_interval))
                flip = time.monotonic()
                primary.status = 200
                recoveries.append(time_until(port, PRIMARY, flip, limit))
                print(f"  flip {i + 1}: failover {failovers[-1]:.3f}s, recovery {recoveries[-1]:.3f}s")
            print(summary("failover", failovers, failover_bound))
            print(summary("recovery", recoveries, recovery_bound))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        primary.close()
        backup.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
