"""Baseline throughput of `gdns serve` on the example zones, measured with dnsperf.

    apt-get install dnsperf        # Debian package
    python bench/baseline.py [--seconds 10]

Starts gdns on 127.0.0.1 with an ephemeral port, runs dnsperf against it for a bounded
time with a mix of answers (positive, CNAME, NXDOMAIN, NODATA, referral, pools), prints dnsperf's
figures, and stops the server it started. Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERIES = """\
www.gslb.example.com A
www.gslb.example.com AAAA
docs.gslb.example.com A
nope.gslb.example.com A
www.gslb.example.com TXT
a.static.gslb.example.com A
x.sub.gslb.example.com A
gslb.example.com MX
app.gslb.example.com A
geo.gslb.example.com A
rr.gslb.example.com A
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="dnsperf run length (default 10)")
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c (default 4)")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf -q (default 200)")
    parser.add_argument("--gdns-args", default="", help="more `gdns serve` arguments, e.g. '--udp-on-loop'")
    args = parser.parse_args()
    if not shutil.which("dnsperf"):
        print("dnsperf is not installed: apt-get install dnsperf", file=sys.stderr)
        return 1
    server = subprocess.Popen(
        [sys.executable, "-m", "gdns", "serve", "--zones", str(ROOT / "zones"), "--listen", "127.0.0.1:0"]
        + args.gdns_args.split(),
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        port = None
        for line in server.stderr:
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
            if line.rstrip().endswith(": ready"):
                break
        if port is None:
            print("gdns did not start", file=sys.stderr)
            return 1
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as queries:
            queries.write(QUERIES)
            queries.flush()
            result = subprocess.run(
                [
                    "dnsperf",
                    "-s",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-d",
                    queries.name,
                    "-l",
                    str(args.seconds),
                    "-c",
                    str(args.clients),
                    "-q",
                    str(args.outstanding),
                ],
                capture_output=True,
                text=True,
                timeout=args.seconds + 30,
            )
        wanted = (
            "Queries sent",
            "Queries completed",
            "Queries lost",
            "Queries per second",
            "Average Latency",
            "Latency StdDev",
        )
        for line in result.stdout.splitlines():
            if line.strip().startswith(wanted):
                print(line.strip())
        rss = Path(f"/proc/{server.pid}/status").read_text()
        peak = re.search(r"VmHWM:\s+(\d+) kB", rss)
        if peak:
            print(f"gdns peak RSS: {int(peak.group(1)) / 1024:.1f} MiB")
        return result.returncode
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    raise SystemExit(main())
