"""The two values that cross the codec/engine boundary."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from dnslib import RR


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    """An EDNS Client Subnet option (RFC 7871) as the query carried it."""

    family: int  # 1 = IPv4, 2 = IPv6
    source_prefix: int
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int  # the query's header flags word (RD, CD, opcode ...)
    qname: tuple[bytes, ...]  # labels exactly as sent (the client's letter case)
    qtype: int
    qclass: int
    transport: str  # "udp" | "tcp"
    client: tuple[str, int]
    edns: bool = False
    edns_payload: int = 512
    edns_version: int = 0
    dnssec_ok: bool = False
    ecs: ClientSubnet | None = None
    question: bytes = b""  # the question section as sent (name, type, class)

    @property
    def key(self) -> tuple[bytes, ...]:
        return tuple(label.lower() for label in self.qname)

    @property
    def rd(self) -> bool:
        return bool(self.flags & 0x0100)


@dataclass(slots=True)
class Answer:
    rcode: int = 0
    aa: bool = True
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    ecs_scope: int = 0  # the ECS scope prefix the answer is valid for
    decisions: list = field(default_factory=list)  # pool Decisions behind it, for explain/trace
    pool: object = None  # the Pool when the question's own name is a pool answered with members
    shared: bool = True  # the same for every client (False: a trace made for this resolver)
    wildcard: tuple | None = None  # the wildcard's name when one answered the question's own name
