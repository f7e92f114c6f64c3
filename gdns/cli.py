"""gdns serve | check."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from pathlib import Path

from gdns import __version__
from gdns.server.rrl import RRLSettings
from gdns.settings import Settings, SettingsError, parse_listen
from gdns.zone.errors import ZoneError, ZoneLoadError
from gdns.zone.loader import SUFFIXES, load_zones, zone_files

DEFAULT_LISTEN = ("0.0.0.0:53", "[::]:53")


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _listen_web(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text, default_port=8053)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _admin_token(args: argparse.Namespace) -> str | None:
    """From --admin-token-file, else GDNS_ADMIN_TOKEN; surrounding blanks are not part of it."""
    if args.admin_token_file:
        try:
            token = Path(args.admin_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"admin token file {args.admin_token_file}: {exc.strerror or exc}") from None
        if not token:
            raise SettingsError(f"admin token file {args.admin_token_file} is empty")
        return token
    return os.environ.get("GDNS_ADMIN_TOKEN", "").strip() or None


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):  # nan and inf too: timers cannot use them
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


MAX_WORKERS = 256


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _workers(text: str) -> int:
    if text == "auto":
        return available_cores()
    value = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to {MAX_WORKERS}, or auto; got {text!r}")
    return value


def _udp_size(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 512 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 512-65535 bytes, got {text}")
    return value


def _tcp_buffer(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if value < 65537:  # one message of the largest size, with its two-byte length
        raise argparse.ArgumentTypeError(f"must be at least 65537 bytes, got {text}")
    return value


def _network(text: str):
    import ipaddress

    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_range(low: int, high: int):
    def parse(text: str) -> int:
        value = int(text) if text.isascii() and text.isdigit() else -1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, got {text!r}")
        return value

    return parse


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors become JSON log records when `--log-format json` was given
    (`json_errors`, set by build_parser), so that stderr stays all JSON."""

    json_errors = False

    def error(self, message: str):
        if self.json_errors:
            from gdns.logs import startup_error

            startup_error("json", message, usage=f"{self.prog} --help")
            self.exit(2)
        super().error(message)


def _asks_for_json(argv: list[str]) -> bool:
    """Whether `argv` sets --log-format json (also as --log-format=json or an abbreviation
    argparse would accept), looked at before parsing so that parse errors can honour it."""
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if len(name) >= len("--log-f") and "--log-format".startswith(name):
            value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            return value == "json"
    return False


def build_parser(json_errors: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(prog="gdns", description="Authoritative DNS server for global traffic distribution.")
    parser.json_errors = json_errors
    parser.add_argument("--version", action="version", version=f"gdns {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the zones in a folder over UDP and TCP")
    serve.json_errors = json_errors
    serve.add_argument(
        "--zones", default="zones", metavar="DIR", help="folder of zone files (default: zones)"
    )
    serve.add_argument(
        "--listen",
        action="append",
        type=_listen,
        metavar="HOST:PORT",
        help="address to serve UDP and TCP on; repeat for more; IPv6 as [::1]:5300 "
        f"(default: {' and '.join(DEFAULT_LISTEN)})",
    )
    serve.add_argument(
        "--reload-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often to look for changed zone files; 0 reloads on SIGHUP only (default: 2)",
    )
    serve.add_argument(
        "--max-udp-size",
        type=_udp_size,
        default=1232,
        metavar="BYTES",
        help="largest UDP reply, whatever EDNS asks for (default: 1232)",
    )
    serve.add_argument(
        "--tcp-idle-timeout",
        type=_positive(float),
        default=10.0,
        metavar="SECONDS",
        help="close a TCP connection with no query in progress and nothing to send for this long "
        "(default: 10)",
    )
    serve.add_argument(
        "--tcp-read-timeout",
        type=_positive(float),
        default=2.0,
        metavar="SECONDS",
        help="close a TCP connection whose query is not complete this long after its first byte; "
        "more bytes do not extend it (default: 2)",
    )
    serve.add_argument(
        "--tcp-write-timeout",
        type=_positive(float),
        default=5.0,
        metavar="SECONDS",
        help="abort a TCP connection whose client has not read our replies for this long, once "
        "--tcp-max-buffer bytes of them wait (default: 5)",
    )
    serve.add_argument(
        "--tcp-max-connections",
        type=_positive(int),
        default=1024,
        metavar="N",
        help="open TCP connections at most, per process; more are refused (default: 1024)",
    )
    serve.add_argument(
        "--tcp-max-connections-per-client",
        type=_positive(int),
        default=64,
        metavar="N",
        help="open TCP connections at most from one IPv4 address or IPv6 /56, per process; "
        "more are refused (default: 64)",
    )
    serve.add_argument(
        "--tcp-max-buffer",
        type=_tcp_buffer,
        default=128 * 1024,
        metavar="BYTES",
        help="per TCP connection: queries held unanswered (then gdns stops reading) and replies "
        "waiting to be sent (then it stops answering); at least 65537 (default: 131072)",
    )
    serve.add_argument(
        "--chaos-version",
        metavar="TEXT",
        help="answer CHAOS TXT version.bind/version.server with TEXT (default: REFUSED)",
    )
    serve.add_argument(
        "--chaos-id",
        metavar="TEXT",
        help="answer CHAOS TXT id.server/hostname.bind with TEXT (default: REFUSED)",
    )
    serve.add_argument(
        "--geoip-db",
        metavar="FILE",
        help="GeoIP2/GeoLite2 City or Country database (.mmdb) for geo rules by country, "
        "continent or distance",
    )
    serve.add_argument(
        "--web",
        type=_listen_web,
        default=("127.0.0.1", 8053),
        metavar="HOST:PORT",
        help="serve /metrics, /healthz, /readyz, /status and the API here (default: 127.0.0.1:8053)",
    )
    serve.add_argument("--no-web", action="store_true", help="no web side at all")
    serve.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="bearer token for the admin API (or set GDNS_ADMIN_TOKEN); without one the admin API is off",
    )
    serve.add_argument(
        "--state-file",
        metavar="FILE",
        help="keep operator overrides (force up/down, drain) here so they survive restarts",
    )
    serve.add_argument(
        "--first-probe-deadline",
        type=_positive(float),
        default=5.0,
        metavar="SECONDS",
        help="at start-up, wait this long at most for every health check's first result (default: 5)",
    )
    serve.add_argument(
        "--event-loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="auto: uvloop when it is installed (pip install 'gdns[speed]'), else asyncio (default: auto)",
    )
    serve.add_argument(
        "--udp-on-loop",
        action="store_true",
        help="answer UDP on the event loop instead of one blocking thread per UDP socket (slower)",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="processes answering DNS, sharing each port (SO_REUSEPORT); auto: one per core. With more "
        "than 1, the main process probes, reloads and serves the web side for all of them (default: 1)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="log lines as text, or as one JSON object per line (default: text)",
    )
    serve.add_argument(
        "--query-log-sample",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="log this share of queries (0-1) to the logger gdns.query at INFO (default: 0, none)",
    )
    serve.add_argument(
        "--why-from",
        action="append",
        type=_network,
        default=[],
        metavar="CIDR",
        help="answer TXT _why.<pool name> (_why6. for AAAA) with the decision trace to resolvers "
        "in CIDR; repeat for more (default: off)",
    )

    rrl = serve.add_argument_group(
        "response rate limiting (UDP only; see docs/rrl.md)",
        "Limits identical UDP responses to one client network, as BIND's and Knot's RRL do; "
        "off unless a rate is given.",
    )
    rrl.add_argument(
        "--rrl-responses-per-second",
        type=_int_range(0, 1_000_000),
        default=0,
        metavar="N",
        help="answers (positive, NODATA, referrals) per second to one client network for one name "
        "and type; 0: not limited, and with the two rates below unset, rate limiting is off (default: 0)",
    )
    rrl.add_argument(
        "--rrl-nxdomains-per-second",
        type=_int_range(0, 1_000_000),
        metavar="N",
        help="NXDOMAIN answers per second to one client network for one zone; 0: not limited "
        "(default: as --rrl-responses-per-second)",
    )
    rrl.add_argument(
        "--rrl-errors-per-second",
        type=_int_range(0, 1_000_000),
        metavar="N",
        help="error answers (REFUSED, FORMERR, SERVFAIL ...) per second to one client network; 0: not "
        "limited (default: as --rrl-responses-per-second)",
    )
    rrl.add_argument(
        "--rrl-slip",
        type=_int_range(0, 10),
        default=2,
        metavar="N",
        help="send every Nth limited response truncated (TC=1) so real clients retry over TCP, drop "
        "the rest; 0: drop all, 1: truncate all (default: 2)",
    )
    rrl.add_argument(
        "--rrl-window",
        type=_int_range(1, 3600),
        default=15,
        metavar="SECONDS",
        help="how long a network that went over the limit stays limited after it slows down, at most "
        "(default: 15)",
    )
    rrl.add_argument(
        "--rrl-ipv4-prefix",
        type=_int_range(0, 32),
        default=24,
        metavar="BITS",
        help="IPv4 clients are counted together per network of this size (default: 24)",
    )
    rrl.add_argument(
        "--rrl-ipv6-prefix",
        type=_int_range(0, 128),
        default=56,
        metavar="BITS",
        help="IPv6 clients are counted together per network of this size (default: 56)",
    )
    rrl.add_argument(
        "--rrl-exempt",
        action="append",
        type=_network,
        default=[],
        metavar="CIDR",
        help="never limit clients in CIDR; repeat for more (default: none)",
    )
    rrl.add_argument(
        "--rrl-table-size",
        type=_int_range(100, 10_000_000),
        default=100_000,
        metavar="N",
        help="accounts (client network and answer) remembered at most, per process (default: 100000)",
    )
    rrl.add_argument(
        "--rrl-log-only",
        action="store_true",
        help="count and log what would be limited, but send every response (to try settings out)",
    )

    check = sub.add_parser("check", help="validate zone files and print every problem")
    check.add_argument("paths", nargs="+", metavar="PATH", help="zone folders or files")
    check.add_argument(
        "--geoip-db",
        metavar="FILE",
        help="check as `gdns serve --geoip-db FILE` would (geo rules by country, continent, distance)",
    )
    explain = sub.add_parser("explain", help="show how gdns answers a name for a given client, and why")
    explain.add_argument("name", help="the query name, e.g. www.gslb.example.com")
    explain.add_argument("--type", default="A", choices=["A", "AAAA"], help="query type (default: A)")
    explain.add_argument("--client", required=True, metavar="IP", help="the resolver's address")
    explain.add_argument("--ecs", metavar="CIDR", help="an EDNS Client Subnet, e.g. 203.0.113.0/24")
    explain.add_argument(
        "--zones", default="zones", metavar="DIR", help="folder of zone files (default: zones)"
    )
    explain.add_argument("--geoip-db", metavar="FILE", help="the GeoIP database gdns serve uses")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


WORKER_COMMAND = "_worker"  # internal: how `serve --workers N` starts its worker processes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER_COMMAND]:
        from gdns.workers import worker_main

        return worker_main(argv[1:])
    args = build_parser(json_errors=_asks_for_json(argv)).parse_args(argv)
    if args.command == "check":
        return check(args.paths, args.geoip_db)
    if args.command == "explain":
        return explain(args)
    return serve(args)


def check(paths: list[str], geoip_db: str | None = None) -> int:
    """Validate every path given and print every problem, then exit 0 only if all are valid."""
    files: list[Path] = []
    problems: list[ZoneError] = []
    if geoip_db:
        from gdns.app import StartupError, open_geoip

        try:
            open_geoip(geoip_db).close()
        except StartupError as exc:
            problems.append(ZoneError(geoip_db, 0, 0, (), str(exc).split(": ", 1)[-1]))
    for path in paths:
        p = Path(path)
        if p.is_file():
            files.append(p)
            continue
        try:
            found = zone_files(p)
        except ZoneLoadError as exc:
            problems.extend(exc.errors)
            continue
        if not found:
            pattern = ", ".join("*" + s for s in SUFFIXES)
            problems.append(ZoneError(str(p), 0, 0, (), f"no zone files ({pattern})"))
        files.extend(found)
    zones = None
    try:
        zones = load_zones(list(dict.fromkeys(files)), geoip=geoip_db is not None) if files else None
    except ZoneLoadError as exc:
        problems.extend(exc.errors)
    if problems:
        for error in sorted(problems):
            print(error, file=sys.stderr)
        bad = len({e.file for e in problems})
        print(f"{len(problems)} problem(s) in {bad} file(s)", file=sys.stderr)
        return 1
    for zone in zones.zones.values():
        print(f"{zone.file}: ok: {zone.origin_label} serial {zone.serial}, {len(zone.nodes)} names")
    return 0


def explain(args: argparse.Namespace) -> int:
    import ipaddress

    from gdns import explain as ex
    from gdns.app import StartupError, open_geoip
    from gdns.zone.loader import load_folder

    try:
        ex.parse_name(args.name)
        ipaddress.ip_address(args.client)
        if args.ecs:
            ex.parse_ecs(args.ecs)
    except ValueError as exc:
        print(f"gdns: error: {exc}", file=sys.stderr)
        return 2
    try:
        geo = open_geoip(args.geoip_db) if args.geoip_db else None
        zones = load_folder(args.zones, geoip=geo is not None)
    except StartupError as exc:
        print(f"gdns: error: {exc}", file=sys.stderr)
        return 1
    except ZoneLoadError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return 1
    data = ex.explain(zones, args.name, args.type, args.client, args.ecs, geo)
    print(ex.to_json(data) if args.json else ex.render(data))
    return 0


def _zone_error_fields(error: ZoneError) -> dict:
    """A zone problem's parts, as fields of its JSON log record."""
    from gdns.zone.errors import format_path

    return {"file": error.file, "line": error.line, "column": error.column, "path": format_path(error.path)}


def event_loop_factory(choice: str):
    """The event loop to run on: uvloop when asked or (auto) when installed, else asyncio's."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError("--event-loop uvloop: uvloop is not installed (pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def serve(args: argparse.Namespace) -> int:
    from gdns.logs import setup, startup_error

    setup(args.log_level, args.log_format)
    from gdns.app import App, StartupError  # imported late: `check` does not need asyncio

    def fail(message: str, prefix: bool = True, **fields) -> None:
        startup_error(args.log_format, message, prefix, **fields)

    listen = tuple(args.listen or (parse_listen(a) for a in DEFAULT_LISTEN))
    try:
        token = _admin_token(args)
    except SettingsError as exc:
        fail(str(exc))
        return 1
    settings = Settings(
        zones=args.zones,
        listen=listen,
        listen_is_default=not args.listen,
        reload_interval=args.reload_interval,
        max_udp_size=args.max_udp_size,
        tcp_idle_timeout=args.tcp_idle_timeout,
        tcp_read_timeout=args.tcp_read_timeout,
        tcp_write_timeout=args.tcp_write_timeout,
        tcp_max_connections=args.tcp_max_connections,
        tcp_max_connections_per_client=args.tcp_max_connections_per_client,
        tcp_max_buffer=args.tcp_max_buffer,
        chaos_version=args.chaos_version,
        chaos_id=args.chaos_id,
        geoip_db=args.geoip_db,
        first_probe_deadline=args.first_probe_deadline,
        web=None if args.no_web else args.web,
        admin_token=token,
        state_file=args.state_file,
        why_from=tuple(args.why_from),
        query_log_sample=args.query_log_sample,
        udp_on_loop=args.udp_on_loop,
        workers=args.workers,
        event_loop=args.event_loop,
        log_level=args.log_level,
        log_format=args.log_format,
        rrl=RRLSettings(
            responses_per_second=args.rrl_responses_per_second,
            nxdomains_per_second=args.rrl_nxdomains_per_second,
            errors_per_second=args.rrl_errors_per_second,
            slip=args.rrl_slip,
            window=args.rrl_window,
            ipv4_prefix=args.rrl_ipv4_prefix,
            ipv6_prefix=args.rrl_ipv6_prefix,
            exempt=tuple(args.rrl_exempt),
            table_size=args.rrl_table_size,
            log_only=args.rrl_log_only,
        ),
    )
    try:
        loop_factory = event_loop_factory(args.event_loop)
    except SettingsError as exc:
        fail(str(exc))
        return 1
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(App(settings).run())
    except StartupError as exc:
        fail(str(exc))
        return 1
    except ZoneLoadError as exc:
        if len(exc.errors) == 1 and exc.errors[0].line == 0:  # about the folder: one line says it
            fail(str(exc.errors[0]))
            return 1
        for error in exc.errors:
            fail(str(error), prefix=False, **_zone_error_fields(error))
        fail(f"{len(exc.errors)} problem(s) in the zones in {args.zones}; not starting")
        return 1
    except KeyboardInterrupt:
        pass
    return 0
