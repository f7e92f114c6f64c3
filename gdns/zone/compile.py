"""Compile a zone document into an immutable Zone, checking what a zone compiler checks.

Every problem is collected (not just the first) with its position in the file.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from typing import Any

from dnslib import QTYPE, SOA, DNSBuffer, DNSLabel

from gdns.zone import rdata
from gdns.zone.checks import compile_checks
from gdns.zone.errors import Path, ZoneError, format_path
from gdns.zone.memory import give_back
from gdns.zone.model import Seconds, SOAModel, Strict, ZoneModel, unknown_key_message, validate
from gdns.zone.pool import Pool
from gdns.zone.poolcompile import compile_pool
from gdns.zone.yamlsafe import Document
from gdns.zone.zoneset import Name, Node, RRset, Zone, name_key

_A, _AAAA, _NS, _CNAME = QTYPE.A, QTYPE.AAAA, QTYPE.NS, QTYPE.CNAME
_GLUE_TYPES = {_A, _AAAA}


class RRsetForm(Strict):
    """`{ttl: 60, values: [...]}`: an rrset with its own TTL."""

    ttl: Seconds | None = None
    values: Any


class _Keys:
    """The key each name was written as under `records`: kept only where it is not the name's
    own relative spelling (`www` for www.<origin>), since a large zone would otherwise keep a
    table of every name and key while it is compiled. The names themselves are the nodes'."""

    def __init__(self, apex: Name):
        self.apex = apex
        self.written: dict[Name, str] = {}

    def add(self, name: Name, key: str) -> None:
        if name == self.apex or key != self.relative(name):
            self.written[name] = key

    def relative(self, name: Name) -> str:
        return ".".join(label.decode() for label in name[: len(name) - len(self.apex)])

    def path(self, name: Name) -> Path:
        """Where the name's records were written; for a name not under `records` (the apex,
        a pool) "records.@", as ever."""
        key = self.written.get(name)
        if key is None:
            key = "@" if name == self.apex else self.relative(name)
        return ("records", key)


class _Compiler:
    def __init__(self, doc: Document, digest: str, geoip: bool = False, consume: bool = False):
        self.doc = doc
        self.digest = digest
        self.geoip = geoip
        # Take each record and pool out of the document once compiled, so that a large zone's
        # source data and compiled form are not both in memory whole.
        self.consume = consume
        self.pool_paths: dict[Name, Path] = {}
        self.checks: dict = {}
        self.errors: list[ZoneError] = []
        # One object for equal values, so a large zone holds each record value once however
        # many names use it (records are never changed once built): by type and source text.
        self.cache: dict[str, dict[str, Any]] = {}

    def error(self, path: Path, message: str, key: bool = False) -> None:
        self.errors.append(self.doc.error(path, message, key))

    # -- names -------------------------------------------------------------

    def origin(self, text: str) -> DNSLabel | None:
        if text == ".":
            return DNSLabel(".")
        try:
            return rdata.absolute_name(text)
        except rdata.RdataError as exc:
            self.error(("origin",), str(exc))
            return None

    def owner(self, key: str, origin: list[str], section: str = "records", apex: Name = ()) -> Name | None:
        """A record key: relative to the origin, "@" for the apex, or absolute under it.
        `apex`: the origin's own name (the same tuple for every name, to share its labels)."""
        path: Path = (section, key)
        if not key.isascii():
            self.error(path, f"name {key!r} must be ASCII (use the xn-- form)", key=True)
            return None
        if key == "@":
            relative: list[str] = []
        elif key.endswith("."):
            labels = key[:-1].split(".") if key != "." else []
            cut = len(labels) - len(origin)
            if cut < 0 or [x.lower() for x in labels[cut:]] != [x.lower() for x in origin]:
                self.error(path, f"name {key!r} is outside the zone's origin", key=True)
                return None
            relative = labels[:cut]
        else:
            relative = key.split(".")
        # The origin's labels passed the same checks (and cannot be a wildcard) when it was read.
        suffix = sum(len(label) + 1 for label in origin)
        try:
            rdata.check_labels(relative, allow_wildcard=True, suffix_octets=suffix)
        except rdata.RdataError as exc:
            self.error(path, f"invalid owner name {key!r}: {exc}", key=True)
            return None
        if len(apex) != len(origin):
            apex = tuple(x.lower().encode() for x in origin)
        return tuple(x.lower().encode() for x in relative) + apex

    # -- rrsets -------------------------------------------------------------

    def rrset(self, value: Any, rtype: str, path: Path, default_ttl: int, owner: tuple[bytes, ...]):
        """`owner`: the owner's labels."""
        ttl, values, vpath = default_ttl, value, path
        if isinstance(value, dict) and ("values" in value or "ttl" in value):
            form, errors = validate(RRsetForm, value, self.doc, path)
            self.errors.extend(errors)
            if form is None:
                return None
            if form.values is None:
                self.error(path, "missing required key 'values'")
                return None
            ttl = default_ttl if form.ttl is None else form.ttl
            values, vpath = form.values, path + ("values",)
        items = values if isinstance(values, list) else [values]
        listed = isinstance(values, list)
        if not items:
            self.error(vpath, f"{rtype} needs at least one value")
            return None
        parser = rdata.PARSERS[rtype]
        parsed, seen, ok = [], set(), True
        single: tuple = ()
        for i, item in enumerate(items):
            ipath = vpath + (i,) if listed else vpath
            try:
                single = self.rdata(parser, rtype, item)
                rd = single[0]
            except rdata.RdataError as exc:
                self.error(ipath + exc.path, str(exc))
                ok = False
                continue
            if len(items) > 1:  # one value cannot repeat itself
                wire = _canonical(rtype, rd)
                if wire in seen:
                    self.error(ipath, f"duplicate {rtype} value {item!r}")
                    ok = False
                    continue
                seen.add(wire)
            parsed.append(rd)
        if not ok:
            return None
        rdatas = single if len(parsed) == 1 else tuple(parsed)
        return RRset(owner, rdata.QTYPES[rtype], ttl, rdatas)

    def rdata(self, parser, rtype: str, item: Any) -> tuple:
        """Parse one value, as a tuple of one rdata; an equal value written the same way gets
        the same tuple (the whole rdatas of the many rrsets that have just that value)."""
        if not isinstance(item, str):  # mappings (MX, SRV, CAA) are parsed every time
            return (parser(item),)
        cache = self.cache.get(rtype)
        if cache is None:
            cache = self.cache[rtype] = {}
        single = cache.get(item)
        if single is None:
            single = cache[item] = (parser(item),)
        return single

    # -- the whole zone ------------------------------------------------------

    def compile(self) -> Zone | None:
        doc = self.doc
        if not isinstance(doc.data, dict):
            self.error((), "a zone file must be a mapping with origin, soa, ns and records")
            return None
        model, errors = validate(ZoneModel, _outline(doc.data), doc)
        self.errors.extend(errors)
        origin_text = doc.data.get("origin")
        origin = self.origin(origin_text) if isinstance(origin_text, str) else None
        if origin is None:
            # Keep checking the rest against a stand-in origin, to report every problem at once;
            # the checks that need the real origin (structure, glue) are skipped.
            self.standin(doc.data, model)
            return None
        apex = name_key(origin)
        default_ttl = model.ttl if model else 300
        soa_model = self.soa_model(model)
        derived = None
        if soa_model is not None and soa_model.serial is None:  # before the records are taken out
            derived = _serial(doc.data)
        nodes: dict[Name, dict[int, RRset]] = {apex: {}}
        paths = _Keys(apex)  # the key each name was written as under `records`

        if "ns" in doc.data:
            ns = self.rrset(doc.data["ns"], "NS", ("ns",), default_ttl, origin.label)
            if ns:
                nodes[apex][_NS] = ns
        records = doc.data.get("records")
        if isinstance(records, dict):
            self.records(records, origin, default_ttl, nodes, paths)
        self.checks = compile_checks(self, doc.data.get("checks"))
        pools: dict[Name, Pool] = {}
        if isinstance(doc.data.get("pools"), dict):
            pools = self.pools(doc.data["pools"], origin, nodes)
        self.cache.clear()  # the values are shared by now; the table is not needed
        soa = self.soa(soa_model, origin, default_ttl, derived)
        cuts, ents = self.structure(nodes, paths, apex)
        if soa is None or self.errors:
            return None
        nodes[apex][QTYPE.SOA] = soa
        empty: dict[int, RRset] = {}  # one for all the names that have only a pool
        for name, rrsets in nodes.items():  # in place: no second table of every name
            nodes[name] = Node(name, rrsets or empty, pools.get(name))  # type: ignore[assignment]
        return Zone(
            origin=apex,
            origin_label=origin,
            file=doc.file,
            serial=soa.rdatas[0].times[0],
            digest=self.digest,
            soa=soa,
            negative_ttl=min(soa.ttl, soa.rdatas[0].times[4]),
            nodes=nodes,  # type: ignore[arg-type]
            empty_nonterminals=frozenset(ents),
            cuts=frozenset(cuts),
            pools=pools,
        )

    def standin(self, data: dict, model: ZoneModel | None) -> None:
        root = DNSLabel(".")
        default_ttl = model.ttl if model else 300
        if "ns" in data:
            self.rrset(data["ns"], "NS", ("ns",), default_ttl, root.label)
        if isinstance(data.get("records"), dict):
            self.records(data["records"], root, default_ttl, {(): {}}, _Keys(()))
        self.checks = compile_checks(self, data.get("checks"))
        if isinstance(data.get("pools"), dict):
            self.pools(data["pools"], root, {(): {}})
        self.soa(self.soa_model(model), root, default_ttl)

    def soa_model(self, model: ZoneModel | None) -> SOAModel | None:
        """The SOA, even when another part of the document failed validation."""
        if model is not None:
            return model.soa
        soa, _ = validate(SOAModel, self.doc.data.get("soa"), self.doc, ("soa",))
        return soa  # its errors, if any, were already reported with the whole document

    def soa(
        self, s: SOAModel | None, origin: DNSLabel, default_ttl: int, derived: int | None = None
    ) -> RRset | None:
        if s is None:
            return None
        names = []
        for key in ("mname", "rname"):
            try:
                names.append(rdata.absolute_name(getattr(s, key)))
            except rdata.RdataError as exc:
                self.error(("soa", key), str(exc))
        if len(names) != 2:
            return None
        serial = s.serial or derived or _serial(self.doc.data)
        times = (serial, s.refresh, s.retry, s.expire, s.minimum)
        ttl = default_ttl if s.ttl is None else s.ttl
        return RRset(origin.label, QTYPE.SOA, ttl, (SOA(names[0], names[1], times),))

    def records(self, records, origin, default_ttl, nodes, paths: _Keys) -> None:
        origin_labels = [x.decode() for x in origin.label]
        apex = name_key(origin)
        for key in _taken(records) if self.consume else records:
            types = records.pop(key) if self.consume else records[key]
            path: Path = ("records", key)
            name = self.owner(key, origin_labels, apex=apex)
            if name is None:
                continue
            if name in paths.written or (name in nodes and name != apex):
                self.error(path, f"same name as {format_path(paths.path(name))}; merge them", key=True)
                continue
            if not isinstance(types, dict):
                paths.written[name] = key
                self.error(path, f"expected a mapping of record types, got {rdata.describe(types)}")
                continue
            if not types:
                paths.written[name] = key
                self.error(path, "no records at this name (a name without data answers NODATA)")
                continue
            paths.add(name, key)
            rrsets = nodes.setdefault(name, {})
            for rtype, value in types.items():
                tpath = path + (rtype,)
                if rtype not in rdata.PARSERS:
                    self.error(tpath, _unknown_type(rtype), key=True)
                    continue
                if rtype == "NS" and name == apex:
                    self.error(tpath, "the apex NS set is the top-level 'ns' key", key=True)
                    continue
                rrset = self.rrset(value, rtype, tpath, default_ttl, name)
                if rrset:
                    rrsets[rrset.rtype] = rrset
        if self.consume:
            records.clear()  # an emptied dict keeps its table until cleared
            give_back()

    def pools(self, pools: dict, origin: DNSLabel, nodes) -> dict[Name, Pool]:
        origin_labels = [x.decode() for x in origin.label]
        apex = name_key(origin)
        out: dict[Name, Pool] = {}
        for key in _taken(pools) if self.consume else pools:
            data = pools.pop(key) if self.consume else pools[key]
            name = self.owner(key, origin_labels, "pools", apex)
            if name is None:
                continue
            if name in self.pool_paths:
                self.error(("pools", key), f"same name as {format_path(self.pool_paths[name])}", key=True)
                continue
            # Checked whether or not the pool itself is valid, to report every problem at once.
            self.pool_paths[name] = ("pools", key)
            clash = sorted(QTYPE.get(t) for t in nodes.get(name, {}) if t in (_A, _AAAA, _CNAME))
            if clash:
                self.error(
                    ("pools", key),
                    f"a pool answers A and AAAA itself: remove the static {', '.join(clash)} "
                    f"at this name from 'records'",
                    key=True,
                )
            owner = DNSLabel(name)
            pool = compile_pool(self, key, data, owner, self.geoip, self.checks)
            if pool is None or clash:
                continue
            nodes.setdefault(name, {})
            out[name] = pool
        if self.consume:
            pools.clear()
        return out

    def structure(self, nodes: dict[Name, dict[int, RRset]], paths: _Keys, apex: Name):
        """CNAME exclusivity, delegation cuts and glue, empty non-terminals."""
        n = len(apex)
        cuts = {name for name, rrsets in nodes.items() if _NS in rrsets and name != apex}
        for name in self.pool_paths:
            below = next((name[i:] for i in range(0, len(name) - n) if name[i:] in cuts), None)
            if below is not None:
                self.error(
                    self.pool_paths[name],
                    f"a pool cannot be at or under delegation {_text(below)}",
                    key=True,
                )
        for name, rrsets in nodes.items():
            path: Path = paths.path(name)
            if _CNAME in rrsets:
                if name == apex:
                    self.error(path + ("CNAME",), "a CNAME cannot be at the zone apex", key=True)
                elif len(rrsets) > 1:
                    others = sorted(QTYPE.get(t) for t in rrsets if t != _CNAME)
                    self.error(
                        path + ("CNAME",),
                        f"a CNAME cannot stand beside other data ({', '.join(others)})",
                        key=True,
                    )
                elif len(rrsets[_CNAME].rdatas) > 1:
                    self.error(path + ("CNAME",), "a name has at most one CNAME")
            if name in cuts:
                if name[0] == b"*":
                    self.error(path + ("NS",), "a wildcard name cannot be a delegation", key=True)
                for t in rrsets:
                    if t not in _GLUE_TYPES | {_NS}:
                        self.error(
                            path + (QTYPE.get(t),),
                            f"only NS and glue (A/AAAA) may stand at delegation point {_text(name)}",
                            key=True,
                        )
            above = next((name[i:] for i in range(1, len(name) - n) if name[i:] in cuts), None)
            if above is not None:
                for t in rrsets:
                    if t not in _GLUE_TYPES:
                        self.error(
                            path + (QTYPE.get(t),),
                            f"{QTYPE.get(t)} records under delegation {_text(above)} are not served; "
                            "only glue (A/AAAA) may be",
                            key=True,
                        )
        for name, rrsets in nodes.items():
            ns = rrsets.get(_NS)
            if ns is None:
                continue
            for rd in ns.rdatas:
                target = name_key(rd.label)
                if _under(target, apex) and not (nodes.get(target, {}).keys() & _GLUE_TYPES):
                    where = ("ns",) if name == apex else paths.path(name) + ("NS",)
                    self.error(
                        where, f"name server {rd.label} is inside the zone but has no A or AAAA record"
                    )
        ents = set()
        for name in nodes:
            for i in range(1, len(name) - n):
                if name[i:] not in nodes:
                    ents.add(name[i:])
        return cuts, ents


_SECTIONS = ("records", "pools", "checks")  # mappings whose entries are checked as they compile


def _outline(data: dict) -> dict:
    """The document with its large sections emptied, for the whole-document model: it only
    checks that each is a mapping (with text keys, as YAML keys always are here), and on a
    large zone copying them would be one long call holding the GIL, and 5 MB more."""
    return {k: ({} if k in _SECTIONS and isinstance(v, dict) else v) for k, v in data.items()}


def _taken(table: dict):
    """The keys of a mapping the caller empties as it goes, in order, each held no longer than
    its turn (a list of the keys would keep every one until the end)."""
    keys: list = list(table)
    for i, key in enumerate(keys):
        keys[i] = None
        yield key


def compile_zone(
    doc: Document, digest: str, geoip: bool = False, consume: bool = False
) -> tuple[Zone | None, list[ZoneError]]:
    """`geoip`: a GeoIP database is configured, so geo rules may use countries and nearest.
    `consume`: take the records and pools out of `doc.data` as they are compiled (a loader
    that has no further use for them keeps a large zone's memory down)."""
    compiler = _Compiler(doc, digest, geoip, consume)
    doc.deferred = True  # every error's position found in one pass at the end, not one each
    try:
        zone = compiler.compile()
    finally:
        doc.deferred = False
    return zone, doc.resolve(compiler.errors)


def _serial(data: Any) -> int:
    """A serial that changes whenever the content does, and is the same on every instance."""
    digest = hashlib.blake2b(digest_size=4)
    for piece in _canonical_json(data, 2):
        digest.update(piece.encode())
    return int.from_bytes(digest.digest(), "big") or 1


# json.dumps(value, sort_keys=True, separators=(",", ":"), default=str), without a new
# encoder for every call
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_BATCH = 500


def _canonical_json(value: Any, depth: int):
    """`_dumps(value)` in pieces: the mappings of the top `depth` levels (the document, then
    its records and pools) a batch of entries at a time, so that a large zone is not one long
    call holding the GIL."""
    if depth <= 0 or not isinstance(value, dict) or not value or not all(type(k) is str for k in value):
        yield _dumps(value)
        return
    keys = _sorted(value)
    yield "{"
    if depth == 1:
        for i in range(0, len(keys), _BATCH):
            batch = _dumps({k: value[k] for k in keys[i : i + _BATCH]})
            yield ("," if i else "") + batch[1:-1]
    else:
        for i, key in enumerate(keys):
            yield ("," if i else "") + _dumps(key) + ":"
            yield from _canonical_json(value[key], depth - 1)
    yield "}"


def _sorted(keys) -> list:
    """sorted(keys), for many keys a run at a time and merged in Python: one sort of 100k
    names is a call that holds the GIL for some 30 ms."""
    keys = list(keys)
    if len(keys) <= _RUN:
        return sorted(keys)
    runs = [sorted(keys[i : i + _RUN]) for i in range(0, len(keys), _RUN)]
    return list(heapq.merge(*runs))


_RUN = 4096


def _canonical(rtype: str, rd) -> bytes:
    """Wire form for duplicate checks: only a target name is case-insensitive (RFC 4034 6.2);
    addresses, numbers and text are compared byte for byte."""
    buf = DNSBuffer()
    rd.pack(buf)
    wire = bytes(buf.data)
    target = rdata.target_of(rtype, rd)
    if target is None:
        return wire
    name = DNSBuffer()
    name.encode_name_nocompress(target)
    cut = len(wire) - len(name.data)  # the target is the last field of every type that has one
    return wire[:cut] + wire[cut:].lower()


def _under(name: Name, apex: Name) -> bool:
    return len(name) >= len(apex) and name[len(name) - len(apex) :] == apex


def _text(name: Name) -> str:
    return ".".join(p.decode() for p in name) + "."


def _unknown_type(rtype: str) -> str:
    known = list(rdata.PARSERS)
    if rtype.upper() in known:
        return f"record type {rtype!r} must be written in capitals: {rtype.upper()!r}"
    if rtype == "SOA":
        return "the SOA is the top-level 'soa' key"
    if rtype.lower() == "ttl":
        return "a TTL belongs to one rrset, e.g. A: {ttl: 60, values: [192.0.2.1]}"
    return unknown_key_message(rtype, known).replace("unknown key", "unsupported record type")
