"""The immutable zone set the answer engine reads: built once per load, swapped whole."""

from __future__ import annotations

from dataclasses import dataclass, field

from dnslib import RD, RR, DNSLabel

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


@dataclass(frozen=True, slots=True)
class Zone:
    origin: Name
    origin_label: DNSLabel
    file: str
    serial: int
    digest: str  # content hash of the source file
    soa: RRset
    negative_ttl: int  # RFC 2308: min(SOA TTL, SOA minimum)
    nodes: dict[Name, Node]
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
