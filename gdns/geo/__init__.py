"""GeoIP lookups (geoip2 City databases) and great-circle distance."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    country: str | None
    continent: str | None
    latitude: float | None
    longitude: float | None
    prefix: int  # the database network the answer holds for: the ECS scope of a geo decision

    @property
    def point(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return (self.latitude, self.longitude)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


class GeoDatabase:
    """A geoip2 City (or Country) database. Lookups never raise: unknown is None fields."""

    def __init__(self, path: str):
        import geoip2.database

        self.path = path
        self.reader = geoip2.database.Reader(path)
        self.kind = self.reader.metadata().database_type

    def lookup(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Location:
        import geoip2.errors

        try:
            lookup = self.reader.city if "City" in self.kind else self.reader.country
            found = lookup(address)
        except geoip2.errors.AddressNotFoundError as exc:
            network = getattr(exc, "network", None)
            return Location(None, None, None, None, _prefix(network, address))
        except (ValueError, OSError):
            return Location(None, None, None, None, address.max_prefixlen)
        location = getattr(found, "location", None)
        return Location(
            found.country.iso_code,
            found.continent.code,
            getattr(location, "latitude", None),
            getattr(location, "longitude", None),
            _prefix(found.traits.network, address),
        )

    def close(self) -> None:
        self.reader.close()


def _prefix(network, address) -> int:
    if network is None:
        return address.max_prefixlen
    if network.version != address.version:  # an IPv4 answer from an IPv6 tree
        return address.max_prefixlen
    return network.prefixlen
