"""`gdns serve` as a process: start-up errors are one line, signals stop it cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT, GdnsServer


def run_serve(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gdns", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("gdns: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_port_in_use_is_a_one_line_error(zone_dir, kind):
    with socket.socket(socket.AF_INET, kind) as busy:
        busy.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            busy.listen()
        port = busy.getsockname()[1]
        result = run_serve("--zones", str(zone_dir), "--listen", f"127.0.0.1:{port}")
    line = one_line_error(result)
    assert f"127.0.0.1:{port}" in line and "already in use" in line


def test_missing_zones_folder_is_a_one_line_error(tmp_path):
    line = one_line_error(run_serve("--zones", str(tmp_path / "nope"), "--listen", "127.0.0.1:0"))
    assert "does not exist" in line and "nope" in line


def test_folder_without_zone_files_is_an_error(tmp_path):
    (tmp_path / "README.txt").write_text("not a zone")
    line = one_line_error(run_serve("--zones", str(tmp_path), "--listen", "127.0.0.1:0"))
    assert "no zone files" in line


def test_invalid_zone_refuses_to_start_and_names_file_and_line(zone_dir):
    (zone_dir / "broken.yaml").write_text(
        "origin: broken.example.\nsoa: {mname: ns.broken.example., rname: h.example.}\n"
        "ns: ns.example.net.\nrecords:\n  www: {A: 192.0.2.300}\n"
    )
    result = run_serve("--zones", str(zone_dir), "--listen", "127.0.0.1:0")
    one_line_error(result)
    assert f"{zone_dir / 'broken.yaml'}:5:" in result.stderr
    assert "records.www.A" in result.stderr


def test_bad_listen_address_is_a_usage_error(zone_dir):
    result = run_serve("--zones", str(zone_dir), "--listen", "localhost:53x")
    assert result.returncode == 2
    assert "listen address" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("size", ["511", "65536", "big"])
def test_udp_size_outside_512_to_65535_is_a_usage_error(zone_dir, size):
    result = run_serve("--zones", str(zone_dir), "--max-udp-size", size)
    assert result.returncode == 2
    assert "--max-udp-size: must be 512-65535 bytes" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(zone_dir, sig):
    server = GdnsServer(zone_dir)
    assert server.query("www.gslb.example.com").answer
    server.signal(sig)
    assert server.proc.wait(10) == 0
    server.stop()
    assert "shutting down" in server.log()
    assert "Traceback" not in server.log()


def test_every_listen_address_serves_udp_and_tcp_on_one_port(zone_dir, start_server):
    server = start_server(zone_dir, "--listen", "127.0.0.2:0")
    assert len(server.addresses) == 2
    for where in range(2):
        for tcp in (False, True):
            reply = server.query("ns1.gslb.example.com", tcp=tcp, where=where)
            assert [rr.address for rr in reply.answer[0]] == ["198.51.100.53"]


def test_missing_geoip_database_is_a_one_line_error(zone_dir, tmp_path):
    line = one_line_error(
        run_serve("--zones", str(zone_dir), "--listen", "127.0.0.1:0", "--geoip-db", str(tmp_path / "x.mmdb"))
    )
    assert "GeoIP database" in line and "no such file" in line


def test_zones_path_that_is_a_file_is_a_one_line_error(zone_dir):
    target = next(zone_dir.glob("*.yaml"))
    line = one_line_error(run_serve("--zones", str(target), "--listen", "127.0.0.1:0"))
    assert line == f"gdns: error: {target}: is a file, not a folder of zone files"
