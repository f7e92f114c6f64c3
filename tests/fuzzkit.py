"""Shared by the property tests (tests/property/) and the atheris harnesses (tests/fuzz/): the
server under test (a Handler over zones that reach every answer rule and strategy), a corpus
of valid queries, DNS-aware mutations of them, and the oracle every reply is held to.

The oracle is written from the RFCs and docs/architecture.md ("Wire level"), not from
gdns.server.codec: it has its own little walkers over the query's bytes, and dnspython
parses every reply.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import struct
import tempfile
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from gdns.answer import pools
from gdns.answer.engine import Engine
from gdns.server.fast import FastPath
from gdns.server.handler import Handler
from gdns.server.rrl import RateLimiter, RRLSettings
from gdns.server.stats import QueryStats
from gdns.strategy import weighted
from gdns.zone.loader import load_zones

ROOT = Path(__file__).resolve().parent.parent
ZONE_FILES = [
    ROOT / "zones" / "gslb.example.com.yaml",
    ROOT / "tests" / "data" / "test.example.yaml",
    ROOT / "tests" / "data" / "pools" / "pools.example.yaml",
]
WHY_FROM = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/48"))
MAX_UDP = (1232, 4096)  # the servers' --max-udp-size: the default, and a large one

# Clients: GeoIP countries of tests/geodb.py (DE, NO, US, SG, BR, GB), one unknown, one with a
# `_why` allowance, an IPv4-mapped address, a link-local one with a scope.
CLIENTS = [
    ("192.0.2.1", 53000),
    ("192.0.2.200", 53001),
    ("198.51.100.7", 53002),
    ("203.0.113.5", 53003),
    ("203.0.113.200", 53004),
    ("10.1.2.3", 53005),
    ("2001:db8:1::1", 53006),
    ("2001:db8:ffff::1", 53007),
    ("::ffff:192.0.2.7", 53008),
    ("fe80::1%lo", 53009),
]

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16

# -- the server under test ----------------------------------------------------------------------


class InternalErrors(logging.Handler):
    """Collects what the Handler logs when it turns one of our exceptions into SERVFAIL (or
    falls back from the fast path): to the oracle, that is a crash."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def raise_any(self) -> None:
        if not self.records:
            return
        record, self.records = self.records[0], []
        text = self.format(record) if record.exc_info else record.getMessage()
        raise AssertionError(f"internal error logged: {text}")


class Server:
    """Handlers over one engine: the default reply size, a large one, and one with response
    rate limiting on (a tiny table, so eviction runs too)."""

    def __init__(self, geo):
        zones = load_zones(ZONE_FILES, geoip=True)
        self.engine = Engine(
            zones,
            version="gdns-fuzz",
            identity="fuzz-1",
            health=_probed(zones),
            geo=geo,
            why_from=WHY_FROM,
        )
        self.handlers = {size: Handler(self.engine, max_udp_size=size) for size in MAX_UDP}
        limited = FastPath(self.engine, 1232)
        limited.rrl = RateLimiter(RRLSettings(responses_per_second=3, slip=2, window=2, table_size=16))
        self.limited = Handler(self.engine, max_udp_size=1232, fast=limited)
        self.errors = InternalErrors()
        logger = logging.getLogger("gdns.query")
        logger.addHandler(self.errors)
        for handler in [*self.handlers.values(), self.limited]:  # fill the fast paths' tables
            for i, wire in enumerate(SEEDS):
                handler.full(wire, "udp" if i % 3 else "tcp", CLIENTS[i % len(CLIENTS)], 0.0)
        self.errors.raise_any()

    def close(self) -> None:
        logging.getLogger("gdns.query").removeHandler(self.errors)


def _probed(zones):
    """Health as probes might have left it: configured statuses, round-trip times for the
    latency pools' members, and the checked pool `web` half down."""
    from types import MappingProxyType

    from gdns.health.snapshot import HealthSnapshot, MemberHealth

    table = dict(HealthSnapshot.from_zones(zones).members)
    rng = random.Random(5)
    for zone in zones.zones.values():
        for pool in zone.pools.values():
            for member in pool.members():
                state = table[member.key]
                if pool.strategy == "latency":
                    table[member.key] = MemberHealth(state.state, rng.uniform(0.001, 0.2), "probed")
                elif member.check is not None:
                    table[member.key] = MemberHealth(rng.choice(["up", "down"]), 0.01, "probed")
    return HealthSnapshot(MappingProxyType(table), 1)


def geo_database(folder: Path | None = None):
    """The GeoIP test database of tests/geodb.py, built in `folder`; by default in a
    temporary folder that is removed at once (the database stays open)."""
    from gdns.geo import GeoDatabase
    from tests.geodb import build

    if folder is not None:
        return GeoDatabase(str(build(Path(folder) / "test-city.mmdb")))
    with tempfile.TemporaryDirectory(prefix="gdns-fuzz-") as scratch:
        return GeoDatabase(str(build(Path(scratch) / "test-city.mmdb")))


def build_server(folder: Path | None = None) -> Server:
    """The server under test (its GeoIP database built in `folder`, see geo_database)."""
    return Server(geo_database(folder))


# -- the corpus: valid queries reaching every code path -----------------------------------------

GSLB = [
    "@", "www", "app", "api", "geo", "rr", "lucky", "edge", "maintenance", "web", "docs",
    "_sip._udp", "x.static", "a.b.static", "sub", "deep.sub", "ns1.sub", "country", "ns1",
    "nope", "_why.app", "_why6.geo", "_why.rr", "_why.nope", "_WHY.Api",
]  # fmt: skip
TEST = [
    "host", "a.b.c", "b.c", "chain1", "loop1", "dangling", "outside", "foo.wild", "x.wcname",
    "exists.wild", "ent.wild", "deep.ent.wild", "bigmail", "mail", "mid", "big", "huge", "child",
    "x.child", "ns.child", "HoSt",
]  # fmt: skip
POOLS = [
    "weighted", "sticky", "alias", "failover-up", "failover-down", "geo", "geo-subnet", "latency",
    "rr", "rr-two", "v4only", "v6only", "down-all", "down-fallback", "down-nodata",
    "down-servfail", "_why.geo", "_why6.sticky", "_why.down-servfail", "_why6.latency",
]  # fmt: skip
STATIC_TYPES = ["A", "AAAA", "ANY", "TXT", "MX", "SRV", "NS", "SOA", "CNAME", "DS", "CAA", "PTR", "TYPE65535"]
ECS_V4 = [
    ("192.0.2.0", 24), ("192.0.2.128", 25), ("198.51.100.0", 24), ("203.0.113.0", 25), ("203.0.113.128", 25),
    ("10.0.0.0", 8), ("0.0.0.0", 0), ("198.51.100.7", 32), ("203.0.0.0", 16),
]  # fmt: skip
ECS_V6 = [
    ("2001:db8:1::", 48), ("2001:db8:ffff::", 48), ("2001:db8:2::", 56), ("::", 0), ("2001:db8::", 32),
    ("2001:db8:1::", 64), ("2001:db8:1::1", 128),
]  # fmt: skip


def _name(label: str, origin: str) -> str:
    return origin if label == "@" else f"{label}.{origin}"


def _forms(rng: random.Random) -> list[dict]:
    """make_query keyword sets: no EDNS, EDNS with the usual sizes, DO, ECS of many prefixes,
    cookies, padding, an unknown option, EDNS version 1."""
    cookie = dns.edns.GenericOption(10, bytes(rng.randrange(256) for _ in range(8)))
    server_cookie = dns.edns.GenericOption(10, bytes(rng.randrange(256) for _ in range(24)))
    forms: list[dict] = [
        {},
        {"use_edns": 0},
        {"use_edns": 0, "want_dnssec": True},
        {"use_edns": 0, "payload": 512},
        {"use_edns": 0, "payload": 4096, "want_dnssec": True},
        {"use_edns": 0, "payload": 0},
        {"use_edns": 0, "options": [cookie]},
        {"use_edns": 0, "options": [server_cookie, dns.edns.GenericOption(12, b"\0" * 16)]},
        {"use_edns": 0, "options": [dns.edns.GenericOption(65001, b"junk")]},
        {"use_edns": 1},
    ]
    for address, prefix in ECS_V4 + ECS_V6:
        forms.append({"use_edns": 0, "options": [dns.edns.ECSOption(address, prefix)]})
    forms.append({"use_edns": 0, "options": [cookie, dns.edns.ECSOption("198.51.100.0", 24)]})
    return forms


def _seeds() -> list[bytes]:
    rng = random.Random(7)
    forms = _forms(rng)
    out: list[bytes] = []

    def add(qname: str, qtype: str, rdclass: str = "IN", **form) -> None:
        message = dns.message.make_query(qname, qtype, rdclass, **form)
        message.id = rng.randrange(65536)
        if rng.random() < 0.2:
            message.flags &= ~dns.flags.RD
        out.append(message.to_wire())

    # Pools: every form, A and AAAA (and TXT for the `_why` names).
    for label in POOLS:
        for form in forms:
            add(
                _name(label, "pools.example."),
                "TXT" if label.startswith("_why") else rng.choice(["A", "AAAA"]),
                **form,
            )
    for label in ["app", "api", "geo", "rr", "lucky", "edge", "maintenance", "web"]:
        for form in rng.sample(forms, 8):
            add(_name(label, "gslb.example.com."), rng.choice(["A", "AAAA", "ANY"]), **form)
    # Static names: every type, a few forms each.
    for origin, labels in (("gslb.example.com.", GSLB), ("test.example.", TEST)):
        for label in labels:
            for qtype in STATIC_TYPES:
                add(_name(label, origin), qtype, **rng.choice(forms[:10]))
            add(_name(label, origin), rng.choice(["A", "TXT"]), **rng.choice(forms[10:]))
    # Outside our zones, zone transfers, DS at the apex, other classes, CHAOS.
    for qname in [
        "example.org.",
        ".",
        "com.",
        "example.",
        "xn--bcher-kva.test.example.",
        "a" * 63 + ".test.example.",
    ]:
        add(qname, rng.choice(STATIC_TYPES), **rng.choice(forms))
    for qtype in ["AXFR", "IXFR", "DS"]:
        add("test.example.", qtype)
        add("gslb.example.com.", qtype, use_edns=0)
    for qname in ["version.bind.", "version.server.", "id.server.", "hostname.bind.", "nope.bind."]:
        for qtype in ["TXT", "ANY", "A"]:
            add(qname, qtype, "CH", **rng.choice(forms[:3]))
    for rdclass in ["HS", "NONE", "ANY", "CLASS42"]:
        add("host.test.example.", "A", rdclass, **rng.choice(forms[:3]))
    # Opcodes other than QUERY, and question counts other than one (built by hand).
    base = dns.message.make_query("host.test.example.", "A").to_wire()
    for opcode in (1, 2, 3, 4, 5, 6, 15):
        flags = (struct.unpack_from("!H", base, 2)[0] & ~0x7800) | (opcode << 11)
        out.append(base[:2] + struct.pack("!H", flags) + base[4:])
    question = base[12:]
    for count, questions in ((0, b""), (2, question * 2), (3, question * 3)):
        out.append(base[:4] + struct.pack("!H", count) + base[6:12] + questions)
    # A compressed question, a TSIG-like record, a record in the answer section.
    out.append(base[:12] + b"\x04host\xc0\x11" + b"\x00\x01\x00\x01" + b"\x04test\x07example\x00")
    rr = b"\x00\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x04abcd"  # root, TSIG, ANY class
    out.append(base[:10] + b"\x00\x01" + question + rr)
    out.append(
        base[:6]
        + b"\x00\x01"
        + base[8:]
        + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x02"
    )
    return out


SEEDS = _seeds()

# -- mutations ----------------------------------------------------------------------------------


class Chooser:
    """The source of every choice a mutation makes: `random.Random` (the atheris harness, the
    corpus tools) or hypothesis's `draw` (the property tests, so failures shrink)."""

    def below(self, n: int) -> int:
        raise NotImplementedError

    def blob(self, low: int, high: int) -> bytes:
        raise NotImplementedError

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def chance(self, one_in: int) -> bool:
        return self.below(one_in) == 0


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def below(self, n: int) -> int:
        return self.rng.randrange(n)

    def blob(self, low: int, high: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))


class DrawChooser(Chooser):
    """Choices drawn by hypothesis (`data.draw` of st.data()), so that failures shrink."""

    def __init__(self, draw):
        from hypothesis import strategies

        self.draw, self.st = draw, strategies

    def below(self, n: int) -> int:
        return self.draw(self.st.integers(0, n - 1)) if n > 1 else 0

    def blob(self, low: int, high: int) -> bytes:
        return self.draw(self.st.binary(min_size=low, max_size=high))


def examples(n: int) -> int:
    """`n` examples under the default hypothesis profile ("ci", 100 examples), scaled with the
    profile in use (GDNS_HYPOTHESIS_PROFILE=long: 100 times as many); see docs/fuzzing.md."""
    from hypothesis import settings

    return max(1, n * settings().max_examples // 100)


class Layout:
    """Where the parts of a query are, as far as its bytes can be walked: the question's label
    starts, its type, and each record (start, type offset, rdata offset, end) after it; for an
    OPT, each option (start, end)."""

    def __init__(self, wire: bytes):
        self.labels: list[int] = []
        self.qtype: int | None = None
        self.records: list[tuple[int, int, int, int]] = []
        self.opt: tuple[int, int, int, int] | None = None
        self.options: list[tuple[int, int]] = []
        offset = 12
        while offset < len(wire):
            length = wire[offset]
            if length & 0xC0 or length == 0:
                offset += 2 if length & 0xC0 == 0xC0 else 1
                break
            self.labels.append(offset)
            offset += length + 1
        else:
            return
        if offset + 4 > len(wire):
            return
        self.qtype = offset
        offset += 4
        while offset < len(wire):
            start = offset
            offset = _skip_name(wire, offset)
            if offset is None or offset + 10 > len(wire):
                return
            rtype = offset
            rdata = offset + 10
            end = rdata + struct.unpack_from("!H", wire, offset + 8)[0]
            if end > len(wire):
                return
            self.records.append((start, rtype, rdata, end))
            if wire[rtype : rtype + 2] == b"\x00\x29" and self.opt is None:
                self.opt = (start, rtype, rdata, end)
                at = rdata
                while at + 4 <= end:
                    stop = at + 4 + struct.unpack_from("!H", wire, at + 2)[0]
                    if stop > end:
                        break
                    self.options.append((at, stop))
                    at = stop
            offset = end


def _skip_name(wire: bytes, offset: int) -> int | None:
    while offset < len(wire):
        length = wire[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length & 0xC0:
            return None
        offset += length + 1
        if length == 0:
            return offset
    return None


def _ecs(c: Chooser) -> bytes:
    """An ECS option's data, valid or not in any of the ways RFC 7871 section 6 names."""
    family = c.choice([1, 2, 1, 2, 0, 3, 0xFFFF])
    width = 32 if family == 1 else 128
    source = c.choice([0, 1, 7, 8, 9, 16, 24, 25, 31, 32, 33, 48, 56, 64, 127, 128, 129, 255, c.below(256)])
    scope = 0 if c.chance(2) else c.below(256)
    length = (source + 7) // 8 if c.chance(2) else c.below(20)
    address = bytearray(c.blob(length, length)[:length].ljust(length, b"\0"))
    if address and source % 8 and c.chance(2):  # clear the bits beyond the prefix
        address[-1] &= (0xFF << (8 - source % 8)) & 0xFF
    if c.chance(4):
        address = address[: width // 8]
    return struct.pack("!HBB", family, min(source, 255), scope) + bytes(address)


def _option(c: Chooser) -> bytes:
    kind = c.below(5)
    if kind == 0:
        data = _ecs(c)
        return struct.pack("!HH", 8, len(data)) + data
    if kind == 1:  # a cookie of a valid or invalid length
        data = c.blob(0, 40)
        return struct.pack("!HH", 10, len(data)) + data
    code = c.choice([0, 3, 5, 6, 7, 9, 11, 12, 13, 14, 15, 65001, 65535, c.below(65536)])
    data = c.blob(0, 12)
    length = len(data) if c.below(4) else c.below(65536)
    return struct.pack("!HH", code, length) + data


def _record(c: Chooser) -> bytes:
    owner = c.choice(
        [b"\x00", b"\xc0\x0c", b"\x01a\x00", b"\xc0\x00", b"\xc0\xff", b"\x01a\xc0\x0c", b"\x3f"]
    )
    rtype = c.choice([41, 41, 41, 250, 1, 28, 6, 249, 0, c.below(65536)])
    rdata = b"".join(_option(c) for _ in range(c.below(3))) if rtype == 41 else c.blob(0, 16)
    rdlength = len(rdata) if c.below(5) else c.below(65536)
    ttl = c.choice([0, 0x8000, 0x00010000, 0x01000000, 0xFFFFFFFF, c.below(1 << 32)])
    rclass = c.choice([512, 1232, 4096, 0, 65535, 1, c.below(65536)])
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, rdlength) + rdata


def _set_count(wire: bytearray, index: int, value: int) -> None:
    if len(wire) >= 12:
        struct.pack_into("!H", wire, 4 + 2 * index, value & 0xFFFF)


def _bump_count(wire: bytearray, index: int, by: int) -> None:
    if len(wire) >= 12:
        _set_count(wire, index, struct.unpack_from("!H", wire, 4 + 2 * index)[0] + by)


_OPT_FIELDS = ["payload", "ext-rcode", "version", "do", "z", "rdlength", "owner", "twice", "add", "drop"]


def _mutate_opt(wire: bytearray, layout: Layout, c: Chooser) -> bool:
    if layout.opt is None:
        return False
    start, rtype, rdata, end = layout.opt
    kind = c.choice(_OPT_FIELDS)
    if kind == "payload":
        wire[rtype + 2 : rtype + 4] = struct.pack(
            "!H", c.choice([0, 1, 511, 512, 513, 1232, 1233, 4096, 65535])
        )
    elif kind == "ext-rcode":
        wire[rtype + 4] = c.below(256)
    elif kind == "version":
        wire[rtype + 5] = c.choice([0, 1, 2, 255])
    elif kind == "do":
        wire[rtype + 6] ^= 0x80
    elif kind == "z":
        wire[rtype + 6 : rtype + 8] = struct.pack("!H", c.below(65536))
    elif kind == "rdlength":
        length = struct.unpack_from("!H", wire, rtype + 8)[0]
        wire[rtype + 8 : rtype + 10] = struct.pack("!H", max(0, min(65535, length + c.below(9) - 4)))
    elif kind == "owner":
        wire[start:rtype] = c.choice(
            [b"\xc0\x0c", b"\x01x\x00", b"\x00\x00", b"\xc0" + bytes([start & 0xFF])]
        )
    elif kind == "twice":
        wire[end:end] = wire[start:end]
        _bump_count(wire, 3, 1)
    elif kind == "add":
        option = _option(c)
        wire[end:end] = option
        length = struct.unpack_from("!H", wire, rtype + 8)[0]
        wire[rtype + 8 : rtype + 10] = struct.pack("!H", min(65535, length + len(option)))
    elif kind == "drop":
        del wire[start:end]
        if c.chance(2):
            _bump_count(wire, 3, -1)
    return True


def _mutate_option(wire: bytearray, layout: Layout, c: Chooser) -> bool:
    if not layout.options or layout.opt is None:
        return False
    start, end = c.choice(layout.options)
    rtype = layout.opt[1]
    kind = c.below(6)
    if kind == 0:  # the option's length field
        length = struct.unpack_from("!H", wire, start + 2)[0]
        wire[start + 2 : start + 4] = struct.pack(
            "!H", c.choice([0, 1, 3, 4, length + 1, max(0, length - 1), 65535])
        )
    elif kind == 1:  # becomes ECS
        wire[start : start + 2] = b"\x00\x08"
    elif kind == 2 and wire[start : start + 2] == b"\x00\x08" and end - start >= 8:  # ECS fields
        field = c.below(4)
        if field == 0:
            wire[start + 4 : start + 6] = struct.pack("!H", c.choice([0, 1, 2, 3, 65535]))
        elif field == 1:
            wire[start + 6] = c.choice([0, 1, 8, 24, 25, 32, 33, 56, 64, 128, 129, 255])
        elif field == 2:
            wire[start + 7] = c.choice([1, 24, 32, 255])
        else:
            i = start + 8 + c.below(max(1, end - start - 8)) if end - start > 8 else end - 1
            wire[i] ^= 1 << c.below(8)
    else:  # replaced by another option, the OPT's length kept right or not
        option = _option(c)
        wire[start:end] = option
        if c.below(3):
            length = struct.unpack_from("!H", wire, rtype + 8)[0] + len(option) - (end - start)
            wire[rtype + 8 : rtype + 10] = struct.pack("!H", max(0, min(65535, length)))
    return True


def _mutate_question(wire: bytearray, layout: Layout, c: Chooser) -> bool:
    if not layout.labels:
        return False
    kind = c.below(7)
    at = c.choice(layout.labels)
    if kind == 0:  # a label's length
        wire[at] = c.choice([0, 1, 63, 64, 0x40, 0x80, 0xC0, 0xFF, c.below(256)])
    elif kind == 1:  # the name continues as a pointer: to itself, the header, or forward
        wire[at : at + 1] = bytes([0xC0, c.choice([12, at & 0xFF, 0, 2, 0xFF, c.below(256)])])
    elif kind == 2 and layout.qtype is not None:  # the type
        qtype = c.choice([41, 252, 251, 255, 43, 0, 65535, 1, 28, 16, 5, c.below(65536)])
        wire[layout.qtype : layout.qtype + 2] = struct.pack("!H", qtype)
    elif kind == 3 and layout.qtype is not None:  # the class
        qclass = c.choice([1, 3, 4, 254, 255, 0, 65535, 0x8001, c.below(65536)])
        wire[layout.qtype + 2 : layout.qtype + 4] = struct.pack("!H", qclass)
    elif kind == 4:  # labels added, up to and past the 255-octet limit
        label = c.choice([b"\x3f" + b"a" * 63, b"\x01*", b"\x04_why", b"\x05_why6", b"\x01a", b"\x00"])
        wire[at:at] = label * (1 + c.below(5))
    elif kind == 5:  # letter case (0x20): the fast path keys on lower case
        for i in range(at + 1, min(len(wire), at + 1 + wire[at])):
            if 0x61 <= wire[i] | 0x20 <= 0x7A and c.chance(2):
                wire[i] ^= 0x20
    else:  # a label's bytes: dots, zeros, high bytes
        length = wire[at]
        if length and at + length < len(wire):
            wire[at + 1 + c.below(length)] = c.choice([0x2E, 0x00, 0x80, 0xFF, 0x5C, 0x20, c.below(256)])
    return True


def _mutate_header(wire: bytearray, c: Chooser) -> bool:
    if len(wire) < 12:
        return False
    kind = c.below(4)
    if kind == 0:  # a count
        _set_count(wire, c.below(4), c.choice([0, 1, 2, 3, 0xFFFF, c.below(65536)]))
    elif kind == 1:  # the opcode
        wire[2] = (wire[2] & 0x87) | (c.below(16) << 3)
    elif kind == 2:  # QR, AA, TC, RD, RA, Z, AD, CD, the rcode
        i = c.below(16)
        wire[2 + (i >> 3)] ^= 0x80 >> (i & 7)
    else:
        wire[2:4] = c.blob(2, 2).ljust(2, b"\0")[:2]
    return True


def _mutate_records(wire: bytearray, layout: Layout, c: Chooser) -> bool:
    kind = c.below(3)
    if kind == 0:  # a record appended, counted in some section (or not)
        wire += _record(c)
        section = c.choice([3, 3, 1, 2, None])
        if section is not None:
            _bump_count(wire, section, 1)
    elif kind == 1 and layout.records:  # a record's owner replaced by a pointer game
        start, rtype, _, _ = c.choice(layout.records)
        wire[start:rtype] = c.choice([b"\xc0" + bytes([start & 0xFF]), b"\xc0\x0c", b"\xc0\x0e", b"\xff\xff"])
    elif kind == 2 and layout.records:  # a record's type, class or rdlength
        _, rtype, _, _ = c.choice(layout.records)
        at = rtype + c.choice([0, 2, 8])
        wire[at : at + 2] = struct.pack("!H", c.below(65536))
    else:
        return False
    return True


_BYTE_KINDS = ["flip", "set", "cut", "grow", "insert", "delete", "tail"]


def _mutate_bytes(wire: bytearray, c: Chooser) -> None:
    kind = c.choice(_BYTE_KINDS)
    size = len(wire)
    if kind == "grow" or not size:
        wire += c.blob(1, 16)
        return
    # Positions as often counted from the end (where OPT and ECS live) as from the start.
    i = c.below(size)
    if c.chance(2):
        i = size - 1 - i
    if kind == "flip":
        wire[i] ^= 1 << c.below(8)
    elif kind == "set":
        wire[i] = c.choice([0, 1, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF, c.below(256)])
    elif kind == "cut":
        del wire[i:]
    elif kind == "insert":
        wire[i:i] = c.blob(1, 4)
    elif kind == "delete":
        del wire[i : i + 1 + c.below(4)]
    else:  # the OPT's tail fields (version, flags, rdlength) of a query ending in a bare OPT
        wire[size - 1 - c.below(min(size, 11))] = c.below(256)


def mutate(wire: bytes, c: Chooser, rounds: int | None = None) -> bytes:
    """`wire` changed 1-4 times: header fields and counts, the question's labels (lengths,
    pointers, case, length past 255), type and class, the OPT and its options (ECS fields,
    cookies, lengths), extra records with pointer games, and plain byte edits."""
    out = bytearray(wire)
    for _ in range(rounds if rounds is not None else 1 + c.below(4)):
        layout = Layout(bytes(out))
        kind = c.below(7)
        done = (
            (kind == 0 and _mutate_header(out, c))
            or (kind == 1 and _mutate_question(out, layout, c))
            or (kind == 2 and _mutate_opt(out, layout, c))
            or (kind == 3 and _mutate_option(out, layout, c))
            or (kind == 4 and _mutate_records(out, layout, c))
        )
        if not done:
            _mutate_bytes(out, c)
    return bytes(out[:65535])


# -- the oracle ---------------------------------------------------------------------------------


def question_of(wire: bytes) -> bytes | None:
    """The question section (name, type, class) when the query has one gdns must accept:
    labels only (no compression in a question), at most 255 octets, all there."""
    offset, total = 12, 1
    while True:
        if offset >= len(wire):
            return None
        length = wire[offset]
        if length & 0xC0:
            return None
        offset += 1
        if not length:
            break
        total += length + 1
        if total > 255:
            return None
        offset += length
    if offset + 4 > len(wire):
        return None
    return wire[12 : offset + 4]


def _opt_of(wire: bytes) -> tuple[int, int, bytes] | None:
    """(payload, TTL field, rdata) of the OPT of a query dnspython accepted (so well formed)."""
    counts = struct.unpack_from("!HHHH", wire, 4)
    offset = 12
    for _ in range(counts[0]):
        offset = _skip_name(wire, offset) + 4
    for i in range(counts[1] + counts[2] + counts[3]):
        offset = _skip_name(wire, offset)
        rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", wire, offset)
        offset += 10
        if rtype == 41 and i >= counts[1] + counts[2]:
            return rclass, ttl, wire[offset : offset + rdlength]
        offset += rdlength
    return None


def _options(rdata: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    at = 0
    while at + 4 <= len(rdata):
        code, length = struct.unpack_from("!HH", rdata, at)
        out.setdefault(code, rdata[at + 4 : at + 4 + length])
        at += 4 + length
    return out


def ecs_valid(data: bytes) -> bool:
    """RFC 7871 section 6: family 1 or 2, source within the address width, scope 0 in a
    query, exactly ceil(source/8) address octets, no bits set past the source prefix."""
    if len(data) < 4:
        return False
    family, source, scope = struct.unpack_from("!HBB", data)
    if family not in (1, 2) or source > (32 if family == 1 else 128) or scope:
        return False
    address = data[4:]
    if len(address) != (source + 7) // 8:
        return False
    return not (source % 8 and address[-1] & (0xFF >> (source % 8)))


class Expect:
    """What the query's bytes say the reply must be, worked out independently of gdns."""

    def __init__(self, wire: bytes):
        self.drop = len(wire) < 12 or bool(wire[2] & 0x80)
        self.question = None if self.drop else question_of(wire)
        self.opcode = 0 if self.drop else (wire[2] >> 3) & 0xF
        self.qdcount = 0 if self.drop else struct.unpack_from("!H", wire, 4)[0]
        self.parsed: dns.message.Message | None = None  # dnspython's reading, when it has one
        self.opt: tuple[int, int, bytes] | None = None
        self.ecs: bytes | None = None
        self.rcodes: set[int] | None = None  # None: not decided here
        if self.drop:
            return
        if self.opcode:
            self.rcodes = {NOTIMP}
            return
        if self.qdcount != 1 or self.question is None:
            self.rcodes = {FORMERR}
            return
        qtype = struct.unpack_from("!H", self.question, len(self.question) - 4)[0]
        try:
            self.parsed = dns.message.from_wire(wire, ignore_trailing=True, one_rr_per_rrset=True)
        except (dns.exception.DNSException, ValueError, TypeError, IndexError, struct.error):
            self.parsed = None  # gdns reads less of a query than dnspython: FORMERR or an answer
        if qtype == 41:
            self.rcodes = {FORMERR}
            return
        if self.parsed is None:
            return
        self.opt = _opt_of(wire)
        if self.opt is None:
            self.rcodes = {NOERROR, NXDOMAIN, REFUSED, SERVFAIL}
            return
        options = _options(self.opt[2])
        self.ecs = options.get(8)
        if (self.opt[1] >> 16) & 0xFF:
            self.rcodes = {BADVERS}
        elif self.ecs is not None and not ecs_valid(self.ecs):
            self.rcodes = {FORMERR}
        else:
            self.rcodes = {NOERROR, NXDOMAIN, REFUSED, SERVFAIL}


def check_reply(
    wire: bytes, transport: str, reply: bytes | None, max_udp: int, limited: bool = False
) -> None:
    """Hold one reply to the rules: dropped only when gdns must drop, else a well-formed
    response with the query's ID, opcode, RD and question, the rcode the query's bytes call
    for, OPT (and ECS) echoed, within the size the client can take, TC when cut."""
    expect = Expect(wire)
    if not reply:
        assert expect.drop or (limited and transport == "udp"), "no reply to a query that needs one"
        return
    assert not expect.drop, "answered a response or a runt"
    assert len(reply) >= 12, "reply shorter than a header"
    assert reply[:2] == wire[:2], "reply ID is not the query's"
    flags = struct.unpack_from("!H", reply, 2)[0]
    qd, an, ns, ar = struct.unpack_from("!HHHH", reply, 4)
    assert flags & 0x8000, "QR clear in a reply"
    assert (flags >> 11) & 0xF == expect.opcode, "opcode not echoed"
    assert flags & 0x0100 == struct.unpack_from("!H", wire, 2)[0] & 0x0100, "RD not copied"
    assert not flags & 0x0080, "RA set"
    # dnspython reads other opcodes' sections their own way (an UPDATE's zone must be SOA):
    # the layout is checked as a QUERY's.
    plain = reply[:2] + bytes([reply[2] & 0x87]) + reply[3:]
    try:
        message = dns.message.from_wire(plain, ignore_trailing=False, one_rr_per_rrset=True)
    except dns.exception.DNSException as exc:
        raise AssertionError(f"dnspython cannot parse the reply: {exc!r}") from None
    rcode = message.rcode()
    if qd:
        assert qd == 1, "more than one question in the reply"
        assert expect.question is not None, "echoed a question the query did not have"
        assert reply[12 : 12 + len(expect.question)] == expect.question, "question not echoed as sent"
    if expect.rcodes is not None:
        assert rcode in expect.rcodes, f"rcode {rcode} for a query that calls for {sorted(expect.rcodes)}"
    if rcode in (FORMERR, NOTIMP, BADVERS):
        assert an == ns == 0, "records in an error reply"
        assert not flags & 0x0400, "AA in an error reply"
    if rcode in (NOERROR, NXDOMAIN, REFUSED, SERVFAIL, BADVERS):
        assert qd == 1, "question missing from the reply"
    if expect.rcodes and expect.rcodes & {NOERROR, BADVERS} and rcode != FORMERR:
        # A query with a usable OPT gets one back (ours: our size, the DO bit echoed); one
        # without gets none.
        assert (message.edns >= 0) == (expect.opt is not None), "OPT not echoed (or made up)"
        if expect.opt is not None:
            assert message.payload == max_udp, "OPT does not advertise our size"
            assert bool(message.ednsflags & dns.flags.DO) == bool(expect.opt[1] & 0x8000), "DO not echoed"
            ecs = [o for o in message.options if o.otype == 8]
            if limited and flags & 0x0200:
                pass  # perhaps RRL's slip: a bare OPT (see docs/fuzzing.md)
            elif expect.ecs is not None and rcode != BADVERS:
                assert len(ecs) == 1, "ECS not echoed"
                data = ecs[0].to_wire()
                assert data[:3] + data[4:] == expect.ecs[:3] + expect.ecs[4:], "ECS echoed differently"
                assert data[3] <= data[2], "ECS scope wider than the source prefix"
            else:
                assert not ecs, "ECS in a reply to a query without it"
    if transport == "tcp":
        limit = 65535
    elif expect.parsed is None:  # the client's payload size unknown here: the most it can be
        limit = max_udp if message.edns >= 0 else 512
    elif expect.opt is not None and message.edns >= 0:
        limit = min(max(512, expect.opt[0]), max_udp)
    else:
        limit = 512
    assert len(reply) <= limit, f"{len(reply)}-byte reply over the {limit}-byte limit"
    if flags & 0x0200:
        assert an == ns == 0 and ar <= 1, "records in a truncated reply"
        return
    _check_sections(message, flags, rcode)


def _check_sections(message: dns.message.Message, flags: int, rcode: int) -> None:
    """Authoritative answer rules (docs/architecture.md, "Answer semantics")."""
    aa = bool(flags & 0x0400)
    soa = any(rrset.rdtype == 6 for rrset in message.authority)
    ns = any(rrset.rdtype == 2 for rrset in message.authority)
    if rcode == REFUSED:
        assert not (message.answer or message.authority or aa), "records or AA in a REFUSED reply"
    if rcode not in (NOERROR, NXDOMAIN) or not message.question:
        return
    question = message.question[0]
    if not aa:
        assert rcode == NOERROR and not message.answer and ns, "AA clear on an answer that is not a referral"
        return
    if rcode == NXDOMAIN or not message.answer:
        assert soa, "a negative answer without the zone's SOA"
    if message.answer and question.rdclass == 1:
        first = message.answer[0]
        assert first.name == question.name, "the answer does not begin at the question's name"
        wanted = {question.rdtype, 5} if question.rdtype != 255 else None
        if wanted and not question.name.labels[0].lower().startswith(b"_why"):
            assert all(rrset.rdtype in wanted for rrset in message.answer), "answer of another type"


def answer_both_ways(handler: Handler, wire: bytes, transport: str, client: tuple) -> bytes | None:
    """The fast path's reply and the full path's must be the same bytes (the same random
    draws and round-robin turns given); returns the full path's."""
    engine = handler.engine
    counters = dict(engine.counters)
    pools._rng.seed(1)
    weighted._rng.seed(1)
    fast = handler.fast.answer(wire, client[0], transport == "tcp", QueryStats())
    engine.counters.clear()
    engine.counters.update(counters)
    pools._rng.seed(1)
    weighted._rng.seed(1)
    full = handler.full(wire, transport, client, 0.0)
    if fast is not None:
        assert fast == full, "the fast path's reply differs from the full path's"
    return full


def _flip_case(wire: bytes, question: bytes) -> bytes:
    """`wire` with the letter case of its question name inverted (0x20 randomisation)."""
    name = bytearray(question[:-4])
    at = 0
    while at < len(name) and name[at]:
        for i in range(at + 1, at + 1 + name[at]):
            if 0x61 <= name[i] | 0x20 <= 0x7A:
                name[i] ^= 0x20
        at += name[at] + 1
    return wire[:12] + bytes(name) + wire[12 + len(name) :]


def check_relations(handler: Handler, wire: bytes, transport: str, client: tuple, reply, counters) -> None:
    """Replies to related queries: the same question in other letter case gets the same reply
    but for the question's spelling; a UDP reply with TC has an answer that really is too big.
    `counters`: the round-robin turns before `reply` was made (each is made with them)."""
    if not reply or len(reply) < 12:
        return
    engine = handler.engine
    question = question_of(wire)
    if question is None or not reply[5]:
        return
    flipped = _flip_case(wire, question)
    if flipped != wire and question[1:5].lower() != b"_why":  # a trace quotes the spelling
        engine.counters.clear()
        engine.counters.update(counters)
        other = answer_both_ways(handler, flipped, transport, client)
        q = len(question)
        assert other == reply[:12] + flipped[12 : 12 + q] + reply[12 + q :], "letter case changed the reply"
    expect = Expect(wire)
    if transport == "udp" and reply[2] & 0x02 and reply[3] & 0xF in (NOERROR, NXDOMAIN) and expect.parsed:
        engine.counters.clear()
        engine.counters.update(counters)
        whole = answer_both_ways(handler, wire, "tcp", client)
        limit = min(max(512, expect.opt[0]), handler.max_udp_size) if expect.opt else 512
        assert len(whole) > limit, f"TC set, but the whole {len(whole)}-byte answer fits in {limit}"


def check_query(server: Server, wire: bytes, transport: str, client: tuple, which: int) -> None:
    """One query through one of the server's handlers (0, 1: by reply size, both paths
    compared; 2: rate limited), every rule checked, no internal error logged."""
    if which < len(MAX_UDP):
        size = MAX_UDP[which]
        handler = server.handlers[size]
        counters = dict(handler.engine.counters)
        reply = answer_both_ways(handler, wire, transport, client)
        server.errors.raise_any()
        check_reply(wire, transport, reply, size)
        check_relations(handler, wire, transport, client, reply, counters)
        server.errors.raise_any()
        reply = handler(wire, transport, client)  # as a transport calls it
        server.errors.raise_any()
        check_reply(wire, transport, reply, size)
    else:
        reply = server.limited(wire, transport, client)
        server.errors.raise_any()
        check_reply(wire, transport, reply, 1232, limited=True)


# -- zone documents ---------------------------------------------------------------------------------

INTS = [0, 1, 2, 3, 5, 30, 60, 300, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 10**30, -1, -(2**63)]
FLOATS = [0.0, 0.5, 1.5, -0.5, 1e300, -1e-300, 90.0, 180.1, float("inf"), float("nan")]
STRINGS = [
    "", " ", "NO", "010", "1:30", "0x10", "5m", "1h30m", "1.5s", "500ms", "0s", "-1s", "99999999999w",
    "192.0.2.1", "192.0.2.256", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:192.0.2.1",
    "fe80::1%eth0", "192.0.2.0/24", "192.0.2.1/24", "2001:db8::/129", "10.0.0.0/8", "0.0.0.0/0",
    "example.com.", "example.com", "www.example.com.", ".", "..", "a..b.", "*.example.com.", "@",
    "x" * 63 + ".", "x" * 64 + ".", ".".join(["a" * 63] * 4) + ".", "xn--bcher-kva.example.",
    "b\u00fccher.example.", "sp ace.example.", "tab\t.", "\u0000", "a\\.b.", "_sip._tcp.example.com.",
    "10 mail.example.com.", "10", "20 0 5060 sip.example.com.", "1 2 3", '0 issue "ca.example.net"',
    '128 iodef "mailto:x@example.com"', "0 issue", "v=spf1 -all", "x" * 256, "x" * 300,
    "http", "https", "tcp", "udp", "GET", "HEAD", "/", "/healthz", "200", "200-299", "299-200", "600",
    "[", "(", "*", "nearest", "up", "down", "drain", "all", "fallback", "nodata", "servfail",
    "weighted", "roundrobin", "random", "failover", "geo", "latency", "EU", "SA", "DE", "ZZ", "none",
    "true", "null", "~", "-", "?", "#", "!!int 5", "&a", "*a", "%",
]  # fmt: skip
# The first nine are the types gdns serves from `records:`.
RTYPES = ["A", "AAAA", "CNAME", "NS", "PTR", "MX", "SRV", "CAA", "TXT"] + [
    "SOA",
    "a",
    "TTL",
    "NSEC",
    "TYPE1",
    "",
]
STRATEGIES = ["weighted", "roundrobin", "random", "failover", "geo", "latency", "Weighted", "nope"]


def junk(c: Chooser, depth: int = 0):
    """Any value a YAML document can hold."""
    kind = c.below(8 if depth < 3 else 5)
    if kind == 0:
        return c.choice([None, True, False])
    if kind == 1:
        return c.choice(INTS)
    if kind == 2:
        return c.choice(FLOATS)
    if kind in (3, 4):
        return c.choice(STRINGS)
    if kind == 5:
        return [junk(c, depth + 1) for _ in range(c.below(4))]
    keys = STRINGS + ["ttl", "values", "address", "members", "groups", "weight", "status", "type"]
    return {str(c.choice(keys)): junk(c, depth + 1) for _ in range(c.below(4))}


def _maybe(c: Chooser, value, one_in: int = 8):
    """Usually `value`; sometimes junk instead (how often: the document's mess level)."""
    return junk(c) if c.chance(one_in * getattr(c, "tidy", 1)) else value


def pick(c: Chooser, values: list, good: int = 1):
    """One of `values`; in a tidy document usually one of the first `good` (the valid ones)."""
    if getattr(c, "tidy", 1) > 1 and c.below(6):
        return values[c.below(good)]
    return c.choice(values)


def _address(c: Chooser, family: int | None = None) -> str:
    v4 = ["192.0.2.1", "192.0.2.2", "198.51.100.9", "203.0.113.7", "127.0.0.2", "10.0.0.1"]
    v6 = ["2001:db8::1", "2001:db8::2", "2001:db8:1::7", "::1", "fe80::1"]
    return c.choice(v4 if family == 4 else v6 if family == 6 else v4 + v6)


def _rrset_value(c: Chooser, rtype: str, origin: str):
    names = ["www." + origin, "mail.example.net.", origin, "x." + origin, "deep.sub." + origin, "."]
    one = {
        "A": lambda: _address(c, 4),
        "AAAA": lambda: _address(c, 6),
        "CNAME": lambda: pick(c, names, 5),
        "NS": lambda: pick(c, names, 2),
        "PTR": lambda: pick(c, names, 5),
        "MX": lambda: c.choice(
            [f"10 {pick(c, names, 5)}", {"preference": pick(c, INTS, 6), "exchange": pick(c, names, 5)}]
        ),
        "SRV": lambda: c.choice(
            [
                "10 5 5060 " + pick(c, names, 5),
                {"priority": 1, "weight": pick(c, INTS, 6), "port": 80, "target": pick(c, names, 5)},
            ]
        ),
        "CAA": lambda: c.choice(
            ['0 issue "ca.example.net"', {"flags": pick(c, INTS, 2), "tag": "issue", "value": "x"}]
        ),
        "TXT": lambda: pick(c, ["hello", "x" * 300, ["a", "b"], "caf\u00e9", ""], 4),
    }.get(rtype, lambda: junk(c))
    kind = c.below(4)
    if kind == 0:
        return _maybe(c, one())
    if kind == 1:
        return [_maybe(c, one()) for _ in range(pick(c, [1, 2, 3, 0], 3))]
    if kind == 2:
        return {
            "ttl": _maybe(c, pick(c, [60, "5m", 0, -1, "1x"], 3)),
            "values": [_maybe(c, one()) for _ in range(1 + c.below(3))],
        }
    return _maybe(c, one(), 2)


def _member(c: Chooser, family: int | None = None) -> dict:
    member: dict = {"address": _maybe(c, _address(c, family))}
    for key, values, good in (
        ("weight", [1, 2, 0.5, 100, 0, -1], 4),
        ("status", ["up", "down", "drain", "UP"], 3),
        ("check", ["none", "web", "nope"], 2),
        ("probe", ["127.0.0.9", "2001:db8::9", "x"], 2),
    ):
        if c.chance(3):
            member[key] = _maybe(c, pick(c, values, good))
    if "probe" in member and getattr(c, "tidy", 1) > 1:
        member["check"] = "web"
    return member


def _pool(c: Chooser, groups_named: list[str]) -> dict:
    strategy = pick(c, STRATEGIES, 6)
    pool: dict = {"strategy": _maybe(c, strategy)}
    if c.chance(2) or strategy in ("geo", "failover", "latency"):
        pool["groups"] = {
            g: {
                "members": [_member(c) for _ in range(pick(c, [1, 2, 3, 0], 3))],
                **({"location": _maybe(c, [pick(c, FLOATS, 4), pick(c, FLOATS, 4)])} if c.chance(2) else {}),
                **({"weight": _maybe(c, pick(c, [1, 3, 0], 2))} if c.chance(3) else {}),
            }
            for g in groups_named[: 1 + c.below(len(groups_named))]
        }
    else:
        pool["members"] = [_member(c) for _ in range(pick(c, [1, 2, 3, 4, 0], 4))]
    if strategy == "geo" or (c.chance(2) and getattr(c, "tidy", 1) == 1):
        subnets = ["192.0.2.0/24", "2001:db8::/32", "10.0.0.0/8", "0.0.0.0/0", "192.0.2.1/24", "x"]
        rules = []
        for _ in range(pick(c, [1, 2, 3, 0], 3)):
            rule: dict = {
                "groups": _maybe(c, pick(c, ["nearest", groups_named[:2], groups_named[:1], [], ["nope"]], 3))
            }
            for key, values, good in (
                ("subnets", subnets, 4),
                ("countries", ["NO", "DE", "US", "zz", "EU"], 3),
                ("continents", ["EU", "SA", "AS", "XX"], 3),
            ):
                if c.chance(3):
                    rule[key] = [pick(c, values, good) for _ in range(1 + c.below(2))]
            rules.append(rule)
        pool["rules"] = rules
    for key, values, good in (
        ("ttl", [30, "1m", 0, -5], 3),
        ("sticky", [True, False, "yes"], 2),
        ("answers", [1, 2, 32, 33, 0], 3),
        ("when_all_down", ["all", "fallback", "nodata", "servfail", "nxdomain"], 4),
        ("fallback", [["192.0.2.250", "2001:db8::250"], "192.0.2.250", [], "x"], 2),
        ("degraded_ttl", [5, "10s", 0, -1], 3),
        ("check", ["none", "web", "nope"], 2),
        ("tolerance_ms", [0, 5, -1, 1e9], 2),
        ("tolerance_percent", [0, 10, 101], 2),
    ):
        if c.chance(4):
            pool[key] = _maybe(c, pick(c, values, good))
    if pool.get("when_all_down") == "fallback" and getattr(c, "tidy", 1) > 1:
        pool.setdefault("fallback", ["192.0.2.250"])
    return pool


def zone_document(c: Chooser) -> dict:
    """A zone document as an operator might write it, with mistakes of every kind: missing
    and unknown keys, wrong types, bad names and record data, pools and checks half right.
    Most are tidy (a mistake or two, so compiling reaches the DNS checks, and some compile
    whole); some are a mess."""
    c.tidy = c.choice([1, 4, 50, 50, 50])  # type: ignore[attr-defined]
    tidy = c.tidy > 1  # type: ignore[attr-defined]
    origin = pick(c, ["example.com.", "gslb.example.com.", "example.com", ".", "a..b.", "x" * 64 + "."], 2)
    doc: dict = {}
    if not c.chance(12 * c.tidy):  # type: ignore[attr-defined]
        doc["origin"] = _maybe(c, origin, 16)
    if c.chance(2):
        doc["ttl"] = _maybe(c, pick(c, [300, "5m", "1d", 0, 2**31], 3))
    if not c.chance(10 * c.tidy):  # type: ignore[attr-defined]
        soa = {"mname": "ns1." + origin, "rname": "hostmaster." + origin}
        for key, values, good in (
            ("serial", [1, 2024010101, 0, 2**32], 2),
            ("minimum", [60, "1h", -1], 2),
            ("ttl", [600, "x"], 1),
        ):
            if c.chance(3):
                soa[key] = pick(c, values, good)
        doc["soa"] = _maybe(c, soa, 12)
    if not c.chance(10 * c.tidy):  # type: ignore[attr-defined]
        doc["ns"] = pick(c, [["ns1.example.net."], "ns1.example.net.", _rrset_value(c, "NS", origin)], 2)
    names = ["@", "www", "mail", "x", "*.wild", "sub", "ns1.sub", "deep.sub", "a.b.c", "_sip._udp",
             "www." + origin, "other.net.", "*", "a*b", "-", "x" * 64, "", "caf\u00e9"]  # fmt: skip
    if c.below(4):
        records: dict = {}
        for _ in range(c.below(8)):
            rrsets: dict = {}
            for _ in range(1 + c.below(2)):
                rtype = pick(c, RTYPES, 9)
                rrsets[rtype] = _rrset_value(c, rtype if c.below(8) else c.choice(RTYPES), origin)
            records[pick(c, names, 11)] = _maybe(c, rrsets)
        doc["records"] = records
    if tidy and c.chance(8):  # a large rrset with in-zone targets: replies past 16 KiB over TCP
        count, rtype = c.choice([150, 700, 1300]), c.choice(["MX", "SRV", "NS"])
        form = {"MX": "10 {}", "SRV": "1 1 80 {}", "NS": "{}"}[rtype]
        records = {"big": {rtype: [form.format(f"t{i}.{origin}") for i in range(count)]}}
        for i in range(count):
            records[f"t{i}"] = {"A": "192.0.2.1"} if i % 2 else {"AAAA": "2001:db8::1"}
        doc["records"] = records
    if c.chance(3):
        checks: dict = {}
        for _ in range(1 + c.below(2)):
            check: dict = {}
            for key, values, good in (
                ("type", ["http", "https", "tcp", "icmp"], 3),
                ("port", [80, 8080, 0, 65536, "80"], 2),
                ("interval", ["5s", "500ms", 1.5, 0, "0s", -1, 1e9], 3),
                ("timeout", ["2s", 0.25, "10s", 0.001], 3),
                ("expect", [200, "200-299", [200, "301"], "abc", 999, "299-200"], 3),
                ("body_regex", ["ok", "(", "[a-"], 1),
                ("headers", [{"X": "y"}, {"X": 1}, []], 1),
                ("rise", [1, 2, 0, 101], 2),
            ):
                if c.chance(2):
                    check[key] = pick(c, values, good)
            checks[pick(c, ["web", "tcp", "x y"], 2)] = _maybe(c, check)
        doc["checks"] = checks
    if tidy:
        doc.setdefault("checks", {}).setdefault("web", {"type": "tcp", "port": 80})
    if c.below(3):
        groups = ["eu", "us", "ap", "default"]
        doc["pools"] = {
            pick(c, ["app", "www", "geo", "x.y", "*", "@", "sub", "deep.sub"], 4): _maybe(
                c, _pool(c, groups), 12
            )
            for _ in range(1 + c.below(3))
        }
    if not tidy:
        for _ in range(c.below(2)):
            doc[c.choice(["orgin", "record", "pool", "zzz", "serial"])] = junk(c)
    return doc


ZONE_QTYPES = [1, 28, 255, 16, 15, 2, 33, 5, 257, 12, 6, 43]  # A AAAA ANY TXT MX NS SRV CNAME CAA PTR SOA DS


def zone_queries(zone, c: Chooser, limit: int = 40) -> list[tuple[bytes, str]]:
    """(query, transport) for the names of a compiled zone (and below them, for wildcards,
    delegations and NXDOMAIN), of many types, plain, with EDNS or with ECS; first, over TCP,
    for the name `big` (a large rrset, see zone_document) when there is one."""
    names = [*zone.nodes, *zone.pools, *zone.empty_nonterminals]
    big = (b"big", *zone.origin)
    out: list[tuple[bytes, str]] = []
    for n in range(min(limit, 4 * len(names) + 4)):
        first = n < 3 and big in zone.nodes
        name = big if first else c.choice(names) if names else zone.origin
        transport = "tcp" if first else c.choice(["udp", "tcp"])
        if c.chance(4) and not first:
            name = (c.choice([b"x", b"_why", b"_why6", b"*"]),) + name
        wire = b"".join(bytes([len(label)]) + label for label in name) + b"\0"
        if len(wire) > 255:
            continue
        head = struct.pack("!HHHHHH", c.below(65536), 0x0100, 1, 0, 0, 0)
        qtype = c.choice([15, 33, 2, 255]) if first else c.choice(ZONE_QTYPES)  # MX SRV NS ANY
        question = wire + struct.pack("!HH", qtype, 1)
        form = c.below(3)
        if form == 0:
            out.append((head + question, transport))
            continue
        options = b""
        if form == 2:
            address, prefix = c.choice(ECS_V4 + ECS_V6)
            data = dns.edns.ECSOption(address, prefix).to_wire()
            options = struct.pack("!HH", 8, len(data)) + data
        payload = c.choice([512, 1232, 4096])
        opt = b"\0" + struct.pack("!HHIH", 41, payload, c.choice([0, 0x8000]), len(options)) + options
        out.append((head[:10] + b"\0\1" + question + opt, transport))
    return out


def _plain_load(text: str, geoip: bool):
    from gdns.zone.compile import compile_zone
    from gdns.zone.errors import ZoneError
    from gdns.zone.yamlsafe import YAMLProblem, load

    try:
        doc = load(text, "fuzz.yaml")
    except YAMLProblem as exc:
        return None, [exc.error]
    if doc.data is None:
        return None, [ZoneError("fuzz.yaml", 1, 1, (), "empty zone file")]
    return compile_zone(doc, "digest", geoip)


def _zone_text(zone) -> tuple:
    """Everything a zone answers with, as comparable text."""
    nodes = {}
    for name in zone.nodes:
        node = zone.nodes[name]
        records = sorted(str(rr) for rrset in node.rrsets.values() for rr in rrset.records())
        nodes[name] = (records, repr(node.pool))
    return (zone.origin, zone.serial, zone.negative_ttl, str(zone.soa.records()), nodes,
            sorted(zone.empty_nonterminals), sorted(zone.cuts), sorted(zone.pools))  # fmt: skip


def check_zone_text(text: str, c: Chooser | None = None, geoip: bool = False, server_geo=None) -> object:
    """A zone file's text through the loader as gdns reads it: a Zone, or problems that each
    name the file, a line and column, and a path in the document; never an exception. A zone
    that compiles is then asked about its names (`c` given): every reply held to the rules."""
    from gdns.zone.errors import ZoneError, ZoneLoadError
    from gdns.zone.loader import load_text
    from gdns.zone.zoneset import ZoneSet

    zone, errors, _ = load_text(text, "fuzz.yaml", "digest", geoip)
    assert (zone is None) == bool(errors), "neither a zone nor problems (or both)"
    for e in errors:
        assert isinstance(e, ZoneError) and e.file == "fuzz.yaml" and e.message, e
        assert all(isinstance(part, str | int) for part in e.path), e
        if not e.message.startswith("YAML"):  # a YAML error without a mark is about the file
            assert e.line >= 1 and e.column >= 1, f"problem without a position: {e}"
    str(ZoneLoadError(errors))  # as `gdns check` and a reload report them: sorted, printed
    # The loader compiles records as the parser reads them (streaming); read the plain way,
    # the same text must give the same zone or the same problems.
    plain, plain_errors = _plain_load(text, geoip)
    assert sorted(map(str, errors)) == sorted(map(str, plain_errors)), "streaming and plain loads disagree"
    if zone is not None:
        assert _zone_text(zone) == _zone_text(plain), "streaming and plain loads made different zones"
    if zone is None or c is None:
        return zone
    engine = Engine(ZoneSet.of([zone]), version="v", identity="i", geo=server_geo, why_from=WHY_FROM)
    handler = Handler(engine)
    errors_seen = InternalErrors()
    logger = logging.getLogger("gdns.query")
    logger.addHandler(errors_seen)
    try:
        for wire, transport in zone_queries(zone, c):
            client = c.choice(CLIENTS)
            handler.full(wire, transport, client, 0.0)  # the fast path's table
            counters = dict(engine.counters)
            reply = answer_both_ways(handler, wire, transport, client)
            errors_seen.raise_any()
            check_reply(wire, transport, reply, handler.max_udp_size)
            check_relations(handler, wire, transport, client, reply, counters)
            errors_seen.raise_any()
    finally:
        logger.removeHandler(errors_seen)
    return zone


ZONE_TEXTS = [path.read_text() for path in ZONE_FILES]
_YAML_BITS = [
    "&a ", "*a", "!!str ", "!!int ", "!!float ", "!!binary ", "!!set ", "!!python/object ", "<<: *a",
    "---", "...", "{", "}", "[", "]", ",", ": ", "- ", "? ", "|", ">", "\t", "#", "'", '"', "\\",
    "%YAML 1.1", "~", "null", "0o17", "0x1F", "1e3", "1.0e400", "-1.0e400", "1.0e-400", ".inf", "yes",
    "NO", "2001-12-14", "1:30:00", "\u00e9", "\ufeff", "\x00",
]  # fmt: skip


def mutate_text(text: str, c: Chooser) -> str:
    """A zone file edited the ways people (and editors) break them: lines deleted, repeated,
    moved or re-indented, values replaced, YAML syntax dropped in, the file cut short."""
    lines = text.split("\n")
    for _ in range(1 + c.below(4)):
        if not lines:
            lines = [""]
        i = c.below(len(lines))
        kind = c.below(8)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[c.below(len(lines))])
        elif kind == 2:
            j = c.below(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == 3:
            stripped = lines[i].lstrip(" ")
            lines[i] = " " * c.choice([0, 1, 2, 3, 4, 6, 8, 40]) + stripped
        elif kind == 4 and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            value = junk(c)
            lines[i] = f"{key}: {value!r}" if c.chance(3) else f"{key}: {value}"
        elif kind == 5:
            at = c.below(len(lines[i]) + 1)
            lines[i] = lines[i][:at] + c.choice(_YAML_BITS + STRINGS) + lines[i][at:]
        elif kind == 6:
            del lines[c.below(len(lines)) :]
        else:
            line = lines[i]
            if line:
                at = c.below(len(line))
                lines[i] = line[:at] + line[at + 1 + c.below(3) :]
    return "\n".join(lines)


# -- TCP framing ------------------------------------------------------------------------------------


class FakeTransport:
    """Enough of an asyncio transport for TCPProtocol: it keeps what is written."""

    def __init__(self, protocol, peer: tuple):
        self.protocol, self.peer = protocol, peer
        self.written: list[bytes] = []
        self.closed = False

    def get_extra_info(self, name):
        return self.peer if name == "peername" else None

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def get_write_buffer_size(self):
        return 0

    def write(self, data):
        assert not self.closed, "written after close"
        self.written.append(bytes(data))

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def close(self):
        if not self.closed:
            self.closed = True
            self.protocol.connection_lost(None)

    abort = close


_LOOP = None


def frames(stream: bytes) -> tuple[list[bytes], bytes]:
    """The complete length-prefixed messages in `stream`, and what is left over."""
    out, at = [], 0
    while at + 2 <= len(stream):
        end = at + 2 + struct.unpack_from("!H", stream, at)[0]
        if end > len(stream):
            break
        out.append(stream[at + 2 : end])
        at = end
    return out, stream[at:]


def check_tcp_stream(server: Server, stream: bytes, pieces: int, client: tuple) -> None:
    """`stream` fed to a TCPProtocol over the server's default handler in `pieces` + 1 reads,
    as a client that then half-closes: one framed reply per complete query that needs one, in
    order, each held to the rules; nothing else written."""
    import asyncio

    from gdns.server.tcp import TCPLimits, TCPProtocol

    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    handler = server.handlers[MAX_UDP[0]]
    rng = random.Random(stream)
    cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(pieces)) + [len(stream)]

    async def connection() -> list[bytes]:
        limits = TCPLimits(idle_timeout=30.0, read_timeout=30.0)
        protocol = TCPProtocol(handler, limits)
        transport = FakeTransport(protocol, client)
        protocol.connection_made(transport)
        at = 0
        for cut in cuts:
            data = stream[at:cut]
            at = cut
            while data:  # what a transport does: get_buffer, fill, buffer_updated
                view = protocol.get_buffer(-1)
                n = min(len(view), len(data))
                view[:n] = data[:n]
                protocol.buffer_updated(n)
                data = data[n:]
        protocol.eof_received()
        transport.close()
        assert limits.open == 0, "connection still counted after it closed"
        return transport.written

    written = _LOOP.run_until_complete(connection())
    server.errors.raise_any()
    queries, _ = frames(stream)
    replies, rest = frames(b"".join(written))
    assert not rest, "a reply's length prefix does not match it"
    expected = [q for q in queries if not Expect(q).drop]
    assert len(replies) == len(expected), f"{len(replies)} replies to {len(expected)} queries"
    for query, reply in zip(expected, replies, strict=True):
        check_reply(query, "tcp", reply, handler.max_udp_size)
