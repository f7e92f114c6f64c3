"""What keeps large zones fast and small, without changing what any zone means: the event-based
YAML builder, positions worked out on demand, the derived serial in pieces, compiling that
takes the document apart, names kept packed, shared pool values, the collector paused around a
load, and replaced zones freed a piece at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sys
import weakref
from pathlib import Path

import pytest
import yaml
from dnslib import QTYPE, DNSLabel

from gdns.zone import rdata, yamlsafe
from gdns.zone import reload as reload_module
from gdns.zone.compile import _serial, compile_zone, streaming_compiler
from gdns.zone.errors import ZoneLoadError
from gdns.zone.loader import load_folder
from gdns.zone.reload import ZoneReloader, retire
from gdns.zone.yamlsafe import load
from gdns.zone.zoneset import Packed

ZONE = """\
origin: example.com.
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com.]
records:
  ns1: {A: 192.0.2.1}
  www: {A: [192.0.2.10, 192.0.2.11], AAAA: "2001:db8::10", TXT: "NO"}
  Mail: {MX: ["10 ns1.example.com.", {preference: 20, exchange: mx.example.net.}]}
  alias.example.com.: {CNAME: www.example.com.}
  same: {A: 192.0.2.10}
pools:
  app:
    strategy: failover
    groups:
      a: {members: [{address: 192.0.2.20, weight: 2}, {address: "2001:db8::20"}]}
      b: {members: [{address: 192.0.2.10, status: drain}]}
  app2: {members: [{address: 192.0.2.20}]}
"""


def nodes_text(text: str):
    return yamlsafe._load_nodes(text, "z.yaml")


@pytest.mark.parametrize(
    "text",
    [
        ZONE,
        "a: 1\nb: [true, false, ~, 1.5, '010', 010, -3, +4]\nc: {d: {e: [f, {g: h}]}}\n",
        "---\na: 'x'\n...\n",
        "\ufeffa: 1",
        "[1, [2, [3]], {}]",
        "plain scalar",
        "a: |\n  text\n  more\nb: >\n  folded\n",
        'a: "\\t\\u00e9"\n',
        "1: one\ntrue: two\nNO: three\n",
        "a: !!str 5",  # the builders below step aside for these
        "a: &x [1]\nb: *x\n",
        "a: 1\na: 2\n",
        "? [x]\n: 1\n",
        "a: 1\n---\nb: 2\n",
        "a: [1, 2\n",
        "",
        "# only a comment\n",
        "a: " + "[" * 70 + "]" * 70,
    ],
)
def test_both_builders_give_the_same_data_or_the_same_error(text):
    try:
        expected = nodes_text(text)
    except yamlsafe.YAMLProblem as exc:
        with pytest.raises(yamlsafe.YAMLProblem) as info:
            load(text, "z.yaml")
        assert info.value.error == exc.error
        return
    doc = load(text, "z.yaml")
    assert doc.data == expected.data
    assert type(doc.data) is type(expected.data)
    if doc.packed is None:
        return
    # built from events: the same positions, looked up one at a time or all in one pass
    wanted = [(path, False) for path in expected.values] + [(path, True) for path in expected.keys]
    wanted += [(path + ("missing", 0), key) for path, key in wanted]  # nearest ancestor
    for path, key in wanted:
        assert doc.where(path, key) == expected.where(path, key)
    doc.deferred = True
    errors = [doc.error(path, "x", key) for path, key in wanted]
    doc.deferred = False
    assert doc.resolve(errors) == [expected.error(path, "x", key) for path, key in wanted]


@pytest.mark.parametrize("text", ["a: &x [1]\nb: *x\n", "a: !!str 5", "a: 1\na: 2\n", "", "a: [1\n"])
def test_the_event_builder_steps_aside_for_the_unusual(text):
    assert yamlsafe._fast(text) is yamlsafe._ASIDE


def test_positions_are_looked_up_when_asked_for():
    doc = load(ZONE, "z.yaml")
    assert doc.packed is not None and not doc.values
    assert doc.where(("records", "www", "A", 1)) == (6, 25)
    assert doc.where(("records", "Mail"), key=True) == (7, 3)
    assert str(doc.error(("pools", "app", "groups", "b"), "bad")) == "z.yaml:15:10: pools.app.groups.b: bad"


def test_a_compile_finds_the_positions_of_its_errors_in_one_pass(monkeypatch):
    text = ZONE.replace("192.0.2.11", "192.0.2.311").replace("weight: 2", "weight: -2")
    passes = []
    real = yamlsafe._positions
    monkeypatch.setattr(yamlsafe, "_positions", lambda *a: passes.append(1) or real(*a))
    _, errors = compile_zone(load(text, "z.yaml"), "d")
    _, expected = compile_zone(nodes_text(text), "d")
    assert errors == expected and len(errors) == 2
    assert passes == [1]


CHECKS = "checks:\n  web: {type: http, port: 8080, path: /healthz}\n"
CHECKED = (
    ZONE.replace("pools:\n", CHECKS + "pools:\n")
    .replace("192.0.2.20", "127.0.0.20")
    .replace("  app2: {members:", "  app2: {check: web, members:")
)


def move_records_last(text: str) -> str:
    lines = text.splitlines(keepends=True)
    start, end = lines.index("records:\n"), lines.index("pools:\n")
    return "".join(lines[:start] + lines[end:] + lines[start:end])


def serial_of(text: str) -> int:
    zone, errors = compile_zone(load(text, "z.yaml"), "d")
    assert errors == []
    return zone.serial


def test_the_derived_serial_ignores_entry_order_and_follows_every_value():
    lines = ZONE.splitlines()
    start, end = lines.index("records:") + 1, lines.index("pools:")
    shuffled = lines[:start] + list(reversed(lines[start:end])) + lines[end:]
    assert serial_of("\n".join(shuffled)) == serial_of(ZONE)
    assert serial_of(ZONE + "ttl: 7\n") != serial_of(ZONE)
    for old, new in [("192.0.2.11", "192.0.2.12"), ("weight: 2", "weight: 3"), ("same:", "Same:")]:
        assert serial_of(ZONE.replace(old, new, 1)) != serial_of(ZONE), old
    # Two entries swapping their values is a change (the hash is of key and value together).
    swapped = ZONE.replace("ns1: {A: 192.0.2.1}", "ns1: {A: 192.0.2.10}").replace(
        "same: {A: 192.0.2.10}", "same: {A: 192.0.2.1}"
    )
    assert serial_of(swapped) != serial_of(ZONE)
    assert _serial({"a": None, "b": [1, 2], "c": {"d": float("inf")}}) > 0
    assert _serial([1, 2]) != _serial([2, 1])


def read(tmp_path: Path, text: str):
    (tmp_path / "z.yaml").write_text(text)
    return load_folder(tmp_path).zones[(b"example", b"com")]


@pytest.mark.parametrize(
    "text",
    [
        ZONE,
        ZONE.replace("origin: example.com.\n", "") + "origin: example.com.\n",  # origin last: kept
        ZONE + "ttl: 77\n",  # a TTL after the records: read again
        ZONE.replace("records:\n", "records:\n  '@': {TXT: apex}\n"),
        ZONE.replace("origin: example.com.", "origin: 5"),  # errors, the same either way
        ZONE.replace("  same: {A: 192.0.2.10}", "  same: {A: 192.0.2.10}\n  bad..name: {A: 1}"),
        CHECKED,  # checks before the pools that use them
        CHECKED.replace(CHECKS, "") + CHECKS,  # checks after them: read again
        move_records_last(ZONE),  # records after streamed pools: read the ordinary way
        move_records_last(ZONE).replace("  same: {A: 192.0.2.10}", "  app2: {A: 192.0.2.9}"),  # a clash
        ZONE.replace("  app2:", "  app.example.com.:"),  # a pool written twice
    ],
)
def test_records_compiled_as_they_are_read_make_the_zone_read_whole(tmp_path, text):
    whole, errors = compile_zone(load(text, "z.yaml"), "d")
    try:
        streamed = read(tmp_path, text)
    except ZoneLoadError as exc:
        assert whole is None
        assert [(e.line, e.column, e.path, e.message) for e in exc.errors] == [
            (e.line, e.column, e.path, e.message) for e in errors
        ]
        return
    assert errors == []
    assert dataclasses.replace(streamed, file="z.yaml", digest="d") == whole
    assert streamed.serial == whole.serial


def test_the_sink_takes_records_once_the_origin_is_known_and_steps_aside_for_twice_a_name(tmp_path):
    taken = []
    doc = load(ZONE, "z.yaml", lambda doc, root, section, key, value: taken.append((section, key)) or True)
    assert doc.packed is not None and doc.data["records"] == {} and doc.data["pools"] == {}
    assert taken == [
        *[("records", key) for key in ["ns1", "www", "Mail", "alias.example.com.", "same"]],
        ("pools", "app"),
        ("pools", "app2"),
    ]
    compiler = streaming_compiler("d")
    doc = load(ZONE, "z.yaml", compiler.take)
    assert compiler.doc is doc and compiler.stream and len(compiler.nodes) == 8  # with the pools' names
    twice = ZONE.replace("  same:", "  www.example.com.: {TXT: x}\n  same:")
    compiler = streaming_compiler("d")
    doc = load(twice, "z.yaml", compiler.take)
    assert doc.packed is None and compiler.doc is not doc  # read by the node-based builder
    _, errors = compile_zone(doc, "d", compiler=compiler)
    assert [e.message for e in errors] == ["same name as records.www; merge them"]
    again = ZONE.replace("  same: {A: 192.0.2.10}", "  same: {A: 192.0.2.10}\n  same: {A: 192.0.2.9}")
    with pytest.raises(ZoneLoadError, match="duplicate key 'same' \\(first defined at line 9\\)"):
        read(tmp_path, again)
    late = ZONE.replace("origin: example.com.\n", "") + "origin: example.com.\n"
    compiler = streaming_compiler("d")
    doc = load(late, "z.yaml", compiler.take)
    assert compiler.stream is False and len(doc.data["records"]) == 5  # no origin yet: kept


def test_compiling_with_consume_takes_the_document_apart_and_builds_the_same_zone():
    kept, _ = compile_zone(load(ZONE, "z.yaml"), "d")
    doc = load(ZONE, "z.yaml")
    taken, errors = compile_zone(doc, "d", consume=True)
    assert errors == []
    assert doc.data["records"] == {} and doc.data["pools"] == {}
    assert taken == kept
    assert doc.error(("origin",), "x").line == 1  # positions still come from the source


PACKED = """\
origin: Example.COM.
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
ns: [ns1.example.com., Ns2.Elsewhere.example.]
records:
  ns1: {A: 192.0.2.1, AAAA: ["2001:db8::1", "2001:db8::2"]}
  Www:
    A: {ttl: 60, values: [192.0.2.10, 192.0.2.11]}
    TXT: ["v=1 x", "é", "%s"]
    CAA: '0 issue "ca.example"'
  mail: {MX: ["10 Ns1.Example.com.", "0 ."]}
  _sip._udp: {SRV: "10 5 5060 Sip.Example.net."}
  alias: {CNAME: Www.Example.COM.}
  ptr: {PTR: host.example.net.}
  child: {NS: [ns.child.example.com.]}
  ns.child: {A: 192.0.2.53}
  app: {TXT: "beside a pool"}
pools:
  app: {members: [{address: 192.0.2.20}]}
""" % ("t" * 300)


def test_names_with_only_static_records_are_kept_packed_and_unpack_to_what_was_written():
    zone, errors = compile_zone(load(PACKED, "z.yaml"), "d")
    assert errors == []
    apex, app = (b"example", b"com"), (b"app", b"example", b"com")
    assert set(zone.nodes.objects) == {apex, app}  # the apex, a pool's name: kept as objects
    assert zone.nodes[app] is zone.nodes.objects[app] and zone.nodes[app].pool is zone.pools[app]
    assert set(zone.nodes[app].rrsets) == {QTYPE.TXT}
    packed = list(zone.nodes.packed.names())
    assert len(packed) == len(zone.nodes) - 2 == 8
    # Unpacked, each name has the rrsets the zone's text gives it, value for value.
    reference = yaml.safe_load(PACKED)["records"]
    for name in packed:
        node = zone.nodes[name]
        assert node.name == name and node.pool is None
        key = next(k for k in reference if k.lower().split(".") == [x.decode() for x in name[:-2]])
        written = reference[key]
        assert {QTYPE.get(t) for t in node.rrsets} == set(written)
        for rtype, rrset in node.rrsets.items():
            assert rrset.labels == name and rrset.rtype == rtype
            value = written[QTYPE.get(rtype)]
            values = value["values"] if isinstance(value, dict) else value
            values = values if isinstance(values, list) else [values]
            assert rrset.ttl == (value["ttl"] if isinstance(value, dict) else 300)
            parsed = [rdata.PARSERS[QTYPE.get(rtype)](v) for v in values]
            assert list(rrset.rdatas) == parsed
            assert [repr(rd) for rd in rrset.rdatas] == [repr(rd) for rd in parsed]  # case kept
    # What the engine reads a node through behaves as the mapping it stands for.
    www = (b"www", b"example", b"com")
    assert www in zone.nodes and (b"nope", b"example", b"com") not in zone.nodes
    assert zone.nodes.get((b"nope",)) is None and zone.nodes.get((b"nope",), 5) == 5
    assert zone.nodes.get(www) == zone.nodes[www] and len(zone.nodes) == 10
    assert zone.nodes[www] is not zone.nodes[www]  # unpacked anew on each look-up
    txt = zone.nodes[www].rrsets[QTYPE.TXT].rdatas
    assert [len(b"".join(rd.data)) for rd in txt] == [5, 2, 300]


def test_pool_values_are_shared_and_owners_are_made_on_demand():
    zone, _ = compile_zone(load(ZONE, "z.yaml"), "d")
    same = zone.nodes[(b"same", b"example", b"com")].rrsets
    assert same[1].owner == DNSLabel("same.example.com.")
    assert [str(rr.rname) for rr in same[1].records()] == ["same.example.com."]
    pool = zone.pools[(b"app", b"example", b"com")]
    member = pool.group("a").members[0]
    other = zone.pools[(b"app2", b"example", b"com")].groups[0].members[0]
    assert member.rdata is other.rdata and member.address is other.address
    group = pool.group("a")
    assert [m.address for m in group.family(6)] == ["2001:db8::20"]
    assert group.by_family == {4: group.v4, 6: group.v6}
    assert pool.group("b").family(4) is pool.group("b").members
    with pytest.raises(KeyError):
        group.family(5)


def write_zone(folder: Path, text: str = ZONE) -> None:
    (folder / "z.yaml").write_text(text)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_load_pauses_the_collector_and_leaves_it_as_it_was(tmp_path, enabled):
    write_zone(tmp_path)
    seen = []
    real = compile_zone

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        gc.unfreeze()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("gdns.zone.loader.compile_zone", spy)
            load_folder(tmp_path)
        assert seen == [False]
        assert gc.isenabled() is enabled
        assert gc.get_freeze_count() > 0  # what a load built is never walked by a collection
        gc.unfreeze()
        write_zone(tmp_path, "origin: broken.\n")
        with pytest.raises(ZoneLoadError):
            load_folder(tmp_path)
        assert gc.isenabled() is enabled
        assert gc.get_freeze_count() == 0  # a failed load freezes nothing
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


class Cycle:
    """Garbage only the cyclic collector can free, as a failed probe's exception, traceback
    and request are."""

    def __init__(self):
        self.me = self


@pytest.mark.parametrize("small", [True, False])
def test_a_load_does_not_freeze_garbage_that_waits_for_a_collection(tmp_path, small):
    """Found by bench/soak.py: every reload froze the garbage cycles of failed probes made
    since the last collection, and a frozen object is never freed, so memory grew with every
    reload while backends failed. Garbage made before a load is collected as it begins;
    garbage made during a small load is collected before the freeze (after a large one a
    collection would walk every new object: that is left to the freeze)."""
    write_zone(tmp_path)
    real = compile_zone
    during = []

    def spy(*args, **kwargs):
        during.append(weakref.ref(Cycle()))  # garbage made while the load runs
        return real(*args, **kwargs)

    was = gc.isenabled()
    gc.disable()  # garbage waits, as it does between two automatic collections
    try:
        gc.unfreeze()
        before = weakref.ref(Cycle())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("gdns.zone.loader.compile_zone", spy)
            if not small:
                mp.setattr("gdns.zone.loader.FREEZE_COLLECT_LIMIT", -1)
            load_folder(tmp_path)
        assert gc.get_freeze_count() > 0
        assert before() is None
        assert (during[0]() is None) is small
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


def test_loaded_zones_hold_no_reference_cycles(tmp_path):
    write_zone(tmp_path)
    zones = load_folder(tmp_path)
    gc.unfreeze()
    gc.collect()
    del zones
    assert gc.collect() == 0


def test_replaced_zones_are_taken_apart_only_when_no_one_else_holds_them(tmp_path, monkeypatch):
    write_zone(tmp_path)
    monkeypatch.setattr(reload_module, "RETIRE_WAIT", 0.2)

    old = load_folder(tmp_path)
    (zone,) = old.zones.values()
    nodes = zone.nodes
    asyncio.run(retire([old]))  # still held here: left whole
    assert old.zones and zone.nodes

    del old, zone
    box = [load_folder(tmp_path)]
    (zone,) = box[0].zones.values()
    asyncio.run(retire(box))  # the zone is held by this test: the set is emptied, not the zone
    assert zone.nodes and zone.pools
    del zone, nodes

    box = [load_folder(tmp_path)]
    (zone,) = box[0].zones.values()
    nodes, pools = zone.nodes, zone.pools
    del zone
    asyncio.run(retire(box))  # nothing else holds the zone, but its tables are held: kept
    assert nodes and pools


class Watched(dict):
    """A table that notes how many entries are taken out of it (and holds nothing else)."""

    taken: list[str] = []

    def popitem(self):
        Watched.taken.append(self.name)
        return super().popitem()


def watched(table: dict, name: str) -> Watched:
    out = Watched(table)
    out.name = name
    return out


def test_a_reload_frees_the_zones_it_replaces_and_parses_with_a_short_switch_interval(tmp_path):
    write_zone(tmp_path)
    served = []
    intervals = []
    real = reload_module.load_folder

    def spy(folder, geoip=False):
        intervals.append(sys.getswitchinterval())
        return real(folder, geoip)

    async def main():
        loaded = load_folder(tmp_path)
        zones = {
            key: dataclasses.replace(
                zone, nodes=watched(zone.nodes, "nodes"), pools=watched(zone.pools, "pools")
            )
            for key, zone in loaded.zones.items()
        }
        first = dataclasses.replace(loaded, zones=watched(zones, "zones"))
        del loaded, zones
        reloader = ZoneReloader(str(tmp_path), served.append, interval=0, zones=first)
        del first
        before = sys.getswitchinterval()
        result = await reloader.reload("test")
        assert result.ok and sys.getswitchinterval() == before
        await asyncio.gather(*reloader._retiring)

    Watched.taken = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reload_module, "load_folder", spy)
        asyncio.run(main())
    assert intervals == [reload_module.SWITCH]
    # the first zones, taken apart after the swap: the set, then each name and pool
    assert Watched.taken == ["zones"] + ["nodes"] * 8 + ["pools"] * 2
    assert served and served[0].zones


def test_packed_names_are_found_by_name_and_only_those():
    packed = Packed()
    names = [(f"n{i}".encode(), b"sub", b"example") for i in range(3000)] + [(b"*", b"example"), (b"a",)]
    for i, name in enumerate(names):
        packed.add(name, i.to_bytes(3, "big"))
    packed.drop(packed.find(names[7]))  # taken back out, as a pool's name is
    packed = packed.done()
    assert len(packed) == len(names) - 1 and packed.find(names[7]) == -1
    for i, name in enumerate(names):
        if i != 7:
            assert packed.value(packed.find(name)) == i.to_bytes(3, "big")
    for missing in [(b"n3000", b"sub", b"example"), (b"sub", b"example"), (b"n1", b"sub"), (), (b"n1sub",)]:
        assert packed.find(missing) == -1
    assert sorted(packed.names()) == sorted(n for i, n in enumerate(names) if i != 7)
    # Half full at most: every miss ends at an empty slot.
    assert len(packed.slots) >= 2 * len(names) and sum(1 for s in packed.slots if s) == len(packed)
