"""The immutable zone set the answer engine reads: built once per load, swapped whole."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dnslib import QTYPE, RD, RDMAP, RR, DNSBuffer, DNSLabel

from gdns.zone.pool import Pool

Name = tuple[bytes, ...]  # lower-cased labels, most specific first, no root label


def name_key(label: DNSLabel) -> Name:
    return tuple(part.lower() for part in label.label)


@dataclass(frozen=True, slots=True)
class RRset:
    labels: tuple[bytes, ...]  # the owner's labels: the node's name (or the origin as written)
    rtype: int
    ttl: int
    rdatas: tuple[RD, ...]

    @property
    def owner(self) -> DNSLabel:
        """Made when asked for: a large zone would otherwise keep one DNSLabel per name."""
        return DNSLabel(self.labels)

    def records(self, owner: DNSLabel | None = None) -> list[RR]:
        """Wire records, optionally under another owner (wildcards, the client's letter case)."""
        name = owner or self.owner
        return [RR(name, self.rtype, ttl=self.ttl, rdata=rd) for rd in self.rdatas]


@dataclass(frozen=True, slots=True)
class Node:
    name: Name
    rrsets: dict[int, RRset]
    pool: Pool | None = None  # answers A and AAAA here


# -- a large zone's names, packed -------------------------------------------------------------
#
# A name with only static records is kept as one bytes object: per rrset its type, TTL and
# number of values, then each value's wire form after its length. Python objects for the same
# rrsets (a dict, RRset, a tuple, dnslib's rdata objects) take five to ten times the memory,
# and a reload holds two zone sets at once. A lookup unpacks the node it finds, a few
# microseconds on the full path; the fast path answers repeated questions from prebuilt bytes.

_HEAD = struct.Struct("!HIH")  # type, TTL, number of values
_LEN = struct.Struct("!H")


def pack_rrsets(rrsets: dict[int, RRset]) -> bytes:
    out = bytearray()
    for rrset in rrsets.values():
        out += _HEAD.pack(rrset.rtype, rrset.ttl, len(rrset.rdatas))
        for rd in rrset.rdatas:
            buf = DNSBuffer()  # one buffer per value: a name in it is compressed, if at all,
            rd.pack(buf)  # against that value's own bytes, which it is unpacked from alone
            out += _LEN.pack(len(buf.data))
            out += buf.data
    return bytes(out)


def packed_types(blob: bytes) -> Iterator[tuple[int, int, int]]:
    """(type, offset of its values, number of values) for each rrset in a packed node."""
    at = 0
    while at < len(blob):
        rtype, _, count = _HEAD.unpack_from(blob, at)
        at += _HEAD.size
        yield rtype, at, count
        for _ in range(count):
            at += _LEN.size + _LEN.unpack_from(blob, at)[0]


def unpack_rrsets(name: Name, blob: bytes) -> dict[int, RRset]:
    rrsets: dict[int, RRset] = {}
    at = 0
    end = len(blob)
    while at < end:
        rtype, ttl, count = _HEAD.unpack_from(blob, at)
        at += _HEAD.size
        cls = RDMAP.get(QTYPE.get(rtype), RD)
        rdatas = []
        for _ in range(count):
            (length,) = _LEN.unpack_from(blob, at)
            at += _LEN.size
            rdatas.append(cls.parse(DNSBuffer(blob[at : at + length]), length))
            at += length
        rrsets[rtype] = RRset(name, rtype, ttl, tuple(rdatas))
    return rrsets


class Names(Mapping):
    """A zone's names and their nodes: Node objects where a name has a pool (or is the apex),
    packed bytes (see pack_rrsets) for the rest, unpacked into a Node when looked up. Looking a
    name up unpacks it every time; `name in names` does not."""

    __slots__ = ("table",)

    def __init__(self, table: dict[Name, Node | bytes]):
        self.table = table  # what is kept: sent as it is to workers, emptied by retire()

    def __getitem__(self, name: Name) -> Node:
        value = self.table[name]
        return value if type(value) is Node else Node(name, unpack_rrsets(name, value))

    def get(self, name: Name, default=None):  # type: ignore[override]
        value = self.table.get(name)
        if value is None:
            return default
        return value if type(value) is Node else Node(name, unpack_rrsets(name, value))

    def __contains__(self, name: object) -> bool:
        return name in self.table

    def __iter__(self) -> Iterator[Name]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def popitem(self) -> tuple[Name, Node | bytes]:
        return self.table.popitem()


@dataclass(frozen=True, slots=True)
class Zone:
    origin: Name
    origin_label: DNSLabel
    file: str
    serial: int
    digest: str  # content hash of the source file
    soa: RRset
    negative_ttl: int  # RFC 2308: min(SOA TTL, SOA minimum)
    nodes: Mapping[Name, Node]  # Names, as compiled; any mapping will do (tests build dicts)
    empty_nonterminals: frozenset[Name]
    cuts: frozenset[Name]  # delegation points (NS below the apex)
    pools: dict[Name, Pool] = field(default_factory=dict)

    def negative_soa(self) -> RR:
        return RR(self.origin_label, self.soa.rtype, ttl=self.negative_ttl, rdata=self.soa.rdatas[0])

    def addresses(self, target: Name) -> list[RR]:
        """In-zone A/AAAA for a target name: glue and additional-section data."""
        node = self.nodes.get(target)
        if node is None:
            return []
        out: list[RR] = []
        owner = None
        for rtype in (1, 28):  # A, AAAA
            rrset = node.rrsets.get(rtype)
            if rrset:
                if owner is None:
                    owner = rrset.owner
                out.extend(rrset.records(owner))
        return out


@dataclass(frozen=True, slots=True)
class ZoneSet:
    zones: dict[Name, Zone] = field(default_factory=dict)
    longest_origin: int = 0

    @classmethod
    def of(cls, zones: list[Zone]) -> ZoneSet:
        table = {z.origin: z for z in zones}
        return cls(table, max((len(o) for o in table), default=0))

    def find(self, qname: Name) -> Zone | None:
        """The most specific zone that contains qname (a child zone beats its parent)."""
        start = max(0, len(qname) - self.longest_origin)
        for i in range(start, len(qname) + 1):
            zone = self.zones.get(qname[i:])
            if zone is not None:
                return zone
        return None

    def __len__(self) -> int:
        return len(self.zones)
