"""The fast path against the full path: over a corpus of queries (every name of the test and
example zones, many types, EDNS forms, spellings, RD, both transports, resolvers in several
networks, pools with members down), every reply the fast path gives must be byte for byte
the full path's reply to the same query with the same random state."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from gdns.answer import pools
from gdns.answer.engine import Engine
from gdns.geo import GeoDatabase
from gdns.health.snapshot import HealthSnapshot, MemberHealth
from gdns.server import codec
from gdns.server.handler import Handler
from gdns.server.stats import QueryStats
from gdns.strategy import weighted
from gdns.zone.loader import load_folder

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "tests" / "data"
TYPES = ["A", "AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "SRV", "CAA", "ANY", "DS", "PTR", "HTTPS"]
CLIENTS = ["127.0.0.1", "198.51.100.7", "203.0.113.9", "192.0.2.77", "2001:db8::5", "::ffff:198.51.100.8"]


@pytest.fixture(scope="module")
def zones(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zones")
    for path in [
        DATA / "test.example.yaml",
        DATA / "pools" / "pools.example.yaml",
        *ROOT.glob("zones/*.yaml"),
    ]:
        shutil.copy(path, folder)
    return load_folder(folder, geoip=True)


def health_with_some_down(zones) -> HealthSnapshot:
    """Every third member down (some pools degrade, some fall to when_all_down)."""
    table = {}
    for zone in zones.zones.values():
        for pool in zone.pools.values():
            for i, member in enumerate(pool.members()):
                table[member.key] = MemberHealth("down" if i % 3 == 1 else member.status, 0.01 * (i % 4))
    return HealthSnapshot(table, 1)


def names(zones, rng: random.Random) -> list[str]:
    out = []
    for zone in zones.zones.values():
        origin = zone.origin
        for key in [*zone.nodes, *zone.empty_nonterminals]:
            out.append(".".join(label.decode() for label in key) + ".")
            out.append("nope-" + out[-1] if key != origin else "nope." + out[-1])
        out.append("a.b.below." + ".".join(label.decode() for label in origin) + ".")
    return sorted(set(n.replace("*", "star" + str(rng.randrange(9))) for n in out))


def ecs_option(rng: random.Random) -> dns.edns.ECSOption:
    """A client subnet: IPv4 /24 or /16 in the test GeoIP database's networks and others, or IPv6."""
    choice = rng.randrange(4)
    if choice == 3:
        return dns.edns.ECSOption(f"2001:db8:{rng.randrange(65536):x}::", 56)
    first = rng.choice([198, 203, 192, 81, 1])
    prefix = 16 if choice == 2 else 24
    return dns.edns.ECSOption(f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.0", prefix)


def spell(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def corpus(zones, seed: int = 7):
    rng = random.Random(seed)
    out = []
    for name in names(zones, rng) * 2:
        for qtype in TYPES:
            form = rng.choice(["none", "opt", "do", "small", "cookie", "ecs"])
            kwargs = {}
            if form != "none":
                kwargs = {
                    "use_edns": 0,
                    "payload": 512 if form == "small" else 1232,
                    "want_dnssec": form == "do",
                }
            if form == "cookie":
                kwargs["options"] = [dns.edns.GenericOption(10, rng.randbytes(8))]
            if form == "ecs":
                kwargs["options"] = [ecs_option(rng)]
            message = dns.message.make_query(spell(name, rng), qtype, **kwargs)
            message.id = rng.randrange(65536)
            if rng.random() < 0.5:
                message.flags &= ~dns.flags.RD
            out.append((message.to_wire(), rng.choice(["udp", "udp", "tcp"]), rng.choice(CLIENTS)))
    for zone in zones.zones.values():  # pool names again, from many resolver networks
        for key in zone.pools:
            name = ".".join(label.decode() for label in key) + "."
            for _ in range(16):
                options = [ecs_option(rng)] if rng.random() < 0.4 else None
                message = dns.message.make_query(
                    spell(name, rng),
                    rng.choice(["A", "AAAA"]),
                    use_edns=0 if options else None,
                    options=options,
                )
                address = f"{rng.choice([198, 203, 192])}.{rng.randrange(256)}.{rng.randrange(256)}.1"
                out.append((message.to_wire(), "udp", address))
    return out


def seeded(seed: int) -> None:
    pools._rng.seed(seed)
    weighted._rng.seed(seed)


def test_fast_replies_are_the_full_replies(zones, geoip_db):
    engine = Engine(zones, health=health_with_some_down(zones), geo=GeoDatabase(str(geoip_db)))
    handler = Handler(engine)
    queries = corpus(zones)
    pool_names = {
        ".".join(label.decode() for label in key) + "." for z in zones.zones.values() for key in z.pools
    }
    fast_answered = pool_answered = 0
    for round_ in range(2):  # the first round fills the table, the second reads it
        for i, (wire, transport, address) in enumerate(queries):
            client = (address, 5300)
            counters = dict(engine.counters)
            seeded(i)
            full = handler.full(wire, transport, client, 0.0)
            engine.counters.clear()
            engine.counters.update(counters)
            seeded(i)
            fast = handler.fast.answer(wire, address, transport == "tcp", QueryStats())
            if fast is None:
                continue
            assert fast == full, (round_, dns.message.from_wire(wire).question, transport, address)
            fast_answered += 1
            question = dns.message.from_wire(wire).question[0]
            pool_answered += question.name.to_text().lower() in pool_names and question.rdtype in (1, 28)
    assert len(queries) > 3000
    assert fast_answered > len(queries) * 0.6  # most of the corpus is answered fast on the second round
    assert pool_answered > 200


def test_unusual_queries_stay_on_the_full_path(zones):
    handler = Handler(Engine(zones))
    plain = dns.message.make_query("www.gslb.example.com.", "A")
    handler.full(plain.to_wire(), "udp", ("127.0.0.1", 1), 0.0)
    assert handler.fast.answer(plain.to_wire(), "127.0.0.1", False, QueryStats()) is not None
    notify = dns.message.make_query("www.gslb.example.com.", "A")
    notify.set_opcode(dns.opcode.NOTIFY)
    version1 = dns.message.make_query("www.gslb.example.com.", "A", use_edns=1)
    response = bytearray(plain.to_wire())
    response[2] |= 0x80
    ecs = dns.message.make_query(
        "www.gslb.example.com.", "A", use_edns=0, options=[dns.edns.ECSOption("198.51.100.0", 23)]
    )
    bad_ecs = ecs.to_wire()[:-1] + b"\x65"  # a bit set beyond the /23 source prefix: FORMERR
    formerr = dns.message.from_wire(handler.full(bad_ecs, "udp", ("127.0.0.1", 1), 0.0))
    assert formerr.rcode() == dns.rcode.FORMERR
    for wire in (
        bad_ecs,
        notify.to_wire(),
        version1.to_wire(),
        bytes(response),
        b"\0" * 11,
    ):
        handler.full(wire, "udp", ("127.0.0.1", 1), 0.0)
        assert handler.fast.answer(wire, "127.0.0.1", False, QueryStats()) is None


def test_ecs_queries_get_the_option_back_with_their_scope(zones):
    handler = Handler(Engine(zones))
    client = ("127.0.0.1", 1)
    for name, scope in (("www.gslb.example.com.", 0), ("geo.gslb.example.com.", 24)):
        query = dns.message.make_query(name, "A", use_edns=0, options=[dns.edns.ECSOption("203.0.113.0", 24)])
        full = handler.full(query.to_wire(), "udp", client, 0.0)
        fast = handler.fast.answer(query.to_wire(), "127.0.0.1", False, QueryStats())
        assert fast is not None and fast == full
        [option] = dns.message.from_wire(fast).options
        assert (option.address, option.srclen, option.scopelen) == ("203.0.113.0", 24, scope)


def test_other_edns_options_are_ignored_as_the_full_path_ignores_them(zones):
    handler = Handler(Engine(zones))
    client = ("127.0.0.1", 1)
    bare = dns.message.make_query("www.gslb.example.com.", "A", use_edns=0, want_dnssec=True)
    handler.full(bare.to_wire(), "udp", client, 0.0)
    cookie = dns.message.make_query(
        "www.gslb.example.com.",
        "A",
        use_edns=0,
        want_dnssec=True,
        options=[dns.edns.GenericOption(10, b"12345678"), dns.edns.GenericOption(12, b"\0" * 20)],
    )
    wire = cookie.to_wire()
    fast = handler.fast.answer(wire, "127.0.0.1", False, QueryStats())
    assert fast is not None and fast == handler.full(wire, "udp", client, 0.0)
    for broken in (wire[:-1], wire + b"\0", wire[:-24] + b"\0\x08" + wire[-22:]):  # short, long, ECS code
        assert handler.fast.answer(broken, "127.0.0.1", False, QueryStats()) is None


def test_a_reply_too_big_for_the_client_is_left_to_the_full_path(zones):
    handler = Handler(Engine(zones))
    big = dns.message.make_query("www.gslb.example.com.", "ANY", use_edns=0, payload=4096)
    wire = big.to_wire()
    handler.full(wire, "udp", ("127.0.0.1", 1), 0.0)
    table = handler.fast.tables[1]
    entry = table[wire[12:-11].lower()]
    entry.size = 600  # pretend the reply is bigger than a plain (no EDNS) client can take
    plain = dns.message.make_query("www.gslb.example.com.", "ANY").to_wire()
    handler.fast.tables[0][plain[12:].lower()] = entry
    assert handler.fast.answer(plain, "127.0.0.1", False, QueryStats()) is None
    assert handler.fast.answer(plain, "127.0.0.1", True, QueryStats()) is not None  # TCP takes it


def test_zone_swap_empties_the_table(zones):
    engine = Engine(zones)
    handler = Handler(engine)
    wire = dns.message.make_query("www.gslb.example.com.", "TXT").to_wire()
    handler.full(wire, "udp", ("127.0.0.1", 1), 0.0)
    assert handler.fast.answer(wire, "127.0.0.1", False, QueryStats()) is not None
    engine.zones = load_folder(ROOT / "zones")
    assert handler.fast.answer(wire, "127.0.0.1", False, QueryStats()) is None


def test_an_answer_made_from_swapped_out_zones_is_not_kept(zones):
    # Two UDP threads: one is answering from the old zones on the full path while the other
    # has seen the reload and emptied the table. The old answer must not land in the new table.
    engine = Engine(zones)
    handler = Handler(engine)
    wire = dns.message.make_query("www.gslb.example.com.", "TXT").to_wire()
    query = codec.decode(wire, "udp", ("127.0.0.1", 1))
    old = engine.zones_serial
    answer = engine.answer(query)
    reply, whole = codec.pack(query, answer)
    engine.zones = load_folder(ROOT / "zones")
    assert not any(handler.fast.tables)  # emptied at the swap
    assert handler.fast.answer(wire, "127.0.0.1", False, QueryStats()) is None
    handler.fast.remember(query, answer, reply, whole, old)
    assert not any(handler.fast.tables)
    handler.full(wire, "udp", ("127.0.0.1", 1), 0.0)
    assert handler.fast.answer(wire, "127.0.0.1", False, QueryStats()) is not None


def test_after_a_health_change_fast_and_full_still_agree(zones):
    engine = Engine(zones)
    handler = Handler(engine)
    wire = dns.message.make_query("app.gslb.example.com.", "A").to_wire()
    client = ("198.51.100.9", 1)
    handler.full(wire, "udp", client, 0.0)
    before = handler.fast.answer(wire, client[0], False, QueryStats())
    assert before == handler.full(wire, "udp", client, 0.0)
    engine.health = health_with_some_down(zones)  # the pool's members change state
    after = handler.fast.answer(wire, client[0], False, QueryStats())
    assert after == handler.full(wire, "udp", client, 0.0)


def test_a_pool_reply_too_big_is_neither_picked_nor_counted_twice(tmp_path):
    members = ", ".join(f'{{address: "2001:db8::{i:x}"}}' for i in range(1, 31))
    (tmp_path / "big.example.yaml").write_text(
        "origin: big.example.\nsoa: {mname: ns.big.example., rname: h.big.example.}\n"
        "ns: [ns.big.example.]\nrecords: {ns: {A: 192.0.2.1}}\n"
        f"pools:\n  rr: {{strategy: roundrobin, answers: 30, members: [{members}]}}\n"
    )
    engine = Engine(load_folder(tmp_path))
    handler = Handler(engine)
    client = ("198.51.100.9", 1)
    handler.full(
        dns.message.make_query("rr.big.example.", "AAAA").to_wire(), "tcp", client, 0.0
    )  # remembered
    engine.counters.clear()
    stats = QueryStats()
    small = dns.message.make_query("rr.big.example.", "AAAA").to_wire()  # no EDNS: 512 bytes over UDP
    assert handler.fast.answer(small, client[0], False, stats) is None
    assert not stats.members and not engine.counters  # nothing drawn or counted: the full path does it


def test_a_flood_of_missing_names_fills_a_bounded_share_of_the_table(zones, monkeypatch):
    from gdns.server import fast

    monkeypatch.setattr(fast, "MAX_NXDOMAIN", 50)
    monkeypatch.setattr(fast, "MAX_ENTRIES", 200)
    handler = Handler(Engine(zones))
    hot = dns.message.make_query("www.gslb.example.com.", "TXT").to_wire()
    handler.full(hot, "udp", ("127.0.0.1", 1), 0.0)
    for i in range(120):  # random names: each an NXDOMAIN answer of its own
        handler.full(
            dns.message.make_query(f"r{i}.gslb.example.com.", "A").to_wire(), "udp", ("127.0.0.1", 1), 0.0
        )
    assert handler.fast.size == 51 and handler.fast.nxdomains == 50
    assert handler.fast.answer(hot, "127.0.0.1", False, QueryStats()) is not None  # still there
    repeat = dns.message.make_query("r3.gslb.example.com.", "A").to_wire()
    late = dns.message.make_query("r100.gslb.example.com.", "A").to_wire()
    assert handler.fast.answer(repeat, "127.0.0.1", False, QueryStats()) is not None
    assert handler.fast.answer(late, "127.0.0.1", False, QueryStats()) is None  # left to the full path
    for i in range(160):  # other answers still fill it, up to the whole table, then it starts over
        wire = dns.message.make_query("www.gslb.example.com.", f"TYPE{1000 + i}").to_wire()
        handler.full(wire, "udp", ("127.0.0.1", 1), 0.0)
    assert handler.fast.size < 200 and handler.fast.nxdomains == 0
