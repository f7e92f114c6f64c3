"""Property tests (hypothesis) for the bytes-facing code: mutated and random packets never
raise from the decoder, the fast path or the handler, and whenever the fast path answers a
mutated packet its reply is the full path's reply to the same packet."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import dns.edns
import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdns.answer import pools
from gdns.answer.engine import Engine
from gdns.server import codec
from gdns.server.handler import Handler
from gdns.server.stats import QueryStats
from gdns.strategy import weighted
from gdns.zone.loader import load_folder

ROOT = Path(__file__).resolve().parent.parent.parent
NAMES = ["www", "app", "geo", "rr", "api", "docs", "nope", "x.sub", "a.static", "_sip._udp", "@"]
TYPES = ["A", "AAAA", "MX", "TXT", "SRV", "NS", "SOA", "ANY", "CNAME"]


def _seeds() -> list[bytes]:
    rng = random.Random(3)
    out = []
    for name in NAMES:
        qname = "gslb.example.com." if name == "@" else f"{name}.gslb.example.com."
        for qtype in TYPES:
            out.append(dns.message.make_query(qname, qtype).to_wire())
            out.append(dns.message.make_query(qname, qtype, use_edns=0, want_dnssec=True).to_wire())
            options = [
                dns.edns.ECSOption(f"198.51.{rng.randrange(256)}.0", 24),
                dns.edns.GenericOption(10, b"c" * 8),
            ]
            out.append(dns.message.make_query(qname, qtype, use_edns=0, options=options).to_wire())
    return out


SEEDS = _seeds()
FIELDS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11]


@pytest.fixture(scope="module")
def handler(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zones")
    for path in ROOT.glob("zones/*.yaml"):
        shutil.copy(path, folder)
    handler = Handler(Engine(load_folder(folder)))
    for wire in SEEDS:  # fill the fast path's table
        handler.full(wire, "udp", ("198.51.100.1", 53), 0.0)
    return handler


def _position(draw, size: int) -> int:
    """An index into `size` bytes, as often counted from the end (where OPT and ECS live) as
    from the start (hypothesis favours small integers)."""
    i = draw(st.integers(0, size - 1))
    return size - 1 - i if draw(st.booleans()) else i


@st.composite
def mutated(draw) -> bytes:
    wire = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["field", "flip", "set", "cut", "grow", "insert", "delete"]))
        if kind == "field" and len(wire) > 23:  # a header or OPT field: flags, counts, version, length
            wire[draw(st.sampled_from(FIELDS))] = draw(st.integers(0, 255))
        elif kind == "flip" and wire:
            wire[_position(draw, len(wire))] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and wire:
            wire[_position(draw, len(wire))] = draw(st.integers(0, 255))
        elif kind == "cut" and wire:
            del wire[_position(draw, len(wire)) :]
        elif kind == "grow":
            wire += draw(st.binary(max_size=16))
        elif kind == "insert" and wire:
            i = _position(draw, len(wire))
            wire[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and wire:
            i = _position(draw, len(wire))
            del wire[i : i + draw(st.integers(1, 4))]
    return bytes(wire)


def _check(handler: Handler, wire: bytes, tcp: bool) -> None:
    transport = "tcp" if tcp else "udp"
    decoded = codec.decode(wire, transport, ("198.51.100.1", 53))
    assert decoded is None or isinstance(decoded, (codec.Reply, codec.Query))
    counters = dict(handler.engine.counters)
    pools._rng.seed(1)
    weighted._rng.seed(1)
    fast = handler.fast.answer(wire, "198.51.100.1", tcp, QueryStats())
    handler.engine.counters.clear()
    handler.engine.counters.update(counters)
    pools._rng.seed(1)
    weighted._rng.seed(1)
    full = handler.full(wire, transport, ("198.51.100.1", 53), 0.0)
    if fast is not None:
        assert fast == full
    if full is not None:
        assert len(full) >= 12 and full[2] & 0x80  # a response
        if not full[2] & 0x78:  # QUERY (dnspython reads other opcodes' sections differently)
            dns.message.from_wire(full, ignore_trailing=False)  # well formed


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wire=mutated(), tcp=st.booleans())
def test_mutated_packets(handler, wire, tcp):
    _check(handler, wire, tcp)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(wire=st.binary(max_size=600), tcp=st.booleans())
def test_random_packets(handler, wire, tcp):
    _check(handler, wire, tcp)
