"""A short, time-boxed run of each atheris harness (tests/fuzz/fuzz_*.py) from its seed
corpus, as CI's fuzzing: it passes when the harness finds nothing in its time. The two run
side by side, FUZZ_SECONDS each (GDNS_FUZZ_SECONDS to change it). A long session is
described in docs/fuzzing.md."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HARNESSES = ["fuzz_query", "fuzz_zone"]
FUZZ_SECONDS = int(os.environ.get("GDNS_FUZZ_SECONDS", "15"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install atheris: Linux x86_64 wheels for CPython 3.11-3.13)",
)


def test_harnesses_find_nothing_in_a_short_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {}
    for name in HARNESSES:
        work = tmp_path / name
        (work / "corpus").mkdir(parents=True)
        command = [
            sys.executable,
            str(HERE / f"{name}.py"),
            str(work / "corpus"),  # new inputs go here, not into the repository's corpus
            str(HERE / "corpus" / name.removeprefix("fuzz_")),
            f"-max_total_time={FUZZ_SECONDS}",
            "-timeout=20",  # seconds for one input: a hang is a finding too
            "-rss_limit_mb=2048",
            f"-artifact_prefix={work}/",
            "-print_final_stats=1",
        ]
        log = open(work / "log", "w")  # noqa: SIM115 - closed below
        runs[name] = (
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT),
            log,
            work,
        )
    start = time.monotonic()
    failures = []
    for name, (process, log, work) in runs.items():
        try:
            code = process.wait(timeout=FUZZ_SECONDS + 120)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        log.close()
        output = (work / "log").read_text(errors="replace")
        crashes = sorted(p.name for p in work.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
        if code != 0 or crashes or "Done " not in output:
            found = ", ".join(str(work / c) for c in crashes) or "no input saved"
            failures.append(f"{name}: exit {code}; {found}\n" + "\n".join(output.splitlines()[-60:]))
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - start < FUZZ_SECONDS + 120
