"""gdns against gdnsd on the same zone: throughput, latency at half load and peak memory, measured.

    python bench/compare.py [--seconds 10] [--gdns-args "--workers 2"] [--only gdns|gdnsd]
                            [--workers-sweep] [--clients 8] [--outstanding 200] [--threads 1]
                            [--gdnsd-threads N] [--weights 1,1,1] [--gdns-src DIR] [--json]
                            [--check-targets] [--no-control] [--keep]

Needs dnsperf and gdnsd (Debian packages `dnsperf`, `gdnsd`); when one is missing the script
runs `apt-get install -y dnsperf gdnsd` if it is root, and otherwise prints that command and
exits 1. Everything it starts listens on 127.0.0.0/8 only and is stopped by its PID at the end.

What it does, in one run:

1. Starts 3 HTTP backends (aiohttp, one child process) on 127.0.0.31, .32 and .33, sharing one
   free port, answering 200 on /healthz.
2. Writes the same zone `bench.example.` for both servers into a temporary folder: SOA, two NS,
   MX and TXT at the apex, static A/AAAA names (192.0.2.0/24, 2001:db8::/32), a CNAME out of
   the zone, and the pool `www`: weighted (not sticky) over the 3 backends, TTL 30, each
   member health-checked over HTTP (GET /healthz on the backends' port, every 2 s, timeout 1 s).
   gdns gets a YAML zone with `strategy: weighted` and a `checks:` entry of type http; gdnsd an
   RFC 1035 zone with `www 30/30 DYNA weighted!www` and an `http_status` service type. gdnsd
   runs in the foreground (`gdnsd -c DIR start`) with its own config folder, run_dir and
   state_dir under the temporary folder and a free port, so an installed gdnsd service, its
   /etc/gdnsd, /run/gdnsd and port 53 play no part.
3. For each server in turn (gdns first, then gdnsd; never both at once): starts it on
   127.0.0.1 and an ephemeral port, waits until it has seen all 3 members up (gdns: its
   `first probe round: 3 target(s), 3 up` and `ready` log lines; gdnsd: `gdnsdctl states`
   shows the 3 members UP) and until its answers for `www` have named all 3 members, then
   records its answer to every distinct query of the file (rcode and answer section, the
   pool's address as "a member") to compare with the other server's, then runs dnsperf:

   - **peak**: unthrottled, `--clients` sockets with `--outstanding` queries in flight,
     `--threads` dnsperf threads, for `--seconds`. Reported: dnsperf's "Queries per second"
     and "Queries lost" as dnsperf prints them (a query is lost when no answer came within
     dnsperf's 5 s timeout, e.g. dropped by a full socket buffer).
   - **half load**: the same with `-Q <half of this server's peak>` and `-v`. With `-v`
     dnsperf 2.10 prints one line per answered query, `> RCODE NAME TYPE SECONDS`, the
     latency it measured (send to receive, microsecond resolution). p50 and p99 are the
     nearest-rank percentiles over every query sent in that phase: the latencies of the
     answered ones, with each lost query counted as slower than any answer (so losses can
     only make them worse). The script checks that it parsed as many lines as dnsperf
     reports completed, and that their mean equals dnsperf's own "Average Latency".
   - **control** (skip with --no-control): the half-load run again without `-v`. Its mean
     latency is printed beside the others: if it is far below the `-v` run's mean, writing
     the per-query lines cost dnsperf enough time to inflate the percentiles.
   - **peak memory**: VmHWM (the kernel's resident high-water mark) from
     /proc/PID/status, summed over the server's process and all its descendants (worker
     processes, if any; pages shared between them are counted once per process, so that is
     an upper bound), read after the runs, just before the server is stopped.
   - **CPU**: for every dnsperf run, the CPU time of the server's processes (all threads),
     of dnsperf (getrusage of children) and of the whole machine (/proc/stat), as percent of
     one core over the run's wall time; "other" is the machine's minus those two: processes
     that competed with the benchmark.

4. Prints a table (server, q/s, lost, server and dnsperf CPU at peak, half-load q/s, p50,
   p99, mean latency with -v and in the control run, peak RSS MiB, other processes' CPU),
   the throughput ratio gdns/gdnsd, and the targets: gdns >= 100k q/s with no lost queries,
   gdns >= half of gdnsd, gdns p99 < 1 ms at half load; with --workers-sweep gdns is measured
   with `--workers 1` and `--workers 2` and the ratio of the two is printed too. Below the
   table: dnsperf's rcode counts and packet sizes, and whether the answers were the same.

The query file has 100 lines, cycled by dnsperf in order: 45 % the pool name A, static A and
AAAA, MX, TXT, a CNAME, and exactly 5 % names that do not exist (NXDOMAIN).

dnsperf needs about a core of its own to generate load, so on a 2-core machine the peak is
what the server reaches with the other core, and when the server and dnsperf together use both
cores it is the machine's limit, not the server's alone (the cpu% and perf% columns show
which). Other busy processes lower and scatter every figure, tail latency most: the script
prints the load average before it starts and the "other%" column. With --json the half-load
percentiles p50, p90, p99, p99.9 and the maximum are in `percentiles_ms`. Every step has a
time limit, and the whole run has one too (`--budget`, computed from --seconds by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dnslib import QTYPE, RCODE, DNSRecord

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("127.0.0.31", "127.0.0.32", "127.0.0.33")
HEALTH_PATH = "/healthz"
ORIGIN = "bench.example"
POOL = f"www.{ORIGIN}"
CHECK_INTERVAL, CHECK_TIMEOUT = 2, 1  # seconds, both servers (gdnsd's minimum interval is 2)
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

# 20 queries, 5 times over with a different missing name each time: 100 lines, 5 % NXDOMAIN.
BLOCK = (
    [f"{POOL} A"] * 9
    + [f"static.{ORIGIN} A"] * 3
    + [f"static.{ORIGIN} AAAA"] * 2
    + [f"api.{ORIGIN} A", f"api.{ORIGIN} AAAA", f"blog.{ORIGIN} A", f"{ORIGIN} MX", f"{ORIGIN} TXT"]
)
QUERIES = [line for i in range(5) for line in [*BLOCK, f"nx{i}.{ORIGIN} A"]]


def gdns_zone(port: int, weights: list[int]) -> str:
    members = ", ".join(f"{{address: {a}, weight: {w}}}" for a, w in zip(BACKENDS, weights, strict=True))
    return f"""\
origin: {ORIGIN}.
ttl: 300
soa:
  mname: ns1.{ORIGIN}.
  rname: hostmaster.{ORIGIN}.
  serial: 1
  refresh: 3600
  retry: 600
  expire: 1209600
  minimum: 60
  ttl: 60
ns: [ns1.{ORIGIN}., ns2.{ORIGIN}.]
records:
  "@": {{MX: "10 mx.example.net.", TXT: "v=spf1 -all"}}
  ns1: {{A: 192.0.2.53}}
  ns2: {{A: 192.0.2.54}}
  static: {{A: 192.0.2.10, AAAA: "2001:db8::10"}}
  api: {{A: [192.0.2.20, 192.0.2.21], AAAA: "2001:db8::20"}}
  blog: {{CNAME: blog.example.net.}}
checks:
  web: {{type: http, port: {port}, path: {HEALTH_PATH}, interval: {CHECK_INTERVAL}s, \
timeout: {CHECK_TIMEOUT}s, rise: 2, fall: 3}}
pools:
  www:
    strategy: weighted
    ttl: 30
    check: web
    members: [{members}]
"""


def gdnsd_zone() -> str:
    return f"""\
$TTL 300
@       60 SOA ns1.{ORIGIN}. hostmaster.{ORIGIN}. 1 3600 600 1209600 60
@       NS    ns1.{ORIGIN}.
@       NS    ns2.{ORIGIN}.
@       MX    10 mx.example.net.
@       TXT   "v=spf1 -all"
ns1     A     192.0.2.53
ns2     A     192.0.2.54
static  A     192.0.2.10
static  AAAA  2001:db8::10
api     A     192.0.2.20
api     A     192.0.2.21
api     AAAA  2001:db8::20
blog    CNAME blog.example.net.
www  30/30 DYNA weighted!www
"""


def gdnsd_config(
    base: Path, dns_port: int, backend_port: int, weights: list[int], threads: int | None
) -> str:
    members = "\n".join(
        f"      m{i} = [ {a}, {w} ]" for i, (a, w) in enumerate(zip(BACKENDS, weights, strict=True))
    )
    threads_opt = f"\n  udp_threads => {threads}\n  tcp_threads => {threads}" if threads else ""
    return f"""\
options => {{
  listen => [ 127.0.0.1:{dns_port} ]
  run_dir => "{base / "run"}"
  state_dir => "{base / "state"}"{threads_opt}
}}
service_types => {{
  web => {{
    plugin => http_status
    port => {backend_port}
    url_path => {HEALTH_PATH}
    ok_codes => [ 200 ]
    interval => {CHECK_INTERVAL}
    timeout => {CHECK_TIMEOUT}
    up_thresh => 2
    down_thresh => 3
  }}
}}
plugins => {{
  weighted => {{
    www => {{
      service_types => web
      multi => false
{members}
    }}
  }}
}}
"""


class BenchError(Exception):
    pass


class TimeLimit(BaseException):
    """The whole run took longer than --budget (a BaseException so no handler swallows it)."""


@dataclass
class Dnsperf:
    sent: int = 0
    completed: int = 0
    lost: int = 0
    qps: float = 0.0
    avg_ms: float = 0.0
    rcodes: str = ""
    sizes: str = ""
    server_cpu: float = 0.0  # percent of one core, over the run: the server's processes
    dnsperf_cpu: float = 0.0  # dnsperf itself
    other_cpu: float = 0.0  # everything else on the machine (other processes compete for the cores)


@dataclass
class Result:
    server: str
    command: str = ""
    error: str | None = None
    peak: Dnsperf | None = None
    qps_per_cpu_second: float | None = None  # peak q/s per second of the server's own CPU time
    half_rate: int = 0
    half: Dnsperf | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    verbose_lines: int = 0
    control: Dnsperf | None = None
    peak_rss_mib: float | None = None
    processes: int = 0
    answers: dict[str, str] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[compare] {message}", file=sys.stderr, flush=True)


# --- processes ---------------------------------------------------------------------------------


def stop(proc: subprocess.Popen | None, name: str, timeout: float = 10) -> None:
    """SIGTERM the process by its PID, SIGKILL it if it has not exited after `timeout` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f}s; killing it")
        proc.kill()
        proc.wait(5)


def start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """`root` and every process below it, found by walking /proc for parent PIDs."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def peak_rss_mib(root: int) -> tuple[float, int]:
    """Sum of VmHWM over `root` and its descendants, in MiB, and how many processes that was."""
    total, count = 0, 0
    for pid in descendants(root):
        try:
            match = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
        except OSError:
            continue
        if match:
            total += int(match.group(1))
            count += 1
    return total / 1024, count


def stop_leftovers(pids: dict[int, str | None], name: str) -> None:
    """SIGTERM descendants that outlived their parent, if they are still the same processes."""
    for pid, started in pids.items():
        if started is not None and start_time(pid) == started:
            log(f"{name}: child pid {pid} still running after the server stopped; sending SIGTERM")
            os.kill(pid, signal.SIGTERM)


def wait_log(path: Path, proc: subprocess.Popen, pattern: str, deadline: float, what: str) -> re.Match:
    regex = re.compile(pattern, re.M)
    while True:
        text = path.read_text(errors="replace")
        match = regex.search(text)
        if match:
            return match
        if proc.poll() is not None:
            raise BenchError(f"{what}: exited with status {proc.returncode}:\n{tail(text)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: no line matching {pattern!r} in time:\n{tail(text)}")
        time.sleep(0.05)


def tail(text: str, lines: int = 15) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (gdnsd cannot bind port 0 and report it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise BenchError("no free port on 127.0.0.1")


# --- DNS checks --------------------------------------------------------------------------------


def ask(port: int, name: str, qtype: str, timeout: float = 1.0) -> DNSRecord | None:
    query = DNSRecord.question(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query.pack(), ("127.0.0.1", port))
        try:
            while True:
                data, _ = sock.recvfrom(65535)
                reply = DNSRecord.parse(data)
                if reply.header.id == query.header.id:
                    return reply
        except (TimeoutError, OSError):
            return None


def wait_members(port: int, deadline: float, what: str) -> None:
    """Ask for the pool name until the answers have named every member."""
    seen: set[str] = set()
    while time.monotonic() < deadline:
        for _ in range(30):
            reply = ask(port, POOL, "A")
            if reply is not None:
                seen.update(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)
        if seen >= set(BACKENDS):
            return
        time.sleep(0.2)
    raise BenchError(f"{what}: answers for {POOL} named only {sorted(seen)}, not all of {list(BACKENDS)}")


def answers(port: int) -> dict[str, str]:
    """Every distinct query of the file with a canonical rendering of its answer section."""
    result = {}
    for line in dict.fromkeys(QUERIES):
        name, qtype = line.split()
        reply = ask(port, name, qtype)
        if reply is None:
            result[line] = "no reply"
            continue
        rrs = []
        for rr in reply.rr:
            rdata = str(rr.rdata)
            if str(rr.rname).rstrip(".") == POOL and rdata in BACKENDS:
                rdata = "<pool member>"
            rrs.append(f"{rr.rname} {rr.ttl} {QTYPE[rr.rtype]} {rdata}")
        result[line] = f"{RCODE[reply.header.rcode]}: " + "; ".join(sorted(rrs))
    return result


# --- dnsperf -----------------------------------------------------------------------------------


def cpu_busy() -> float:
    """Seconds of CPU time the whole machine has spent not idle, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_of(root: int) -> float:
    """Seconds of CPU time (user + system, all threads) of `root` and its descendants."""
    total = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dnsperf(
    args: argparse.Namespace, server: int, port: int, qfile: Path, out: Path, rate: int = 0, verbose=False
) -> Dnsperf:
    """One dnsperf run against 127.0.0.1:`port`, its figures, and who used the CPUs meanwhile."""
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), "-l", str(args.seconds)]
    argv += ["-c", str(args.clients), "-q", str(args.outstanding), "-T", str(args.threads)]
    if rate:
        argv += ["-Q", str(rate)]
    if verbose:
        argv.append("-v")
    before = (time.monotonic(), cpu_busy(), cpu_of(server), cpu_of_children())
    with out.open("w") as stdout:
        done = subprocess.run(
            argv, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=args.seconds + 30
        )
    wall, busy, served, perf = (
        b - a
        for a, b in zip(
            before, (time.monotonic(), cpu_busy(), cpu_of(server), cpu_of_children()), strict=True
        )
    )
    text = out.read_text(errors="replace") if not verbose else summary_of(out)
    if done.returncode != 0:
        raise BenchError(f"dnsperf exited with status {done.returncode}: {done.stderr.strip()}\n{tail(text)}")

    def figure(label: str, pattern: str = r"([\d.]+)") -> str:
        match = re.search(rf"^\s*{label}:\s+{pattern}", text, re.M)
        if not match:
            raise BenchError(f"dnsperf printed no {label!r}:\n{tail(text)}")
        return match.group(1)

    return Dnsperf(
        sent=int(figure("Queries sent")),
        completed=int(figure("Queries completed")),
        lost=int(figure("Queries lost")),
        qps=float(figure("Queries per second")),
        avg_ms=float(figure(r"Average Latency \(s\)")) * 1000,
        rcodes=figure("Response codes", r"(.*)"),
        sizes=figure("Average packet size", r"(.*)"),
        server_cpu=100 * served / wall,
        dnsperf_cpu=100 * perf / wall,
        other_cpu=max(0.0, 100 * (busy - served - perf) / wall),
    )


def summary_of(path: Path) -> str:
    """dnsperf's text without the per-query `> ` lines of -v."""
    with path.open(errors="replace") as lines:
        return "".join(line for line in lines if not line.startswith("> "))


def latencies(path: Path) -> list[float]:
    """Seconds of every answered query from dnsperf -v lines: `> RCODE NAME TYPE SECONDS`."""
    values = []
    with path.open(errors="replace") as lines:
        for line in lines:
            if line.startswith("> "):
                parts = line.split()
                try:
                    values.append(float(parts[-1]))
                except (ValueError, IndexError):
                    continue  # a timeout line or anything else without a latency
    return values


def percentile(ordered: list[float], total: int, p: float) -> float:
    """Nearest-rank p-th percentile of `total` queries whose answered latencies are `ordered`;
    the `total - len(ordered)` unanswered ones rank above every answer (inf)."""
    rank = max(1, math.ceil(p / 100 * total))
    return ordered[rank - 1] if rank <= len(ordered) else math.inf


def measure(args: argparse.Namespace, result: Result, pid: int, port: int, work: Path, qfile: Path) -> None:
    name = result.server
    log(f"{name}: peak phase, {args.seconds}s unthrottled")
    result.peak = dnsperf(args, pid, port, qfile, work / f"{name}-peak.txt")
    log(f"{name}: {result.peak.qps:.0f} q/s, {result.peak.lost} lost")
    if result.peak.server_cpu >= 1:
        result.qps_per_cpu_second = result.peak.qps / (result.peak.server_cpu / 100)
    result.half_rate = max(1, int(result.peak.qps / 2))
    log(f"{name}: half-load phase, -Q {result.half_rate} -v")
    out = work / f"{name}-half.txt"
    result.half = dnsperf(args, pid, port, qfile, out, rate=result.half_rate, verbose=True)
    values = sorted(latencies(out))
    out.unlink()  # may be tens of MB
    result.verbose_lines = len(values)
    if len(values) != result.half.completed:
        log(f"{name}: WARNING: {len(values)} latency lines but dnsperf completed {result.half.completed}")
    if values:
        mean_ms = sum(values) / len(values) * 1000
        if abs(mean_ms - result.half.avg_ms) > 0.01 + 0.01 * result.half.avg_ms:
            log(
                f"{name}: WARNING: mean of -v lines {mean_ms:.3f} ms != dnsperf's {result.half.avg_ms:.3f} ms"
            )
    total = max(result.half.sent, len(values))
    if total:
        result.p50_ms = percentile(values, total, 50) * 1000
        result.p99_ms = percentile(values, total, 99) * 1000
        for p in (50, 90, 99, 99.9, 100):
            result.percentiles_ms[f"p{p:g}"] = round(percentile(values, total, p) * 1000, 3)
    if not args.no_control:
        log(f"{name}: control phase, -Q {result.half_rate} without -v")
        result.control = dnsperf(args, pid, port, qfile, work / f"{name}-control.txt", rate=result.half_rate)
    result.peak_rss_mib, result.processes = peak_rss_mib(pid)


# --- servers -----------------------------------------------------------------------------------


def run_gdns(args, result: Result, extra: list[str], work: Path, backend_port: int, qfile: Path) -> None:
    name = result.server
    zones = work / f"{name}-zones"
    zones.mkdir()
    (zones / f"{ORIGIN}.yaml").write_text(gdns_zone(backend_port, args.weights))
    argv = [sys.executable, "-m", "gdns", "serve", "--zones", str(zones), "--listen", "127.0.0.1:0"]
    if "--web" not in extra and "--no-web" not in extra:
        argv.append("--no-web")
    argv += extra
    result.command = shlex.join(argv)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(args.gdns_src), os.environ.get("PYTHONPATH")])),
    )
    logfile = work / f"{name}.log"
    proc, children = None, {}
    try:
        with logfile.open("w") as out:
            log(f"{name}: starting {result.command}")
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=args.gdns_src, env=env,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + args.start_timeout
        port = int(wait_log(logfile, proc, r"listening on 127\.0\.0\.1:(\d+)", deadline, name).group(1))
        wait_log(logfile, proc, r": ready$", deadline, name)
        probed = wait_log(logfile, proc, r"first probe round: (\d+) target\(s\), (\d+) up", deadline, name)
        if int(probed.group(2)) != len(BACKENDS):
            raise BenchError(f"{name}: first probe round: {probed.group(0)}; want {len(BACKENDS)} up")
        wait_members(port, deadline, name)
        result.answers = answers(port)
        measure(args, result, proc.pid, port, work, qfile)
    except BenchError as error:
        result.error = str(error)
        log(str(error))
    finally:
        if proc is not None and proc.poll() is None:
            children = {pid: start_time(pid) for pid in descendants(proc.pid) if pid != proc.pid}
        stop(proc, name)
        stop_leftovers(children, name)


def run_gdnsd(args, result: Result, work: Path, backend_port: int, qfile: Path) -> None:
    name = result.server
    base = work / "gdnsd"
    (base / "zones").mkdir(parents=True)
    port = free_port()
    (base / "config").write_text(gdnsd_config(base, port, backend_port, args.weights, args.gdnsd_threads))
    (base / "zones" / ORIGIN).write_text(gdnsd_zone())
    gdnsd, gdnsdctl = shutil.which("gdnsd", path=SBIN_PATH), shutil.which("gdnsdctl", path=SBIN_PATH)
    argv = [gdnsd, "-c", str(base), "start"]
    result.command = shlex.join(argv)
    logfile = work / "gdnsd.log"
    proc = None
    try:
        with logfile.open("w") as out:
            log(f"{name}: starting {result.command} (listening on 127.0.0.1:{port})")
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        deadline = time.monotonic() + args.start_timeout
        wait_log(logfile, proc, r"DNS listeners started", deadline, name)
        states: dict = {}
        while True:
            done = subprocess.run(
                [gdnsdctl, "-c", str(base), "-t", "5", "states"], capture_output=True, text=True, timeout=15
            )
            if done.returncode == 0:
                states = json.loads(done.stdout)
                up = [key for key, value in states.items() if value.get("state") == "UP"]
                if len(up) == len(BACKENDS):
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"{name}: members not all UP in time: {states or done.stderr.strip()}")
            time.sleep(0.2)
        wait_members(port, deadline, name)
        result.answers = answers(port)
        measure(args, result, proc.pid, port, work, qfile)
    except BenchError as error:
        result.error = str(error)
        log(str(error))
    finally:
        stop(proc, name)


def start_backends(work: Path, lifetime: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-backends", str(int(lifetime))],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=(work / "backends.log").open("w"), text=True,
        start_new_session=True,
    )  # fmt: skip
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        stop(proc, "backends")
        raise BenchError(f"backends did not start: {(work / 'backends.log').read_text()}")
    return proc, int(line)


def serve_backends(lifetime: float) -> int:
    """Child process: 200 on /healthz on each backend address, one shared port, for `lifetime` s."""
    from aiohttp import web

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def main() -> int:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, healthz)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        for _ in range(50):
            sites = [web.TCPSite(runner, BACKENDS[0], 0)]
            await sites[0].start()
            port = sites[0]._server.sockets[0].getsockname()[1]
            try:
                for host in BACKENDS[1:]:
                    sites.append(web.TCPSite(runner, host, port))
                    await sites[-1].start()
                break
            except OSError:
                for site in sites:
                    await site.stop()
        else:
            return 1
        print(port, flush=True)
        stopped = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stopped.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopped.wait(), lifetime)
        await runner.cleanup()
        return 0

    return asyncio.run(main())


# --- installation ------------------------------------------------------------------------------


def ensure_tools() -> bool:
    def missing() -> list[str]:
        return [tool for tool in ("dnsperf", "gdnsd", "gdnsdctl") if not shutil.which(tool, path=SBIN_PATH)]

    if not missing():
        return True
    command = ["apt-get", "install", "-y", "dnsperf", "gdnsd"]
    if os.geteuid() != 0:
        print(
            f"missing {', '.join(missing())}; install them with: sudo {shlex.join(command)}", file=sys.stderr
        )
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"missing {', '.join(missing())}; running {shlex.join(command)}")
    if subprocess.run(command, env=env, timeout=900).returncode != 0:
        log("apt-get install failed; running apt-get update and trying again")
        subprocess.run(["apt-get", "update"], env=env, timeout=600)
        subprocess.run(command, env=env, timeout=900)
    if missing():
        print(f"still missing {', '.join(missing())} after {shlex.join(command)}", file=sys.stderr)
        return False
    return True


# --- report ------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "lost" if math.isinf(value) else f"{value:.3f}"


def report(results: list[Result], args: argparse.Namespace) -> list[str]:
    lines = []
    header = f"{'server':<16}{'q/s':>8}{'lost':>6}{'cpu%':>5}{'perf%':>6}{'q/cpu-s':>8}{'half q/s':>9}"
    header += f"{'p50 ms':>7}{'p99 ms':>7}{'mean ms':>8}{'ctl ms':>7}{'RSS MiB':>8}{'other%':>7}"
    lines += [header, "-" * len(header)]
    for r in results:
        if r.error or r.peak is None or r.half is None:
            last = [line.strip() for line in (r.error or "?").splitlines() if line.strip()][-1]
            lines.append(f"{r.server:<16} failed: {last}")
            continue
        ctl = f"{r.control.avg_ms:.3f}" if r.control else "-"
        other = max(run.other_cpu for run in (r.peak, r.half, r.control) if run)
        per_cpu = f"{r.qps_per_cpu_second:.0f}" if r.qps_per_cpu_second else "-"
        lines.append(
            f"{r.server:<16}{r.peak.qps:>8.0f}{r.peak.lost:>6}{r.peak.server_cpu:>5.0f}{r.peak.dnsperf_cpu:>6.0f}"
            f"{per_cpu:>8}{r.half.qps:>9.0f}{ms(r.p50_ms):>7}{ms(r.p99_ms):>7}{r.half.avg_ms:>8.3f}{ctl:>7}"
            f"{r.peak_rss_mib:>8.1f}{other:>7.0f}"
        )
    lines += [
        "q/s, lost: dnsperf unthrottled; cpu%, perf%: CPU of the server, of dnsperf then (100 = one core);",
        "q/cpu-s: those q/s per second of the server's CPU time;",
        "half q/s, p50, p99, mean: dnsperf -Q half of q/s, -v; ctl: mean latency of the same run without -v;",
        "RSS: sum of VmHWM over the server's processes; other%: highest CPU use by other processes in a run",
        "",
    ]
    ok = {r.server: r for r in results if not r.error and r.peak}
    gdnsd = ok.get("gdnsd")
    for r in ok.values():
        if r.server != "gdnsd" and gdnsd:
            line = f"throughput {r.server}/gdnsd: {r.peak.qps / gdnsd.peak.qps:.2f}"
            if r.qps_per_cpu_second and gdnsd.qps_per_cpu_second:
                line += f"; per CPU-second: {r.qps_per_cpu_second / gdnsd.qps_per_cpu_second:.2f}"
            lines.append(line)
    cores = os.cpu_count() or 1
    for r in ok.values():
        used = r.peak.server_cpu + r.peak.dnsperf_cpu + r.peak.other_cpu
        if used > 90 * cores:
            run = r.peak
            split = f"server {run.server_cpu:.0f}, dnsperf {run.dnsperf_cpu:.0f}, others {run.other_cpu:.0f}"
            limit = "the machine's limit" + (", not the server's" if r.peak.server_cpu < 95 else "")
            lines.append(f"{r.server}: peak run used {used:.0f}% of {100 * cores}% CPU ({split}): {limit}")
    w1, w2 = ok.get("gdns-workers-1"), ok.get("gdns-workers-2")
    if w1 and w2:
        lines.append(f"throughput gdns 2 workers / 1 worker: {w2.peak.qps / w1.peak.qps:.2f}")
    for r in ok.values():
        lines.append(f"{r.server}: half-load answers {r.half.rcodes}; packet size {r.half.sizes}")
    return lines


def targets(results: list[Result]) -> list[tuple[str, bool]]:
    ok = {r.server: r for r in results if not r.error and r.peak}
    gdnsd = ok.get("gdnsd")
    found = []
    for r in ok.values():
        if r.server == "gdnsd":
            continue
        found.append(
            (f"{r.server} >= 100000 q/s with no lost queries ({r.peak.qps:.0f} q/s, {r.peak.lost} lost)",
             r.peak.qps >= 100_000 and r.peak.lost == 0)
        )  # fmt: skip
        if gdnsd:
            ratio = r.peak.qps / gdnsd.peak.qps
            found.append((f"{r.server} >= half of gdnsd's throughput ({ratio:.2f})", ratio >= 0.5))
        if r.p99_ms is not None:
            found.append((f"{r.server} p99 < 1 ms at half load ({ms(r.p99_ms)} ms)", r.p99_ms < 1))
    return found


def finite(value):
    """`value` with every infinite float (a percentile that fell on a lost query) as None, for JSON."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return None if isinstance(value, float) and math.isinf(value) else value


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each dnsperf run (default 10)")
    parser.add_argument(
        "--gdns-args", default="", help='extra arguments for `gdns serve`, e.g. "--workers 2"'
    )
    parser.add_argument(
        "--gdns-src", type=Path, default=ROOT, help="gdns checkout to run (default: this one)"
    )
    parser.add_argument("--only", choices=("gdns", "gdnsd"), help="measure only this server")
    parser.add_argument(
        "--workers-sweep",
        action="store_true",
        help="measure gdns with --workers 1 and --workers 2 (needs --workers)",
    )
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c: client sockets (default 8)")
    parser.add_argument(
        "--outstanding", type=int, default=200, help="dnsperf -q: queries in flight (default 200)"
    )
    parser.add_argument("--threads", type=int, default=1, help="dnsperf -T: threads (default 1)")
    parser.add_argument(
        "--gdnsd-threads", type=int, help="gdnsd udp_threads and tcp_threads (default: its own, 2)"
    )
    parser.add_argument("--weights", default="1,1,1", help="weights of the 3 pool members (default 1,1,1)")
    parser.add_argument("--no-control", action="store_true", help="skip the half-load run without -v")
    parser.add_argument("--start-timeout", type=float, default=30, help="seconds for a server to be ready")
    parser.add_argument(
        "--budget", type=int, help="time limit of the whole run in seconds (default: computed)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--check-targets", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (zones, configs, logs)"
    )
    parser.add_argument("--serve-backends", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backends is not None:
        return serve_backends(args.serve_backends)
    try:
        args.weights = [int(w) for w in args.weights.split(",")]
        if len(args.weights) != len(BACKENDS) or min(args.weights) < 1:
            raise ValueError
    except ValueError:
        parser.error("--weights takes 3 positive integers, e.g. 1,2,3")
    args.gdns_src = args.gdns_src.resolve()
    if not ensure_tools():
        return 1

    runs: list[tuple[str, list[str]]] = []
    if args.only != "gdnsd":
        extra = shlex.split(args.gdns_args)
        if args.workers_sweep:
            runs += [(f"gdns-workers-{n}", [*extra, "--workers", str(n)]) for n in (1, 2)]
        else:
            runs.append(("gdns", extra))
    servers = len(runs) + (args.only != "gdns")
    phases = 2 if args.no_control else 3
    budget = args.budget or int(60 + servers * (phases * (args.seconds + 10) + args.start_timeout + 20))

    def out_of_time(signum, frame):
        raise TimeLimit(f"the run exceeded its time limit of {budget}s (--budget)")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(budget)
    load = os.getloadavg()[0]
    log(f"{os.cpu_count()} cores, load average {load:.2f}; time limit {budget}s")
    if load > 0.5:
        log(f"WARNING: load average {load:.2f}: other processes compete for the CPUs; figures will suffer")

    results: list[Result] = []
    work = Path(tempfile.mkdtemp(prefix="gdns-compare-"))
    backends = None
    try:
        qfile = work / "queries.txt"
        qfile.write_text("\n".join(QUERIES) + "\n")
        backends, backend_port = start_backends(work, budget)
        log(f"backends: {', '.join(BACKENDS)} port {backend_port}, pid {backends.pid}")
        for name, extra in runs:
            results.append(Result(server=name))
            run_gdns(args, results[-1], extra, work, backend_port, qfile)
        if args.only != "gdns":
            results.append(Result(server="gdnsd"))
            run_gdnsd(args, results[-1], work, backend_port, qfile)
    except TimeLimit as error:
        log(str(error))
        if results and results[-1].peak_rss_mib is None and not results[-1].error:
            results[-1].error = str(error)
        else:
            results.append(Result(server="(run)", error=str(error)))
    except BenchError as error:
        log(str(error))
        return 1
    finally:
        signal.alarm(0)
        stop(backends, "backends")
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    answered = [r for r in results if r.answers]
    mismatches = []
    for other in answered[1:]:
        for query, answer in answered[0].answers.items():
            if other.answers.get(query) != answer:
                mismatches.append(
                    f"{query}: {answered[0].server} {answer!r} / {other.server} {other.answers.get(query)!r}"
                )
    settings = {
        "seconds": args.seconds,
        "dnsperf": f"-c {args.clients} -q {args.outstanding} -T {args.threads}",
        "gdnsd_threads": args.gdnsd_threads or "default (2)",
        "gdns_args": args.gdns_args,
        "weights": args.weights,
        "cores": os.cpu_count(),
        "load_average": round(load, 2),
        "queries": f"{len(QUERIES)} lines, {sum(q.startswith('nx') for q in QUERIES)} NXDOMAIN",
    }
    found = targets(results)
    if args.json:
        doc = {"settings": settings, "results": [asdict(r) for r in results], "answer_mismatches": mismatches}
        doc["targets"] = [{"target": text, "met": met} for text, met in found]
        print(json.dumps(finite(doc), indent=2))
    else:
        print(" ".join(f"{key}={value}" for key, value in settings.items()))
        print("\n".join(report(results, args)))
        if len(answered) > 1:
            print("answers: " + ("the same from every server" if not mismatches else "DIFFER:"))
            for line in mismatches:
                print("  " + line)
        if found:
            print("targets:")
            for text, met in found:
                print(f"  [{'met' if met else 'MISSED'}] {text}")
    if any(r.error for r in results):
        return 1
    if args.check_targets and not all(met for _, met in found):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
