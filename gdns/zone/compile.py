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
from gdns.zone.duration import ttl_seconds
from gdns.zone.errors import Path, ZoneError, format_path
from gdns.zone.memory import give_back
from gdns.zone.model import (
    Seconds,
    SOAModel,
    Strict,
    ZoneModel,
    unknown_key_message,
    validate,
)
from gdns.zone.pool import Pool
from gdns.zone.poolcompile import compile_pool
from gdns.zone.yamlsafe import Document, StepAside
from gdns.zone.zoneset import (
    Building,
    Name,
    Node,
    RRset,
    Zone,
    name_key,
    pack_rrsets,
    packed_types,
    unpack_rrsets,
)

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
        # Values written the same way are parsed once (a common MX target, say): by type and
        # source text, up to CACHED of each type, so a large zone's table stays small.
        self.cache: dict[str, dict[str, Any]] = {}
        # Records compiled as the parser reads them (see take): the origin's labels, its name,
        # the default TTL, the origin; False once that was found not to be possible.
        self.stream: tuple | bool | None = None
        self.ttl_assumed = False  # the stream began before any `ttl:` key: 300 assumed
        self.nodes = Building()
        self.paths = _Keys(())
        self.records_hash = 0  # of the records compiled as read (see _serial)
        self.pools_hash = 0  # of the pools compiled as read
        self.pool_table: dict[Name, Pool] = {}
        self.pools_streamed = False  # pools compiled as read, with the checks that came before them
        self.checks_before = False  # of which there were some (a `checks:` key before `pools:`)

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
            single = (parser(item),)
            if len(cache) < CACHED:
                cache[item] = single
        return single

    # -- records as the parser reads them --------------------------------------

    def take(self, doc: Document, root: dict, section: str, key: str, value: Any) -> bool:
        """Compile one entry of `records` or `pools` as soon as the parser has read it (the
        loader's sink): a large zone is then never whole in memory as parsed data. Only once
        the origin is known (and valid) by then; else the entries stay in the document,
        compiled as usual. Pools are compiled with the checks read before them; records after
        streamed pools (whose clash checks did not see them), or a name seen twice, step the
        parser aside (StepAside): the document is read again the ordinary way."""
        if self.stream is None:
            self.doc = doc
            self.stream = self._start(root)
        if not self.stream:
            return False
        labels, apex, ttl, _ = self.stream
        if section == "records":
            if self.pools_streamed:
                raise StepAside
            self.records_hash ^= _entry_hash(key, value)
            self.record(key, value, labels, apex, ttl, self.nodes, self.paths, streaming=True)
            return True
        if not self.pools_streamed:
            self.pools_streamed, self.checks_before = True, "checks" in root
            self.checks = compile_checks(self, root.get("checks"))
        self.pools_hash ^= _entry_hash(key, value)
        self.pool(key, value, labels, apex, self.nodes, streaming=True)
        return True

    def _start(self, root: dict) -> tuple | bool:
        text, ttl = root.get("origin"), root.get("ttl")
        if not isinstance(text, str):
            return False
        try:
            origin = DNSLabel(".") if text == "." else rdata.absolute_name(text)
            ttl = 300 if ttl is None else ttl_seconds(ttl)
        except (rdata.RdataError, ValueError):
            return False
        if type(ttl) is not int or not 0 <= ttl <= 2**31 - 1:
            return False
        self.ttl_assumed = "ttl" not in root
        apex = name_key(origin)
        self.nodes, self.paths = Building(), _Keys(apex)
        self.nodes[apex] = {}
        return [x.decode() for x in origin.label], apex, ttl, origin

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
        if self.stream and self.ttl_assumed and "ttl" in doc.data:
            raise Restart  # `ttl:` came after records compiled with the default
        if self.pools_streamed and "checks" in doc.data and not self.checks_before:
            raise Restart  # `checks:` came after pools compiled without them
        soa_model = self.soa_model(model)
        derived = None
        if soa_model is not None and soa_model.serial is None:  # before the records are taken out
            derived = _serial(doc.data, self.records_hash, self.pools_hash)
        # Each name's rrsets: a dict while they may change (the apex, a pool's name), else packed
        # (pack_rrsets) as soon as the name is compiled, so that a large zone is never whole in
        # memory as objects. Records compiled as they were read are in already.
        if not self.stream:
            self.nodes, self.paths = Building(), _Keys(apex)
            self.nodes[apex] = {}
        nodes, paths = self.nodes, self.paths  # paths: the key each name was written as

        if "ns" in doc.data:
            ns = self.rrset(doc.data["ns"], "NS", ("ns",), default_ttl, origin.label)
            if ns:
                nodes[apex][_NS] = ns
        records = doc.data.get("records")
        if isinstance(records, dict):
            self.records(records, origin, default_ttl, nodes, paths)
        if not self.pools_streamed:
            self.checks = compile_checks(self, doc.data.get("checks"))
        pools: dict[Name, Pool] = self.pool_table
        if isinstance(doc.data.get("pools"), dict):
            pools = self.pools(doc.data["pools"], origin, nodes)
        self.cache.clear()
        soa = self.soa(soa_model, origin, default_ttl, derived)
        cuts, ents = self.structure(nodes, paths, apex)
        if soa is None or self.errors:
            return None
        nodes[apex][QTYPE.SOA] = soa
        empty: dict[int, RRset] = {}  # one for all the names that have only a pool
        objects = {
            name: Node(name, rrsets or empty, pools.get(name)) for name, rrsets in nodes.objects.items()
        }
        return Zone(
            origin=apex,
            origin_label=origin,
            file=doc.file,
            serial=soa.rdatas[0].times[0],
            digest=self.digest,
            soa=soa,
            negative_ttl=min(soa.ttl, soa.rdatas[0].times[4]),
            nodes=nodes.done(objects),
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
        serial = s.serial or derived or _serial(self.doc.data, self.records_hash, self.pools_hash)
        times = (serial, s.refresh, s.retry, s.expire, s.minimum)
        ttl = default_ttl if s.ttl is None else s.ttl
        return RRset(origin.label, QTYPE.SOA, ttl, (SOA(names[0], names[1], times),))

    def records(self, records, origin, default_ttl, nodes, paths: _Keys) -> None:
        origin_labels = [x.decode() for x in origin.label]
        apex = name_key(origin)
        for key in _taken(records) if self.consume else records:
            types = records.pop(key) if self.consume else records[key]
            self.record(key, types, origin_labels, apex, default_ttl, nodes, paths)
        if self.consume:
            records.clear()  # an emptied dict keeps its table until cleared
            give_back()

    def record(self, key, types, origin_labels, apex, default_ttl, nodes, paths: _Keys, streaming=False):
        """One entry of `records`: its name's rrsets into `nodes`."""
        path: Path = ("records", key)
        name = self.owner(key, origin_labels, apex=apex)
        if name is None:
            return
        if name in paths.written or (name in nodes and name != apex):
            if streaming:
                raise StepAside  # the same key twice, or one name written two ways
            self.error(path, f"same name as {format_path(paths.path(name))}; merge them", key=True)
            return
        if not isinstance(types, dict):
            paths.written[name] = key
            self.error(path, f"expected a mapping of record types, got {rdata.describe(types)}")
            return
        if not types:
            paths.written[name] = key
            self.error(path, "no records at this name (a name without data answers NODATA)")
            return
        paths.add(name, key)
        rrsets = nodes[apex] if name == apex else {}
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
        if name != apex:
            nodes[name] = pack_rrsets(rrsets)

    def pools(self, pools: dict, origin: DNSLabel, nodes) -> dict[Name, Pool]:
        origin_labels = [x.decode() for x in origin.label]
        apex = name_key(origin)
        for key in _taken(pools) if self.consume else pools:
            data = pools.pop(key) if self.consume else pools[key]
            self.pool(key, data, origin_labels, apex, nodes)
        if self.consume:
            pools.clear()
        return self.pool_table

    def pool(self, key, data, origin_labels, apex, nodes, streaming=False) -> None:
        """One entry of `pools`, into self.pool_table."""
        name = self.owner(key, origin_labels, "pools", apex)
        if name is None:
            return
        if name in self.pool_paths:
            if streaming:
                raise StepAside  # the same key twice, or one name written two ways
            self.error(("pools", key), f"same name as {format_path(self.pool_paths[name])}", key=True)
            return
        # Checked whether or not the pool itself is valid, to report every problem at once.
        self.pool_paths[name] = ("pools", key)
        clash = sorted(QTYPE.get(t) for t in _types(nodes.get(name)) if t in (_A, _AAAA, _CNAME))
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
            return
        nodes.setdefault(name, {})
        self.pool_table[name] = pool

    def structure(self, nodes: Building, paths: _Keys, apex: Name):
        """CNAME exclusivity, delegation cuts and glue, empty non-terminals. `nodes`: each
        name's rrsets, a dict or packed."""
        n = len(apex)
        cuts = {name for name, value in nodes.items() if name != apex and _NS in _types(value)}
        for name in self.pool_paths:
            below = next((name[i:] for i in range(0, len(name) - n) if name[i:] in cuts), None)
            if below is not None:
                self.error(
                    self.pool_paths[name],
                    f"a pool cannot be at or under delegation {_text(below)}",
                    key=True,
                )
        for name, value in nodes.items():
            rrsets = _types(value)  # type: number of values
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
                elif rrsets[_CNAME] > 1:
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
        for name in cuts | {apex}:
            value = nodes[name]
            ns = (value if type(value) is dict else unpack_rrsets(name, value)).get(_NS)
            if ns is None:
                continue
            for rd in ns.rdatas:
                target = name_key(rd.label)
                if _under(target, apex) and not (_types(nodes.get(target)).keys() & _GLUE_TYPES):
                    where = ("ns",) if name == apex else paths.path(name) + ("NS",)
                    if target in self.pool_paths:
                        # A pool has no static A/AAAA; its answers change with health and client,
                        # while a name server's addresses go out as glue with the NS set and are
                        # cached with it: they must be static.
                        self.error(
                            where,
                            f"name server {rd.label} is a pool ({format_path(self.pool_paths[target])}); "
                            "a name server's addresses must be static A/AAAA records, not a pool",
                        )
                        continue
                    self.error(
                        where, f"name server {rd.label} is inside the zone but has no A or AAAA record"
                    )
        ents = set()
        for name in nodes:
            for i in range(1, len(name) - n):
                if name[i:] not in nodes:
                    ents.add(name[i:])
        return cuts, ents


CACHED = 4096  # parsed values kept per record type while a zone compiles


def _types(value: Any) -> dict[int, int]:
    """A name's record types and how many values each has; `value` as in `nodes`."""
    if value is None:
        return {}
    if type(value) is dict:
        return {rtype: len(rrset.rdatas) for rtype, rrset in value.items()}
    return {rtype: count for rtype, _, count in packed_types(value)}


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


def streaming_compiler(digest: str, geoip: bool = False) -> _Compiler:
    """A compiler whose `take` is given to yamlsafe.load as its sink, then to compile_zone
    with the document: records compiled as they are read, the document taken apart."""
    return _Compiler(None, digest, geoip, consume=True)  # type: ignore[arg-type]


def compile_zone(
    doc: Document,
    digest: str,
    geoip: bool = False,
    consume: bool = False,
    compiler: _Compiler | None = None,
) -> tuple[Zone | None, list[ZoneError]]:
    """`geoip`: a GeoIP database is configured, so geo rules may use countries and nearest.
    `consume`: take the records and pools out of `doc.data` as they are compiled (a loader
    that has no further use for them keeps a large zone's memory down). `compiler`: the
    streaming_compiler() whose sink read `doc`, if any (one whose sink the parser did not use
    for this very document, as when the parser stepped aside, is not). Raises Restart when
    the file must be read again without a sink."""
    if compiler is None or compiler.doc is not doc:
        compiler = _Compiler(doc, digest, geoip, consume)
    doc.deferred = True  # every error's position found in one pass at the end, not one each
    try:
        zone = compiler.compile()
    finally:
        doc.deferred = False
    return zone, doc.resolve(compiler.errors)


def _serial(data: Any, records: int = 0, pools: int = 0) -> int:
    """A serial that changes whenever the content does, and is the same on every instance: a
    hash of the data, not of the text (comments, spacing and key order do not count). The
    entries of `records` and `pools` are hashed one by one and combined in an order-free way
    (their keys are unique), so entries compiled as they were read count by their hashes,
    `records` and `pools` (see _Compiler.take), and no single call hashes a large zone whole."""
    outline: dict[str, Any] = {}
    for key, value in data.items() if isinstance(data, dict) else ():
        if key in _SECTIONS[:2] and isinstance(value, dict):
            combined = records if key == "records" else pools
            for k, v in value.items():
                combined ^= _entry_hash(k, v)
            value = f"entries {combined:032x}"
        outline[key] = value
    if not isinstance(data, dict):
        outline = data
    digest = hashlib.blake2b(_dumps(outline).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") or 1


def _entry_hash(key: str, value: Any) -> int:
    return int.from_bytes(hashlib.blake2b(_dumps([key, value]).encode(), digest_size=16).digest(), "big")


# json.dumps(value, sort_keys=True, separators=(",", ":"), default=str), without a new
# encoder for every call
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


class Restart(Exception):
    """Records were compiled as they were read with the default TTL, and a `ttl:` key came
    after them: the file is read again the ordinary way."""


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
