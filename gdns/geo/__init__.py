"""GeoIP lookups (geoip2 City or Country databases), reloaded when the file changes; great-circle
distance."""

from __future__ import annotations

import io
import ipaddress
import logging
import math
import os
import re
import time
from dataclasses import dataclass

log = logging.getLogger("gdns.geo")


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


class GeoError(Exception):
    """A GeoIP database that cannot be used, said in one line that names the file."""


# Addresses looked up when a database is opened: one that fails on them is not used.
_PROBES = ("1.1.1.1", "8.8.8.8", "192.0.2.1", "203.0.113.1", "2001:4860:4860::8888", "2001:db8::1")
_LOG_EVERY = 60.0  # seconds between two logs of failing lookups


class GeoDatabase:
    """A geoip2 City (or Country) database. Lookups never raise: unknown is None fields.

    The file is read into a private in-memory copy (a memfd, so the fast C reader can map
    it), never mapped where it lies: a database rewritten in place (`cp new.mmdb db.mmdb`)
    would otherwise pull pages from under a lookup and kill the process with SIGBUS. The
    copy also lets `reload()` replace the database while lookups go on: the reader and its
    lookup method are one value, swapped whole, and a bad new file leaves the old in use.
    """

    def __init__(self, path: str):
        self.path = path
        self.failed: tuple | None = None  # the stamp of a file that could not be used
        self._current = _open(path)
        self._logged = 0.0

    @property
    def reader(self):
        return self._current[0]

    @property
    def kind(self) -> str:
        return self._current[2]

    @property
    def stamp(self) -> tuple:
        """(inode, size, mtime) of the file the database in use was read from."""
        return self._current[3]

    def lookup(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Location:
        import geoip2.errors
        import maxminddb

        lookup = self._current[1]
        try:
            found = lookup(address)
        except geoip2.errors.AddressNotFoundError as exc:
            network = getattr(exc, "network", None)
            return Location(None, None, None, None, _prefix(network, address))
        except (ValueError, OSError):
            return Location(None, None, None, None, address.max_prefixlen)
        except maxminddb.InvalidDatabaseError as exc:  # corrupt past what opening it checked
            now = time.monotonic()
            if now - self._logged > _LOG_EVERY:
                self._logged = now
                what = "answering as for an unknown address"
                log.error("GeoIP database %s: lookup failed (%s); %s", self.path, exc, what)
            return Location(None, None, None, None, address.max_prefixlen)
        location = getattr(found, "location", None)
        return Location(
            found.country.iso_code,
            found.continent.code,
            getattr(location, "latitude", None),
            getattr(location, "longitude", None),
            _prefix(found.traits.network, address),
        )

    def changed(self) -> tuple | None:
        """The file's stamp when it differs from the one in use (and from one that already
        failed), else None. A file that cannot be looked at has not changed: it is reported
        when it comes back different, or at the next restart."""
        stamp = _stamp(self.path)
        if stamp is None or stamp == self.stamp or stamp == self.failed:
            return None
        return stamp

    def reload(self) -> str | None:
        """Read the file again if it changed: "reloaded" when a new database is now in use,
        "failed" when the new file cannot be used (logged once; the database in use stays),
        None when there was nothing new."""
        stamp = self.changed()
        if stamp is None:
            return None
        try:
            current = _open(self.path)
        except GeoError as exc:
            self.failed = stamp
            log.error("%s; still using the database read before (%s)", exc, _describe(self.reader))
            return "failed"
        # One assignment: a lookup on another thread uses the old reader or the new, whole.
        self._current, self.failed = current, None
        log.info("GeoIP database %s reloaded: %s", self.path, _describe(current[0]))
        # The old reader is not closed: a lookup may still be using it; it goes with its
        # last reference (the memory of its copy with it).
        return "reloaded"

    def close(self) -> None:
        self._current[0].close()


def _stamp(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _open(path: str) -> tuple:
    """(reader, lookup method, database type, stamp) for the file at `path`, or GeoError."""
    import geoip2.errors

    try:
        stamp = _stamp(path)
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise GeoError(f"GeoIP database {path}: no such file") from None
    except OSError as exc:
        raise GeoError(f"GeoIP database {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        reader = _reader(data)
    except Exception as exc:  # maxminddb raises its own errors (and ValueError) for a corrupt file
        text = re.sub(r"/proc/self/fd/\d+", path, str(exc))  # the copy's name means nothing to people
        raise GeoError(f"GeoIP database {path}: cannot be read ({text})") from None
    kind = reader.metadata().database_type
    if "City" in kind:
        lookup = reader.city
    elif "Country" in kind:
        lookup = reader.country
    else:
        reader.close()
        raise GeoError(f"GeoIP database {path}: a {kind} database, not a City or Country one")
    for address in _PROBES:
        try:
            lookup(address)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            pass  # not in this database, or an IPv6 address and an IPv4 database
        except Exception as exc:  # InvalidDatabaseError, or anything a broken file leads to
            reader.close()
            raise GeoError(f"GeoIP database {path}: cannot be read ({exc})") from None
    return reader, lookup, kind, stamp


def _reader(data: bytes):
    """A geoip2 Reader over a private copy of `data`."""
    import geoip2.database
    import maxminddb

    if not hasattr(os, "memfd_create"):  # not Linux: the pure-Python reader, over the bytes
        return geoip2.database.Reader(io.BytesIO(data), mode=maxminddb.MODE_FD)
    fd = os.memfd_create("gdns-geoip", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as f:
            f.write(data)
        # The C reader opens the path, maps the file and closes its own descriptor; the
        # mapping keeps the memory alive after ours is closed below.
        return geoip2.database.Reader(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _describe(reader) -> str:
    meta = reader.metadata()
    built = time.strftime("%Y-%m-%d", time.gmtime(meta.build_epoch))
    return f"{meta.database_type}, built {built}, {meta.node_count} nodes"


def _prefix(network, address) -> int:
    if network is None:
        return address.max_prefixlen
    if network.version != address.version:  # an IPv4 answer from an IPv6 tree
        return address.max_prefixlen
    return network.prefixlen
