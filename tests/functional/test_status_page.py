"""The /status page as a person sees it: the real `gdns serve`, rendered by headless Chromium
(its JavaScript fetches /api/v1/pools, /reload and /overrides), checked in the rendered DOM, and
photographed. Skipped only when Chromium is missing outside CI; in CI it must run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from tests.backends import ThreadedBackend as Backend
from tests.conftest import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium)",
)
ORIGIN = "s.example"
WWW, API = f"www.{ORIGIN}.", f"api.{ORIGIN}."
PROBED = "127.0.0.71"


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def find_all(self, predicate) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if predicate(child):
                    found.append(child)
                found.extend(child.find_all(predicate))
        return found

    def find(self, predicate) -> Node:
        found = self.find_all(predicate)
        assert found, "no such element"
        return found[0]


class Tree(HTMLParser):
    VOID = {"meta", "link", "br", "img", "input", "hr"}

    def __init__(self, html: str):
        super().__init__()
        self.root = self.at = Node("#document", {}, None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in self.VOID:
            self.at = node

    def handle_endtag(self, tag):
        node = self.at
        while node.parent is not None and node.tag != tag:  # tolerate unclosed elements
            node = node.parent
        if node.parent is not None:
            self.at = node.parent

    def handle_data(self, data):
        self.at.children.append(data)


def chromium(url: str, tmp: Path, *what: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.fail("CI is set but chromium is not installed: .ci/run must install it")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--virtual-time-budget=5000",
    ]
    env = {**os.environ, "HOME": str(tmp)}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    return subprocess.run(
        [CHROMIUM, *flags, *what, url], capture_output=True, text=True, timeout=60, env=env, cwd=tmp
    )


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decompressed image data)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack("!II", data[16:24])
    idat, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack("!I4s", data[at : at + 8])
        if kind == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_status_page_shows_pools_members_states_and_the_last_reload(tmp_path, start_server):
    backend = Backend(PROBED)
    try:
        _run(tmp_path, start_server, backend)
    finally:
        backend.close()


def _run(tmp_path: Path, start_server, backend: Backend) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    check = {"type": "http", "port": backend.port, "path": "/health", "interval": 0.3, "timeout": 0.2}
    doc = {
        "origin": f"{ORIGIN}.",
        "ttl": 300,
        "soa": {"mname": f"ns1.{ORIGIN}.", "rname": f"hostmaster.{ORIGIN}."},
        "ns": [f"ns1.{ORIGIN}."],
        "records": {"ns1": {"A": "192.0.2.53"}},
        "checks": {"web": check | {"rise": 1, "fall": 1}},
        "pools": {
            "www": {
                "ttl": 30,
                "strategy": "failover",
                "groups": {
                    "eu": {
                        "members": [
                            {"address": "192.0.2.10"},
                            {"address": "192.0.2.11", "status": "down"},
                            {"address": "192.0.2.12"},
                        ]
                    },
                    "us": {"members": [{"address": PROBED, "check": "web"}]},
                },
            },
            "api": {"members": [{"address": "198.51.100.30"}]},
        },
    }
    zone = zones / f"{ORIGIN}.yaml"
    zone.write_text(yaml.safe_dump(doc, sort_keys=False))
    drained = f"{WWW}/eu/192.0.2.12"
    state = tmp_path / "state.json"  # an operator drained .12 before this start
    gone = f"old.{ORIGIN}./default/192.0.2.99"  # and forced down a member since removed
    entries = {drained: {"state": "drain", "since": time.time() - 120}, gone: {"state": "down", "since": 0}}
    state.write_text(json.dumps({"overrides": entries}))
    server = start_server(zones, "--state-file", str(state), "--reload-interval", "0.1")
    for _ in range(20):
        server.query(f"www.{ORIGIN}", "A", timeout=2.0)

    # A broken edit: the page must say the reload failed and that the old zones still serve.
    zone.write_text(zone.read_text() + "pools: {again: 1}\n")

    def reload_failed() -> bool:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(server.web + "/api/v1/reload", timeout=5) as reply:
            last = json.loads(reply.read())["last"]
        return last is not None and last["ok"] is False

    assert wait_for(reload_failed, timeout=5)

    done = chromium(server.web + "/status", tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-3000:]
    page = Tree(done.stdout).root
    updated = page.find(lambda n: n.attrs.get("id") == "updated").text
    assert updated.startswith("updated "), updated  # the script ran and reached gdns

    pools = {n.attrs["data-pool"]: n for n in page.find_all(lambda n: "data-pool" in n.attrs)}
    assert set(pools) == {WWW, API}
    for name, section in pools.items():
        assert section.find(lambda n: n.tag == "h2").text == name

    def row(pool: str, address: str) -> Node:
        rows = pools[pool].find_all(lambda n: n.tag == "tr" and "data-member" in n.attrs)
        matches = [r for r in rows if r.find(lambda n: n.tag == "td").text == address]
        assert len(matches) == 1, (address, [r.text for r in rows])
        return matches[0]

    def state_badge(r: Node) -> Node:
        return r.find(lambda n: "state" in n.classes)

    expected = {"192.0.2.10": "up", "192.0.2.11": "down", "192.0.2.12": "drain", PROBED: "up"}
    for address, wanted in expected.items():
        badge = state_badge(row(WWW, address))
        assert badge.text == wanted, (address, badge.text)
        assert wanted in badge.classes, (address, badge.classes)  # the colour
    assert state_badge(row(API, "198.51.100.30")).text == "up"
    assert row(WWW, "192.0.2.10").attrs["data-member"] == f"{WWW}/eu/192.0.2.10"

    drain = row(WWW, "192.0.2.12")
    assert "forced drain" in drain.text
    assert "override" in drain.find(lambda n: "forced drain" in n.text and n.tag == "span").classes
    assert "operator override: drain" in drain.text and "2 min ago" in drain.text
    assert "forced" not in row(WWW, "192.0.2.10").text
    assert "configured status down" in row(WWW, "192.0.2.11").text

    probed = row(WWW, PROBED)
    cells = [n.text for n in probed.find_all(lambda n: n.tag == "td")]
    assert re.fullmatch(r"\d+\.\d ms", cells[4]), cells  # RTT
    assert re.fullmatch(r"status 200 \(\d+ s ago\)", cells[3]), cells  # last check
    assert "ok" in probed.find(lambda n: n.tag == "span" and n.text.startswith("status 200 (")).classes
    assert row(WWW, "192.0.2.10").find_all(lambda n: n.tag == "td")[3].text == "no check"
    share = row(WWW, "192.0.2.10").find_all(lambda n: n.tag == "td")[6].text
    assert share == "100.0 %", share  # failover: every answer from the first group's one up member

    stale = page.find_all(lambda n: "data-stale" in n.attrs)
    assert [n.attrs["data-stale"] for n in stale] == [gone]
    assert stale[0].text == f"{gone}: forced down"
    assert "stale overrides" in page.find(lambda n: n.attrs.get("id") == "stale-title").text
    assert drained not in page.find(lambda n: n.attrs.get("id") == "stale").text

    outcome = page.find(lambda n: n.attrs.get("id") == "reload-outcome")
    assert outcome.text.startswith("last reload FAILED — still serving the previous zones"), outcome.text
    assert "bad" in outcome.classes
    errors = page.find(lambda n: n.tag == "pre").text
    assert f"{ORIGIN}.yaml:" in errors, errors

    shot = tmp_path / "status.png"
    done = chromium(server.web + "/status", tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    assert done.returncode == 0, done.stderr[-3000:]
    assert shot.exists() and shot.stat().st_size > 10_000, shot.stat().st_size if shot.exists() else None
    width, height, distinct = png_facts(shot)
    assert (width, height) == (1280, 900)
    assert distinct > 20, distinct  # text and colours, not a blank page
