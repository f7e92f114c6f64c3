"""Read a folder of zone files into a ZoneSet, validated whole."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path as FsPath

from gdns.zone.compile import compile_zone
from gdns.zone.errors import ZoneError, ZoneLoadError
from gdns.zone.yamlsafe import Document, YAMLProblem, load
from gdns.zone.zoneset import Zone, ZoneSet

SUFFIXES = (".yaml", ".yml")

Fingerprint = tuple[tuple[str, int, int, int], ...]


def zone_files(folder: str | os.PathLike) -> list[FsPath]:
    """Visible *.yaml/*.yml files. Hidden entries are skipped, which also skips the
    `..data` folders a Kubernetes ConfigMap mount keeps beside its symlinks."""
    root = FsPath(folder)
    if not root.is_dir():
        problem = "is a file, not a folder of zone files" if root.exists() else "zones folder does not exist"
        raise ZoneLoadError([ZoneError(str(root), 0, 0, (), problem)])
    return sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))


def fingerprint(folder: str | os.PathLike) -> Fingerprint | None:
    """What a change on disk changes: names, and (following symlinks) inode, size, mtime."""
    try:
        files = zone_files(folder)
    except ZoneLoadError:
        return None
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_file(path: FsPath, geoip: bool = False) -> tuple[Zone | None, list[ZoneError]]:
    zone, errors, _ = _load(path, geoip)
    return zone, errors


def _load(path: FsPath, geoip: bool = False) -> tuple[Zone | None, list[ZoneError], Document | None]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [ZoneError(str(path), 0, 0, (), f"cannot read: {exc.strerror or exc}")], None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
        return None, [ZoneError(str(path), 0, 0, (), message)], None
    try:
        doc = load(text, str(path))
    except YAMLProblem as exc:
        return None, [exc.error], None
    if doc.data is None:
        return None, [ZoneError(str(path), 1, 1, (), "empty zone file")], doc
    return *compile_zone(doc, hashlib.sha256(raw).hexdigest(), geoip), doc


def load_zones(paths: list[FsPath], geoip: bool = False) -> ZoneSet:
    """Compile every file; raise ZoneLoadError with every problem, or return the set."""
    errors: list[ZoneError] = []
    zones: dict[tuple, Zone] = {}
    seen: set[FsPath] = set()
    for path in paths:
        if path.resolve() in seen:  # named twice, e.g. `gdns check zones zones/a.yaml`
            continue
        seen.add(path.resolve())
        zone, problems, doc = _load(path, geoip)
        errors.extend(problems)
        if zone is None or doc is None:
            continue
        other = zones.get(zone.origin)
        if other is not None:
            errors.append(doc.error(("origin",), f"zone {zone.origin_label} is also defined in {other.file}"))
            continue
        zones[zone.origin] = zone
    if errors:
        raise ZoneLoadError(errors)
    return ZoneSet.of(list(zones.values()))


def load_folder(folder: str | os.PathLike, geoip: bool = False) -> ZoneSet:
    files = zone_files(folder)
    if not files:
        raise ZoneLoadError([ZoneError(str(folder), 0, 0, (), "no zone files (*.yaml, *.yml)")])
    return load_zones(files, geoip)
