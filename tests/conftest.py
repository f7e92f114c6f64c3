"""Shared fixtures: a real gdns server in a subprocess on loopback ephemeral ports."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, settings

# Property tests (tests/property/, docs/fuzzing.md): the "ci" profile by default, a few seconds
# per property; GDNS_HYPOTHESIS_PROFILE=long runs 100 times as many examples of each.
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=_HEALTH)
settings.register_profile("long", max_examples=10_000, deadline=None, suppress_health_check=_HEALTH)
settings.load_profile(os.environ.get("GDNS_HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_ZONES = ROOT / "zones"
_WEB = re.compile(r"web side on (http://[^/\s]+)/")
_LISTEN = re.compile(r"listening on (\[?[0-9a-f.:]+\]?):(\d+) \(udp, tcp\)")


class GdnsServer:
    """`gdns serve` as an operator runs it, on 127.0.0.1 (and ::1) with ephemeral ports."""

    def __init__(
        self,
        zones: Path,
        *extra: str,
        ipv6: bool = False,
        timeout: float = 15.0,
        launcher=None,
        dns_port: int = 0,
    ):
        """`launcher`: a function from the command to the command actually run (a wrapper);
        `dns_port`: the DNS port (0: an ephemeral one)."""
        self.zones = zones
        listen = ["--listen", f"127.0.0.1:{dns_port}"] + (["--listen", "[::1]:0"] if ipv6 else [])
        if "--web" not in extra and "--no-web" not in extra:
            listen += ["--web", "127.0.0.1:0"]  # an ephemeral port: servers run side by side
        cmd = [sys.executable, "-m", "gdns", "serve", "--zones", str(zones), *listen, *extra]
        self.proc = subprocess.Popen(
            launcher(cmd) if launcher else cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self.addresses: list[tuple[str, int]] = []
        self.web: str | None = None  # http://127.0.0.1:PORT
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("gdns did not start:\n" + "".join(self.lines))
        if not self.addresses:
            raise RuntimeError("gdns did not report its ports:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            web = _WEB.search(line)
            if web:
                self.web = web.group(1)
            match = _LISTEN.search(line)
            if match:
                self.addresses.append((match.group(1).strip("[]"), int(match.group(2))))
            if line.rstrip().endswith(": ready"):
                self._ready.set()
        self._ready.set()

    @property
    def host(self) -> str:
        return self.addresses[0][0]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 10.0, start: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines[start:]):
                return True
            time.sleep(0.05)
        return False

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode

    # -- querying with dnspython, the independent client ---------------------------------

    def query(
        self, qname: str, qtype: str = "A", tcp: bool = False, where: int = 0, timeout: float = 3.0, **make
    ) -> dns.message.Message:
        host, port = self.addresses[where]
        message = make.pop("message", None) or dns.message.make_query(qname, qtype, **make)
        if tcp:
            return dns.query.tcp(message, host, port=port, timeout=timeout)
        return dns.query.udp(message, host, port=port, timeout=timeout, ignore_trailing=False)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll `predicate` every 50 ms until it is true (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def zone_dir(tmp_path: Path) -> Path:
    """A fresh zones folder holding a copy of the example zone."""
    folder = tmp_path / "zones"
    folder.mkdir()
    for path in EXAMPLE_ZONES.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def start_server():
    """Factory: start_server(zones_dir, *extra_args, ipv6=False) -> GdnsServer, stopped at teardown."""
    servers: list[GdnsServer] = []

    def start(zones: Path, *extra: str, ipv6: bool = False, launcher=None) -> GdnsServer:
        server = GdnsServer(zones, *extra, ipv6=ipv6, launcher=launcher)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def example_server(tmp_path_factory):
    """One server for a whole test module, on the example zones plus tests/data zones, v4 and v6."""
    folder = tmp_path_factory.mktemp("zones")
    for path in [*EXAMPLE_ZONES.glob("*.yaml"), *(ROOT / "tests" / "data").glob("*.yaml")]:
        shutil.copy(path, folder / path.name)
    server = GdnsServer(
        folder,
        "--chaos-version",
        "gdns-test",
        "--tcp-idle-timeout",
        "2",
        "--tcp-max-connections",
        "20",
        ipv6=_has_ipv6(),
    )
    yield server
    server.stop()


def _has_ipv6() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = _has_ipv6()
os.environ.setdefault("PYTHONUNBUFFERED", "1")


@pytest.fixture(scope="session")
def geoip_db(tmp_path_factory) -> Path:
    """Path to a tiny GeoIP2 City database (see tests/geodb.py)."""
    from tests.geodb import build

    return build(tmp_path_factory.mktemp("geoip") / "test-city.mmdb")


@pytest.fixture
def backend():
    """Factory: backend("127.0.0.x") -> ThreadedBackend (tests/backends.py), closed at teardown."""
    made: list = []

    def make(host: str):
        from tests.backends import ThreadedBackend

        b = ThreadedBackend(host)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
