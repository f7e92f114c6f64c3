"""gdns: an authoritative DNS server for global traffic distribution."""

__version__ = "0.1.0"
