"""What response rate limiting adds to one answer, measured in process (no sockets).

    python bench/rrl.py [--count 200000] [--repeat 5]

Calls the UDP Handler as a UDP thread does (`handler(wire, "udp", client)`), on the example
zones, for a mix of fast-path answers (a static A, a pool, an NXDOMAIN), in several set-ups
in the same run, and prints the best of `--repeat` runs per set-up (run in rounds over all of them, so load
from elsewhere falls on all alike) in ns per query and as a ratio to RRL off:

    off                 the default: the fast path's one attribute check
    on, under the limit one client network, every response sent
    on, limited (drop)  one network far over the limit, slip 0: dropped
    on, limited (slip)  the same, slip 1: each reply rebuilt truncated
    on, 256 networks    clients in 256 /24s, every response sent
    on, random sources  a /24 of its own for every query (a spoofed flood): the table of
                        100,000 accounts fills, and is evicted from, all the time

The last two are compared with the same clients and RRL off (sticky and geo pools keep
per-client caches, so many clients cost something without RRL too).

Only the server's own work is measured: a recvfrom and a sendto on loopback cost about
5.5 us more per query (docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import dns.message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gdns.answer.engine import Engine  # noqa: E402
from gdns.server.handler import Handler  # noqa: E402
from gdns.server.rrl import RateLimiter, RRLSettings  # noqa: E402
from gdns.zone.loader import load_folder  # noqa: E402

QUESTIONS = [("www.gslb.example.com.", "A"), ("app.gslb.example.com.", "A"), ("nope.gslb.example.com.", "A")]


def wires() -> list[bytes]:
    return [dns.message.make_query(name, qtype).to_wire() for name, qtype in QUESTIONS]


def setups():
    """(name, settings, client address of query i, the set-up without RRL it compares with)."""
    big = 1_000_000  # responses per second: never limited
    one, many = (lambda i: "198.51.100.7"), (lambda i: f"10.0.{i & 255}.1")

    def spoofed(i: int) -> str:  # a /24 of its own for every query of a run
        return f"{10 + (i >> 16 & 127)}.{i >> 8 & 255}.{i & 255}.1"

    yield "off", None, one, "off"
    yield "on, under the limit", RRLSettings(responses_per_second=big), one, "off"
    yield "on, limited (drop)", RRLSettings(responses_per_second=1, slip=0), one, "off"
    yield "on, limited (slip)", RRLSettings(responses_per_second=1, slip=1), one, "off"
    yield "off, 256 networks", None, many, "off, 256 networks"
    yield "on, 256 networks", RRLSettings(responses_per_second=big), many, "off, 256 networks"
    yield "off, random sources", None, spoofed, "off, random sources"
    yield "on, random sources", RRLSettings(responses_per_second=10), spoofed, "off, random sources"


def measure(handler: Handler, queries: list[bytes], address, count: int) -> float:
    """Seconds per query over `count` calls."""
    clients = [(address(i), 5300) for i in range(count)]
    n = len(queries)
    batch = [queries[i % n] for i in range(count)]
    call = handler.__call__
    began = time.perf_counter()
    for wire, client in zip(batch, clients, strict=True):
        call(wire, "udp", client)
    return (time.perf_counter() - began) / count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200_000, help="queries per run (default: 200000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per set-up; the best counts (default: 5)")
    args = parser.parse_args()
    engine = Engine(load_folder(ROOT / "zones"))
    queries = wires()
    prepared = []
    for name, settings, address, baseline in setups():
        handler = Handler(engine)
        for wire in queries:  # fill the fast path's table
            handler.full(wire, "udp", ("192.0.2.1", 5300), 0.0)
        if settings is not None:
            handler.fast.rrl = RateLimiter(settings)
        prepared.append((name, handler, address, baseline))
    best: dict[str, float] = {}
    for _ in range(args.repeat):  # rounds over every set-up, so load from elsewhere hits all alike
        for name, handler, address, _ in prepared:
            seconds = measure(handler, queries, address, args.count)
            best[name] = min(best.get(name, seconds), seconds)
    results = [
        (name, best[name], handler.stats.full - len(queries), handler.fast.rrl, baseline)
        for name, handler, address, baseline in prepared
    ]
    print(f"{'set-up':<22}{'ns/query':>10}{'ratio':>8}{'added ns':>10}   notes")
    for name, seconds, full, limiter, baseline in results:
        base = best[baseline]
        notes = []
        if limiter is not None:
            notes.append(f"table {len(limiter.table)}")
            if limiter.evicted:
                notes.append(f"evicted {limiter.evicted}")
        if full:
            notes.append(f"{full} on the full path")
        print(
            f"{name:<22}{seconds * 1e9:>10.0f}{seconds / base:>8.2f}{(seconds - base) * 1e9:>10.0f}   "
            + ", ".join(notes)
        )
    print(f"\n{args.count} queries per run, best of {args.repeat}; Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
