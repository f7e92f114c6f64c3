"""In-band explanation: `TXT _why.<pool name>` answers the decision trace for this client.

Off unless `gdns serve --why-from CIDR` names the resolver's network. The trace is the one
`gdns explain` prints (gdns.explain.report/render), made by the server's own decision code for
this query's client (its ECS subnet when present) and the live health snapshot: rule, group
order, each candidate's state and reason, the pick, the TTL and why, the ECS scope.
`_why.` asks about A, `_why6.` about AAAA. Round-robin counters are not advanced.

Each trace line is one TXT record, numbered so that the order survives resolvers that shuffle
rrsets; a line longer than a TXT string (255 bytes) is split over several records.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable

from dnslib import CLASS, QTYPE, RR, TXT, DNSLabel

from gdns.answer.types import Answer, Query

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LABELS = {b"_why": QTYPE.A, b"_why6": QTYPE.AAAA}
MAX_STRING = 255  # bytes in one TXT character-string


def allowed(address: str, networks: Iterable[IPNetwork]) -> bool:
    """Is the resolver at `address` (never the ECS subnet) in one of `networks`?"""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


def answer(engine, zone, query: Query) -> Answer | None:
    """The trace answer, or None when this query is not a `_why` question we may answer
    (then the engine answers it as if the feature did not exist)."""
    key = query.key
    qtype = LABELS.get(key[0]) if key else None
    if qtype is None or not allowed(query.client[0], engine.why_from):
        return None
    pool = zone.pools.get(key[1:])
    if pool is None:
        return None
    lines = trace(engine, zone, query, key[1:], pool, qtype)
    owner = DNSLabel(list(key))
    records = [RR(owner, QTYPE.TXT, CLASS.IN, 0, TXT(text)) for text in numbered(lines)]
    # The trace is about this very client: valid for its whole ECS subnet and no wider.
    scope = query.ecs.source_prefix if query.ecs else 0
    return Answer(answer=records, ecs_scope=scope)


def trace(engine, zone, query: Query, name, pool, qtype: int) -> list[str]:
    """The lines of `gdns explain` for (pool name, qtype) asked by this query's client."""
    from gdns import explain  # here: gdns.explain imports the engine, which imports us
    from gdns.answer.engine import resolve

    asked = Query(
        query.id,
        query.flags,
        query.qname[1:],
        qtype,
        CLASS.IN,
        query.transport,
        query.client,
        query.edns,
        query.edns_payload,
        query.edns_version,
        query.dnssec_ok,
        query.ecs,
    )
    # A shallow copy with its own counters: the trace shows what the next query would get
    # from a round-robin pool without taking that turn from it.
    probe = copy.copy(engine)
    probe.counters = dict(engine.counters)
    result = resolve(zone, name, DNSLabel(list(asked.qname)), qtype, probe.pool_decider(asked), engine.zones)
    data = explain.report(engine, asked, result)
    lines = [" ".join(line.split()) for line in explain.render(data).splitlines()]
    out = [f"gdns trace for resolver {query.client[0]}" + _ecs(query)]
    for line in lines:
        out.append(line)
        if line.startswith("outcome "):
            out.extend(ttl_why(engine, decision, qtype) for decision in result.decisions[:1])
    return out


def _ecs(query: Query) -> str:
    if query.ecs is None:
        return ", no ECS: deciding on the resolver's address"
    return f", ECS {query.ecs.network}: deciding on the client subnet"


def ttl_why(engine, decision, qtype: int) -> str:
    """Why the answer has the TTL it has: the pool's own, or degraded_ttl (and because of whom)."""
    pool = decision.pool
    family = 6 if qtype == QTYPE.AAAA else 4
    if decision.outcome == "no-family":
        return "ttl: none, NODATA (its negative TTL comes from the SOA minimum)"
    out = [m.address for g in pool.groups for m in g.family(family) if not engine.health.get(m.key).eligible]
    if pool.degraded_ttl is None:
        why = f"ttl {decision.ttl}: normal, the pool's ttl (no degraded_ttl set"
        return why + (f"; {len(out)} IPv{family} member(s) not up)" if out else ")")
    if decision.ttl < pool.ttl or out:
        shown = ", ".join(out[:4]) + (f" and {len(out) - 4} more" if len(out) > 4 else "")
        return f"ttl {decision.ttl}: degraded (degraded_ttl {pool.degraded_ttl}; not up: {shown})"
    return f"ttl {decision.ttl}: normal, the pool's ttl (every IPv{family} member up)"


def numbered(lines: list[str]) -> list[bytes]:
    """`NN text` strings of at most MAX_STRING bytes each; long lines continue in the next."""
    chunks: list[bytes] = []
    for line in lines:
        data = line.encode()
        room = MAX_STRING - 6  # room for the "NN " prefix, up to five digits
        while True:
            cut = _cut(data, room)
            chunks.append(data[:cut])
            data = data[cut:]
            if not data:
                break
    width = len(str(len(chunks) - 1))
    return [f"{i:0{width}d} ".encode() + chunk for i, chunk in enumerate(chunks)]


def _cut(data: bytes, room: int) -> int:
    """Where to cut `data` to fit `room` bytes without splitting a UTF-8 character."""
    if len(data) <= room:
        return len(data)
    cut = room
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut or room
