"""The immutable zone set the answer engine reads: built once per load, swapped whole."""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from zlib import crc32

from dnslib import AAAA, QTYPE, RD, RDMAP, RR, A, DNSBuffer, DNSLabel

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
_MAKE = {QTYPE.A: A, QTYPE.AAAA: AAAA}
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
        make = _MAKE.get(rtype)
        cls = RDMAP.get(QTYPE.get(rtype), RD)
        rdatas = []
        for _ in range(count):
            (length,) = _LEN.unpack_from(blob, at)
            at += _LEN.size
            if make is not None:  # an address: its bytes are the value (as dnslib's parse makes it)
                rdatas.append(make(tuple(blob[at : at + length])))
            else:
                rdatas.append(cls.parse(DNSBuffer(blob[at : at + length]), length))
            at += length
        rrsets[rtype] = RRset(name, rtype, ttl, tuple(rdatas))
    return rrsets


def _key(name: Name) -> bytes:
    """A name as one bytes object: its labels joined by dots (owner names have no dots in
    their labels: gdns.zone.rdata.check_labels)."""
    return b".".join(name)


def _name(key: bytes) -> Name:
    return tuple(key.split(b".")) if key else ()


class Packed:
    """Names with only static records, each with its packed rrsets (pack_rrsets), in one bytes
    buffer and a hash table over it, a few arrays in all: a large zone's 100k names take a few
    megabytes, not a few hundred thousand objects. Freed, the big buffers go straight back to
    the operating system instead of leaving holes between other objects.

    Entry i is data[starts[i]:splits[i]] (the name, see _key) followed by its rrsets up to
    starts[i + 1]. `slots` is an open-addressing table (linear probing) indexed by the CRC-32
    of the name, a hash that is the same in every process, so the table can be sent to a
    worker as it is: each slot holds an entry's index plus one, or 0. Built by add() while a
    zone compiles (an entry taken back out with drop() is left out by done())."""

    __slots__ = ("data", "starts", "splits", "hashes", "slots", "mask", "dropped")

    def __init__(self) -> None:
        self.data: bytes | bytearray = bytearray()
        self.starts, self.splits, self.hashes = array("I", [0]), array("I"), array("I")
        self.slots = array("I", bytes(4 * 8))
        self.mask = 7
        self.dropped: set[int] = set()

    def add(self, name: Name, value: bytes) -> None:
        """A name not added before."""
        key = _key(name)
        data = self.data
        assert isinstance(data, bytearray), "add() after done()"
        data += key
        self.splits.append(len(data))
        data += value
        self.starts.append(len(data))
        self.hashes.append(crc32(key))
        if 2 * len(self.splits) > len(self.slots):
            self._rehash(2 * len(self.slots))
        else:
            self._place(len(self.splits) - 1)

    def _place(self, i: int) -> None:
        slots, mask = self.slots, self.mask
        at = self.hashes[i] & mask
        while slots[at]:
            at = (at + 1) & mask
        slots[at] = i + 1

    def _rehash(self, size: int) -> None:
        self.slots, self.mask = array("I", bytes(4 * size)), size - 1
        for i in range(len(self.splits)):
            self._place(i)

    def find(self, name: Name) -> int:
        """The index of the entry for `name`, or -1."""
        key = _key(name)
        data, starts, slots, mask = self.data, self.starts, self.slots, self.mask
        at = crc32(key) & mask
        while True:
            i = slots[at] - 1
            if i < 0:
                return -1
            start = starts[i]
            if self.splits[i] == start + len(key) and data[start : start + len(key)] == key:
                return -1 if self.dropped and i in self.dropped else i
            at = (at + 1) & mask

    def value(self, i: int) -> bytes:
        return bytes(self.data[self.splits[i] : self.starts[i + 1]])

    def drop(self, i: int) -> None:
        self.dropped.add(i)

    def items(self) -> Iterator[tuple[Name, bytes]]:
        data, starts, splits = self.data, self.starts, self.splits
        for i in range(len(splits)):
            if not (self.dropped and i in self.dropped):
                yield _name(bytes(data[starts[i] : splits[i]])), bytes(data[splits[i] : starts[i + 1]])

    def names(self) -> Iterator[Name]:
        for name, _ in self.items():
            yield name

    def done(self) -> Packed:
        """Built: the buffer made immutable (and the dropped entries left out)."""
        if self.dropped:
            out = Packed()
            for name, value in self.items():
                out.add(name, value)
            return out.done()
        self.data = bytes(self.data)
        self.hashes = array("I")  # only add() needs them
        return self

    def __len__(self) -> int:
        return len(self.splits) - len(self.dropped)


class Names(Mapping):
    """A zone's names and their nodes: Node objects where a name has a pool (or is the apex),
    the rest Packed, unpacked into a Node when looked up. Looking a name up unpacks it every
    time; `name in names` does not."""

    __slots__ = ("objects", "packed")

    def __init__(self, objects: dict[Name, Node], packed: Packed | None = None):
        self.objects = objects
        self.packed = packed if packed is not None else Packed().done()

    def __getitem__(self, name: Name) -> Node:
        node = self.get(name)
        if node is None:
            raise KeyError(name)
        return node

    def get(self, name: Name, default=None):  # type: ignore[override]
        node = self.objects.get(name)
        if node is not None:
            return node
        i = self.packed.find(name)
        if i < 0:
            return default
        return Node(name, unpack_rrsets(name, self.packed.value(i)))

    def __contains__(self, name: object) -> bool:
        return name in self.objects or self.packed.find(name) >= 0  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Name]:
        yield from self.objects
        yield from self.packed.names()

    def __len__(self) -> int:
        return len(self.objects) + len(self.packed)

    def popitem(self) -> tuple[Name, Node | None]:
        """For retire(): a Node object at a time, then the packed names all at once (a few
        large buffers, freed in one go)."""
        if self.objects:
            return self.objects.popitem()
        if not len(self.packed):
            raise KeyError("popitem(): no names left")
        self.packed = Packed().done()
        return (), None


class Building:
    """A zone's names while it compiles: each name's rrsets as a dict while they may still
    change (the apex, a pool's name), else packed as soon as the name is compiled (Packed), so
    that a large zone is never whole in memory as objects. A mapping of name to that dict or
    packed bytes; done() makes the zone's Names."""

    def __init__(self) -> None:
        self.objects: dict[Name, dict] = {}
        self.packed = Packed()

    def __contains__(self, name: Name) -> bool:
        return name in self.objects or self.packed.find(name) >= 0

    def get(self, name: Name, default=None):
        value = self.objects.get(name)
        if value is not None:
            return value
        i = self.packed.find(name)
        return self.packed.value(i) if i >= 0 else default

    def __getitem__(self, name: Name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: Name, value: dict | bytes) -> None:
        """A dict for a new name or one held as a dict; bytes for a new name only."""
        if type(value) is bytes:
            self.packed.add(name, value)
        else:
            self.objects[name] = value  # type: ignore[assignment]

    def setdefault(self, name: Name, default: dict) -> dict:
        """The name's rrsets as a dict (a packed name is unpacked and held as a dict from now)."""
        value = self.objects.get(name)
        if value is not None:
            return value
        i = self.packed.find(name)
        if i >= 0:
            default = unpack_rrsets(name, self.packed.value(i))
            self.packed.drop(i)
        self.objects[name] = default
        return default

    def items(self) -> Iterator[tuple[Name, dict | bytes]]:
        yield from self.objects.items()
        yield from self.packed.items()

    def __iter__(self) -> Iterator[Name]:
        yield from self.objects
        yield from self.packed.names()

    def __len__(self) -> int:
        return len(self.objects) + len(self.packed)

    def done(self, nodes: dict[Name, Node]) -> Names:
        """The zone's names: `nodes` (made from self.objects) and the packed ones."""
        return Names(nodes, self.packed.done())


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
