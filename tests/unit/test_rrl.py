"""Response rate limiting (gdns.server.rrl) as pure logic, on a clock the tests move by hand:
the bucket and its window, slip, client networks, exemptions, answer identities, the bounded
table, the log line; then through the Handler, where the fast and full paths must limit alike."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from gdns.answer.engine import Engine
from gdns.cli import build_parser
from gdns.server import codec, rrl
from gdns.server.handler import Handler
from gdns.server.rrl import DROP, SEND, SLIP, RateLimiter, RRLSettings
from gdns.server.stats import QueryStats
from gdns.zone.loader import load_folder

ROOT = Path(__file__).resolve().parent.parent.parent
WWW = b"\x00\x03www\x07example\x00\x00\x01\x00\x01"  # an identity: positive, www.example. A IN
OTHER = b"\x00\x05other\x07example\x00\x00\x01\x00\x01"


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock | None = None, **settings) -> RateLimiter:
    settings.setdefault("responses_per_second", 10)
    return RateLimiter(RRLSettings(**settings), clock=clock or Clock())


def run(limit: RateLimiter, count: int, address: str = "192.0.2.1", identity: bytes = WWW, stats=None):
    stats = stats if stats is not None else QueryStats()
    return [limit.check(address, identity, stats) for _ in range(count)]


# -- the bucket ----------------------------------------------------------------------------------


def test_a_burst_of_rate_responses_then_limited():
    actions = run(limiter(slip=0), 25)
    assert actions[:10] == [SEND] * 10
    assert actions[10:] == [DROP] * 15


def test_credit_comes_back_at_the_rate():
    clock = Clock()
    limit = limiter(clock, slip=0)
    assert run(limit, 10) == [SEND] * 10
    assert run(limit, 1) == [DROP]
    clock.now += 0.5  # half a second: five responses' worth, less the one just refused
    assert run(limit, 5) == [SEND] * 4 + [DROP]
    clock.now += 10  # a long pause: a full burst again, never more
    assert run(limit, 11) == [SEND] * 10 + [DROP]


def test_a_steady_client_under_the_rate_is_never_limited():
    clock = Clock()
    limit = limiter(clock, slip=0)
    for _ in range(200):
        assert run(limit, 1) == [SEND]
        clock.now += 0.11  # 9 per second against a limit of 10


def test_a_flood_stays_limited_for_the_window_after_it_stops():
    clock = Clock()
    limit = limiter(clock, slip=0, window=5)
    for _ in range(100):  # 10 s at 100/s: the debt reaches its cap (1 s + the window)
        run(limit, 10)
        clock.now += 0.1
    assert run(limit, 1) == [DROP]
    clock.now += 4.5  # quiet, but less than the window
    assert run(limit, 1) == [DROP]
    clock.now += 0.7  # the window has passed since the flood stopped
    assert run(limit, 1) == [SEND]


def test_a_flood_above_the_rate_gets_nothing_once_its_credit_is_spent():
    clock = Clock()
    limit = limiter(clock, slip=0)
    sent = []
    for _ in range(30):  # 3 s at 20/s against 10/s: limited responses are charged too
        sent.append(run(limit, 2).count(SEND))
        clock.now += 0.1
    assert 10 <= sum(sent[:10]) <= 20  # the burst, and the credit earned while the debt built up
    assert sum(sent[10:]) == 0


@pytest.mark.parametrize(("slip", "slipped"), [(0, 0), (1, 90), (2, 45), (3, 30), (10, 9)])
def test_slip_sends_every_nth_limited_response_truncated(slip, slipped):
    stats = QueryStats()
    actions = run(limiter(slip=slip), 100, stats=stats)
    assert actions[:10] == [SEND] * 10
    assert actions.count(SLIP) == slipped
    assert actions.count(DROP) == 90 - slipped
    if slip > 1:
        assert actions[10 + slip - 1] == SLIP and actions[10:11] == [DROP]
    assert stats.limited.get("slipped", 0) == slipped
    assert stats.limited.get("dropped", 0) == 90 - slipped


def test_errors_are_dropped_never_slipped():
    actions = run(limiter(slip=1), 30, identity=rrl.ERROR_IDENTITY)
    assert actions == [SEND] * 10 + [DROP] * 20


def test_log_only_counts_but_sends():
    stats = QueryStats()
    actions = run(limiter(log_only=True), 30, stats=stats)
    assert actions == [SEND] * 30
    assert stats.limited == {"log_only": 20}


# -- rates per class ------------------------------------------------------------------------------


def test_each_class_has_its_own_rate():
    limit = limiter(responses_per_second=10, nxdomains_per_second=2, errors_per_second=0, slip=0)
    nxdomain = bytes([rrl.NXDOMAIN]) + b"\x07example\x00"
    assert run(limit, 4, identity=nxdomain) == [SEND] * 2 + [DROP] * 2
    assert run(limit, 50, identity=rrl.ERROR_IDENTITY) == [SEND] * 50  # 0: not limited
    assert run(limit, 11).count(SEND) == 10


def test_settings_rates_default_to_the_responses_rate_and_zero_is_off():
    assert RRLSettings().enabled is False
    assert RRLSettings(responses_per_second=5).rates == (5, 5, 5)
    assert RRLSettings(responses_per_second=5, errors_per_second=0).rates == (5, 5, 0)
    assert RRLSettings(nxdomains_per_second=3).enabled  # NXDOMAIN alone can be limited
    assert RRLSettings(nxdomains_per_second=3).rates == (0, 3, 0)


# -- client networks and exemptions -------------------------------------------------------------


def test_ipv4_clients_share_an_account_per_slash_24():
    limit = limiter(slip=0)
    assert run(limit, 10, "192.0.2.1") == [SEND] * 10
    assert run(limit, 1, "192.0.2.200") == [DROP]  # same /24
    assert run(limit, 10, "192.0.3.1") == [SEND] * 10  # another /24
    assert run(limit, 10, "192.0.2.1", OTHER) == [SEND] * 10  # another answer


def test_ipv6_clients_share_an_account_per_slash_56():
    limit = limiter(slip=0)
    assert run(limit, 10, "2001:db8:0:1::1") == [SEND] * 10
    assert run(limit, 1, "2001:db8:0:ff::2") == [DROP]  # same /56
    assert run(limit, 1, "2001:db8:0:100::1") == [SEND]  # the next /56
    assert run(limit, 1, "192.0.2.1") == [SEND]  # IPv4 accounts are apart from IPv6 ones
    assert run(limit, 1, "fe80::1%lo") == [SEND]  # a scope is not part of the address


def test_prefixes_are_configurable():
    limit = limiter(slip=0, ipv4_prefix=32, ipv6_prefix=64)
    assert run(limit, 10, "192.0.2.1") == [SEND] * 10
    assert run(limit, 1, "192.0.2.2") == [SEND]
    assert run(limit, 10, "2001:db8::1") == [SEND] * 10
    assert run(limit, 1, "2001:db8::2") == [DROP]  # same /64
    assert run(limit, 1, "2001:db8:0:1::1") == [SEND]
    wide = limiter(slip=0, ipv4_prefix=16)
    run(wide, 10, "10.1.2.3")
    assert run(wide, 1, "10.1.200.3") == [DROP]


def test_exempt_networks_are_never_limited():
    exempt = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("2001:db8:1::/48"))
    limit = limiter(slip=0, exempt=exempt)
    assert run(limit, 100, "127.0.0.1") == [SEND] * 100
    assert run(limit, 100, "2001:db8:1:2::3") == [SEND] * 100
    assert run(limit, 11, "2001:db8:2::1").count(DROP) == 1
    assert run(limit, 11, "128.0.0.1").count(DROP) == 1
    assert len(limit.table) == 2  # exempt clients take no room in the table


def test_network_text_for_the_log():
    limit = limiter(ipv6_prefix=56)
    assert limit.network_text(limit._network("192.0.2.77")) == "192.0.2.0/24"
    assert limit.network_text(limit._network("2001:db8:0:1ff::1")) == "2001:db8:0:100::/56"


# -- the table stays bounded ---------------------------------------------------------------------


def test_a_flood_of_sources_and_names_cannot_grow_the_table_past_its_size():
    clock = Clock()
    limit = limiter(clock, table_size=100)
    stats = QueryStats()
    for i in range(5000):
        name = b"\x00\x04n%03d\x07example\x00\x00\x01\x00\x01" % (i % 1000)
        limit.check(f"10.{i // 256 % 256}.{i % 256}.1", name, stats)
        clock.now += 0.001
        assert len(limit.table) <= 100
    assert len(limit.nets) <= 100


def test_eviction_keeps_the_accounts_being_limited():
    clock = Clock()
    limit = limiter(clock, table_size=100, slip=0)
    assert run(limit, 30, "198.51.100.1").count(DROP) == 20  # being limited, and old
    for i in range(1000):  # churn: one query each from many networks
        run(limit, 1, f"10.0.{i % 250}.{i // 250}", OTHER + bytes([i % 7]))
        clock.now += 0.0001
    assert run(limit, 1, "198.51.100.1") == [DROP]  # not forgotten, so still limited
    assert limit.evicted == 0


def test_when_every_account_is_being_limited_the_oldest_go(caplog):
    clock = Clock()
    limit = limiter(clock, table_size=100, slip=0)
    with caplog.at_level(logging.WARNING, logger="gdns.rrl"):
        for i in range(150):
            run(limit, 12, f"10.0.{i}.1")  # each network over its limit
    assert len(limit.table) <= 100
    assert limit.evicted >= 25
    assert sum("rate limiting table full" in r.getMessage() for r in caplog.records) == 1  # not per packet
    assert limit.export() == {"rrl_entries": len(limit.table), "rrl_evicted": limit.evicted}


# -- the log line --------------------------------------------------------------------------------


def test_a_network_that_begins_to_be_limited_is_logged_once(caplog):
    clock = Clock()
    limit = limiter(clock)
    with caplog.at_level(logging.INFO, logger="gdns.rrl"):
        for _ in range(50):
            run(limit, 10, "192.0.2.9")  # 100/s for 5 s: limited throughout
            clock.now += 0.1
        run(limit, 20, "198.51.100.3", OTHER)  # another account, within LOG_EVERY: counted only
        clock.now += rrl.LOG_EVERY
        run(limit, 20, "203.0.113.5")
    lines = [r.getMessage() for r in caplog.records if r.name == "gdns.rrl"]
    assert len(lines) == 2, lines
    assert "192.0.2.0/24" in lines[0] and "www.example. A" in lines[0] and "over 10/s" in lines[0]
    assert "203.0.113.0/24" in lines[1] and "1 more account(s)" in lines[1]


# -- answer identities from real answers ---------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    return Engine(load_folder(ROOT / "zones"))


def _identity(engine, name: str, qtype: str = "A") -> bytes:
    query = codec.decode(dns.message.make_query(name, qtype).to_wire(), "udp", ("192.0.2.1", 1))
    return rrl.identity(query, engine.answer(query))


def test_identities(engine):
    www = _identity(engine, "www.gslb.example.com.")
    assert www[0] == rrl.POSITIVE and rrl.describe(www) == "www.gslb.example.com. A"
    assert _identity(engine, "WWW.gslb.example.COM.") == www  # the spelling does not matter
    assert _identity(engine, "www.gslb.example.com.", "AAAA") != www
    # NXDOMAIN: one account per zone, whatever the name (a random-name flood is one account)
    nx = {_identity(engine, f"nope{i}.gslb.example.com.") for i in range(5)}
    assert len(nx) == 1 and rrl.describe(nx.pop()) == "gslb.example.com. (nxdomain)"
    # NODATA: per name, whatever the type
    nodata = _identity(engine, "www.gslb.example.com.", "SRV")
    assert nodata[0] == rrl.NODATA and _identity(engine, "www.gslb.example.com.", "NAPTR") == nodata
    # a referral: the delegation point
    referral = {_identity(engine, f"host{i}.sub.gslb.example.com.") for i in range(3)}
    assert len(referral) == 1 and rrl.describe(referral.pop()) == "sub.gslb.example.com. (referrals)"
    # a wildcard's answers: the wildcard
    wild = {_identity(engine, f"x{i}.static.gslb.example.com.") for i in range(3)}
    assert len(wild) == 1 and rrl.describe(wild.pop()) == "*.static.gslb.example.com. A"
    # errors: the network alone
    assert _identity(engine, "www.elsewhere.example.") == rrl.ERROR_IDENTITY
    assert _identity(engine, "gslb.example.com.", "AXFR") == rrl.ERROR_IDENTITY


# -- through the Handler: UDP only, the fast path as the full path -------------------------------


def _handler(engine, **settings) -> Handler:
    handler = Handler(engine)
    settings.setdefault("responses_per_second", 5)
    handler.fast.rrl = RateLimiter(RRLSettings(**settings), clock=Clock())
    return handler


def test_the_fast_path_limits_as_the_full_path(engine):
    wire = dns.message.make_query("www.gslb.example.com.", "A", use_edns=0, want_dnssec=True).to_wire()
    client = ("192.0.2.1", 5300)
    fast = _handler(engine, slip=2)
    replies = [fast(wire, "udp", client) for _ in range(20)]  # the first by the full path, then fast
    full = _handler(engine, slip=2)
    full_replies = [full.full(wire, "udp", client, 0.0) for _ in range(20)]  # always the full path
    assert fast.stats.full == 1 and full.stats.full == 20
    assert [r or None for r in replies] == full_replies
    sent = [r for r in replies if r]
    assert len(sent) == 5 + 15 // 2
    slip = dns.message.from_wire(sent[-1])
    assert slip.flags & dns.flags.TC and slip.flags & dns.flags.AA and slip.rcode() == dns.rcode.NOERROR
    assert not slip.answer and not slip.authority and slip.edns == 0 and slip.ednsflags & dns.flags.DO
    assert str(slip.question[0].name) == "www.gslb.example.com." and slip.id == dns.message.from_wire(wire).id
    assert fast.stats.limited == {"dropped": 8, "slipped": 7} == full.stats.limited
    assert fast.stats.truncated == full.stats.truncated == 7
    assert sum(fast.stats.responses.values()) == 12  # the dropped were not sent
    assert sum(fast.stats.queries.values()) == 20


def test_pool_answers_and_nxdomain_are_limited_on_the_fast_path(engine):
    handler = _handler(engine, slip=1)
    client = ("192.0.2.1", 5300)
    for name in ("app.gslb.example.com.", "nope.gslb.example.com."):
        wire = dns.message.make_query(name, "A").to_wire()
        replies = [dns.message.from_wire(handler(wire, "udp", client)) for _ in range(8)]
        assert [bool(r.flags & dns.flags.TC) for r in replies] == [False] * 5 + [True] * 3
        assert all(not r.answer and not r.authority for r in replies[5:])
    assert handler.stats.full == 2


def test_tcp_is_never_limited(engine):
    handler = _handler(engine, slip=0)
    wire = dns.message.make_query("www.gslb.example.com.", "A").to_wire()
    replies = [handler(wire, "tcp", ("192.0.2.1", 5300)) for _ in range(50)]
    assert all(replies) and not handler.stats.limited and not handler.fast.rrl.table
    udp = [handler(wire, "udp", ("192.0.2.1", 5300)) for _ in range(10)]
    assert sum(1 for r in udp if r) == 5


def test_an_error_is_limited_per_network_and_dropped(engine):
    handler = _handler(engine, slip=1)
    client = ("192.0.2.1", 5300)
    replies = []
    for i in range(10):  # REFUSED for names that are not ours, and FORMERR for garbage
        replies.append(handler(dns.message.make_query(f"n{i}.elsewhere.", "A").to_wire(), "udp", client))
    replies.append(handler(b"\x12\x34\x00\x00\x00\x02" + b"\x00" * 6, "udp", client))
    assert [bool(r) for r in replies] == [True] * 5 + [False] * 6
    assert handler.stats.limited == {"dropped": 6}


class Recorder:
    """A stand-in limiter that gives every response `action` (errors are never slipped, as in
    the real one) and records the accounts it was asked about."""

    def __init__(self, action: int):
        self.action = action
        self.asked: list[tuple[str, bytes]] = []

    def check(self, address: str, identity: bytes, stats) -> int:
        self.asked.append((address, identity))
        return DROP if identity[0] == rrl.ERROR and self.action == SLIP else self.action


@pytest.mark.parametrize("action", [SLIP, DROP])
def test_over_the_fast_path_corpus_both_paths_limit_alike(action, geoip_db, tmp_path):
    from gdns.geo import GeoDatabase
    from tests.unit.test_fast import DATA, corpus, health_with_some_down, seeded

    files = [DATA / "test.example.yaml", DATA / "pools" / "pools.example.yaml", *ROOT.glob("zones/*.yaml")]
    for path in files:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    zones = load_folder(tmp_path, geoip=True)
    engine = Engine(zones, health=health_with_some_down(zones), geo=GeoDatabase(str(geoip_db)))
    handler = Handler(engine)
    handler.fast.rrl = recorder = Recorder(action)
    compared = slipped = 0
    for wire, transport, address in corpus(zones) * 2:  # the first round fills the table
        counters = dict(engine.counters)
        seeded(1)
        full = handler.full(wire, transport, (address, 5300), 0.0)
        engine.counters.clear()
        engine.counters.update(counters)
        seeded(1)
        asked = len(recorder.asked)
        fast = handler.fast.answer(wire, address, transport == "tcp", QueryStats())
        if fast is None:
            continue
        compared += 1
        assert (fast or None) == full
        if transport == "udp":  # both asked about the same account; TCP: neither asked
            assert recorder.asked[asked - 1] == recorder.asked[asked], dns.message.from_wire(wire).question
            slipped += bool(fast)
        else:
            assert len(recorder.asked) == asked and fast
    assert compared > 3000
    assert (slipped > 1500) if action == SLIP else (slipped == 0)


# -- the flags -----------------------------------------------------------------------------------


def test_serve_flags():
    args = build_parser().parse_args(
        ["serve", "--rrl-responses-per-second", "20", "--rrl-slip", "3", "--rrl-window", "30"]
        + ["--rrl-ipv4-prefix", "22", "--rrl-ipv6-prefix", "48", "--rrl-exempt", "10.0.0.0/8"]
        + ["--rrl-exempt", "2001:db8::/32", "--rrl-nxdomains-per-second", "5", "--rrl-table-size", "5000"]
    )
    assert (args.rrl_responses_per_second, args.rrl_slip, args.rrl_window) == (20, 3, 30)
    assert (args.rrl_ipv4_prefix, args.rrl_ipv6_prefix, args.rrl_table_size) == (22, 48, 5000)
    assert [str(n) for n in args.rrl_exempt] == ["10.0.0.0/8", "2001:db8::/32"]
    assert (args.rrl_nxdomains_per_second, args.rrl_errors_per_second, args.rrl_log_only) == (5, None, False)
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.rrl_responses_per_second, defaults.rrl_slip, defaults.rrl_window) == (0, 2, 15)


@pytest.mark.parametrize(
    "bad",
    [
        ["--rrl-slip", "11"],
        ["--rrl-window", "0"],
        ["--rrl-ipv4-prefix", "33"],
        ["--rrl-ipv6-prefix", "129"],
        ["--rrl-responses-per-second", "-1"],
        ["--rrl-responses-per-second", "1.5"],
        ["--rrl-exempt", "10.0.0.0/33"],
    ],
)
def test_serve_flags_out_of_range(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", *bad])
    assert "error" in capsys.readouterr().err


def test_the_docs_name_every_flag_and_only_real_ones():
    import re

    text = (ROOT / "docs" / "rrl.md").read_text(encoding="utf-8")
    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]
    flags = {option for action in serve._actions for option in action.option_strings if "rrl" in option}
    assert set(re.findall(r"--rrl-[a-z0-9-]+[a-z0-9]", text)) == flags
