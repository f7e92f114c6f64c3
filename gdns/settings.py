"""Server settings: where to listen, where the zones are, and the limits that protect us."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from gdns.server.rrl import RRLSettings


class SettingsError(ValueError):
    pass


def parse_listen(text: str, default_port: int = 53) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT, a bare host, or :PORT (all IPv4 addresses)."""
    host, port = text, str(default_port)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SettingsError(f"listen address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise SettingsError(f"listen address {text!r}: expected ':PORT' after ']'")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    host = host or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SettingsError(f"listen address {text!r}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"listen address {text!r}: port must be 0-65535")
    return host, int(port)


@dataclass(frozen=True)
class Settings:
    zones: str = "zones"
    listen: tuple[tuple[str, int], ...] = (("0.0.0.0", 53), ("::", 53))
    listen_is_default: bool = False  # then a host without IPv6 serves IPv4 only, with a warning
    reload_interval: float = 2.0  # seconds between looks at the zones folder; 0 = SIGHUP only
    max_udp_size: int = 1232  # DNS flag day 2020: avoid IP fragmentation
    # TCP limits, per process (each --workers process has its own); see gdns.server.tcp
    tcp_idle_timeout: float = 10.0  # seconds with no message in progress and nothing to send
    tcp_read_timeout: float = 2.0  # seconds for a message, from its first byte to its last
    tcp_write_timeout: float = 5.0  # seconds replies may stay blocked by a client not reading
    tcp_max_connections: int = 1024
    tcp_max_connections_per_client: int = 64  # per IPv4 address or IPv6 /56
    tcp_max_buffer: int = 128 * 1024  # bytes per connection: unanswered queries; unsent replies
    chaos_version: str | None = None
    chaos_id: str | None = None
    first_probe_deadline: float = 5.0  # seconds to wait for the first probe round at start-up
    web: tuple[str, int] | None = ("127.0.0.1", 8053)  # None: no web side
    admin_token: str | None = None
    state_file: str | None = None  # operator overrides survive restarts here
    geoip_db: str | None = None  # a GeoIP2/GeoLite2 City or Country database (.mmdb)
    why_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # `TXT _why.<pool>` for these
    query_log_sample: float = 0.0  # share of queries logged to gdns.query; 0 = none
    udp_on_loop: bool = False  # answer UDP on the event loop rather than in a thread per socket
    workers: int = 1  # processes answering DNS; above 1 the main process only manages them
    event_loop: str = "auto"  # auto | uvloop | asyncio (worker processes choose theirs alike)
    log_level: str = "info"  # and the log format, for the worker processes' logs
    log_format: str = "text"
    rrl: RRLSettings = field(default_factory=RRLSettings)  # response rate limiting (UDP); off by default
