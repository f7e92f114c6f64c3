"""Read a folder of zone files into a ZoneSet, validated whole."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path as FsPath

from gdns.zone.compile import Restart, compile_zone, streaming_compiler
from gdns.zone.errors import ZoneError, ZoneLoadError
from gdns.zone.memory import give_back
from gdns.zone.yamlsafe import Document, YAMLProblem, load
from gdns.zone.zoneset import Zone, ZoneSet

SUFFIXES = (".yaml", ".yml")

Fingerprint = tuple[tuple[str, int, int, int, int], ...]


def zone_files(folder: str | os.PathLike) -> list[FsPath]:
    """Visible *.yaml/*.yml files. Hidden entries are skipped, which also skips the
    `..data` folders a Kubernetes ConfigMap mount keeps beside its symlinks."""
    root = FsPath(folder)
    if not root.is_dir():
        problem = "is a file, not a folder of zone files" if root.exists() else "zones folder does not exist"
        raise ZoneLoadError([ZoneError(str(root), 0, 0, (), problem)])
    try:
        return sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
    except OSError as exc:  # unreadable, or gone since the look above
        raise ZoneLoadError([ZoneError(str(root), 0, 0, (), f"cannot list: {exc.strerror or exc}")]) from None


def fingerprint(folder: str | os.PathLike) -> Fingerprint | None:
    """What a change on disk changes: names, and (following symlinks) inode, size, mtime and
    ctime (a chmod or chown that makes a file unreadable changes only that). A name that
    cannot be followed (a dangling symlink) counts too: its load reports it."""
    try:
        files = zone_files(folder)
    except ZoneLoadError:
        return None
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            out.append((p.name, -1, -1, -1, -1))
            continue
        out.append((p.name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
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
    digest = hashlib.sha256(raw).hexdigest()
    del raw  # a large zone's bytes, besides its text
    box = [text]
    del text  # held by `box` alone, and let go of once parsed
    return _load_text(box, str(path), digest, geoip)


def load_text(
    text: str, file: str, digest: str = "", geoip: bool = False
) -> tuple[Zone | None, list[ZoneError], Document | None]:
    """One zone file's text -> its Zone, or every problem in it (and the parsed document).
    `digest`: the file's content hash, kept on the Zone."""
    return _load_text([text], file, digest, geoip)


def _load_text(box: list[str], file: str, digest: str, geoip: bool):
    """load_text, taking the text out of `box`: a large zone's text is not kept while it
    compiles (the document keeps it compressed, for positions and a second reading)."""
    packed = b""
    for streaming in (True, False):
        # Records are compiled as they are read (streaming_compiler), so a large zone's parsed
        # data is never whole in memory; read again without that in the rare case it cannot be.
        compiler = streaming_compiler(digest, geoip) if streaming else None
        text = box.pop() if box else zlib.decompress(packed).decode()
        try:
            doc = load(text, file, compiler.take if compiler else None)
        except YAMLProblem as exc:
            return None, [exc.error], None
        del text
        packed = doc.packed or b""
        if doc.data is None:
            return None, [ZoneError(file, 1, 1, (), "empty zone file")], doc
        give_back()  # the parser's copy of the text, its tables
        try:
            return *compile_zone(doc, digest, geoip, consume=True, compiler=compiler), doc
        except Restart:
            continue
    raise AssertionError("a zone read without streaming is never restarted")


_gc_lock = threading.Lock()
_gc_loads = 0  # loads running now
_gc_was_enabled = False
_gc_built = False  # one of them succeeded: freeze when the last one ends

# Young objects a collection walks in a few milliseconds (about 0.3 us each on the test machine).
FREEZE_COLLECT_LIMIT = 20_000


def collect_and_pause() -> None:
    """A load begins: collect the garbage there is now, then pause the collector.

    The collection is cheap (the zones in use are frozen, so it walks only what the process
    made since the last load) and it matters: garbage in reference cycles that is still
    waiting for a collection (a failed health probe's exception, traceback and request, for
    instance) would otherwise be frozen with the new zones at the end of the load, and a
    frozen object is never collected: every reload would keep some for good."""
    gc.collect()
    gc.disable()


def collect_and_freeze() -> None:
    """A load built new zones: freeze them, so no collection walks them again.

    Whatever else is alive now is frozen too, including garbage made while the load ran;
    when the load was small, a collection first finds that garbage for a few milliseconds.
    After a large load it would walk every new object (tens of milliseconds holding the GIL,
    a pause in answering), so that little garbage is left to the freeze."""
    if gc.get_count()[0] <= FREEZE_COLLECT_LIMIT:
        gc.collect()
    gc.freeze()


@contextlib.contextmanager
def _collector_paused() -> Iterator[list[bool]]:
    """Pause the cyclic garbage collector for a load; freeze what a successful one built.

    A large zone is a million or more objects, none of them in a reference cycle. Left to
    itself the collector would walk all of them, and the zones being replaced, over and over
    while they are built, and once more in each of the collections that promote them, each
    walk a single call holding the GIL for up to a second: answering stops meanwhile, on
    whichever thread triggered it. Paused, the load does no such walks; frozen afterwards
    (gc.freeze, a constant-time move to the permanent generation), the loaded zones are never
    walked again. They are freed as usual, by reference counting, once nothing uses them.
    The price: an object alive at the freeze that later becomes garbage in a reference cycle
    is never freed; collecting as the load begins (and before the freeze, when that is
    cheap) keeps that to objects in use at the moment of the freeze. The caller sets the
    yielded flag when the load succeeded."""
    global _gc_loads, _gc_was_enabled, _gc_built
    with _gc_lock:
        if _gc_loads == 0:
            _gc_was_enabled, _gc_built = gc.isenabled(), False
            collect_and_pause()
        _gc_loads += 1
    succeeded = [False]
    try:
        yield succeeded
    finally:
        with _gc_lock:
            _gc_loads -= 1
            _gc_built = _gc_built or succeeded[0]
            if _gc_loads == 0:
                if _gc_built:
                    collect_and_freeze()
                if _gc_was_enabled:
                    gc.enable()


def load_zones(paths: list[FsPath], geoip: bool = False) -> ZoneSet:
    """Compile every file; raise ZoneLoadError with every problem, or return the set."""
    with _collector_paused() as succeeded:
        zones = _load_zones(paths, geoip)
        succeeded[0] = True
    give_back()  # what compiling used, now free
    return zones


def _load_zones(paths: list[FsPath], geoip: bool = False) -> ZoneSet:
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
