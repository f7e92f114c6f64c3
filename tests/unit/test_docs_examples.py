"""The examples are executed: every complete zone in the docs, and every shipped zone, passes
validation. Complete zones are fenced as ```yaml zone; fragments use plain ```yaml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gdns.zone.errors import ZoneLoadError
from gdns.zone.loader import load_zones

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
ZONE_FENCE = "yaml zone"
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def fenced_blocks(path: Path) -> list[tuple[int, str, str]]:
    """(line of the opening fence, info string, body) for every fenced code block."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info, start = match.group(1), match.group(2).strip(), i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close.group(1).startswith(fence) and not close.group(2).strip():
                break
            body.append(lines[i])
            i += 1
        blocks.append((start + 1, info, "\n".join(body) + "\n"))
        i += 1
    return blocks


def zone_examples() -> list[pytest.param]:
    return [
        pytest.param(path, line, body, id=f"{path.relative_to(ROOT)}:{line}")
        for path in DOCS
        if path.exists()
        for line, info, body in fenced_blocks(path)
        if info == ZONE_FENCE
    ]


@pytest.mark.parametrize(("doc", "line", "body"), zone_examples())
def test_zone_example_in_docs_is_valid(tmp_path: Path, doc: Path, line: int, body: str, monkeypatch) -> None:
    # A `ca` file is a file on the server (/etc/gdns/internal-ca.pem), not part of the example.
    monkeypatch.setattr("gdns.zone.checks.ca_problem", lambda path: None)
    zone_file = tmp_path / "example.yaml"
    zone_file.write_text(body, encoding="utf-8")
    try:
        # Validated as if the server had a GeoIP database (--geoip-db): geo rules by country,
        # continent or `nearest` are valid examples, which a server without one rejects.
        zones = load_zones([zone_file], geoip=True)
    except ZoneLoadError as exc:
        problems = str(exc).replace(str(zone_file), f"{doc.relative_to(ROOT)}:{line} (block)")
        pytest.fail(f"zone example at {doc.relative_to(ROOT)}:{line} is invalid:\n{problems}")
    assert len(zones) == 1


@pytest.mark.parametrize("name", ["zone-reference.md", "tutorial.md", "strategies.md"])
def test_docs_contain_zone_examples(name: str) -> None:
    blocks = fenced_blocks(ROOT / "docs" / name)
    assert any(info == ZONE_FENCE for _, info, _ in blocks), f"docs/{name} has no ```{ZONE_FENCE} block"


def test_fence_parser_sees_only_whole_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n```yaml zone\na: 1\n```\n````md\n```yaml zone\nb: 2\n```\n````\n```yaml\nc: 3\n```\n"
    )
    assert fenced_blocks(doc) == [
        (2, "yaml zone", "a: 1\n"),
        (5, "md", "```yaml zone\nb: 2\n```\n"),
        (10, "yaml", "c: 3\n"),
    ]


def test_shipped_zones_pass_gdns_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gdns", "check", "zones"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ": ok: " in result.stdout
