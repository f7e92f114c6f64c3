"""gdns.geo: great-circle distance and GeoIP lookups over the tiny test database."""

import ipaddress

import pytest

from gdns.geo import GeoDatabase, Location, distance_km

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
