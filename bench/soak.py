"""Soak: a bounded run of mixed load with zone reloads, flapping backends and admin overrides,
checking that nothing is lost, every answer matches the health and zones of its moment, and
memory stays flat.

    python bench/soak.py [--duration 180] [--rate 2000] [--tcp-rate 20] [--max-growth-mib 10]
                         [--reload-every 3] [--flap-every 1.5] [--admin-every 4] [--json FILE]
                         [--log FILE] [-- more gdns serve arguments, e.g. --workers 2]

What runs, all on 127.0.0.0/8, every process started here stopped by its PID at the end:

* **Backends**: one child process (this script, `_backends`) serving aiohttp HTTP on
  127.0.0.41-48, one shared ephemeral port, `GET /health` answering 200. The script switches
  each one between healthy and one of three failures: status 503, not listening (the site is
  stopped and later restarted on the same port: connection refused), or slow (answers after
  0.4 s, beyond the check timeout).
* **gdns serve** on 127.0.0.1 (ephemeral DNS and web ports; more arguments after `--`), zones in
  a temporary folder: zone `soak.example.` with static names (A, AAAA, TXT, MX, CNAME in and
  out of the zone, a name that comes and goes) and six pools over the backends, all with one
  HTTP check (interval 200 ms, timeout 150 ms, rise 2, fall 2 by default): `www` weighted with
  A and AAAA members (the AAAA members are documentation addresses probed through `probe:` on
  the backends), `api` failover (primary, secondary; all down: NODATA), `sticky` sticky
  weighted, `near` latency, `fb` weighted (all down: a fallback address), `rr` round-robin
  with two answers (all down: SERVFAIL). An admin token and a state file are configured.
* For `--duration` seconds, at once:
  1. a UDP query stream at `--rate` queries/s (fixed send times, over 7 source ports so
     `--workers` spreads it), plus `--tcp-rate` queries/s over TCP (1-4 pipelined per
     connection); a mix of ~100 questions: pool names (A, AAAA, some with EDNS, some with EDNS
     Client Subnet from documentation networks), a CNAME to a pool, static names, the zone
     version's TXT, NODATA and NXDOMAIN. Every query ID is tracked, every reply timestamped;
  2. a zone reload every `--reload-every` s: the file is rewritten atomically (temporary file
     renamed over it) with a new version: SOA serial and TXT `version` = the version, a pool
     member's weight changed; every 5 versions `www` gains 127.0.0.48 for two versions, and
     every 3 the static name `flip` is removed or added back;
  3. every `--flap-every` s one backend whose state is at least 2.5 s old changes state
     (healthy to one of the three failures, or back);
  4. every `--admin-every` s an operator override is set through the admin API (force down or
     drain an `up` member, force up a `down` one) or the previous one is cleared;
  5. the server's view is read every `--poll` s from /api/v1/pools and /api/v1/zones (each
     member's state, each pool's shape, the serial);
  6. the server's memory (VmRSS, VmHWM, summed over its processes) every 10 s.

Checks, afterwards (each failure is printed with its detail):

* **lost**: a query with no reply within 2 s (the reply must also carry the question asked).
* **answers against the server's view** (hard): a pool answer must be what the server's
  published health allowed at some time within `W = poll + 0.2 s` before the query was sent
  or after the reply came (the poll period, plus scheduling and, with --workers, the
  hand-over of the snapshot to the workers). Allowed states are those the view samples in
  that window showed, and between two consecutive samples those in which each member that
  differs has made its change or not yet (a state can last less than the poll period: one
  member goes down and another comes up a few milliseconds later; a member changes at most
  once between two samples). What a state allows: the answered members up and in the pool, from
  the first group with an up member (failover) or any such group, as many as `answers`
  allows, the TTL degraded exactly when a member of the family is not up, and when none is
  up the `when_all_down` answer. A static answer (rcode, records, the SOA serial of NXDOMAIN
  and NODATA) must be that of a zone version the view showed within the same window, so old
  and new versions overlap only around a reload. A sticky pick must not change while its pool's
  health does not.
* **the server's view against the health the script caused**: a member must not stay up
  longer than `(fall + 1) x (1.1 x interval + timeout) + 0.3 s` after its backend failed
  (hard), nor stay down longer than `timeout + 1.1 x down_interval + rise x (1.1 x interval
  + timeout) + 0.3 s` after it recovered (hard); a forced state must show while it is set
  (hard). A member marked down while its backend was healthy (a probe that timed out on a busy
  machine) and back within the rise bound is counted as a spurious down and printed, not
  failed.
* **server log**: no ERROR line, no traceback.
* **memory**: RSS at the end minus RSS after the warm-up (`--warmup`, default 15 % of the
  run, at most 30 s) at most `--max-growth-mib`; min, max and the least-squares slope
  (MiB/min) of the samples after the warm-up are printed.

Exit status 0 when nothing is lost, nothing inconsistent, no server error and memory within
bounds; 1 otherwise; 2 when the run could not start. `--json FILE` writes the figures;
`--log FILE` keeps gdns's log, each line prefixed with the time the report uses (+seconds
from the start of the load), to match a reported answer with the transitions around it.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import http.client
import ipaddress
import itertools
import json
import math
import os
import queue
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from compare import descendants, start_time  # the same walk over /proc (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "soak.example."
BACKENDS = tuple(f"127.0.0.{i}" for i in range(41, 49))
TOKEN = "soak-admin-token"
LOST_AFTER = 2.0  # seconds without a reply: the query is lost
MAX_DURATION = 1800.0
HOLD = 2.5  # seconds a backend keeps a state at least, so the probes can see every state
SLOW = 0.4  # seconds a slow backend takes (beyond any timeout allowed here)
SLACK = 0.3  # seconds added to the probe-lag bounds: publish, event loop and poll scheduling
RSS_EVERY = 10.0
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}
TYPE_NAMES = {v: k for k, v in TYPES.items()}


def log(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


# -- the zone --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckSettings:
    interval: float
    timeout: float
    rise: int
    fall: int

    @property
    def down_interval(self) -> float:
        return 2 * self.interval  # gdns's default

    @property
    def down_bound(self) -> float:
        """Longest a member may stay up after its backend failed: a probe in flight at the
        flip still succeeds, then `fall` failures, each up to a jittered interval plus the
        timeout apart, then the publish."""
        return (self.fall + 1) * (1.1 * self.interval + self.timeout) + SLACK

    @property
    def up_bound(self) -> float:
        """Longest a member may stay down after its backend recovered: a failing probe in
        flight, a down_interval (jittered) until the next one, then `rise` successes."""
        return (
            self.timeout + 1.1 * self.down_interval + self.rise * (1.1 * self.interval + self.timeout) + SLACK
        )


def w42(version: int) -> int:
    return 1 + version % 4


def flip_present(version: int) -> bool:
    return (version // 3) % 2 == 0


def www_has_48(version: int) -> bool:
    return version % 5 in (1, 2)


def records(version: int) -> dict[str, dict[str, list[str]]]:
    """The static records of a version (owner relative to the origin, "@" for the apex)."""
    out = {
        "@": {"MX": [f"10 mail.{ORIGIN}"], "TXT": ["v=spf1 -all"]},
        "ns1": {"A": ["192.0.2.53"]},
        "ns2": {"A": ["198.51.100.53"]},
        "mail": {"A": ["192.0.2.25"]},
        "host": {"A": ["192.0.2.10", "192.0.2.11"], "AAAA": ["2001:db8::10"]},
        "alias": {"CNAME": [f"host.{ORIGIN}"]},
        "app": {"CNAME": [f"www.{ORIGIN}"]},
        "ext": {"CNAME": ["www.example.net."]},
        "version": {"TXT": [f"gen={version}"]},
        "info": {"TXT": [f"soak version {version}: 127.0.0.42 weighs {w42(version)} in www"]},
    }
    if flip_present(version):
        out["flip"] = {"A": [f"192.0.2.{100 + version % 100}"]}
    return out


FALLBACK = {"fb": ["192.0.2.250"]}


def pools(version: int) -> dict[str, dict]:
    def m(address: str, **more) -> dict:
        return {"address": address, **more}

    www = [m("127.0.0.41"), m("127.0.0.42", weight=w42(version)), m("127.0.0.43", weight=3)]
    if www_has_48(version):
        www.append(m("127.0.0.48"))
    www += [m("2001:db8::41", probe="127.0.0.41"), m("2001:db8::43", probe="127.0.0.43")]
    return {
        "www": {"strategy": "weighted", "ttl": 30, "degraded_ttl": 5, "members": www},
        "api": {
            "strategy": "failover",
            "ttl": 20,
            "degraded_ttl": 5,
            "when_all_down": "nodata",
            "groups": {
                "primary": {"members": [m("127.0.0.44")]},
                "secondary": {"members": [m("127.0.0.45"), m("127.0.0.46")]},
            },
        },
        "sticky": {
            "strategy": "weighted",
            "sticky": True,
            "ttl": 20,
            "members": [m("127.0.0.46"), m("127.0.0.47", weight=2), m("127.0.0.48")],
        },
        "near": {
            "strategy": "latency",
            "ttl": 10,
            "groups": {"a": {"members": [m("127.0.0.41")]}, "b": {"members": [m("127.0.0.47")]}},
        },
        "fb": {
            "strategy": "weighted",
            "ttl": 15,
            "when_all_down": "fallback",
            "fallback": FALLBACK["fb"],
            "members": [m("127.0.0.47"), m("127.0.0.48")],
        },
        "rr": {
            "strategy": "roundrobin",
            "answers": 2,
            "ttl": 10,
            "when_all_down": "servfail",
            "members": [m("127.0.0.42"), m("127.0.0.43"), m("127.0.0.44")],
        },
    }


POOL_NAMES = tuple(pools(0))


def zone_text(version: int, port: int, checks: CheckSettings) -> str:
    import yaml

    doc = {
        "origin": ORIGIN,
        "ttl": 300,
        "soa": {"mname": f"ns1.{ORIGIN}", "rname": f"hostmaster.{ORIGIN}", "serial": version, "minimum": 60},
        "ns": [f"ns1.{ORIGIN}", f"ns2.{ORIGIN}"],
        "records": {
            owner: {t: v if len(v) > 1 else v[0] for t, v in rrs.items()}
            for owner, rrs in records(version).items()
        },
        "checks": {
            "web": {
                "type": "http",
                "port": port,
                "path": "/health",
                "interval": f"{round(checks.interval * 1000)}ms",
                "timeout": f"{round(checks.timeout * 1000)}ms",
                "rise": checks.rise,
                "fall": checks.fall,
            }
        },
        "pools": {name: {**pool, "check": "web"} for name, pool in pools(version).items()},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_zone(folder: Path, version: int, port: int, checks: CheckSettings) -> None:
    """Atomically, as careful tools write: a hidden temporary file renamed over the zone file."""
    tmp = folder / ".soak.example.yaml.tmp"
    tmp.write_text(zone_text(version, port, checks))
    os.replace(tmp, folder / "soak.example.yaml")


def fqdn(label: str) -> str:
    return ORIGIN if label == "@" else f"{label}.{ORIGIN}"


def normalize(rtype: int, value: str) -> str:
    if rtype == TYPES["AAAA"]:
        return ipaddress.ip_address(value).compressed
    if rtype in (TYPES["CNAME"], TYPES["NS"]):
        return value.lower()
    if rtype == TYPES["MX"]:
        pref, name = value.split()
        return f"{int(pref)} {name.lower()}"
    return value


@dataclass(frozen=True)
class Expected:
    rcode: int
    answers: frozenset  # (owner, type, value) of the static part of the answer section
    soa_serial: int | None  # NXDOMAIN / NODATA: the version's serial in the authority section
    pool: str | None  # the chain ends at this pool's name (its A/AAAA records are judged apart)


def expect_static(version: int, qname: str, qtype: int) -> Expected:
    """What version `version` answers, following in-zone CNAMEs as gdns does."""
    recs = records(version)
    owner, answers = qname, []
    for _ in range(9):
        if owner == ORIGIN:
            label = "@"
        elif owner.endswith("." + ORIGIN):
            label = owner[: -len(ORIGIN) - 1]
        else:
            break  # out of the zone: the answer ends at the CNAME
        if label in POOL_NAMES and qtype in (TYPES["A"], TYPES["AAAA"]):
            return Expected(0, frozenset(answers), None, label)
        node = recs.get(label)
        if label == "@" and qtype == TYPES["SOA"]:
            answers.append((owner, qtype, str(version)))
            break
        if node is None:
            if label in POOL_NAMES or label == "@":
                return Expected(0, frozenset(answers), version, None)  # NODATA
            return Expected(3, frozenset(answers), version, None)  # NXDOMAIN
        name = TYPE_NAMES.get(qtype)
        if name in node:
            answers += [(owner, qtype, normalize(qtype, v)) for v in node[name]]
            break
        if "CNAME" in node:
            target = node["CNAME"][0].lower()
            answers.append((owner, TYPES["CNAME"], target))
            owner = target
            continue
        return Expected(0, frozenset(answers), version, None)  # NODATA
    return Expected(0, frozenset(answers), None, None)


# -- the questions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    name: str
    qtype: int
    edns: bool = False
    ecs: str | None = None  # client subnet (CIDR)

    @property
    def label(self) -> str:
        extra = f" ecs {self.ecs}" if self.ecs else (" edns" if self.edns else "")
        return f"{self.name} {TYPE_NAMES[self.qtype]}{extra}"

    def wire(self) -> bytes:
        """Everything after the ID: flags (RD clear), one question, an OPT record if EDNS."""
        name = b"".join(bytes([len(p)]) + p.encode() for p in self.name.rstrip(".").split(".")) + b"\0"
        arcount = 1 if self.edns or self.ecs else 0
        out = struct.pack("!HHHHH", 0, 1, 0, 0, arcount) + name + struct.pack("!HH", self.qtype, 1)
        if arcount:
            options = b""
            if self.ecs:
                net = ipaddress.ip_network(self.ecs)
                family = 1 if net.version == 4 else 2
                address = net.network_address.packed[: (net.prefixlen + 7) // 8]
                data = struct.pack("!HBB", family, net.prefixlen, 0) + address
                options = struct.pack("!HH", 8, len(data)) + data
            out += b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(options)) + options
        return out


def catalog() -> list[tuple[Question, int]]:
    """The questions and how many of every ~100 queries ask each."""
    A, AAAA, TXT = TYPES["A"], TYPES["AAAA"], TYPES["TXT"]

    def q(label: str, qtype: int, **more) -> Question:
        return Question(fqdn(label), qtype, **more)

    subnets = ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.128/25", "2001:db8:1::/48", "2001:db8:2::/56"]
    mix = [
        (q("www", A), 12),
        (q("www", A, edns=True), 3),
        (q("www", AAAA), 4),
        (q("api", A), 7),
        (q("api", A, edns=True), 1),
        (q("sticky", A), 4),
        *[(q("sticky", A, ecs=s), 1) for s in subnets],
        (q("near", A), 4),
        (q("fb", A), 4),
        (q("rr", A), 4),
        (q("app", A), 3),
        (q("app", AAAA), 1),
        (q("www", TYPES["MX"]), 1),
        (q("version", TXT), 8),
        (q("version", TXT, edns=True), 1),
        (q("info", TXT), 3),
        (q("host", A), 5),
        (q("host", AAAA), 3),
        (q("host", TXT), 2),
        (q("@", TYPES["MX"]), 3),
        (q("@", TXT), 1),
        (q("@", TYPES["SOA"]), 1),
        (q("alias", A), 3),
        (q("ext", A), 2),
        (q("flip", A), 4),
        (q("mail", A), 1),
        *[(q(f"nx-{k}", A), 1) for k in range(5)],
    ]
    return mix


def schedule(mix: list[tuple[Question, int]], rng: random.Random, length: int = 1000) -> list[int]:
    weights = [w for _, w in mix]
    return rng.choices(range(len(mix)), weights=weights, k=length)


# -- replies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    rcode: int
    aa: bool
    tc: bool
    qname: str
    qtype: int
    answers: tuple  # (owner, type, ttl, value)
    soa_serial: int | None
    ecs_scope: int | None
    error: str | None = None


def parse_reply(body: bytes) -> Reply:
    """`body` is a reply without its ID."""
    from dnslib import DNSRecord

    try:
        rec = DNSRecord.parse(b"\0\0" + body)
    except Exception as exc:  # a reply dnslib cannot read is itself an inconsistency
        return Reply(-1, False, False, "", 0, (), None, None, error=f"unparsable reply: {exc}")
    answers = []
    for rr in rec.rr:
        rtype = rr.rtype
        if rtype in (TYPES["A"], TYPES["AAAA"]):
            value = str(rr.rdata)
        elif rtype == TYPES["TXT"]:
            value = b"".join(rr.rdata.data).decode(errors="replace")
        elif rtype == TYPES["MX"]:
            value = f"{rr.rdata.preference} {rr.rdata.label}"
        elif rtype in (TYPES["CNAME"], TYPES["NS"]):
            value = str(rr.rdata.label)
        elif rtype == TYPES["SOA"]:
            value = str(rr.rdata.times[0])
        else:
            value = str(rr.rdata)
        answers.append((str(rr.rname).lower(), rtype, rr.ttl, normalize(rtype, value)))
    serial = next((rr.rdata.times[0] for rr in rec.auth if rr.rtype == TYPES["SOA"]), None)
    scope = None
    for rr in rec.ar:
        if rr.rtype == 41:
            for option in rr.rdata:
                if option.code == 8 and len(option.data) >= 4:
                    scope = option.data[3]
    return Reply(
        rec.header.rcode,
        bool(rec.header.aa),
        bool(rec.header.tc),
        str(rec.q.qname).lower(),
        rec.q.qtype,
        tuple(answers),
        serial,
        scope,
    )


class Bodies:
    """Reply bodies (everything after the ID) interned: most replies repeat byte for byte, so
    each distinct one is kept and parsed once."""

    def __init__(self):
        self.index: dict[bytes, int] = {}
        self.items: list[bytes] = []
        self._lock = threading.Lock()

    def intern(self, body: bytes) -> int:
        found = self.index.get(body)
        if found is not None:
            return found
        with self._lock:
            found = self.index.get(body)
            if found is None:
                found = len(self.items)
                self.items.append(body)
                self.index[body] = found
            return found


# -- the backends (a child process) ----------------------------------------------------------


async def backends_child(addresses: list[str], lifetime: float) -> None:
    """HTTP on every address, one shared port; commands on stdin, one acknowledgement each."""
    from aiohttp import web

    status = dict.fromkeys(addresses, 200)
    delay = dict.fromkeys(addresses, 0.0)

    async def health(request: web.Request) -> web.Response:
        host = request.transport.get_extra_info("sockname")[0] if request.transport else ""
        if delay.get(host):
            await asyncio.sleep(delay[host])
        return web.Response(status=status.get(host, 200), text="soak backend")

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
    await runner.setup()
    sites: dict[str, web.TCPSite] = {}
    port = 0
    for _ in range(20):  # the first address picks a port; the others must get the same one
        sites.clear()
        try:
            first = web.TCPSite(runner, addresses[0], 0)
            await first.start()
            port = runner.addresses[0][1]
            sites[addresses[0]] = first
            for address in addresses[1:]:
                site = web.TCPSite(runner, address, port)
                await site.start()
                sites[address] = site
            break
        except OSError:
            for site in list(sites.values()):
                await site.stop()
            port = 0
    if not port:
        print("error no common free port", flush=True)
        return
    print(f"ready {port}", flush=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    while loop.time() < deadline:
        try:
            line = await asyncio.wait_for(
                loop.run_in_executor(None, sys.stdin.readline), deadline - loop.time()
            )
        except TimeoutError:
            break
        words = line.split()
        if not words or words[0] == "quit":
            break
        try:
            command, address = words[0], words[1]
            if command == "status":
                status[address] = int(words[2])
            elif command == "delay":
                delay[address] = float(words[2])
            elif command == "close":
                await sites.pop(address).stop()
            elif command == "open":
                site = web.TCPSite(runner, address, port)
                await site.start()
                sites[address] = site
            else:
                raise ValueError(f"unknown command {command!r}")
            print("ok", flush=True)
        except (OSError, ValueError, KeyError, IndexError) as exc:
            print(f"error {exc!r}", flush=True)
    await runner.cleanup()


class Backends:
    """The parent's handle on the backend process: one command at a time, acknowledged."""

    MODES = ("503", "closed", "slow")

    def __init__(self, lifetime: float):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "_backends", str(lifetime), *BACKENDS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.replies: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self._reply(15)
        if not first.startswith("ready "):
            self.stop()
            raise RuntimeError(f"backends did not start: {first!r}")
        self.port = int(first.split()[1])
        self.mode = dict.fromkeys(BACKENDS, "200")  # "200" or one of MODES
        # address -> [(time the change took effect, healthy)], sorted
        self.timeline: dict[str, list[tuple[float, bool]]] = {a: [(0.0, True)] for a in BACKENDS}
        self.changed_at = dict.fromkeys(BACKENDS, time.monotonic())
        self.flaps: dict[str, int] = dict.fromkeys(self.MODES, 0)
        self.restores = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.replies.put(line.strip())

    def _reply(self, timeout: float) -> str:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return "error no reply"

    def command(self, line: str) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self._reply(5)
        if reply != "ok":
            raise RuntimeError(f"backend command {line!r}: {reply}")
        return time.monotonic()

    def set(self, address: str, mode: str) -> None:
        """Switch `address` to `mode` ("200" or one of MODES); record when it took effect."""
        old = self.mode[address]
        if mode == old:
            return
        # Leave the old failure first (each is one command), then enter the new state.
        if old == "503":
            self.command(f"status {address} 200")
        elif old == "closed":
            self.command(f"open {address}")
        elif old == "slow":
            self.command(f"delay {address} 0")
        if mode == "503":
            self.command(f"status {address} 503")
        elif mode == "closed":
            self.command(f"close {address}")
        elif mode == "slow":
            self.command(f"delay {address} {SLOW}")
        now = time.monotonic()
        self.mode[address] = mode
        self.changed_at[address] = now
        self.timeline[address].append((now, mode == "200"))
        if mode == "200":
            self.restores += 1
        else:
            self.flaps[mode] += 1

    def healthy(self, address: str, at: float) -> tuple[bool, float]:
        """The caused health of `address` at `at`, and since when."""
        line = self.timeline[address]
        i = bisect.bisect_right(line, (at, True)) - 1
        when, healthy = line[max(i, 0)]
        return healthy, when

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)


# -- the server ------------------------------------------------------------------------------


class Server:
    """`gdns serve` as a child process; its stderr read, timestamped and scanned by a thread."""

    MAX_LINES = 100_000

    def __init__(self, folder: Path, token_file: Path, state_file: Path, extra: list[str]):
        self.lines: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.reloaded = 0
        self.reload_failures = 0
        cmd = [
            sys.executable,
            "-m",
            "gdns",
            "serve",
            "--zones",
            str(folder),
            "--listen",
            "127.0.0.1:0",
            "--web",
            "127.0.0.1:0",
            "--reload-interval",
            "0.5",
            "--admin-token-file",
            str(token_file),
            "--state-file",
            str(state_file),
            *extra,
        ]
        self.command = " ".join(cmd[2:])
        self.proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        in_traceback = False
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            if len(self.lines) < self.MAX_LINES:
                self.lines.append((time.monotonic(), line))
            if " ERROR " in line or line.startswith("Traceback") or in_traceback:
                self.errors.append(line)
                in_traceback = line.startswith("Traceback") or (in_traceback and line.startswith(" "))
            if "zones reloaded" in line:
                self.reloaded += 1
            elif "zone reload" in line and "failed" in line:
                self.reload_failures += 1

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for _, line in list(self.lines):
                match = regex.search(line)
                if match:
                    return match
            time.sleep(0.05)
        return None

    def pids(self) -> list[int]:
        return descendants(self.proc.pid) if self.proc.poll() is None else []

    def memory(self) -> tuple[float, float, int]:
        """Sum of VmRSS and of VmHWM over the server's processes (MiB), and how many."""
        rss = hwm = count = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            r = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            h = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if r and h:
                rss, hwm, count = rss + int(r.group(1)), hwm + int(h.group(1)), count + 1
        return rss / 1024, hwm / 1024, count

    def cpu(self) -> float:
        """User + system CPU seconds of the server's processes so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / tick

    def stop(self) -> None:
        below = {pid: start_time(pid) for pid in self.pids() if pid != self.proc.pid}
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log(f"gdns (pid {self.proc.pid}) ignored SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        for pid, started in below.items():  # workers outliving the instance: same process only
            if started is not None and start_time(pid) == started:
                log(f"gdns worker pid {pid} still running after the server stopped; sending SIGTERM")
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)


# -- load ------------------------------------------------------------------------------------


class Records:
    """One row per query: the question, when it was sent, when its reply came, the reply."""

    def __init__(self, size: int):
        self.size = size
        self.qidx = array("H", bytes(2 * size))
        self.sent = array("d", bytes(8 * size))
        self.got = array("d", [math.nan]) * size
        self.body = array("i", [-1]) * size
        self.count = 0


class UdpStream(threading.Thread):
    """Queries at fixed send times over several sockets; every reply matched by ID and socket."""

    SOCKETS = 7

    def __init__(self, port, wires, order, rate, begin, stop_at, bodies: Bodies):
        super().__init__(daemon=True, name="udp-stream")
        self.port, self.wires, self.order, self.rate = port, wires, order, rate
        self.begin, self.stop_at, self.bodies = begin, stop_at, bodies
        self.records = Records(int(rate * (stop_at - begin)) + 1000)
        self.send_errors = 0
        self.unmatched = 0
        self.client_ports: list[int] = []
        self.client_drops = 0
        self.stall = 0.0  # the longest pause between two sends: the client's own hiccups
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _run(self) -> None:
        socks = []
        for _ in range(self.SOCKETS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.connect(("127.0.0.1", self.port))
            s.setblocking(False)
            socks.append(s)
        pending: list[dict[int, int]] = [{} for _ in socks]
        index = {s.fileno(): i for i, s in enumerate(socks)}
        self.client_ports = [s.getsockname()[1] for s in socks]
        rec, wires, order, bodies = self.records, self.wires, self.order, self.bodies
        interval = 1.0 / self.rate
        n = len(socks)
        last_send = self.begin
        # Bounded in time, and in turns: each one sends, receives, or waits up to 50 ms.
        turns = 2 * rec.size + int((self.stop_at - self.begin + LOST_AFTER + 1) / 0.05)
        try:
            for _ in range(turns):
                now = time.monotonic()
                if now >= self.stop_at + LOST_AFTER + 0.5:
                    break
                sending = now < self.stop_at and rec.count < rec.size
                due = self.begin + rec.count * interval
                burst = 0
                while sending and due <= now and burst < 64 and rec.count < rec.size:
                    seq = rec.count
                    k = seq % n
                    qi = order[seq % len(order)]
                    qid = (seq // n) & 0xFFFF
                    pending[k][qid] = seq
                    rec.qidx[seq] = qi
                    rec.sent[seq] = now
                    try:
                        socks[k].send(struct.pack("!H", qid) + wires[qi])
                    except OSError:
                        self.send_errors += 1
                    rec.count += 1
                    burst += 1
                    self.stall = max(self.stall, now - last_send)
                    last_send = now
                    due = self.begin + rec.count * interval
                wait = max(0.0, due - time.monotonic()) if sending else 0.05
                readable, _, _ = select.select(socks, [], [], min(wait, 0.05))
                for sock in readable:
                    k = index[sock.fileno()]
                    for _ in range(256):  # bounded: the rest waits for the next turn
                        try:
                            data = sock.recv(4096)
                        except BlockingIOError:
                            break
                        got = time.monotonic()
                        if len(data) < 12:
                            self.unmatched += 1
                            continue
                        seq = pending[k].pop(struct.unpack_from("!H", data)[0], None)
                        if seq is None or not math.isnan(rec.got[seq]):
                            self.unmatched += 1
                            continue
                        rec.got[seq] = got
                        rec.body[seq] = bodies.intern(data[2:])
        finally:
            self.client_drops = socket_drops(set(self.client_ports))
            for s in socks:
                s.close()


class TcpStream(threading.Thread):
    """Every so often a connection with 1-4 pipelined queries, each reply awaited <= 2 s."""

    def __init__(self, port, wires, order, rate, begin, stop_at, bodies: Bodies, seed: int):
        super().__init__(daemon=True, name="tcp-stream")
        self.port, self.wires, self.order, self.rate = port, wires, order, rate
        self.begin, self.stop_at, self.bodies = begin, stop_at, bodies
        self.records = Records(int(rate * (stop_at - begin)) + 100)
        self.rng = random.Random(seed)
        self.connect_errors = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _run(self) -> None:
        rec = self.records
        next_at = self.begin
        while rec.count < rec.size:
            now = time.monotonic()
            if now >= self.stop_at:
                break
            if now < next_at:
                time.sleep(min(next_at - now, 0.05))
                continue
            k = min(self.rng.randint(1, 4), rec.size - rec.count)
            next_at += k / self.rate
            self._session(k)

    def _session(self, k: int) -> None:
        rec = self.records
        first = rec.count
        frames = []
        for j in range(k):
            seq = first + j
            qi = self.order[(seq * 13) % len(self.order)]
            rec.qidx[seq] = qi
            query = struct.pack("!H", seq & 0xFFFF) + self.wires[qi]
            frames.append(struct.pack("!H", len(query)) + query)
        rec.count += k
        now = time.monotonic()
        for j in range(k):
            rec.sent[first + j] = now
        deadline = now + LOST_AFTER
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=LOST_AFTER) as sock:
                sock.sendall(b"".join(frames))
                buffer = b""
                answered = 0
                while answered < k:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    sock.settimeout(left)
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack_from("!H", buffer)[0]:
                        size = struct.unpack_from("!H", buffer)[0]
                        data, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                        got = time.monotonic()
                        seq = first + answered  # replies come in order (RFC 7766 allows any;
                        answered += 1  # gdns answers in order): the ID confirms it
                        if len(data) >= 12 and struct.unpack_from("!H", data)[0] == seq & 0xFFFF:
                            rec.got[seq] = got
                            rec.body[seq] = self.bodies.intern(data[2:])
        except OSError:
            self.connect_errors += 1


# -- the server's view ------------------------------------------------------------------------


@dataclass
class Sample:
    t0: float  # before the requests
    t1: float  # after the replies
    serial: int | None
    pools: dict[str, int]  # pool label -> interned pool state id
    members: int  # interned member table id


class Viewer(threading.Thread):
    """Reads /api/v1/pools and /api/v1/zones every `period` seconds over one connection."""

    def __init__(self, port: int, period: float, stop_at: float):
        super().__init__(daemon=True, name="viewer")
        self.port, self.period, self.stop_at = port, period, stop_at
        self.samples: list[Sample] = []
        self.states: list[tuple] = []  # interned pool states
        self._state_ids: dict[tuple, int] = {}
        self.tables: list[tuple] = []  # interned member tables
        self._table_ids: dict[tuple, int] = {}
        self.errors = 0
        self.longest = 0.0  # the slowest sample
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _intern(self, value: tuple, ids: dict, items: list) -> int:
        found = ids.get(value)
        if found is None:
            found = ids[value] = len(items)
            items.append(value)
        return found

    def intern_state(self, state: tuple) -> int:
        return self._intern(state, self._state_ids, self.states)

    def _get(self, conn: http.client.HTTPConnection, path: str):
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"{path}: HTTP {response.status}")
        return json.loads(body)

    def latest(self) -> tuple:
        return self.tables[self.samples[-1].members] if self.samples else ()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        next_at = time.monotonic()
        for _ in range(2 * int((self.stop_at - next_at) / self.period) + 100):  # a turn waits or reads
            now = time.monotonic()
            if now >= self.stop_at:
                break
            if now < next_at:
                time.sleep(next_at - now)
                continue
            next_at = max(next_at + self.period, now)
            t0 = time.monotonic()
            try:
                pools_doc = self._get(conn, "/api/v1/pools")
                zones_doc = self._get(conn, "/api/v1/zones")
            except (OSError, http.client.HTTPException, ValueError):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                continue
            t1 = time.monotonic()
            self.longest = max(self.longest, t1 - t0)
            serial = next((z["serial"] for z in zones_doc["zones"] if z["origin"] == ORIGIN), None)
            by_pool, table = {}, []
            for pool in pools_doc["pools"]:
                label = pool["name"][: -len(ORIGIN) - 1]
                groups = tuple(
                    (g["name"], tuple((m["address"], shown_state(m)) for m in g["members"]))
                    for g in pool["groups"]
                )
                state = (
                    pool["strategy"],
                    pool["answers"],
                    pool["ttl"],
                    pool["degraded_ttl"],
                    pool["when_all_down"],
                    groups,
                )
                by_pool[label] = self._intern(state, self._state_ids, self.states)
                for g in pool["groups"]:
                    for m in g["members"]:
                        probe = (m["check"] or {}).get("address")
                        forced = (m["override"] or {}).get("state")
                        table.append((m["key"], probe, m["state"], m["reason"], forced))
            tid = self._intern(tuple(table), self._table_ids, self.tables)
            self.samples.append(Sample(t0, t1, serial, by_pool, tid))
        conn.close()


# -- the controller: reloads, flaps, overrides, memory ------------------------------------------


@dataclass
class Override:
    key: str
    state: str
    set_at: float  # the API had answered
    cleared_at: float = math.inf  # the clear request was about to be sent


@dataclass
class Run:
    versions: list[tuple[int, float]] = field(default_factory=list)  # (version, written at)
    overrides: list[Override] = field(default_factory=list)
    admin_errors: list[str] = field(default_factory=list)
    memory: list[tuple[float, float, float, int]] = field(default_factory=list)  # (t, rss, hwm, procs)


def admin(web_port: int, method: str, body: dict | None = None, query: str = "") -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, "/api/v1/overrides" + query, body=payload, headers=headers)
        response = conn.getresponse()
        data = json.loads(response.read() or b"{}")
        if response.status != 200:
            raise OSError(f"{method} override: HTTP {response.status}: {data}")
        return data
    finally:
        conn.close()


def control(args, folder, server, backends, viewer, web_port, begin, stop_at, run, rng) -> None:
    """The main thread's loop: each action at its time, until `stop_at`."""
    checks = args.check_settings
    version = 1  # the version the server started with
    next_reload = begin + args.reload_every
    next_flap = begin + args.flap_every / 2
    next_admin = begin + args.admin_every
    next_memory = begin
    active: Override | None = None
    for _ in range(int((stop_at - begin) / 0.01) + 100):  # bounded: at most one turn per 10 ms
        now = time.monotonic()
        if now >= stop_at:
            break
        if now >= next_memory:
            rss, hwm, procs = server.memory()
            run.memory.append((now, rss, hwm, procs))
            next_memory += RSS_EVERY
        if now >= next_reload:
            version += 1
            write_zone(folder, version, backends.port, checks)
            run.versions.append((version, time.monotonic()))
            next_reload += args.reload_every
        if now >= next_flap:
            flap(backends, rng)
            next_flap += args.flap_every
        if now >= next_admin:
            active = admin_step(web_port, viewer, active, run, rng)
            next_admin += args.admin_every
        time.sleep(max(0.0, min(next_reload, next_flap, next_admin, next_memory, stop_at) - time.monotonic()))
    if active is not None:  # leave no override behind (the state file is temporary anyway)
        with contextlib.suppress(OSError):
            active.cleared_at = time.monotonic()
            admin(web_port, "DELETE", query="?member=" + quote(active.key))
    rss, hwm, procs = server.memory()
    run.memory.append((time.monotonic(), rss, hwm, procs))


def flap(backends: Backends, rng: random.Random) -> None:
    now = time.monotonic()
    ready = [a for a in BACKENDS if now - backends.changed_at[a] >= HOLD]
    if not ready:
        return
    down = [a for a in ready if backends.mode[a] != "200"]
    # Keep about a third down: restore when more are down, fail one when fewer.
    unhealthy = sum(1 for a in BACKENDS if backends.mode[a] != "200")
    if down and (unhealthy >= len(BACKENDS) // 3 or rng.random() < 0.3):
        backends.set(rng.choice(down), "200")
    else:
        up = [a for a in ready if backends.mode[a] == "200"]
        if up:
            backends.set(rng.choice(up), rng.choice(Backends.MODES))


def admin_step(web_port: int, viewer: Viewer, active: Override | None, run: Run, rng) -> Override | None:
    """Clear the override that is set, or set a new one on a member of a stable pool."""
    try:
        if active is not None:
            active.cleared_at = time.monotonic()
            admin(web_port, "DELETE", query="?member=" + quote(active.key))
            return None
        table = [row for row in viewer.latest() if not row[0].startswith("www.")]
        if not table:
            return None
        key, _, state, _, _ = rng.choice(table)
        wanted = "up" if state != "up" else rng.choice(("down", "down", "drain"))
        admin(web_port, "POST", {"member": key, "state": wanted})
        override = Override(key, wanted, time.monotonic())
        run.overrides.append(override)
        return override
    except OSError as exc:
        run.admin_errors.append(str(exc))
        return active


# -- the checks ------------------------------------------------------------------------------


def family_of(address: str) -> int:
    return 6 if ":" in address else 4


def shown_state(member: dict) -> str:
    """A member's state in the view, with "!" after a state other than up that a person set (an
    override, else the configured status): `when_all_down: all` leaves those members out."""
    override = (member["override"] or {}).get("state")
    configured = member["configured_status"]
    forced = override is not None or configured != "up"
    return member["state"] + ("!" if member["state"] != "up" and forced else "")


def judge_pool(
    state: tuple, family: int, addrs: list[str], ttls: set[int], rcode: int, pool: str
) -> str | None:
    """None when the server, with this view of the pool, may give this answer; else why not."""
    strategy, answers, ttl, degraded_ttl, when_all_down, groups = state
    fam = [(g, [(a, s) for a, s in ms if family_of(a) == family]) for g, ms in groups]
    fam = [(g, ms) for g, ms in fam if ms]
    if not fam:
        return None if rcode == 0 and not addrs else "the pool has no member of this family: NODATA expected"
    usable = [(g, [a for a, s in ms if s == "up"]) for g, ms in fam]
    usable = [(g, ups) for g, ups in usable if ups]
    low = min(ttl, degraded_ttl) if degraded_ttl is not None else ttl
    if not usable:
        if when_all_down == "servfail":
            return None if rcode == 2 else f"all down: SERVFAIL expected, got rcode {rcode}"
        want = {
            "all": [a for _, ms in fam for a, s in ms if not s.endswith("!")],  # NODATA if none
            "fallback": [a for a in FALLBACK.get(pool, []) if family_of(a) == family],
            "nodata": [],
        }[when_all_down]
        if rcode != 0 or sorted(addrs) != sorted(want):
            return f"all down ({when_all_down}): {sorted(want)} expected"
        if addrs and ttls != {low}:
            return f"all down: TTL {sorted(ttls)}, {low} expected"
        return None
    if rcode != 0:
        return f"rcode {rcode}, members up: {usable}"
    if len(set(addrs)) != len(addrs):
        return "a member answered twice"
    for _, ups in usable[:1] if strategy == "failover" else usable:
        if set(addrs) <= set(ups) and len(addrs) == min(answers, len(ups)):
            break
    else:
        which = "the first group with a member up" if strategy == "failover" else "one group's up members"
        return f"not {min(answers, len(usable[0][1]))} of {which}: up {usable}"
    degraded = any(s != "up" for _, ms in fam for _, s in ms)
    want_ttl = low if degraded else ttl
    if ttls != {want_ttl}:
        return f"TTL {sorted(ttls)}, {want_ttl} expected ({'degraded' if degraded else 'all up'})"
    return None


@dataclass
class Verdicts:
    checked: int = 0
    pool_answers: int = 0
    static_answers: int = 0
    inconsistent: list[str] = field(default_factory=list)
    inconsistent_count: int = 0
    out_of_window: int = 0  # judged against the nearest samples: none fell in the window
    between_only: int = 0  # allowed only by a state between two samples
    between_examples: list[str] = field(default_factory=list)

    def bad(self, text: str) -> None:
        self.inconsistent_count += 1
        if len(self.inconsistent) < 20:
            self.inconsistent.append(text)


class Judge:
    def __init__(self, questions: list[Question], bodies: Bodies, viewer: Viewer, window: float):
        self.questions = questions
        self.viewer = viewer
        self.window = window
        self.samples = viewer.samples
        self.starts = [s.t0 for s in self.samples]
        self.replies = [parse_reply(b) for b in bodies.items]
        self.static_memo: dict[tuple, str | None] = {}
        self.pool_memo: dict[tuple, str | None] = {}
        self.sticky: dict[tuple, tuple[tuple, float]] = {}
        self._between: dict[tuple[int, int], list[int]] = {}
        self.v = Verdicts()
        self.origin = viewer.samples[0].t0 if viewer.samples else 0.0

    def around(self, sent: float, got: float) -> list[Sample]:
        lo, hi = sent - self.window, got + self.window
        i = bisect.bisect_left(self.starts, lo - 5.0)  # a sample takes well under 5 s
        found = [s for s in self.samples[i : bisect.bisect_right(self.starts, hi)] if s.t1 >= lo]
        if found:
            return found
        self.v.out_of_window += 1
        j = bisect.bisect_left(self.starts, lo)
        return self.samples[max(0, j - 1) : j + 1]

    def check(self, qi: int, sent: float, got: float, body: int, transport: str) -> None:
        self.v.checked += 1
        q = self.questions[qi]
        r = self.replies[body]
        where = (
            f"{transport} {q.label!r} sent at +{sent - self.origin:.3f}s, answered {got - sent:.3f}s later"
        )
        if r.error:
            return self.v.bad(f"{where}: {r.error}")
        if r.qname != q.name or r.qtype != q.qtype:
            return self.v.bad(f"{where}: the reply is for {r.qname} {r.qtype}")
        if not r.aa or r.tc:
            return self.v.bad(f"{where}: flags AA={r.aa} TC={r.tc}")
        if q.ecs and r.ecs_scope is not None and r.ecs_scope > int(q.ecs.split("/")[1]):
            return self.v.bad(f"{where}: ECS scope {r.ecs_scope} wider than the source prefix")
        window = self.around(sent, got)
        versions = tuple(sorted({s.serial for s in window if s.serial is not None}))
        key = (body, qi, versions)
        problem = self.static_memo.get(key, "")
        if problem == "":
            problem = self.static_memo[key] = self._static(q, r, versions)
        if problem:
            return self.v.bad(f"{where}: {problem}; answer {self._show(r)}")
        expected = expect_static(versions[-1] if versions else 0, q.name, q.qtype)
        if expected.pool is None:
            self.v.static_answers += 1
            return None
        self.v.pool_answers += 1
        pool = expected.pool
        owner = fqdn(pool)
        family = 6 if q.qtype == TYPES["AAAA"] else 4
        part = [a for a in r.answers if a[0] == owner and a[1] in (TYPES["A"], TYPES["AAAA"])]
        addrs = [a[3] for a in part]
        ttls = {a[2] for a in part}
        seen = [s.pools[pool] for s in window if pool in s.pools]
        ids = list(dict.fromkeys(seen))
        sampled = len(ids)
        for x, y in zip(seen, seen[1:], strict=False):
            if x != y:
                ids += [sid for sid in self.between(x, y) if sid not in ids]
        reasons = []
        for n, sid in enumerate(ids):
            memo = (body, qi, sid)
            problem = self.pool_memo.get(memo, "")
            if problem == "":
                problem = self.pool_memo[memo] = judge_pool(
                    self.viewer.states[sid], family, addrs, ttls, r.rcode, pool
                )
            if problem is None:
                if n >= sampled:  # only a state between two samples allows it
                    self.v.between_only += 1
                    if len(self.v.between_examples) < 5:
                        self.v.between_examples.append(
                            f"{where}: {addrs} allowed by {self._state(sid)}; "
                            + "; ".join(
                                f"view at +{s.t0 - self.origin:.3f}s {self._state(s.pools[pool])}"
                                for s in window
                                if pool in s.pools
                            )
                        )
                break
            reasons.append(problem)
        else:
            shown = "; ".join(
                f"view at +{s.t0 - self.origin:.3f}s {self._state(s.pools[pool])}"
                for s in window
                if pool in s.pools
            )
            return self.v.bad(
                f"{where}: {addrs or 'no address'} (rcode {r.rcode}, TTL {sorted(ttls)}) allowed by none of "
                f"{len(ids)} states ({'; '.join(dict.fromkeys(reasons))}); {shown}"
            )
        ids = list(dict.fromkeys(seen))
        if len(ids) == 1 and self.viewer.states[ids[0]][1] and pool == "sticky" and r.rcode == 0:
            # The same client network with the same health must get the same member.
            skey = (q.ecs, ids[0])
            seen = self.sticky.get(skey)
            if seen is None:
                self.sticky[skey] = (tuple(sorted(addrs)), sent)
            elif seen[0] != tuple(sorted(addrs)):
                self.v.bad(
                    f"{where}: sticky answer {addrs}, but {list(seen[0])} at +{seen[1] - self.origin:.3f}s "
                    f"with the same health {self._state(ids[0])}"
                )
        return None

    def between(self, a: int, b: int) -> list[int]:
        """The states a pool may have had between two samples showing states a and b: each
        member has made its change (state, or presence after a reload) or not yet. A member
        changes at most once between two samples: probes (rise and fall need a probe or more,
        one interval apart), overrides and reloads are all further apart than the poll."""
        found = self._between.get((a, b))
        if found is not None:
            return found
        sa, sb = self.viewer.states[a], self.viewer.states[b]
        ga, gb = dict(sa[5]), dict(sb[5])
        order = [g for g, _ in sa[5]] + [g for g, _ in sb[5] if g not in ga]
        members: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        for g in order:
            ma, mb = dict(ga.get(g, ())), dict(gb.get(g, ()))
            for address in [*ma, *(x for x in mb if x not in ma)]:
                members[(g, address)] = (ma.get(address), mb.get(address))
        changing = [k for k, (x, y) in members.items() if x != y]
        found = []
        if len(changing) <= 10:  # at most 1024 mixtures (a handful here)
            for choice in itertools.product((0, 1), repeat=len(changing)):
                picked = dict(zip(changing, choice, strict=True))
                groups = []
                for g in order:
                    ms = tuple(
                        (address, values[picked.get((g, address), 0)])
                        for (group, address), values in members.items()
                        if group == g and values[picked.get((g, address), 0)] is not None
                    )
                    if ms:
                        groups.append((g, ms))
                for head in dict.fromkeys((sa[:5], sb[:5])):
                    found.append(self.viewer.intern_state((*head, tuple(groups))))
        self._between[(a, b)] = found
        return found

    def _static(self, q: Question, r: Reply, versions: tuple) -> str | None:
        problems = []
        for version in versions or (None,):
            if version is None:
                return "no zone version known around this time"
            e = expect_static(version, q.name, q.qtype)
            pool_owner = fqdn(e.pool) if e.pool else None
            static = frozenset(
                (o, t, v)
                for o, t, _, v in r.answers
                if not (o == pool_owner and t in (TYPES["A"], TYPES["AAAA"]))
            )
            ttls = {ttl for o, t, ttl, _ in r.answers if t != TYPES["SOA"] and o != pool_owner}
            if e.pool is None and r.rcode != e.rcode:
                problems.append(f"v{version}: rcode {r.rcode}, {e.rcode} expected")
            elif static != e.answers:
                problems.append(f"v{version}: records {sorted(e.answers)} expected")
            elif e.soa_serial is not None and r.soa_serial != e.soa_serial:
                problems.append(f"v{version}: SOA serial {r.soa_serial}, {e.soa_serial} expected")
            elif ttls - {300}:
                problems.append(f"v{version}: TTL {sorted(ttls)}, 300 expected")
            else:
                return None
        return "not any zone version served around then: " + "; ".join(problems)

    def _state(self, sid: int) -> str:
        groups = self.viewer.states[sid][5]
        return " ".join(f"{g}[{','.join(f'{a}:{s}' for a, s in ms)}]" for g, ms in groups)

    @staticmethod
    def _show(r: Reply) -> str:
        records = ", ".join(f"{TYPE_NAMES.get(t, t)} {v} ttl {ttl}" for _, t, ttl, v in r.answers)
        return f"rcode {r.rcode} [{records}] soa {r.soa_serial}"


@dataclass
class HealthReport:
    late_down: list[str] = field(default_factory=list)  # hard: up too long after a failure
    late_up: list[str] = field(default_factory=list)  # hard: down too long after a recovery
    override_ignored: list[str] = field(default_factory=list)  # hard
    spurious: list[str] = field(default_factory=list)  # soft: down while healthy, back in time
    detect_down: list[float] = field(default_factory=list)
    detect_up: list[float] = field(default_factory=list)
    transitions: int = 0

    @property
    def hard(self) -> int:
        return len(self.late_down) + len(self.late_up) + len(self.override_ignored)


def judge_health(viewer: Viewer, backends: Backends, run: Run, checks: CheckSettings, origin: float):
    """The server's published view against the health this script caused."""
    rep = HealthReport()
    forced: dict[str, list[Override]] = {}
    for o in run.overrides:
        forced.setdefault(o.key, []).append(o)
    began: dict[str, float] = {}  # member key -> first sample of its current state
    last: dict[str, str] = {}
    reported: set[tuple] = set()
    by_probe: dict[str, list[tuple[float, str]]] = {}  # what the view shows of each backend
    for sample in viewer.samples:
        shown: set[str] = set()
        for key, probe, state, reason, _ in viewer.tables[sample.members]:
            if probe is None:
                continue
            if last.get(key) != state:
                rep.transitions += key in last
                began[key] = sample.t0
                last[key] = state
            at = f"at +{sample.t0 - origin:.3f}s"
            overrides = [
                o for o in forced.get(key, []) if o.set_at <= sample.t1 and o.cleared_at >= sample.t0
            ]
            if overrides:
                o = overrides[-1]
                if o.set_at <= sample.t0 and sample.t1 <= o.cleared_at and state != o.state:
                    rep.override_ignored.append(
                        f"{key}: forced {o.state} at +{o.set_at - origin:.3f}s, the view shows {state} {at}"
                    )
                continue
            cleared = [o.cleared_at for o in forced.get(key, []) if o.cleared_at <= sample.t0]
            if cleared and sample.t0 - max(cleared) < 0.2:
                continue  # the clear is being applied
            if probe not in shown:
                shown.add(probe)
                by_probe.setdefault(probe, []).append((sample.t0, state))
            healthy, since = backends.healthy(probe, sample.t0)
            if state == "up" and not healthy and sample.t0 - since > checks.down_bound:
                if (key, since) not in reported:
                    reported.add((key, since))
                    rep.late_down.append(
                        f"{key}: still up {at}, {sample.t0 - since:.2f}s after {probe} failed "
                        f"(bound {checks.down_bound:.2f}s); reason {reason!r}"
                    )
            elif state != "up" and healthy:
                start = max(began[key], since)
                if sample.t0 - start > checks.up_bound:
                    if (key, start) not in reported:
                        reported.add((key, start))
                        rep.late_up.append(
                            f"{key}: still {state} {at}, {sample.t0 - start:.2f}s after {probe} recovered "
                            f"or was marked down (bound {checks.up_bound:.2f}s); reason {reason!r}"
                        )
                elif began[key] > since + checks.timeout and (key, began[key]) not in reported:
                    reported.add((key, began[key]))
                    rep.spurious.append(
                        f"{key}: {state} from +{began[key] - origin:.3f}s though {probe} was healthy since "
                        f"+{max(since - origin, 0):.3f}s; reason {reason!r}"
                    )
    # How long each caused change took to show in the view; not measured across a stretch in
    # which every member of the backend was forced (the view then shows no probe result).
    for address, line in backends.timeline.items():
        seen = by_probe.get(address, [])
        starts = [t for t, _ in seen]
        for n, (when, healthy) in enumerate(line[1:], 1):
            until = line[n + 1][0] if n + 1 < len(line) else math.inf
            previous = when
            for t, state in seen[bisect.bisect_left(starts, when) :]:
                if t >= until or t - previous > 0.5:
                    break
                previous = t
                if (state == "up") == healthy:
                    (rep.detect_up if healthy else rep.detect_down).append(t - when)
                    break
    return rep


# -- reporting -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}s"


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 60 * sum((t - mx) * (v - my) for t, v in points) / den if den else 0.0


def worker_spread(web_port: int) -> dict[str, float]:
    """Queries per worker (gdns_worker_queries_total), empty without --workers."""
    out = {}
    with contextlib.suppress(OSError, http.client.HTTPException):
        conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        for match in re.finditer(r'^gdns_worker_queries_total\{worker="(\d+)"\} (\S+)$', text, re.M):
            out[match.group(1)] = float(match.group(2))
    return out


def socket_drops(ports: set[int]) -> int:
    """Datagrams the kernel dropped at the UDP sockets bound to these local ports."""
    drops = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) in ports:
                drops += int(fields[-1])
    return drops


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=180, help="seconds of load (default 180, at most 1800)"
    )
    parser.add_argument("--rate", type=float, default=2000, help="UDP queries per second (default 2000)")
    parser.add_argument("--tcp-rate", type=float, default=20, help="TCP queries per second (default 20)")
    parser.add_argument(
        "--reload-every", type=float, default=3.0, help="seconds between zone rewrites (default 3)"
    )
    parser.add_argument(
        "--flap-every", type=float, default=1.5, help="seconds between backend changes (default 1.5)"
    )
    parser.add_argument(
        "--admin-every", type=float, default=4.0, help="seconds between override steps (default 4)"
    )
    parser.add_argument(
        "--poll", type=float, default=0.1, help="seconds between reads of the view (default 0.1)"
    )
    parser.add_argument("--interval", type=float, default=0.2, help="check interval, seconds (default 0.2)")
    parser.add_argument("--timeout", type=float, default=0.15, help="check timeout, seconds (default 0.15)")
    parser.add_argument("--rise", type=int, default=2, help="check rise (default 2)")
    parser.add_argument("--fall", type=int, default=2, help="check fall (default 2)")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds before the start RSS (default 15%%, <= 30)"
    )
    parser.add_argument(
        "--max-growth-mib", type=float, default=10.0, help="allowed RSS growth (default 10 MiB)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument(
        "--log", type=Path, default=None, help="write gdns's log here, each line prefixed with +seconds"
    )
    parser.add_argument("serve", nargs=argparse.REMAINDER, help="after --: more gdns serve arguments")
    args = parser.parse_args(argv)
    args.serve = args.serve[1:] if args.serve[:1] == ["--"] else args.serve
    if not 5 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration is 5 to {MAX_DURATION:.0f} seconds")
    if not (10 <= args.rate <= 20_000 and 0 <= args.tcp_rate <= 500):
        parser.error("--rate is 10 to 20000, --tcp-rate 0 to 500")
    if min(args.reload_every, args.flap_every, args.admin_every) < 0.5 or not 0.02 <= args.poll <= 1:
        parser.error("--reload-every, --flap-every, --admin-every are at least 0.5 s; --poll 0.02 to 1 s")
    if not (0 < args.timeout < args.interval <= 5 and 1 <= args.rise <= 10 and 1 <= args.fall <= 10):
        parser.error("0 < --timeout < --interval <= 5; --rise and --fall 1 to 10")
    if args.warmup is None:
        args.warmup = min(30.0, 0.15 * args.duration)
    args.check_settings = CheckSettings(args.interval, args.timeout, args.rise, args.fall)
    if args.seed is None:
        args.seed = int(time.time()) % 100_000
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_backends"]:
        asyncio.run(backends_child(argv[2:], float(argv[1])))
        return 0
    args = parse_args(argv)
    rng = random.Random(args.seed)
    checks = args.check_settings
    window = args.poll + 0.2
    mix = catalog()
    questions = [q for q, _ in mix]
    wires = [q.wire() for q in questions]
    order = schedule(mix, rng)
    limit = args.duration + 120  # no process started here outlives this
    with tempfile.TemporaryDirectory(prefix="gdns-soak-") as tmp:
        base = Path(tmp)
        folder = base / "zones"
        folder.mkdir()
        token_file = base / "token"
        token_file.write_text(TOKEN + "\n")
        backends = server = None
        threads: list[threading.Thread] = []
        try:
            backends = Backends(limit)
            write_zone(folder, 1, backends.port, checks)
            server = Server(folder, token_file, base / "state.json", args.serve)
            listening = server.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 30)
            web = server.wait_for(r"web side on http://127\.0\.0\.1:(\d+)/", 5)
            ready = server.wait_for(r": ready$", 30)
            if not (listening and web and ready):
                log("gdns did not start:\n" + "\n".join(line for _, line in server.lines[-30:]))
                return 2
            port, web_port = int(listening.group(1)), int(web.group(1))
            up = server.wait_for(r"first probe round: (\d+) target\(s\), (\d+) up", 1)
            log(
                f"gdns serving on 127.0.0.1:{port} (web :{web_port}), backends on {BACKENDS[0]}-"
                f"{BACKENDS[-1].rsplit('.', 1)[1]}:{backends.port}; {up.group(0) if up else ''}"
            )
            log(
                f"load for {args.duration:g}s: {args.rate:g} UDP + {args.tcp_rate:g} TCP queries/s; "
                f"a reload every {args.reload_every:g}s, a backend change every {args.flap_every:g}s, "
                f"an override step every {args.admin_every:g}s; seed {args.seed}"
            )
            drops_before = socket_drops({port})
            begin = time.monotonic() + 0.2
            stop_at = begin + args.duration
            bodies = Bodies()
            udp = UdpStream(port, wires, order, args.rate, begin, stop_at, bodies)
            tcp = (
                TcpStream(port, wires, order, args.tcp_rate, begin, stop_at, bodies, args.seed)
                if args.tcp_rate
                else None
            )
            viewer = Viewer(web_port, args.poll, stop_at + LOST_AFTER + 0.5)
            threads = [t for t in (viewer, udp, tcp) if t is not None]
            for t in threads:
                t.start()
            run = Run()
            cpu_before = server.cpu()
            control(args, folder, server, backends, viewer, web_port, begin, stop_at, run, rng)
            cpu_used = server.cpu() - cpu_before
            for t in threads:
                t.join(LOST_AFTER + 10)
            loaded_memory = run.memory[-1]
            drops_server = socket_drops({port}) - drops_before
            spread = worker_spread(web_port)
            drops_client = udp.client_drops
            alive = server.proc.poll() is None
        finally:
            for t in threads:  # a thread still running (it should not be) stops at its own deadline
                if t.is_alive():
                    log(f"{t.name} did not finish in time")
            if server is not None:
                server.stop()
            if backends is not None:
                backends.stop()
        for t in threads:
            if getattr(t, "error", None) is not None:
                log(f"{t.name} failed: {t.error!r}")
                return 2
        return report(
            args, server, backends, udp, tcp, viewer, run, bodies, questions, window, begin, stop_at,
            cpu_used, loaded_memory, drops_server, drops_client, alive, spread,
        )  # fmt: skip


def report(
    args, server, backends, udp, tcp, viewer, run, bodies, questions, window, begin, stop_at,
    cpu_used, loaded_memory, drops_server, drops_client, alive, spread,
) -> int:  # fmt: skip
    checks = args.check_settings
    if args.log is not None:
        args.log.write_text("".join(f"+{t - begin:.3f} {line}\n" for t, line in server.lines))
    judge = Judge(questions, bodies, viewer, window)
    judge.origin = begin
    sent = answered = lost = late = 0
    lost_examples: list[str] = []
    by_transport = {}
    for name, stream in (("udp", udp), ("tcp", tcp)):
        if stream is None:
            continue
        rec = stream.records
        n_sent = n_lost = 0
        for i in range(rec.count):
            t_sent, t_got = rec.sent[i], rec.got[i]
            n_sent += 1
            if math.isnan(t_got) or t_got - t_sent > LOST_AFTER:
                n_lost += 1
                if not math.isnan(t_got):
                    late += 1
                if len(lost_examples) < 10:
                    lost_examples.append(
                        f"{name} {questions[rec.qidx[i]].label} sent at +{t_sent - begin:.3f}s"
                        + ("" if math.isnan(t_got) else f", answered {t_got - t_sent:.2f}s later")
                    )
                continue
            judge.check(rec.qidx[i], t_sent, t_got, rec.body[i], name)
        by_transport[name] = (n_sent, n_lost)
        sent += n_sent
        lost += n_lost
        answered += n_sent - n_lost
    health = judge_health(viewer, backends, run, checks, begin)
    v = judge.v

    # reloads: when each version was first seen in the view
    seen_at: dict[int, float] = {}
    for s in viewer.samples:
        if s.serial is not None and s.serial not in seen_at:
            seen_at[s.serial] = s.t1
    delays = [seen_at[g] - t for g, t in run.versions if g in seen_at]
    unseen = [g for g, _ in run.versions if g not in seen_at and g != run.versions[-1][0]]

    warm_end = begin + args.warmup
    after = [(t, rss) for t, rss, _, _ in run.memory if t >= warm_end]
    if not after:
        after = [(run.memory[-1][0], run.memory[-1][1])]
    start_rss, end_rss = after[0][1], after[-1][1]
    growth = end_rss - start_rss
    slope = slope_per_minute(after)
    procs = loaded_memory[3]
    wall = stop_at - begin

    flaps = sum(backends.flaps.values())
    ok = (
        lost == 0
        and v.inconsistent_count == 0
        and health.hard == 0
        and not server.errors
        and growth <= args.max_growth_mib
        and alive
        and not run.admin_errors
        and not unseen
    )
    out = print
    out(f"soak: {wall:.0f}s of load on gdns serve {' '.join(args.serve) or '(1 process)'}, seed {args.seed}")
    out(
        f"  checks: interval {checks.interval:g}s, timeout {checks.timeout:g}s, rise {checks.rise}, fall "
        f"{checks.fall}; answer window W = {window:.2f}s; probe-lag bounds: down {checks.down_bound:.2f}s, "
        f"up {checks.up_bound:.2f}s"
    )
    tcp_part = (
        f", tcp {by_transport['tcp'][0]} ({by_transport['tcp'][1]} lost)" if "tcp" in by_transport else ""
    )
    out(
        f"queries: sent {sent} (udp {by_transport['udp'][0]} at {args.rate:g}/s{tcp_part}), answered "
        f"{answered}, lost {lost} (of which late > {LOST_AFTER:g}s: {late})"
    )
    out(
        f"answers: {v.checked} checked ({v.pool_answers} pool, {v.static_answers} static), inconsistent "
        f"{v.inconsistent_count}; {len(bodies.items)} distinct replies; judged outside the window for want "
        f"of a view sample: {v.out_of_window}; allowed only by a state between two samples: {v.between_only}"
    )
    out(
        f"reloads: {len(run.versions)} written, {server.reloaded} logged by gdns, {len(seen_at) - 1} new "
        f"serials seen in the view (write to view: median {seconds(percentile(delays, 50))}, max "
        f"{seconds(max(delays, default=math.nan))}), failed {server.reload_failures}"
    )
    modes = ", ".join(f"{m} {n}" for m, n in backends.flaps.items())
    out(
        f"flaps: {flaps} failures ({modes}), {backends.restores} recoveries; "
        f"overrides: {len(run.overrides)} set"
    )
    out(
        f"health view: {len(viewer.samples)} samples (slowest {viewer.longest * 1000:.0f} ms, "
        f"{viewer.errors} failed), {health.transitions} member transitions; seen in the view after a failure "
        f"p50 {seconds(percentile(health.detect_down, 50))} max "
        f"{seconds(max(health.detect_down, default=math.nan))}, "
        f"after a recovery p50 {seconds(percentile(health.detect_up, 50))} max "
        f"{seconds(max(health.detect_up, default=math.nan))}; late down {len(health.late_down)}, late up "
        f"{len(health.late_up)}, override ignored {len(health.override_ignored)}, spurious down "
        f"{len(health.spurious)}"
    )
    rss_all = [rss for _, rss in after]
    out(
        f"memory (VmRSS summed over {procs} process(es)): start {start_rss:.1f} MiB (after {args.warmup:g}s "
        f"warm-up), end {end_rss:.1f} MiB, growth {growth:+.1f} MiB (limit {args.max_growth_mib:g}), min "
        f"{min(rss_all):.1f}, max {max(rss_all):.1f}, slope {slope:+.2f} MiB/min over {len(after)} samples; "
        f"VmHWM {loaded_memory[2]:.1f} MiB"
    )
    series = " ".join(f"{rss:.1f}" for _, rss, _, _ in run.memory)
    out(f"  RSS every {RSS_EVERY:g}s from the start of the load, and at its end (MiB): {series}")
    out(
        f"cpu: gdns used {cpu_used:.1f}s user+system over {wall:.0f}s "
        f"({100 * cpu_used / wall:.0f}% of one core)"
    )
    out(
        f"udp: socket drops at the server {drops_server}, at the client {drops_client}; send errors "
        f"{udp.send_errors}; unmatched replies {udp.unmatched}; longest pause in sending "
        f"{udp.stall * 1000:.0f} ms; tcp connection errors {tcp.connect_errors if tcp else 0}"
    )
    if spread:
        out("queries per worker: " + ", ".join(f"{w}: {n:.0f}" for w, n in sorted(spread.items())))
    for title, items in (
        ("lost", lost_examples),
        ("inconsistent", v.inconsistent),
        ("allowed only by a state between two samples (not failed)", v.between_examples),
        ("late down (hard)", health.late_down[:10]),
        ("late up (hard)", health.late_up[:10]),
        ("override ignored (hard)", health.override_ignored[:10]),
        ("spurious down (not failed)", health.spurious[:10]),
        ("server errors", server.errors[:20]),
        ("admin errors", run.admin_errors[:10]),
        ("reloads never seen", [str(g) for g in unseen[:10]]),
    ):
        if items:
            out(f"{title}:")
            for item in items:
                out(f"  {item}")
    if not alive:
        out("gdns exited during the run")
    out("result: " + ("PASS" if ok else "FAIL"))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "ok": ok,
                    "seconds": wall,
                    "serve_args": args.serve,
                    "seed": args.seed,
                    "sent": sent,
                    "answered": answered,
                    "lost": lost,
                    "inconsistent": v.inconsistent_count,
                    "checked": v.checked,
                    "between_only": v.between_only,
                    "pool_answers": v.pool_answers,
                    "static_answers": v.static_answers,
                    "reloads_written": len(run.versions),
                    "reloads_logged": server.reloaded,
                    "reloads_seen": len(seen_at) - 1,
                    "reload_failures": server.reload_failures,
                    "flaps": flaps,
                    "recoveries": backends.restores,
                    "overrides": len(run.overrides),
                    "health_hard": health.hard,
                    "spurious_down": len(health.spurious),
                    "transitions": health.transitions,
                    "rss_start_mib": start_rss,
                    "rss_end_mib": end_rss,
                    "rss_min_mib": min(rss_all),
                    "rss_max_mib": max(rss_all),
                    "rss_slope_mib_per_min": slope,
                    "vmhwm_mib": loaded_memory[2],
                    "rss_samples_mib": [round(rss, 2) for _, rss, _, _ in run.memory],
                    "processes": procs,
                    "cpu_seconds": cpu_used,
                    "server_errors": len(server.errors),
                    "socket_drops_server": drops_server,
                    "socket_drops_client": drops_client,
                },
                indent=2,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
