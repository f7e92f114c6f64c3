"""Compile a zone document into an immutable Zone, checking what a zone compiler checks.

Every problem is collected (not just the first) with its position in the file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dnslib import QTYPE, SOA, DNSBuffer, DNSLabel

from gdns.zone import rdata
from gdns.zone.checks import compile_checks
from gdns.zone.errors import Path, ZoneError, format_path
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


class _Compiler:
    def __init__(self, doc: Document, digest: str, geoip: bool = False):
        self.doc = doc
        self.digest = digest
        self.geoip = geoip
        self.pool_paths: dict[Name, Path] = {}
        self.checks: dict = {}
        self.errors: list[ZoneError] = []

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

    def owner(self, key: str, origin: list[str], section: str = "records") -> Name | None:
        """A record key: relative to the origin, "@" for the apex, or absolute under it."""
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
        try:
            rdata.check_labels(relative + origin, allow_wildcard=True)
        except rdata.RdataError as exc:
            self.error(path, f"invalid owner name {key!r}: {exc}", key=True)
            return None
        return tuple(x.lower().encode() for x in relative + origin)

    # -- rrsets -------------------------------------------------------------

    def rrset(self, value: Any, rtype: str, path: Path, default_ttl: int, owner: DNSLabel):
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
        for i, item in enumerate(items):
            ipath = vpath + (i,) if listed else vpath
            try:
                rd = parser(item)
            except rdata.RdataError as exc:
                self.error(ipath + exc.path, str(exc))
                ok = False
                continue
            wire = _canonical(rtype, rd)
            if wire in seen:
                self.error(ipath, f"duplicate {rtype} value {item!r}")
                ok = False
                continue
            seen.add(wire)
            parsed.append(rd)
        if not ok:
            return None
        return RRset(owner, getattr(QTYPE, rtype), ttl, tuple(parsed))

    # -- the whole zone ------------------------------------------------------

    def compile(self) -> Zone | None:
        doc = self.doc
        if not isinstance(doc.data, dict):
            self.error((), "a zone file must be a mapping with origin, soa, ns and records")
            return None
        model, errors = validate(ZoneModel, doc.data, doc)
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
        nodes: dict[Name, dict[int, RRset]] = {apex: {}}
        paths: dict[Name, Path] = {}

        if "ns" in doc.data:
            ns = self.rrset(doc.data["ns"], "NS", ("ns",), default_ttl, origin)
            if ns:
                nodes[apex][_NS] = ns
        records = doc.data.get("records")
        if isinstance(records, dict):
            self.records(records, origin, default_ttl, nodes, paths)
        self.checks = compile_checks(self, doc.data.get("checks"))
        pools: dict[Name, Pool] = {}
        if isinstance(doc.data.get("pools"), dict):
            pools = self.pools(doc.data["pools"], origin, nodes)
        soa = self.soa(self.soa_model(model), origin, default_ttl)
        cuts, ents = self.structure(nodes, paths, apex)
        if soa is None or self.errors:
            return None
        nodes[apex][QTYPE.SOA] = soa
        return Zone(
            origin=apex,
            origin_label=origin,
            file=doc.file,
            serial=soa.rdatas[0].times[0],
            digest=self.digest,
            soa=soa,
            negative_ttl=min(soa.ttl, soa.rdatas[0].times[4]),
            nodes={name: Node(name, rrsets, pools.get(name)) for name, rrsets in nodes.items()},
            empty_nonterminals=frozenset(ents),
            cuts=frozenset(cuts),
            pools=pools,
        )

    def standin(self, data: dict, model: ZoneModel | None) -> None:
        root = DNSLabel(".")
        default_ttl = model.ttl if model else 300
        if "ns" in data:
            self.rrset(data["ns"], "NS", ("ns",), default_ttl, root)
        if isinstance(data.get("records"), dict):
            self.records(data["records"], root, default_ttl, {(): {}}, {})
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

    def soa(self, s: SOAModel | None, origin: DNSLabel, default_ttl: int) -> RRset | None:
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
        serial = s.serial or _serial(self.doc.data)
        times = (serial, s.refresh, s.retry, s.expire, s.minimum)
        ttl = default_ttl if s.ttl is None else s.ttl
        return RRset(origin, QTYPE.SOA, ttl, (SOA(names[0], names[1], times),))

    def records(self, records, origin, default_ttl, nodes, paths) -> None:
        origin_labels = [x.decode() for x in origin.label]
        for key, types in records.items():
            path: Path = ("records", key)
            name = self.owner(key, origin_labels)
            if name is None:
                continue
            if name in paths:
                self.error(path, f"same name as {format_path(paths[name])}; merge them", key=True)
                continue
            paths[name] = path
            if not isinstance(types, dict):
                self.error(path, f"expected a mapping of record types, got {rdata.describe(types)}")
                continue
            if not types:
                self.error(path, "no records at this name (a name without data answers NODATA)")
                continue
            owner = DNSLabel(list(name)) if name else DNSLabel(".")
            rrsets = nodes.setdefault(name, {})
            for rtype, value in types.items():
                tpath = path + (rtype,)
                if rtype not in rdata.PARSERS:
                    self.error(tpath, _unknown_type(rtype), key=True)
                    continue
                if rtype == "NS" and name == name_key(origin):
                    self.error(tpath, "the apex NS set is the top-level 'ns' key", key=True)
                    continue
                rrset = self.rrset(value, rtype, tpath, default_ttl, owner)
                if rrset:
                    rrsets[rrset.rtype] = rrset

    def pools(self, pools: dict, origin: DNSLabel, nodes) -> dict[Name, Pool]:
        origin_labels = [x.decode() for x in origin.label]
        out: dict[Name, Pool] = {}
        for key, data in pools.items():
            name = self.owner(key, origin_labels, "pools")
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
            owner = DNSLabel(list(name)) if name else DNSLabel(".")
            pool = compile_pool(self, key, data, owner, self.geoip, self.checks)
            if pool is None or clash:
                continue
            nodes.setdefault(name, {})
            out[name] = pool
        return out

    def structure(self, nodes: dict[Name, dict[int, RRset]], paths, apex: Name):
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
            path = paths.get(name, ("records", "@"))
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
                    where = ("ns",) if name == apex else paths.get(name, ()) + ("NS",)
                    self.error(
                        where, f"name server {rd.label} is inside the zone but has no A or AAAA record"
                    )
        ents = set()
        for name in nodes:
            for i in range(1, len(name) - n):
                if name[i:] not in nodes:
                    ents.add(name[i:])
        return cuts, ents


def compile_zone(doc: Document, digest: str, geoip: bool = False) -> tuple[Zone | None, list[ZoneError]]:
    """`geoip`: a GeoIP database is configured, so geo rules may use countries and nearest."""
    compiler = _Compiler(doc, digest, geoip)
    zone = compiler.compile()
    return zone, compiler.errors


def _serial(data: Any) -> int:
    """A serial that changes whenever the content does, and is the same on every instance."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    value = int.from_bytes(hashlib.blake2b(canonical.encode(), digest_size=4).digest(), "big")
    return value or 1


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
