"""A short soak (bench/soak.py) as a test: 20 s of mixed UDP and TCP queries while the zone is
rewritten every 3 s, a backend changes state every 1.5 s and operator overrides come and go;
nothing may be lost and every answer must match the server's published view of that moment.

It runs the script as a user does (a subprocess, which starts its own gdns and backends on
127.0.0.0/8 and stops them by PID) and reads the figures it writes with --json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_loses_nothing_and_answers_consistently(tmp_path):
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "20", "--rate", "500"]
    done = subprocess.run([*cmd, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=90)
    print(done.stdout, done.stderr, sep="\n")
    assert out.exists(), f"no figures written (exit {done.returncode})"
    figures = json.loads(out.read_text())
    assert figures["sent"] >= 9000
    assert figures["lost"] == 0
    assert figures["inconsistent"] == 0
    assert figures["checked"] == figures["answered"] == figures["sent"]
    assert figures["pool_answers"] > 1000 and figures["static_answers"] > 1000
    # The disturbances really happened, and the server took them in.
    assert figures["reloads_written"] >= 4
    assert figures["reloads_logged"] >= figures["reloads_seen"] >= figures["reloads_written"] - 1
    assert figures["flaps"] >= 4 and figures["recoveries"] >= 2
    assert figures["overrides"] >= 2
    assert figures["transitions"] > 0
    assert figures["health_hard"] == 0
    assert figures["server_errors"] == 0
    assert figures["ok"], done.stdout
    assert done.returncode == 0
