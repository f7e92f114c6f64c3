"""Property tests (hypothesis) for the bytes-facing code: random bytes, mutated valid queries
and TCP streams through the Handler (fast and full path, UDP and TCP, with and without rate
limiting), over zones that reach every answer rule and strategy (tests/fuzzkit.py). Every
reply is None (a drop, only where gdns must drop) or a well-formed response with the query's
ID and question, the rcode the query's bytes call for, OPT and ECS echoed, within the size
the client can take; the fast path's reply, when it has one, is the full path's byte for
byte; and nothing is logged as an internal error."""

from __future__ import annotations

import struct

import dns.message
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import fuzzkit
from tests.fuzzkit import CLIENTS, SEEDS, DrawChooser, check_query, examples

transports = st.sampled_from(["udp", "tcp"])
clients = st.sampled_from(CLIENTS)
handlers = st.integers(0, 2)  # default size, large size, rate limited


def test_every_seed_is_answered_by_the_rules(server):
    """The unmutated corpus: every reply passes, and between them they reach every outcome
    the oracle knows (so the corpus does reach deep code)."""
    seen = set()
    for i, wire in enumerate(SEEDS):
        for transport in ("udp", "tcp"):
            check_query(server, wire, transport, CLIENTS[i % len(CLIENTS)], i % 2)
            reply = server.handlers[1232](wire, transport, CLIENTS[i % len(CLIENTS)])
            flags, _, an, ns, ar = struct.unpack_from("!HHHHH", reply, 2)
            message = dns.message.from_wire(reply[:2] + bytes([reply[2] & 0x87]) + reply[3:])  # as QUERY
            seen.add(message.rcode())
            if flags & 0x0200:
                seen.add("TC")
            if not flags & 0x0400 and not an and ns and ar:
                seen.add("referral with glue")
            if flags & 0x0400 and an > 1 and b"\x00\x05" in reply:
                seen.add("CNAME chain")
            if message.options:
                seen.add("ECS echoed")
    rcodes = {dns.rcode.NOERROR, dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN}
    rcodes |= {dns.rcode.NOTIMP, dns.rcode.REFUSED, dns.rcode.BADVERS}
    assert rcodes | {"TC", "referral with glue", "CNAME chain", "ECS echoed"} <= seen


@settings(max_examples=examples(300))
@given(wire=st.binary(max_size=600), transport=transports, client=clients, which=handlers)
def test_random_bytes(server, wire, transport, client, which):
    check_query(server, wire, transport, client, which)


@settings(max_examples=examples(300))
@given(
    head=st.binary(min_size=2, max_size=2),
    counts=st.tuples(*[st.sampled_from([0, 1, 1, 2, 0xFFFF])] * 4),
    body=st.binary(max_size=300),
    transport=transports,
    client=clients,
    which=handlers,
)
def test_random_bytes_behind_a_query_header(server, head, counts, body, transport, client, which):
    """Random bytes get past the first checks (QR clear, one question) far more often here."""
    wire = head + struct.pack("!HHHHH", 0x0100, *counts) + body
    check_query(server, wire, transport, client, which)


@settings(max_examples=examples(1500))
@given(
    seed=st.integers(0, len(SEEDS) - 1), data=st.data(), transport=transports, client=clients, which=handlers
)
def test_mutated_queries(server, seed, data, transport, client, which):
    """Valid queries changed 1-4 times: counts, flags and opcode; label lengths, compression
    pointers, name length, letter case; type and class; OPT fields (payload, version, DO,
    length), second OPTs, OPTs away from the root; ECS and cookie options, valid or not;
    extra records; plain byte flips, cuts and insertions (fuzzkit.mutate)."""
    wire = fuzzkit.mutate(SEEDS[seed], DrawChooser(data.draw))
    check_query(server, wire, transport, client, which)


@settings(max_examples=examples(150))
@given(
    picks=st.lists(st.tuples(st.integers(0, len(SEEDS) - 1), st.booleans()), min_size=1, max_size=6),
    data=st.data(),
    cut=st.integers(0, 3),
    pieces=st.integers(0, 7),
    client=clients,
)
def test_tcp_streams(server, picks, data, cut, pieces, client):
    """Queries (some mutated) framed back to back and read in random pieces by the real
    TCPProtocol: one reply per query that needs one, in order, each held to the rules."""
    chooser = DrawChooser(data.draw)
    stream = b""
    for seed, mutate in picks:
        wire = fuzzkit.mutate(SEEDS[seed], chooser) if mutate else SEEDS[seed]
        stream += struct.pack("!H", len(wire)) + wire
    fuzzkit.check_tcp_stream(server, stream[: len(stream) - cut], pieces, client)
