"""Authoritative semantics: zone match, referral, NXDOMAIN/NODATA with SOA, CNAME, wildcards.

The engine reads the current ZoneSet once per query (the reloader swaps it whole) and does
no I/O, awaits or locking: it is a function from (Query, ZoneSet) to Answer.
"""

from __future__ import annotations

from dnslib import CLASS, QTYPE, RR, TXT, DNSLabel

from gdns.answer import why
from gdns.answer.pools import Decision, Plan
from gdns.answer.types import Answer, Query
from gdns.health.snapshot import HealthSnapshot
from gdns.strategy.client import Client
from gdns.zone.rdata import target_of
from gdns.zone.zoneset import Name, Node, Zone, ZoneSet, name_key

NOERROR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 2, 3, 4, 5
_IN, _CH = CLASS.IN, CLASS.CH
_CNAME, _DS, _ANY, _A, _AAAA = QTYPE.CNAME, QTYPE.DS, QTYPE.ANY, QTYPE.A, QTYPE.AAAA
_TRANSFERS = {QTYPE.AXFR, QTYPE.IXFR}
_ADDITIONAL = {QTYPE.MX, QTYPE.SRV, QTYPE.NS}
MAX_CHAIN = 8  # CNAMEs followed in one answer

_CHAOS_VERSION = {(b"version", b"bind"), (b"version", b"server")}
_CHAOS_ID = {(b"id", b"server"), (b"hostname", b"bind")}

# What a name lookup inside one zone found.
FOUND, WILDCARD, EMPTY, MISSING, DELEGATED = range(5)


class Engine:
    def __init__(
        self,
        zones: ZoneSet,
        version: str | None = None,
        identity: str | None = None,
        health: HealthSnapshot | None = None,
        geo=None,
        why_from=(),
    ):
        # Zones and the health snapshot for them, as one value: a query (on any thread) reads
        # it once, so it never pairs new health with old zones or the other way round.
        self.view = (zones, health or HealthSnapshot.from_zones(zones))
        self.plans: dict[tuple[int, int], Plan] = {}  # per (pool, family), for this health
        self.zones_serial = 0  # bumped by every swap of zones (and of the GeoIP database)
        self.on_zones: list = []  # called after each swap of zones (the fast path empties its table)
        self.geo = geo  # a GeoDatabase, or None
        self.version = version
        self.identity = identity
        self.counters: dict[str, int] = {}  # round-robin turns, per pool
        self.why_from = tuple(why_from or ())  # resolver networks allowed `TXT _why.<pool>`

    @property
    def zones(self) -> ZoneSet:
        return self.view[0]

    @zones.setter
    def zones(self, zones: ZoneSet) -> None:
        self.swap(zones, self.view[1])

    @property
    def health(self) -> HealthSnapshot:
        return self.view[1]

    @health.setter
    def health(self, health: HealthSnapshot) -> None:
        """Replaced whole by the health monitor; the pool plans go with the old one."""
        self.view, self.plans = (self.view[0], health), {}

    def swap(self, zones: ZoneSet, health: HealthSnapshot) -> None:
        """New zones with their health snapshot, in one assignment (a reload)."""
        changed = zones is not self.view[0]
        self.view, self.plans = (zones, health), {}
        if changed:
            self.zones_serial += 1
            for hook in self.on_zones:
                hook()

    def geo_changed(self) -> None:
        """The GeoIP database (self.geo, the same object) now answers from a new file: drop
        what remembers geo decisions, the plans (answers per client address) and the fast
        path's tables (through the same hooks as a swap of zones)."""
        self.plans = {}
        self.zones_serial += 1
        for hook in self.on_zones:
            hook()

    def plan(self, pool, family: int, health: HealthSnapshot | None = None) -> Plan:
        """The pool's plan for this family under `health` (default: the current snapshot),
        built once per snapshot."""
        health = health or self.view[1]
        plans = self.plans
        plan = plans.get((id(pool), family))
        if plan is None or plan.health is not health:
            plan = plans[id(pool), family] = Plan(pool, family, health)
        return plan

    def pool_decider(self, query: Query, health: HealthSnapshot | None = None):
        """Bind pool decisions to this query's client, health snapshot and GeoIP."""
        health, geo = health or self.health, self.geo
        lookup_geo = geo.lookup if geo is not None else None
        client: list[Client] = []

        def ask(pool, family: int) -> Decision:
            if not client:
                client.append(Client.of(query.client[0], query.ecs, lookup_geo, health))
            return self.plan(pool, family, health).decide(client[0], self.counters)

        return ask

    def answer(self, query: Query) -> Answer:
        if query.qclass == _CH:
            return self._chaos(query)
        if query.qclass != _IN:
            return Answer(rcode=REFUSED, aa=False)
        qname = query.key
        zones, health = self.view  # once: one consistent pair for the whole answer
        zone = zones.find(qname)
        if zone is None:
            return Answer(rcode=REFUSED, aa=False)  # not ours, and we never recurse
        if query.qtype in _TRANSFERS:
            return Answer(rcode=REFUSED, aa=False)  # zone transfers are not offered
        if self.why_from and query.qtype == QTYPE.TXT and qname and qname[0] in why.LABELS:
            # A trace for this resolver, or (for one not allowed one) the answer as if the
            # feature did not exist: either way it depends on who asks.
            traced = why.answer(self, zone, query)
            if traced is None:
                decider = self.pool_decider(query, health)
                traced = resolve(zone, qname, DNSLabel(list(qname)), query.qtype, decider, zones)
            traced.shared = False
            return traced
        if query.qtype == _DS and qname == zone.origin and qname:
            # DS belongs to the parent side of a cut (RFC 4035 3.1.4.1): when we also serve
            # the parent and it delegates here, the parent answers.
            parent = zones.find(qname[1:])
            if parent is not None and qname in parent.cuts:
                zone = parent
        # Names are built in lower case; the codec puts the client's spelling of the question
        # back, and names compressed against it show the same spelling.
        decider = self.pool_decider(query, health)
        return resolve(zone, qname, DNSLabel(list(qname)), query.qtype, decider, zones)

    def _chaos(self, query: Query) -> Answer:
        key = query.key
        text = self.version if key in _CHAOS_VERSION else self.identity if key in _CHAOS_ID else None
        if text is None or query.qtype not in (QTYPE.TXT, _ANY):
            return Answer(rcode=REFUSED, aa=False)
        owner = DNSLabel(list(key))
        return Answer(answer=[RR(owner, QTYPE.TXT, _CH, 0, TXT(text.encode()[:255]))])


def lookup(zone: Zone, name: Name, qtype: int) -> tuple[int, Node | Name | None]:
    """Find `name` in `zone`: its node, the wildcard that covers it, or why there is none."""
    depth = len(zone.origin)
    if zone.cuts:
        for i in range(len(name) - depth - 1, -1, -1):
            ancestor = name[i:]
            # The parent side of a cut answers DS itself (it is the parent's record).
            if ancestor in zone.cuts and not (i == 0 and qtype == _DS):
                return DELEGATED, ancestor
    node = zone.nodes.get(name)
    if node is not None:
        return FOUND, node
    if name in zone.empty_nonterminals:
        return EMPTY, None
    for i in range(1, len(name) - depth + 1):  # RFC 4592: the closest encloser's wildcard
        encloser = name[i:]
        if encloser in zone.nodes or encloser in zone.empty_nonterminals:
            wildcard = zone.nodes.get((b"*",) + encloser)
            return (WILDCARD, wildcard) if wildcard else (MISSING, None)
    return MISSING, None


def resolve(
    zone: Zone, qname: Name, owner: DNSLabel, qtype: int, pools=None, zones: ZoneSet | None = None
) -> Answer:
    """`pools(pool, family) -> Decision` answers pool names; without it they are NODATA.
    `zones`: where a CNAME target outside `zone` is looked for (RFC 1034 4.3.2 step 3a goes
    back to choosing the zone); without it the chain stops at `zone`'s edge."""
    answer = Answer()
    seen = {qname}
    name = qname
    for _ in range(MAX_CHAIN + 1):
        kind, found = lookup(zone, name, qtype)
        if kind == DELEGATED:
            if not answer.answer:
                return referral(zone, found)
            return answer  # a CNAME into a child we do not serve: the resolver follows it there
        if kind in (EMPTY, MISSING):
            answer.rcode = NXDOMAIN if kind == MISSING else NOERROR
            answer.authority.append(zone.negative_soa())
            return answer
        if kind == WILDCARD and name is qname:
            answer.wildcard = found.name  # rate limiting counts these answers as the wildcard's
        rrsets = found.rrsets
        wants_pool = qtype in (_A, _AAAA) or (qtype == _ANY and not rrsets)
        if found.pool is not None and pools is not None and wants_pool:
            return _pool_answer(answer, zone, found.pool, owner, qtype, pools)
        cname = rrsets.get(_CNAME)
        if cname is None or qtype in (_CNAME, _ANY):  # ANY matches the CNAME itself
            # RFC 8482: ANY gets one rrset; a name written with no records has none to give.
            rrset = rrsets.get(qtype) if qtype != _ANY else rrsets.get(min(rrsets, default=0))
            if rrset is None:
                answer.authority.append(zone.negative_soa())
                return answer
            answer.answer.extend(rrset.records(owner))
            if qtype in _ADDITIONAL:
                answer.additional.extend(_additional(zone, rrset.rtype, rrset.rdatas))
            return answer
        answer.answer.extend(cname.records(owner))
        owner = cname.rdatas[0].label
        name = name_key(owner)
        if name in seen:
            return answer  # a loop: returned as it is
        seen.add(name)
        # The target's zone: the most specific one we serve (a child zone we also serve beats
        # the parent's delegation), else the chain ends here and the resolver follows it.
        target_zone = zones.find(name) if zones is not None else (zone if _inside(zone, name) else None)
        if target_zone is None:
            return answer
        zone = target_zone
    return answer


def _pool_answer(answer: Answer, zone: Zone, pool, owner: DNSLabel, qtype: int, pools) -> Answer:
    rtype = _AAAA if qtype == _AAAA else _A
    decision = pools(pool, 6 if rtype == _AAAA else 4)
    answer.decisions.append(decision)
    answer.ecs_scope = max(answer.ecs_scope, decision.scope)
    if decision.servfail:
        answer.rcode = SERVFAIL
        return answer
    if not decision.rdatas:
        answer.authority.append(zone.negative_soa())
        return answer
    if not answer.answer:
        answer.pool = pool  # the question's own name is the pool: the fast path can answer it
    answer.answer.extend(RR(owner, rtype, ttl=decision.ttl, rdata=rd) for rd in decision.rdatas)
    return answer


def referral(zone: Zone, cut: Name) -> Answer:
    ns = zone.nodes[cut].rrsets[QTYPE.NS]
    glue: list[RR] = []
    for rd in ns.rdatas:
        target = name_key(rd.label)
        if _inside(zone, target):
            glue.extend(zone.addresses(target))
    return Answer(aa=False, authority=ns.records(), additional=glue)


def _additional(zone: Zone, rtype: int, rdatas) -> list[RR]:
    out: list[RR] = []
    for rd in rdatas:
        target = target_of(QTYPE.get(rtype), rd)
        if target is None:
            continue
        key = name_key(target)
        if _inside(zone, key) and lookup(zone, key, QTYPE.A)[0] == FOUND:
            out.extend(zone.addresses(key))
    return out


def _inside(zone: Zone, name: Name) -> bool:
    depth = len(zone.origin)
    return len(name) >= depth and name[len(name) - depth :] == zone.origin
