"""`gdns serve --log-format json` and `--query-log-sample`: what lands on stderr, end to end."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.edns
import pytest

from gdns.logs import JsonFormatter, label_text
from tests.conftest import ROOT, GdnsServer, wait_for

BASE = {"time", "level", "logger", "message"}
QUERY_FIELDS = {
    "client",
    "client_port",
    "qname",
    "qtype",
    "rcode",
    "transport",
    "answers",
    "ecs",
    "elapsed_ms",
}
TOKEN = "log-test-token"
ZONE = """\
origin: logs.example.
soa: {{mname: ns1.logs.example., rname: hostmaster.logs.example.}}
ns: [ns1.logs.example.]
records:
  ns1: {{A: 192.0.2.1}}
  www: {{A: {address}}}
pools:
  app:
    members: [{{address: 192.0.2.10}}, {{address: 192.0.2.11}}]
"""


class JsonServer(GdnsServer):
    """GdnsServer reading JSON log lines: ready is the record whose message is "ready"."""

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            message = str(record.get("message", ""))
            if message.startswith("listening on "):
                host, _, port = message.split()[2].rpartition(":")
                self.addresses.append((host.strip("[]"), int(port)))
            if message.startswith("web side on "):
                self.web = message.split()[3].rstrip("/")
            if message == "ready":
                self._ready.set()
        self._ready.set()

    def records(self) -> list[dict]:
        """Every stderr line so far, each of which must be one JSON object."""
        out = []
        for line in self.lines:
            record = json.loads(line)
            assert isinstance(record, dict), line
            assert set(record) >= BASE, line
            out.append(record)
        return out

    def queries(self) -> list[dict]:
        return [r for r in self.records() if r["logger"] == "gdns.query"]


@pytest.fixture
def json_server():
    servers: list[JsonServer] = []

    def start(zones: Path, *extra: str) -> JsonServer:
        server = JsonServer(zones, "--log-format", "json", *extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def write_zone(folder: Path, address: str) -> None:
    tmp = folder / ".logs.yaml.tmp"
    tmp.write_text(ZONE.format(address=address))
    os.replace(tmp, folder / "logs.yaml")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    with opener.open(request, timeout=5) as response:
        return json.loads(response.read())


def test_every_line_is_json_with_transitions_reloads_overrides_and_errors(zone_dir, tmp_path, json_server):
    write_zone(zone_dir, "192.0.2.20")
    token = tmp_path / "token"
    token.write_text(TOKEN)
    server = json_server(zone_dir, "--reload-interval", "0.2", "--admin-token-file", str(token))
    # health: the example's `web` pool probes 127.0.0.21/22:8080, where nothing listens
    assert server.wait_for_log("is DOWN (connection refused")
    write_zone(zone_dir, "192.0.2.21")  # a good reload
    assert server.wait_for_log("zones reloaded")
    write_zone(zone_dir, "192.0.2.999")  # a broken one: errors, last good zones kept
    assert server.wait_for_log("still serving the previous zones")
    post(
        f"{server.web}/api/v1/overrides", {"member": "app.logs.example./default/192.0.2.10", "state": "down"}
    )
    assert server.wait_for_log("override: app.logs.example./default/192.0.2.10 forced down")
    server.stop()
    records = server.records()
    assert all(r["time"].endswith("Z") and r["level"] in {"INFO", "WARNING", "ERROR"} for r in records)
    seen = {(r["logger"], r["level"]) for r in records}
    assert {("gdns", "INFO"), ("gdns.health", "WARNING"), ("gdns.reload", "INFO")} <= seen
    assert {("gdns.reload", "ERROR"), ("gdns.overrides", "WARNING")} <= seen
    assert any("logs.yaml:" in r["message"] and "192.0.2.999" in r["message"] for r in records)
    assert records[-1]["message"] == "shutting down"
    assert not server.queries()  # the query log is off by default


def serve_and_fail(*args: str) -> tuple[int, list[dict]]:
    """`gdns serve ARGS` expected to stop before serving: (exit status, JSON records)."""
    cmd = [sys.executable, "-m", "gdns", "serve", "--listen", "127.0.0.1:0", "--no-web", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)
    records = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert all(set(r) >= BASE and r["time"].endswith("Z") for r in records), done.stderr
    return done.returncode, records


def test_startup_errors_are_json_records_in_json_mode(zone_dir, tmp_path):
    """Problems that stop start-up keep stderr all JSON: ERROR records of the `gdns` logger."""
    code, records = serve_and_fail("--zones", str(tmp_path / "missing"), "--log-format", "json")
    assert code == 1 and [(r["level"], r["logger"]) for r in records] == [("ERROR", "gdns")]
    assert records[0]["message"] == f"{tmp_path / 'missing'}: zones folder does not exist"

    state = tmp_path / "state.json"
    state.write_text("{not json")
    code, records = serve_and_fail("--zones", str(zone_dir), "--state-file", str(state), "--log-format=json")
    assert code == 1 and records[-1]["level"] == "ERROR"
    assert records[-1]["message"].startswith(f"state file {state}: cannot be read")

    bad = tmp_path / "bad"
    bad.mkdir()
    write_zone(bad, "192.0.2.999")
    (bad / "logs.yaml").write_text((bad / "logs.yaml").read_text().replace("origin:", "ttl: 500ms\norigin:"))
    code, records = serve_and_fail("--zones", str(bad), "--log-format", "json")
    assert code == 1 and all(r["level"] == "ERROR" and r["logger"] == "gdns" for r in records)
    first, second, summary = records
    path = str(bad / "logs.yaml")
    assert (first["file"], first["line"], first["column"], first["path"]) == (path, 1, 6, "ttl")
    assert first["message"].startswith(f"{path}:1:6: ttl: '500ms' is not a whole number of seconds")
    assert second["path"] == "records.www.A" and "192.0.2.999" in second["message"]
    assert summary["message"] == f"2 problem(s) in the zones in {bad}; not starting"

    code, records = serve_and_fail("--zones", str(zone_dir), "--listen", "127.0.0.1:99999", "--log-f", "json")
    assert code == 2 and len(records) == 1 and records[0]["level"] == "ERROR"
    wanted = "argument --listen: listen address '127.0.0.1:99999': port must be 0-65535"
    assert records[0]["message"] == wanted
    assert records[0]["usage"] == "gdns serve --help"


def test_startup_errors_stay_text_in_text_mode(zone_dir, tmp_path):
    cmd = [sys.executable, "-m", "gdns", "serve", "--zones", str(tmp_path / "missing"), "--no-web"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr == f"gdns: error: {tmp_path / 'missing'}: zones folder does not exist\n"


def test_sample_1_logs_every_query_with_its_fields(zone_dir, json_server):
    server = json_server(zone_dir, "--query-log-sample", "1", "--no-web")
    server.query("app.gslb.example.com", "A", use_edns=0, options=[dns.edns.ECSOption("203.0.113.0", 24)])
    assert wait_for(lambda: len(server.queries()) == 1)
    [record] = server.queries()
    assert record["level"] == "INFO"
    assert set(record) >= QUERY_FIELDS
    assert record["client"] == "127.0.0.1" and isinstance(record["client_port"], int)
    assert record["qname"] == "app.gslb.example.com." and record["qtype"] == "A"
    assert record["rcode"] == "NOERROR" and record["transport"] == "udp"
    assert record["answers"] == 1 and record["ecs"] == "203.0.113.0/24"
    assert 0 < record["elapsed_ms"] < 1000
    server.query("nothere.gslb.example.com", "AAAA", tcp=True)
    assert wait_for(lambda: len(server.queries()) == 2)
    record = server.queries()[1]
    assert (record["qname"], record["qtype"], record["rcode"]) == (
        "nothere.gslb.example.com.",
        "AAAA",
        "NXDOMAIN",
    )
    assert (record["transport"], record["answers"], record["ecs"]) == ("tcp", 0, None)


def test_sample_half_logs_about_half(zone_dir, json_server):
    server = json_server(zone_dir, "--query-log-sample", "0.5", "--no-web")
    n = 400
    for i in range(n):
        server.query("www.gslb.example.com", "A", id=i)
    server.stop()  # every line written is read before stop() returns
    logged = len(server.queries())
    # Binomial(400, 0.5): mean 200, standard deviation 10; six of them either side.
    assert 140 <= logged <= 260, logged


def test_sample_0_logs_nothing(zone_dir, json_server):
    server = json_server(zone_dir, "--no-web")
    for _ in range(50):
        server.query("www.gslb.example.com", "A")
    server.stop()
    assert not server.queries()
    assert any(r["message"] == "ready" for r in server.records())


def test_text_format_query_line(zone_dir, start_server):
    server = start_server(zone_dir, "--query-log-sample", "1", "--no-web")
    server.query("www.gslb.example.com", "MX")
    assert server.wait_for_log("gdns.query: query from 127.0.0.1 udp www.gslb.example.com. MX NOERROR")
    assert server.wait_for_log("answers=0 ecs=- ")


# -- the formatter in process ---------------------------------------------------------------


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("gdns.test", logging.WARNING, __file__, 1, message, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def test_formatter_fields_extras_and_one_line():
    line = JsonFormatter().format(record("a %s\nb", "é", pool="app", count=3, when=time))
    assert "\n" not in line and line.isascii()
    data = json.loads(line)
    assert data["message"] == "a é\nb" and data["level"] == "WARNING" and data["logger"] == "gdns.test"
    assert data["pool"] == "app" and data["count"] == 3 and isinstance(data["when"], str)
    assert "msg" not in data and "args" not in data and "levelname" not in data


def test_formatter_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        line = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    data = json.loads(line)
    assert data["exception"].startswith("Traceback") and "ValueError: boom" in data["exception"]


def test_query_names_cannot_break_a_line():
    assert label_text((b"www", b"a.b", b"x\ny", b"\\", b'"')) == 'www.a\\.b.x\\010y.\\\\.\\".'
    assert label_text(()) == "."
