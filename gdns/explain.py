"""`gdns explain`: run the server's own decision code offline for one client and say why.

It loads the zones as `gdns serve` does, builds the same Engine, asks it the question a
client at --client (with --ecs) would ask, and prints the answer with every pool decision
behind it: strategy, rule, group order, each candidate with its health, pick, TTL, scope.
"""

from __future__ import annotations

import ipaddress
import json

from dnslib import QTYPE, RR

from gdns.answer.engine import Engine
from gdns.answer.types import Answer, ClientSubnet, Query
from gdns.zone.zoneset import ZoneSet

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def parse_ecs(text: str) -> ClientSubnet:
    network = ipaddress.ip_network(text, strict=False)
    return ClientSubnet(1 if network.version == 4 else 2, network.prefixlen, network)


def parse_name(text: str) -> tuple[bytes, ...]:
    """A query name as labels; ValueError for what no query on the wire could carry."""
    if text == ".":
        return ()
    if not text:
        raise ValueError("the name is empty (write '.' for the root)")
    labels = tuple(part.encode() for part in text.removesuffix(".").split("."))
    if b"" in labels:
        raise ValueError(f"{text!r} has an empty label (two dots in a row, or a leading dot)")
    for label in labels:
        if len(label) > 63:
            raise ValueError(f"{text!r} has a label longer than 63 octets: {label.decode()[:20]}...")
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        raise ValueError(f"{text!r} is longer than 255 octets")
    return labels


def explain(zones: ZoneSet, name: str, qtype: str, client: str, ecs: str | None, geo=None) -> dict:
    engine = Engine(zones, geo=geo)
    labels = parse_name(name)
    subnet = parse_ecs(ecs) if ecs else None
    query = Query(
        0, 0, labels, getattr(QTYPE, qtype), 1, "udp", (client, 0), edns=subnet is not None, ecs=subnet
    )
    answer = engine.answer(query)
    return report(engine, query, answer)


def report(engine: Engine, query: Query, answer: Answer) -> dict:
    out = {
        "question": {"name": ".".join(p.decode() for p in query.qname) + ".", "type": QTYPE.get(query.qtype)},
        "client": query.client[0],
        "ecs": str(query.ecs.network) if query.ecs else None,
        "rcode": RCODES.get(answer.rcode, str(answer.rcode)),
        "answer": [_rr(rr) for rr in answer.answer],
        "authority": [_rr(rr) for rr in answer.authority],
        "ecs_scope": min(answer.ecs_scope, query.ecs.source_prefix) if query.ecs else None,
        "decisions": [],
    }
    for decision in answer.decisions:
        pool = decision.pool
        entry = {
            "outcome": decision.outcome,
            "ttl": decision.ttl,
            "scope": decision.scope,
            "notes": decision.notes,
        }
        if pool is not None:
            entry.update(pool=pool.name, strategy=pool.strategy, sticky=pool.sticky, answers=pool.answers)
        order = decision.order
        if order is not None:
            entry.update(why=order.why, rule=order.rule, order=[g.name for g in order.groups])
            entry.update(order.details)
        if pool is not None:
            usable = {g.name for g in decision.usable}
            picked = {m.key for m in decision.picked}
            family = 6 if query.qtype == QTYPE.AAAA else 4  # only the asked family's members count
            entry["family"] = f"IPv{family}"
            entry["groups"] = [
                {
                    "name": g.name,
                    "usable": g.name in usable,
                    "members": [
                        {
                            "address": m.address,
                            "weight": m.weight,
                            "state": engine.health.get(m.key).state,
                            "reason": engine.health.get(m.key).reason,
                            "rtt_ms": _ms(engine.health.get(m.key).rtt),
                            "picked": m.key in picked,
                        }
                        for m in g.family(family)
                    ],
                }
                for g in pool.groups
            ]
        entry["picked"] = [m.address for m in decision.picked] or [str(rd) for rd in decision.rdatas]
        out["decisions"].append(entry)
    return out


def render(data: dict) -> str:
    q = data["question"]
    lines = [
        f"{q['name']} {q['type']} from {data['client']}" + (f" (ECS {data['ecs']})" if data["ecs"] else "")
    ]
    lines.append(f"  rcode {data['rcode']}")
    for text in data["answer"]:
        lines.append(f"  answer     {text}")
    for text in data["authority"]:
        lines.append(f"  authority  {text}")
    for d in data["decisions"]:
        lines.append(
            f"  pool {d.get('pool')} strategy {d.get('strategy')}"
            + (" sticky" if d.get("sticky") else "")
            + f", answers {d.get('answers')}"
        )
        if d.get("why"):
            lines.append(f"    decision: {d['why']}")
        if d.get("order"):
            lines.append(f"    group order: {' > '.join(d['order'])}")
        for g in d.get("groups", []):
            lines.append(f"    group {g['name']}" + ("" if g["usable"] else " (no usable member)"))
            for m in g["members"]:
                rtt = f", rtt {m['rtt_ms']:.1f} ms" if m["rtt_ms"] is not None else ""
                mark = "  <- picked" if m["picked"] else ""
                state = f"{m['state']} ({m['reason']})"
                lines.append(f"      {m['address']:<20} weight {m['weight']:g}, {state}{rtt}{mark}")
        for note in d["notes"]:
            lines.append(f"    {note}")
        lines.append(
            f"    outcome {d['outcome']}: {', '.join(d['picked']) or 'no addresses'}; ttl {d['ttl']}"
        )
        lines.append(f"    ECS scope /{d['scope']}")
    if data["ecs_scope"] is not None:
        lines.append(f"  reply carries ECS {data['ecs']} with scope /{data['ecs_scope']}")
    return "\n".join(lines)


def _rr(rr: RR) -> str:
    return " ".join(str(rr).split())


def _ms(seconds):
    return None if seconds is None else seconds * 1000


def to_json(data: dict) -> str:
    return json.dumps(data, indent=2)
