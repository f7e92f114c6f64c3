"""Who is asking: the client network a decision is made for (ECS subnet, else the resolver)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from gdns.geo import Location

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
STICKY_PREFIX = {4: 24, 6: 56}  # the resolver's network when there is no ECS


@dataclass(slots=True)
class Client:
    address: IPAddress  # ECS network address, or the resolver's address
    source_prefix: int  # ECS source prefix; 32/128 for the resolver's own address
    ecs: bool = False
    geo: Callable[[IPAddress], Location | None] | None = None
    health: object = None  # the HealthSnapshot of this query
    query_family: int = 4  # 4 for an A query, 6 for AAAA
    _location: Location | None = field(default=None, init=False)
    _looked_up: bool = field(default=False, init=False)

    @property
    def family(self) -> int:
        return self.address.version

    @property
    def width(self) -> int:
        return 32 if self.address.version == 4 else 128

    def location(self) -> Location | None:
        """GeoIP data for the client, looked up once per query."""
        if not self._looked_up:
            self._looked_up = True
            self._location = self.geo(self.address) if self.geo else None
        return self._location

    def sticky_network(self) -> tuple[bytes, int]:
        """The network sticky choices hash on, and its prefix length (the ECS scope)."""
        prefix = min(self.source_prefix, STICKY_PREFIX[self.family])
        network = ipaddress.ip_network((self.address, prefix), strict=False)
        return network.network_address.packed + bytes([prefix]), prefix

    @classmethod
    def of(cls, address: str | IPAddress, ecs=None, geo=None, health=None) -> Client:
        if ecs is not None:
            return cls(ecs.network.network_address, ecs.source_prefix, True, geo, health)
        ip = ipaddress.ip_address(address)
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return cls(ip, ip.max_prefixlen, False, geo, health)
