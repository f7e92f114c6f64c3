"""The fast path: reply bytes for common queries without decoding, resolving or packing.

A query takes the fast path when it is a plain QUERY with one question and either no
additional record or one bare OPT (EDNS version 0, no options). Its question bytes, in lower
case, are the key into a table of answers the full path has already made:

- a *static* entry (any answer that does not depend on the client or on health: records,
  CNAME chains, NXDOMAIN, NODATA, referrals) holds the full path's reply bytes after the
  question; the reply is the query's ID, the header flags with the query's RD bit, the
  question exactly as the client sent it (its letter case), and those bytes;
- a *pool* entry (A or AAAA at a pool's own name) holds the pool and, per health snapshot,
  each member's answer record prebuilt; per query the pool's Plan picks members (the same
  code and random draws as the full path) and the records are joined.

Entries are made by the full path the first time it answers a question (`remember`), so
what the fast path sends is what the full path sent, byte for byte (tests/unit/test_fast.py
compares the two over a corpus). Anything else — ECS, other EDNS options or versions,
opcodes, classes the table has not seen, answers too big for the client, all-down pools,
`_why` traces — gets None here and goes to the full path. Static entries are dropped when the
zones change; pool entries rebuild their records when the health snapshot does.
"""

from __future__ import annotations

import functools
import struct

from dnslib import QTYPE, DNSBuffer

from gdns.answer.engine import Engine
from gdns.answer.types import Answer, Query
from gdns.server import codec, rrl
from gdns.server.stats import QueryStats
from gdns.strategy.client import Client
from gdns.web.metrics import rcode_label, type_label

MAX_ENTRIES = 100_000  # questions remembered (about 20 MiB); past this the table starts over
MAX_NXDOMAIN = 10_000  # of them NXDOMAIN answers: a flood of random names fills no more
_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QD 1, AN 0, NS 0, AR 0
_WITH_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # QD 1, AR 1
_OPT_HEAD = b"\x00\x00\x29"  # root owner name, type OPT
_NO_OPTIONS = b"\x00\x00"
_COUNTS = struct.Struct("!HHHH")
_RR_HEAD = struct.Struct("!HHHIH")  # pointer to the question name, type, class, TTL, RDLENGTH
_ECS_HEAD = struct.Struct("!HHHBB")  # option code, length, family, source and scope prefix
_QUESTION_NAME = 0xC00C
_A, _AAAA = QTYPE.A, QTYPE.AAAA
_DROP = rrl.DROP


@functools.cache  # one tuple for all the entries of a type: a full table has many
def _query_keys(qtype: str) -> tuple:
    """gdns_dns_queries_total label tuples, indexed by 2 * (TCP) + (IPv6)."""
    return tuple((transport, family, qtype) for transport in ("udp", "tcp") for family in ("ipv4", "ipv6"))


_HEADS: dict[bytes, tuple[bytes, bytes]] = {}  # Static.heads, one tuple for equal ones


class Static:
    __slots__ = ("heads", "tail", "size", "qtype", "rcode", "keys", "rrl")

    def __init__(self, heads: tuple, tail: bytes, size: int, qtype: str, rcode: str, identity: bytes = b""):
        self.heads = heads  # flags + counts, without RD and with it
        self.tail = tail  # everything after the question
        self.size = size  # the whole reply's length
        self.qtype, self.rcode = qtype, rcode  # metric labels
        self.keys = _query_keys(qtype)
        self.rrl = identity or rrl.ERROR_IDENTITY  # the rate limiter's account (gdns.server.rrl.identity)


class PoolAnswer:
    __slots__ = ("pool", "family", "rtype", "qtype", "state", "opt", "keys", "rrl")

    def __init__(self, pool, rtype: int, opt: bytes, identity: bytes = b""):
        self.pool, self.rtype, self.opt = pool, rtype, opt
        self.rrl = identity or rrl.ERROR_IDENTITY
        self.family = 6 if rtype == _AAAA else 4
        self.qtype = type_label(rtype)
        self.keys = _query_keys(self.qtype)
        # (plan, {member key: its answer record}) for one health snapshot; replaced whole, so
        # a thread reading it never sees a plan with another plan's records.
        self.state: tuple | None = None

    def current(self, engine: Engine) -> tuple:
        state = self.state
        health = engine.view[1]
        if state is None or state[0].health is not health:
            plan = engine.plan(self.pool, self.family, health)
            head, records = _RR_HEAD.pack, {}
            for members in plan.eligible.values():
                for m in members:
                    data = _rdata_bytes(m.rdata)
                    records[m.key] = head(_QUESTION_NAME, self.rtype, 1, plan.ttl, len(data)) + data
            # The longest reply this plan can give, less the question: a reply that might not
            # fit is left to the full path before any pick is drawn or counted.
            longest = 12 + plan.pool.answers * max(map(len, records.values()), default=0) + len(self.opt)
            self.state = state = (plan, records, longest)
        return state


def _question_with_options(wire: bytes):
    """(question, form, payload) for a query whose one additional record is an EDNS0 OPT
    with well-formed options and no ECS among them; None for anything else."""
    end, size = 12, len(wire)
    while True:  # the question name: labels only (no pointers), as the decoder insists
        if end >= size:
            return None
        length = wire[end]
        if length & 0xC0:
            return None
        end += length + 1
        if not length:
            break
    opt = end + 4
    ecs = None
    if opt + 11 > size or wire[opt : opt + 3] != _OPT_HEAD or wire[opt + 6]:  # OPT at the root, version 0
        return None
    rdlength = (wire[opt + 9] << 8) | wire[opt + 10]
    offset = opt + 11
    if offset + rdlength != size:
        return None
    while offset < size:
        if offset + 4 > size:
            return None
        code = (wire[offset] << 8) | wire[offset + 1]
        start = offset + 4
        offset = start + ((wire[offset + 2] << 8) | wire[offset + 3])
        if offset > size:
            return None
        if code == 8 and ecs is None:  # the first ECS counts, as in the decoder
            ecs = wire[start:offset]
            if not _ecs_ok(ecs):
                return None  # the full path's FORMERR
    form = 2 if wire[opt + 7] & 0x80 else 1
    return wire[12:opt], form, (wire[opt + 3] << 8) | wire[opt + 4], ecs


def _ecs_ok(data: bytes) -> bool:
    """RFC 7871 section 6, as gdns.server.codec.read_ecs checks it."""
    if len(data) < 4:
        return False
    family, source, scope = (data[0] << 8) | data[1], data[2], data[3]
    width = 32 if family == 1 else 128 if family == 2 else 0
    if not width or source > width or scope:
        return False
    address = data[4:]
    if len(address) != (source + 7) // 8:
        return False
    return not (source % 8 and address and address[-1] & (0xFF >> (source % 8)))


def _rdata_bytes(rdata) -> bytes:
    buffer = DNSBuffer()
    rdata.pack(buffer)
    return bytes(buffer.data)


class FastPath:
    def __init__(self, engine: Engine, max_udp: int = 1232):
        self.engine = engine
        self.max_udp = max_udp
        # (zones serial, tables), replaced whole. Tables are keyed by the question with its
        # name in lower case; one table per EDNS form: none, OPT, OPT with DO.
        self.state: tuple[int, tuple[dict, dict, dict]] = (engine.zones_serial, ({}, {}, {}))
        self.size = self.nxdomains = 0  # entries, and of them NXDOMAIN answers
        engine.on_zones.append(self._reset)  # drop answers (and pool references) at the swap
        # Response rate limiting for UDP (gdns.server.rrl.RateLimiter), or None: off, and then
        # this attribute is all it costs per query.
        self.rrl = None
        self.geo = engine.geo.lookup if engine.geo is not None else None
        opt = struct.Struct("!BHHIH")
        self.opts = (b"", opt.pack(0, 41, max_udp, 0, 0), opt.pack(0, 41, max_udp, 0x8000, 0))

    def answer(self, wire: bytes, address: str, tcp: bool, stats: QueryStats) -> bytes | None:
        """The reply to `wire` from `address`, or None to use the full path."""
        engine = self.engine
        serial, tables = self.state
        if engine.zones_serial != serial:  # zones swapped (on_zones normally got here first)
            serial, tables = self._reset()
        if len(wire) < 17 or wire[2] & 0xF8:  # a response, or an opcode other than QUERY
            return None
        counts = wire[4:12]
        if counts == _PLAIN:
            question = wire[12:]
            entry = tables[0].get(question[:-4].lower() + question[-4:])
            limit = 65535 if tcp else 512
            form = 0
        elif (
            counts == _WITH_OPT
            and wire[-11:-8] == _OPT_HEAD
            and wire[-2:] == _NO_OPTIONS
            and not wire[-5]  # EDNS version 0
            and len(wire) >= 28
        ):
            question = wire[12:-11]
            form = 2 if wire[-4] & 0x80 else 1
            entry = tables[form].get(question[:-4].lower() + question[-4:])
            limit = 65535 if tcp else min(max(512, (wire[-8] << 8) | wire[-7]), self.max_udp)
        elif counts == _WITH_OPT:
            # EDNS with options (a cookie, say): the full path ignores all but ECS, so the
            # reply is the same as for a bare OPT. Walk to the OPT to be sure it is that.
            found = _question_with_options(wire)
            if found is None:
                return None
            question, form, payload, ecs = found
            entry = tables[form].get(question[:-4].lower() + question[-4:])
            limit = 65535 if tcp else min(max(512, payload), self.max_udp)
            if ecs is not None:
                if entry is None:
                    return None
                return self._with_ecs(entry, wire, question, ecs, limit, address, tcp, stats, form)
        else:
            return None
        if entry is None:
            return None
        if entry.__class__ is Static:
            if entry.size > limit:
                return None
            reply = wire[:2] + entry.heads[wire[2] & 1] + question + entry.tail
            rcode = entry.rcode
        else:
            plan, records, longest = entry.current(engine)
            if longest + len(question) > limit:
                return None
            picked = plan.pick_fast(address, engine.counters, self.geo)
            if picked is None:
                return None
            members = stats.members
            if len(picked) == 1:
                key = picked[0].key
                body = records[key]
                members[key] = members.get(key, 0) + 1
            else:
                body = b""
                for member in picked:
                    key = member.key
                    body += records[key]
                    members[key] = members.get(key, 0) + 1
            reply = (
                wire[:2]
                + (b"\x85\x00" if wire[2] & 1 else b"\x84\x00")
                + _COUNTS.pack(1, len(picked), 0, 1 if form else 0)
                + question
                + body
                + entry.opt
            )
            rcode = "NOERROR"
        key = entry.keys[(2 if tcp else 0) + (":" in address)]
        queries = stats.queries
        queries[key] = queries.get(key, 0) + 1
        if self.rrl is not None and not tcp:
            return self._limit(reply, entry, rcode, len(question), form, address, stats)
        responses = stats.responses
        responses[rcode] = responses.get(rcode, 0) + 1
        return reply

    def _limit(self, reply: bytes, entry, rcode: str, qlength: int, form: int, address: str, stats) -> bytes:
        """Response rate limiting: the reply, its truncated stand-in, or b"" (answered: send nothing)."""
        action = self.rrl.check(address, entry.rrl, stats)
        if action:  # not SEND
            if action == _DROP:
                return b""
            reply = rrl.slipped(reply, qlength, self.opts[form])
            stats.truncated += 1
        stats.responses[rcode] = stats.responses.get(rcode, 0) + 1
        return reply

    def _with_ecs(self, entry, wire, question, ecs: bytes, limit, address: str, tcp: bool, stats, form: int):
        """A query with EDNS Client Subnet: the reply echoes the option with its scope, and
        a pool decides for the client subnet (through Plan.decide, as the full path does)."""
        engine = self.engine
        rd = wire[2] & 1
        if entry.__class__ is Static:  # the same for every client: scope 0
            option = _ECS_HEAD.pack(8, len(ecs), (ecs[0] << 8) | ecs[1], ecs[2], 0) + ecs[4:]
            if entry.size + len(option) > limit:
                return None
            tail = entry.tail[:-2] + len(option).to_bytes(2, "big") + option
            reply = wire[:2] + entry.heads[rd] + question + tail
            rcode = entry.rcode
        else:
            plan, records, longest = entry.current(engine)
            if longest + len(question) + 4 + len(ecs) > limit:
                return None
            subnet = codec.read_ecs(ecs)
            client = Client.of(address, subnet, self.geo, plan.health)
            decision = plan.decide(client, engine.counters)
            if decision.outcome != "answer":
                return None
            option = _ECS_HEAD.pack(8, len(ecs), (ecs[0] << 8) | ecs[1], ecs[2], decision.scope) + ecs[4:]
            members = stats.members
            body = b""
            for member in decision.picked:
                body += records[member.key]
                members[member.key] = members.get(member.key, 0) + 1
            reply = (
                wire[:2]
                + (b"\x85\x00" if rd else b"\x84\x00")
                + _COUNTS.pack(1, len(decision.picked), 0, 1)
                + question
                + body
                + entry.opt[:-2]
                + len(option).to_bytes(2, "big")
                + option
            )
            rcode = "NOERROR"
        key = entry.keys[(2 if tcp else 0) + (":" in address)]
        stats.queries[key] = stats.queries.get(key, 0) + 1
        if self.rrl is not None and not tcp:
            return self._limit(reply, entry, rcode, len(question), form, address, stats)
        stats.responses[rcode] = stats.responses.get(rcode, 0) + 1
        return reply

    def remember(self, query: Query, answer: Answer, reply: bytes, whole: bool, serial: int) -> None:
        """Keep what the full path just answered from the zones numbered `serial`, when it is
        the same for every client. The zones may have been swapped and the table emptied
        meanwhile (by another thread): an answer made from other zones is not kept."""
        table_serial, tables = self.state
        if (
            serial != table_serial
            or not whole
            or not answer.shared
            or query.edns_version
            or query.flags & 0x7800
            or self.engine.zones_serial != serial
            or len(query.question) + 12 > len(reply)
        ):
            return
        form = (2 if query.dnssec_ok else 1) if query.edns else 0
        question = query.question
        key = question[:-4].lower() + question[-4:]
        table = tables[form]
        if key in table:
            return
        if self.size >= MAX_ENTRIES:
            table = self._reset()[1][form]
        nxdomain = not answer.decisions and answer.rcode == 3
        if nxdomain and self.nxdomains >= MAX_NXDOMAIN:
            return
        # The rate limiter's account, kept with the entry when there is a limiter (gdns.server.rrl)
        identity = rrl.identity(query, answer) if self.rrl is not None else b""
        if answer.decisions:
            pool = answer.pool
            if pool is None or len(answer.decisions) != 1 or query.qtype not in (_A, _AAAA):
                return
            table[key] = PoolAnswer(pool, query.qtype, self.opts[form], identity)
        else:
            if query.ecs is not None:
                # Keep the reply as a query without ECS gets it: the OPT without the option
                # (a static answer's only ECS-dependent bytes; _with_ecs adds it back).
                size = 8 + (query.ecs.source_prefix + 7) // 8
                reply = reply[: -size - 2] + b"\x00\x00"
            flags = ((reply[2] << 8) | reply[3]) & ~0x0100
            counts = reply[4:12]
            heads = _HEADS.get(flags.to_bytes(2, "big") + counts)
            if heads is None:
                heads = (struct.pack("!H", flags) + counts, struct.pack("!H", flags | 0x0100) + counts)
                if len(_HEADS) < 4096:  # a few flags and counts are most answers'
                    _HEADS[heads[0]] = heads
            tail = reply[12 + len(query.question) :]
            rcode = reply[3] & 0xF
            qtype, label = type_label(query.qtype), rcode_label(rcode)
            table[key] = Static(heads, tail, len(reply), qtype, label, identity)
        self.size += 1
        self.nxdomains += nxdomain

    @property
    def tables(self) -> tuple[dict, dict, dict]:
        return self.state[1]

    def _reset(self) -> tuple:
        self.state = state = (self.engine.zones_serial, ({}, {}, {}))
        self.size = self.nxdomains = 0
        return state
