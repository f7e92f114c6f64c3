"""A tiny GeoIP2 City database over documentation prefixes, built with mmdb-writer."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# network -> (country, continent, latitude, longitude)
NETWORKS = {
    "192.0.2.0/25": ("DE", "EU", 50.11, 8.68),  # Frankfurt
    "192.0.2.128/25": ("NO", "EU", 59.91, 10.75),  # Oslo
    "198.51.100.0/24": ("US", "NA", 39.04, -77.49),  # Ashburn
    "203.0.113.0/25": ("SG", "AS", 1.35, 103.82),  # Singapore
    "203.0.113.128/25": ("BR", "SA", -23.55, -46.63),  # São Paulo
    "2001:db8:1::/48": ("GB", "EU", 51.51, -0.13),  # London
    "2001:db8:2::/48": ("US", "NA", 37.77, -122.42),  # San Francisco
}


def build(path: Path, networks: dict | None = None, database_type: str = "GeoIP2-City") -> Path:
    """`networks` as NETWORKS (the default) maps network -> (country, continent, lat, lon)."""
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for network, (country, continent, lat, lon) in (networks or NETWORKS).items():
        writer.insert_network(
            IPSet([network]),
            {
                "country": {"iso_code": country},
                "continent": {"code": continent},
                "location": {"latitude": lat, "longitude": lon},
            },
        )
    writer.to_db_file(str(path))
    return path
