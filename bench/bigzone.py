"""Load and reload of a large zone under a steady query stream: load time, memory, answer gaps.

    python bench/bigzone.py [--records 100000] [--pools 10000] [--rate 2000] [--reloads 3]
                            [-- more gdns serve arguments, e.g. --udp-on-loop]

Generates, in a temporary folder, one zone file (origin `example.`) with `--records` static
records (A, AAAA, TXT, MX, CNAME; documentation addresses only) and `--pools` pools
(weighted, sticky weighted, failover, roundrobin, random; 2-4 members each, `status: up`,
no health checks, so nothing is ever probed). Starts `gdns serve` on 127.0.0.1 with
ephemeral ports and prints:

* load: seconds from start to the first answer, RSS and peak RSS (VmHWM) of the server;
* per reload: a query stream at `--rate` queries/s over UDP (fixed send intervals, every
  reply timestamped) runs while the zone file is rewritten (one TXT record changed, written
  to a hidden file and renamed over the old one); the reload is seen when that record's
  answer changes. Printed: how long the reload took (rewrite to first new answer; includes
  up to `--reload-interval` of polling), the longest gap between consecutive answers in the
  reload window (rewrite to swap plus 0.5 s) and in the quiet second before it, the slowest
  answer, the queries lost, and the server's RSS and peak RSS after it;
* the longest gap over all the reloads.

Memory is the `gdns serve` process's own (with --workers, the main process only). The
figures depend on the machine being otherwise idle: another busy process on a small machine
shows up as gaps. Every wait is bounded; the server started here is stopped by its PID at
the end. Traffic goes to 127.0.0.1 only. Targets (the performance issue): peak RSS below
150 MB; no gap in answers longer than 100 ms during a reload.
"""

from __future__ import annotations

import argparse
import json
import os
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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "example."
NETS4 = ("192.0.2", "198.51.100", "203.0.113")
MARKER = "bench-marker"
GEN = "@@GEN@@"
QTYPES = {"A": 1, "AAAA": 28, "CNAME": 5, "MX": 15, "TXT": 16}


# -- the zone --------------------------------------------------------------------------------


def v4(i: int) -> str:
    return f"{NETS4[i % 3]}.{1 + (i // 3) % 254}"


def v6(i: int) -> str:
    return f"2001:db8:{(i >> 16) & 0xFFFF:x}::{i & 0xFFFF:x}"


def generate(records: int, pools: int) -> tuple[str, list[tuple[str, str]]]:
    """The zone text (with a GEN slot in the marker record) and the names to query."""
    lines = [
        f"origin: {ORIGIN}",
        "ttl: 300",
        "soa: {mname: ns1.example., rname: hostmaster.example.}",
        "ns: [ns1.example., ns2.example.]",
        "records:",
        "  ns1: {A: 192.0.2.53}",
        "  ns2: {A: 198.51.100.53, AAAA: '2001:db8::53'}",
        f"  {MARKER}: {{TXT: 'bench-gen-{GEN}'}}",
    ]
    static: list[tuple[str, str]] = []
    for i in range(records):
        kind = i % 50
        name = f"h{i}"
        if kind < 30:  # 60 %: A, some with two addresses or an own TTL
            if i % 7 == 0:
                lines.append(f"  {name}: {{A: [{v4(i)}, {v4(i + 1)}]}}")
            elif i % 11 == 0:
                lines.append(f"  {name}: {{A: {{ttl: 60, values: [{v4(i)}]}}}}")
            else:
                lines.append(f"  {name}: {{A: {v4(i)}}}")
            qtype = "A"
        elif kind < 40:  # 20 %: AAAA, some dual-stack
            if i % 3 == 0:
                lines.append(f"  {name}: {{A: {v4(i)}, AAAA: '{v6(i)}'}}")
            else:
                lines.append(f"  {name}: {{AAAA: '{v6(i)}'}}")
            qtype = "AAAA"
        elif kind < 44:  # 8 %: TXT
            lines.append(f"  {name}: {{TXT: 'v=bench1 id={i} owner=team-{i % 97}'}}")
            qtype = "TXT"
        elif kind < 47:  # 6 %: MX to an in-zone name (additional section)
            lines.append(f"  {name}: {{MX: ['10 h{i - kind}.example.', '20 mx.example.net.']}}")
            qtype = "MX"
        else:  # 6 %: CNAME to an in-zone A name
            lines.append(f"  {name}: {{CNAME: h{i - kind}.example.}}")
            qtype = "A"
        static.append((f"{name}.{ORIGIN}", qtype))
    lines.append("pools:")
    pooled: list[tuple[str, str]] = []
    for i in range(pools):
        name = f"p{i}"
        n = 2 + i % 3
        kind = i % 5
        members = ", ".join(member(i, j, kind in (0, 1)) for j in range(n))
        if kind == 0:
            lines.append(f"  {name}: {{strategy: weighted, members: [{members}]}}")
        elif kind == 1:
            lines.append(f"  {name}: {{strategy: weighted, sticky: true, ttl: 20, members: [{members}]}}")
        elif kind == 2:
            groups = ", ".join(f"g{j}: {{members: [{member(i, j, False)}]}}" for j in range(n))
            lines.append(f"  {name}: {{strategy: failover, when_all_down: nodata, groups: {{{groups}}}}}")
        elif kind == 3:
            lines.append(f"  {name}: {{strategy: roundrobin, answers: 2, members: [{members}]}}")
        else:
            lines.append(f"  {name}: {{strategy: random, members: [{members}]}}")
        pooled.append((f"{name}.{ORIGIN}", "AAAA" if i % 8 == 0 else "A"))
    return "\n".join(lines) + "\n", static + pooled


def member(pool: int, j: int, weight: bool) -> str:
    """Member j of a pool: IPv4, and in every fourth pool IPv6 for the odd ones; no check."""
    addr = v6(pool * 4 + j) if j % 2 and pool % 4 == 0 else v4(pool * 4 + j)
    addr = f"'{addr}'" if ":" in addr else addr
    w = f", weight: {1 + j}" if weight else ""
    return f"{{address: {addr}{w}, status: up}}"


def write_zone(folder: Path, template: str, gen: int) -> None:
    """Atomically, like careful tools: a hidden temporary file renamed over the zone file."""
    tmp = folder / ".example.yaml.tmp"
    tmp.write_text(template.replace(GEN, str(gen), 1))
    os.replace(tmp, folder / "example.yaml")


# -- the server ------------------------------------------------------------------------------


class Server:
    """`gdns serve` as a child process; its stderr is read (and timestamped) by a thread."""

    def __init__(self, folder: Path, reload_interval: float, extra: list[str]):
        self.lines: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
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
                str(reload_interval),
                *extra,
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> tuple[float, re.Match] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for when, line in self.lines[start:]:
                match = re.search(pattern, line)
                if match:
                    return when, match
            time.sleep(0.02)
        return None

    def memory(self) -> str:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
        return f"RSS {rss:.1f} MiB, peak RSS (VmHWM) {peak:.1f} MiB"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# -- queries ---------------------------------------------------------------------------------


def encode_question(name: str, qtype: str) -> bytes:
    """Everything of a query after its ID: flags (RD clear), one question, no EDNS."""
    wire = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHH", 0, 1, 0, 0, 0) + wire + struct.pack("!HH", QTYPES[qtype], 1)


def first_answer(port: int, name: str, timeout: float) -> bool:
    query = struct.pack("!H", 1) + encode_question(name, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.05)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock.sendto(query, ("127.0.0.1", port))
            try:
                sock.recvfrom(4096)
                return True
            except TimeoutError:
                continue
    return False


class Stream(threading.Thread):
    """Send queries at fixed intervals; timestamp every reply; notice the marker's value."""

    def __init__(self, port: int, names: list[tuple[str, str]], rate: float, limit: float):
        super().__init__(daemon=True)
        self.port, self.rate, self.limit = port, rate, limit
        # every 20th query asks for the marker, so a reload is seen within 20 / rate seconds
        self.questions = [encode_question(f"{MARKER}.{ORIGIN}", "TXT")]
        self.questions += [encode_question(n, t) for n, t in names]
        self.stop_at = time.monotonic() + limit
        self.sent: list[float] = []  # send time by sequence number
        self.replies: list[tuple[float, float]] = []  # (receive time, send time)
        self.generations: list[tuple[float, int]] = []  # first time each marker value was seen
        self.count = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.connect(("127.0.0.1", self.port))
        sock.setblocking(False)
        interval = 1.0 / self.rate
        begin = time.monotonic()
        by_id: dict[int, int] = {}  # DNS ID -> sequence number (IDs wrap after 65536)
        seen_gen = None
        n_questions = len(self.questions) - 1
        try:
            while True:
                now = time.monotonic()
                if now >= self.stop_at:
                    break
                due = begin + self.count * interval
                burst = 0
                while due <= now and burst < 64:
                    seq = self.count
                    if seq % 20 == 0:
                        question = self.questions[0]
                    else:
                        question = self.questions[1 + (seq * 7919) % n_questions]
                    qid = seq & 0xFFFF
                    by_id[qid] = seq
                    self.sent.append(now)
                    sock.send(struct.pack("!H", qid) + question)
                    self.count += 1
                    burst += 1
                    due = begin + self.count * interval
                readable, _, _ = select.select([sock], [], [], max(0.0, due - time.monotonic()))
                if not readable:
                    continue
                while True:
                    try:
                        data = sock.recv(4096)
                    except BlockingIOError:
                        break
                    got = time.monotonic()
                    seq = by_id.pop(struct.unpack_from("!H", data)[0], None)
                    if seq is None:
                        continue
                    self.replies.append((got, self.sent[seq]))
                    if seq % 20 == 0:
                        match = re.search(rb"bench-gen-(\d+)", data)
                        if match and int(match.group(1)) != seen_gen:
                            seen_gen = int(match.group(1))
                            self.generations.append((got, seen_gen))
        finally:
            sock.close()

    def seen(self, gen: int) -> float | None:
        for when, value in list(self.generations):
            if value == gen:
                return when
        return None


def longest_gap(times: list[float], start: float, end: float) -> float:
    """Longest stretch of [start, end] without any of `times` (sorted)."""
    times = [t for t in times if start <= t <= end]
    edges = [start, *times, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def window_stats(stream: Stream, start: float, end: float) -> tuple[float, float, float, int, int]:
    """In [start, end]: the longest gap between answers, the slowest answer, the longest gap
    between sends (the client's own stalls: large means the figures are unreliable), queries
    sent and lost."""
    gap = longest_gap([got for got, _ in stream.replies], start, end)
    slowest = max((got - sent for got, sent in stream.replies if start <= got <= end), default=0.0)
    sent = [t for t in stream.sent if start <= t <= end]
    answered = sum(1 for _, s in stream.replies if start <= s <= end)
    return gap, slowest, longest_gap(stream.sent, start, end), len(sent), len(sent) - answered


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000, help="static records (default 100000)")
    parser.add_argument("--pools", type=int, default=10_000, help="pools (default 10000)")
    parser.add_argument("--rate", type=float, default=2000, help="queries per second (default 2000)")
    parser.add_argument("--reloads", type=int, default=3, help="reloads under load (default 3)")
    parser.add_argument(
        "--reload-interval", type=float, default=0.25, help="gdns --reload-interval (default 0.25)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="longest wait for a load (default 120)")
    parser.add_argument("serve", nargs=argparse.REMAINDER, help="after --: more gdns serve arguments")
    args = parser.parse_args()
    extra = args.serve[1:] if args.serve[:1] == ["--"] else args.serve
    if not (1 <= args.reloads <= 20 and 10 <= args.rate <= 20_000):
        parser.error("--reloads is 1 to 20, --rate 10 to 20000")

    with tempfile.TemporaryDirectory(prefix="gdns-bigzone-") as tmp:
        folder = Path(tmp)
        began = time.monotonic()
        template, names = generate(args.records, args.pools)
        write_zone(folder, template, 0)
        size = (folder / "example.yaml").stat().st_size
        print(
            f"zone: {args.records} records, {args.pools} pools, {size / 1e6:.1f} MB of YAML "
            f"(generated in {time.monotonic() - began:.1f}s)"
        )
        server = Server(folder, args.reload_interval, extra)
        stream = None
        try:
            listening = server.wait_for(r"listening on 127\.0\.0\.1:(\d+)", args.timeout)
            web = server.wait_for(r"web side on http://127\.0\.0\.1:(\d+)/", 5)
            if listening is None:
                print("gdns did not start:", *[line for _, line in server.lines[-20:]], sep="\n  ")
                return 1
            port = int(listening[1].group(1))
            if not first_answer(port, f"h0.{ORIGIN}", 10):
                print("no answer from gdns", file=sys.stderr)
                return 1
            print(f"load: first answer after {time.monotonic() - server.started:.2f}s; {server.memory()}")
            if web is not None:
                url = f"http://127.0.0.1:{web[1].group(1)}/api/v1/zones"
                with urllib.request.urlopen(url, timeout=10) as reply:
                    zone = json.load(reply)["zones"][0]
                print(f"served: {zone['origin']} serial {zone['serial']}, {zone['names']} names, ", end="")
                print(f"{len(zone['pools'])} pools")

            quiet = 1.5
            budget = 3 + args.reloads * (quiet + args.timeout + 1)
            stream = Stream(port, names, args.rate, budget)
            stream.start()
            time.sleep(1.0)  # warm up
            worst = 0.0
            for gen in range(1, args.reloads + 1):
                time.sleep(quiet)
                mark = len(server.lines)
                written = time.monotonic()
                write_zone(folder, template, gen)
                deadline = written + args.timeout
                while stream.seen(gen) is None and time.monotonic() < deadline and stream.is_alive():
                    time.sleep(0.01)
                swapped = stream.seen(gen)
                if swapped is None:
                    print(f"reload {gen}: not seen within {args.timeout:.0f}s", file=sys.stderr)
                    return 1
                logged = server.wait_for(r"zones reloaded", 5, start=mark)
                time.sleep(1.0)  # late answers to the window's queries still count
                gap, slowest, stall, sent, lost = window_stats(stream, written, swapped + 0.5)
                calm = window_stats(stream, written - 1.0, written)[0]
                worst = max(worst, gap)
                log_at = f", logged at +{logged[0] - written:.2f}s" if logged else ""
                print(
                    f"reload {gen}: new answer {swapped - written:.2f}s after the rewrite{log_at}; "
                    f"longest gap {gap * 1000:.0f} ms (quiet second before: {calm * 1000:.0f} ms), "
                    f"slowest answer {slowest * 1000:.0f} ms, {lost} of {sent} queries lost "
                    f"(longest pause in sending: {stall * 1000:.0f} ms); {server.memory()}"
                )
            print(f"longest gap in answers during a reload: {worst * 1000:.0f} ms (target < 100 ms)")
            return 0
        finally:
            if stream is not None:
                stream.stop_at = 0
                stream.join(5)
                if stream.error is not None:
                    print(f"query stream failed: {stream.error!r}", file=sys.stderr)
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
