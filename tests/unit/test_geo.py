"""gdns.geo: great-circle distance and GeoIP lookups over the tiny test database."""

import ipaddress
import logging
import os
import subprocess
import sys
from pathlib import Path

import maxminddb
import pytest

from gdns.geo import GeoDatabase, GeoError, Location, distance_km
from tests.geodb import NETWORKS, build

ROOT = Path(__file__).resolve().parents[2]

FRANKFURT = (50.11, 8.68)
SINGAPORE = (1.35, 103.82)
ASHBURN = (39.04, -77.49)
SAO_PAULO = (-23.55, -46.63)
LONDON = (51.51, -0.13)
SYDNEY = (-33.87, 151.21)


def test_frankfurt_singapore():
    assert distance_km(FRANKFURT, SINGAPORE) == pytest.approx(10260, rel=0.01)


@pytest.mark.parametrize(
    "a,b,km",
    [
        (LONDON, FRANKFURT, 640),
        (FRANKFURT, ASHBURN, 6540),
        (LONDON, SYDNEY, 16990),
        (ASHBURN, SAO_PAULO, 7600),
    ],
)
def test_known_distances(a, b, km):
    assert distance_km(a, b) == pytest.approx(km, rel=0.02)
    assert distance_km(b, a) == pytest.approx(distance_km(a, b))


def test_distance_edges():
    assert distance_km(FRANKFURT, FRANKFURT) == 0
    half = 3.141592653589793 * 6371.0
    assert distance_km((0, 0), (0, 180)) == pytest.approx(half)  # antipodes: half the circumference
    assert distance_km((90, 0), (-90, 0)) == pytest.approx(half)
    assert distance_km((0, 179.5), (0, -179.5)) == pytest.approx(111.2, rel=0.01)  # across the date line
    assert distance_km((89.9, 0), (89.9, 180)) < 25  # over the pole, not around the world


def test_location_point():
    assert Location("DE", "EU", 50.11, 8.68, 25).point == (50.11, 8.68)
    assert Location("DE", "EU", None, 8.68, 25).point is None
    assert Location(None, None, None, None, 8).point is None


@pytest.fixture(scope="module")
def db(geoip_db):
    database = GeoDatabase(str(geoip_db))
    yield database
    database.close()


@pytest.mark.parametrize(
    "address,country,continent,point,prefix",
    [
        ("192.0.2.1", "DE", "EU", FRANKFURT, 25),
        ("192.0.2.127", "DE", "EU", FRANKFURT, 25),
        ("192.0.2.128", "NO", "EU", (59.91, 10.75), 25),
        ("198.51.100.200", "US", "NA", ASHBURN, 24),
        ("203.0.113.5", "SG", "AS", SINGAPORE, 25),
        ("203.0.113.200", "BR", "SA", SAO_PAULO, 25),
        ("2001:db8:1::53", "GB", "EU", LONDON, 48),
        ("2001:db8:2:ffff::1", "US", "NA", (37.77, -122.42), 48),
    ],
)
def test_lookup(db, address, country, continent, point, prefix):
    where = db.lookup(ipaddress.ip_address(address))
    assert (where.country, where.continent, where.prefix) == (country, continent, prefix)
    assert where.point == pytest.approx(point)


@pytest.mark.parametrize("address", ["192.0.3.1", "10.1.2.3", "2001:db8:3::1"])
def test_unknown_address_has_no_location_but_a_network(db, address):
    ip = ipaddress.ip_address(address)
    where = db.lookup(ip)
    assert (where.country, where.continent, where.point) == (None, None, None)
    # The prefix is the empty network around the address, as wide as the database knows it:
    # every address in it is unknown alike, so a decision on "unknown" holds for all of it.
    assert 0 < where.prefix <= ip.max_prefixlen
    network = ipaddress.ip_network((ip, where.prefix), strict=False)
    for probe in (network.network_address, network.broadcast_address):
        assert db.lookup(probe).country is None
    assert db.kind == "GeoIP2-City"


def test_unknown_prefix_stops_at_the_nearest_known_network(db):
    # 192.0.3.0/24 is the sibling of 192.0.2.0/24 (known), so nothing wider than /24 is empty.
    assert db.lookup(ipaddress.ip_address("192.0.3.1")).prefix == 24
    assert db.lookup(ipaddress.ip_address("2001:db8:3::1")).prefix == 48


# -- faults: missing, corrupt, replaced --------------------------------------------------------

ADDRESS = ipaddress.ip_address("192.0.2.1")  # DE in the test database


def replace_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def corrupt_tree(data: bytes) -> bytes:
    """The search tree (the start of the file) overwritten: it opens, and every lookup fails."""
    return b"\xff" * 600 + data[600:]


def test_a_database_that_cannot_be_used_is_one_clear_error(tmp_path, geoip_db):
    good = geoip_db.read_bytes()
    cases = {
        "missing.mmdb": (None, "no such file"),
        "empty.mmdb": (b"", "cannot be read (Error opening database file"),
        "truncated.mmdb": (good[: len(good) // 2], "cannot be read (Error opening database file"),
        "tree.mmdb": (corrupt_tree(good), "cannot be read (Error looking up"),
        "text.mmdb": (b"not a database\n", "cannot be read"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(GeoError) as caught:
            GeoDatabase(str(path))
        assert str(caught.value).startswith(f"GeoIP database {path}: {message}"), str(caught.value)
        assert "/proc/self/fd" not in str(caught.value)  # the private copy is not named
    asn = build(tmp_path / "asn.mmdb", database_type="GeoLite2-ASN")
    with pytest.raises(GeoError, match="a GeoLite2-ASN database, not a City or Country one"):
        GeoDatabase(str(asn))


def test_a_file_rewritten_in_place_does_not_touch_the_database_in_use(tmp_path, geoip_db):
    """Read into a private copy: truncating or rewriting the file (`cp new.mmdb db.mmdb`) under
    a mapped database would kill the process with SIGBUS (so this runs in a process of its own)."""
    path = tmp_path / "db.mmdb"
    path.write_bytes(geoip_db.read_bytes())
    code = f"""
import ipaddress
from gdns.geo import GeoDatabase
db = GeoDatabase({str(path)!r})
address = ipaddress.ip_address("192.0.2.1")
with open({str(path)!r}, "r+b") as f:
    f.truncate(0)
assert db.lookup(address).country == "DE"
with open({str(path)!r}, "r+b") as f:
    f.write(bytes(4096))
assert db.lookup(address).country == "DE"
print("still answering")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0, (done.returncode, done.stderr)  # -7: SIGBUS
    assert done.stdout == "still answering\n"


def test_reload_takes_a_good_new_file_and_keeps_the_old_for_a_bad_one(tmp_path, geoip_db, caplog):
    path = tmp_path / "db.mmdb"
    path.write_bytes(geoip_db.read_bytes())
    db = GeoDatabase(str(path))
    assert db.reload() is None  # nothing changed

    moved = build(tmp_path / "moved.mmdb", dict(NETWORKS, **{"192.0.2.0/25": ("FR", "EU", 48.86, 2.35)}))
    replace_file(path, moved.read_bytes())
    assert db.reload() == "reloaded"
    assert db.lookup(ADDRESS).country == "FR"

    with caplog.at_level(logging.ERROR, logger="gdns.geo"):
        replace_file(path, moved.read_bytes()[:100])
        assert db.reload() == "failed"
        assert db.reload() is None  # the same bad file is reported once, not at every look
    assert db.lookup(ADDRESS).country == "FR"
    assert f"GeoIP database {path}: cannot be read" in caplog.text
    assert "still using the database read before (GeoIP2-City, built " in caplog.text

    path.unlink()  # gone: the database in use stays, quietly (a restart would say so)
    assert db.reload() is None and db.lookup(ADDRESS).country == "FR"
    replace_file(path, geoip_db.read_bytes())
    assert db.reload() == "reloaded"
    assert db.lookup(ADDRESS).country == "DE"


def test_a_lookup_that_finds_the_database_corrupt_is_an_unknown_address(
    tmp_path, geoip_db, caplog, monkeypatch
):
    """Corruption past what opening checks: no exception reaches the answer (that would be a
    SERVFAIL), the client is unknown (a catch-all rule answers), and it is logged, once."""
    db = GeoDatabase(str(geoip_db))

    def broken(address):
        raise maxminddb.InvalidDatabaseError("The MaxMind DB file's data section contains bad data")

    reader, _, kind, stamp = db._current
    monkeypatch.setattr(db, "_current", (reader, broken, kind, stamp))
    with caplog.at_level(logging.ERROR, logger="gdns.geo"):
        for _ in range(3):
            assert db.lookup(ADDRESS) == Location(None, None, None, None, 32)
    assert caplog.text.count("lookup failed") == 1
