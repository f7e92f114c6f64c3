"""DNS wire format <-> Query/Answer.

Decoding is by hand: a query is a header, one question and an optional OPT record, and
reading exactly that lets every malformation map to FORMERR (or a silent drop) instead of
whatever a general parser raises. Answers are packed with dnslib.
"""

from __future__ import annotations

import ipaddress
import struct

from dnslib import RR, DNSBuffer, DNSHeader, DNSLabel, DNSQuestion, DNSRecord, EDNSOption
from dnslib.label import DNSLabelError

from gdns.answer.types import Answer, ClientSubnet, Query

FORMERR, SERVFAIL, NOTIMP, BADVERS = 1, 2, 4, 16
OPT = 41
ECS_OPTION = 8
_HEADER = struct.Struct("!HHHHHH")
_QR, _OPCODE_MASK, _RD, _CD = 0x8000, 0x7800, 0x0100, 0x0010


class Reply(bytes):
    """Ready reply bytes for a query that never became a Query (FORMERR, NOTIMP, BADVERS)."""


def decode(wire: bytes, transport: str, client: tuple[str, int], max_udp: int = 1232) -> Query | Reply | None:
    """Bytes -> Query; or ready error bytes; or None to drop (no usable header, or a response)."""
    if len(wire) < 12:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & _QR:
        return None  # never answer a response: that is how reflection loops start
    opcode = (flags & _OPCODE_MASK) >> 11
    # An opcode we do not implement is NOTIMP whatever follows: its sections need not even
    # be laid out as a query's (an UPDATE's "question" is its zone).
    malformed = FORMERR if opcode == 0 else NOTIMP
    if qdcount != 1:
        return _error(qid, flags, malformed)
    try:
        labels, end = _read_name(wire, 12, allow_pointers=False)
    except ValueError:
        return _error(qid, flags, malformed)
    if end + 4 > len(wire):
        return _error(qid, flags, malformed)
    qtype, qclass = struct.unpack_from("!HH", wire, end)
    question = wire[12 : end + 4]
    if opcode != 0:
        return _error(qid, flags, NOTIMP, question)
    if qtype == OPT:
        return _error(qid, flags, FORMERR, question)
    offset = end + 4
    edns = None
    try:
        for _ in range(ancount + nscount):
            offset = _skip_rr(wire, offset)
        for _ in range(arcount):
            rtype, rclass, ttl, rdata, name_root, offset = _read_rr(wire, offset)
            if rtype == OPT:
                if edns is not None or not name_root:
                    raise ValueError("second OPT, or OPT not at the root")
                edns = (rclass, ttl, _read_options(rdata))
    except ValueError:
        return _error(qid, flags, FORMERR, question)
    query = dict(
        id=qid,
        flags=flags,
        qname=labels,
        qtype=qtype,
        qclass=qclass,
        transport=transport,
        client=client,
        question=question,
    )
    if edns is None:
        return Query(**query)
    payload, ttl, options = edns
    version = (ttl >> 16) & 0xFF
    dnssec_ok = bool(ttl & 0x8000)
    if version > 0:
        return _error(qid, flags, BADVERS, question, edns=edns_opt(dnssec_ok, max_udp))
    ecs = None
    if ECS_OPTION in options:
        try:
            ecs = read_ecs(options[ECS_OPTION])
        except ValueError:
            return _error(qid, flags, FORMERR, question, edns=edns_opt(dnssec_ok, max_udp))
    return Query(
        **query, edns=True, edns_payload=max(512, payload), edns_version=version, dnssec_ok=dnssec_ok, ecs=ecs
    )


def encode(query: Query, answer: Answer, max_udp: int = 1232) -> bytes:
    """Answer -> bytes, truncated (TC) to what the client can take over its transport."""
    return pack(query, answer, max_udp)[0]


def pack(query: Query, answer: Answer, max_udp: int = 1232) -> tuple[bytes, bool]:
    """The reply bytes, and whether they are whole (nothing dropped to fit the limit).

    Names are packed in lower case and compressed against the lower-case question; then
    the question's bytes as the client sent them are put back in place. Names that point
    at the question show the client's spelling, and the bytes are the same whatever the
    spelling, which is what lets the fast path reuse them.
    """
    header = DNSHeader(
        id=query.id,
        qr=1,
        opcode=0,
        aa=int(answer.aa),
        tc=0,
        rd=int(query.rd),
        ra=0,
        cd=0,
        rcode=answer.rcode & 0xF,
    )
    record = DNSRecord(header, q=DNSQuestion(DNSLabel(list(query.key)), query.qtype, query.qclass))
    record.rr, record.auth = list(answer.answer), list(answer.authority)
    record.ar = list(answer.additional)
    opt = None
    if query.edns:
        options = [_ecs_option(query.ecs, answer.ecs_scope)] if query.ecs else []
        opt = _opt_rr(query.dnssec_ok, answer.rcode >> 4, max_udp, options)
        record.ar.append(opt)
    wire = _pack(record)
    whole = True
    limit = 65535 if query.transport == "tcp" else (min(query.edns_payload, max_udp) if query.edns else 512)
    if len(wire) > limit and answer.aa and answer.additional:
        # RFC 2181 section 9: no TC merely because additional data did not fit (a referral's
        # glue is not optional, so referrals, with AA clear, keep theirs or truncate).
        record.ar = [opt] if opt else []
        wire = _pack(record)
        whole = False
    if len(wire) > limit:
        # Too big: keep the header, question and OPT so the client retries over TCP.
        record.header.tc = 1
        record.rr, record.auth, record.ar = [], [], [opt] if opt else []
        wire = _pack(record)
        whole = False
    question = query.question
    if question:
        wire[12 : 12 + len(question)] = question
    return bytes(wire), whole


def servfail(wire: bytes) -> bytes | None:
    """A last-resort reply for a query whose answering failed (our bug, not the client's)."""
    if len(wire) < 12:
        return None
    qid, flags = struct.unpack_from("!HH", wire)
    return _error(qid, flags, SERVFAIL)


# -- reading -----------------------------------------------------------------------------


def _read_name(wire: bytes, offset: int, allow_pointers: bool = True) -> tuple[tuple[bytes, ...], int]:
    """Labels and the offset after the name. Pointers must point backwards (no loops)."""
    labels: list[bytes] = []
    total = 1
    end = None
    limit = offset
    while True:
        if offset >= len(wire):
            raise ValueError("name runs past the packet")
        length = wire[offset]
        if length & 0xC0 == 0xC0:
            if not allow_pointers or offset + 1 >= len(wire):
                raise ValueError("compression pointer")
            target = ((length & 0x3F) << 8) | wire[offset + 1]
            if end is None:
                end = offset + 2
            if target >= limit:
                raise ValueError("forward or looping compression pointer")
            offset = limit = target
            continue
        if length & 0xC0:
            raise ValueError("reserved label type")
        offset += 1
        if length == 0:
            break
        if offset + length > len(wire):
            raise ValueError("label runs past the packet")
        labels.append(wire[offset : offset + length])
        total += length + 1
        if total > 255:
            raise ValueError("name longer than 255 octets")
        offset += length
    return tuple(labels), end if end is not None else offset


def _skip_name(wire: bytes, offset: int) -> int:
    """The offset after a record's owner name, read without following its compression
    pointer (which must point backwards). A query's records other than OPT are skipped, and
    following every pointer would let one message of chained pointers cost a second of CPU:
    each of 5,000 records one hop further from the question."""
    start = offset
    while True:
        if offset >= len(wire):
            raise ValueError("name runs past the packet")
        length = wire[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(wire) or ((length & 0x3F) << 8) | wire[offset + 1] >= start:
                raise ValueError("cut, forward or looping compression pointer")
            return offset + 2
        if length & 0xC0:
            raise ValueError("reserved label type")
        offset += 1 + length
        if not length:
            return offset
        if offset - start > 255:
            raise ValueError("name longer than 255 octets")


def _read_rr(wire: bytes, offset: int):
    start = offset
    offset = _skip_name(wire, offset)
    if offset + 10 > len(wire):
        raise ValueError("truncated record")
    rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", wire, offset)
    offset += 10
    if offset + rdlength > len(wire):
        raise ValueError("truncated record data")
    # Only an OPT's owner matters (the root); its pointer, if any, is followed (once: a
    # second OPT is FORMERR).
    root = rtype == OPT and (wire[start] == 0 or not _read_name(wire, start)[0])
    return rtype, rclass, ttl, wire[offset : offset + rdlength], root, offset + rdlength


def _skip_rr(wire: bytes, offset: int) -> int:
    return _read_rr(wire, offset)[-1]


def _read_options(rdata: bytes) -> dict[int, bytes]:
    options: dict[int, bytes] = {}
    offset = 0
    while offset < len(rdata):
        if offset + 4 > len(rdata):
            raise ValueError("truncated EDNS option")
        code, length = struct.unpack_from("!HH", rdata, offset)
        offset += 4
        if offset + length > len(rdata):
            raise ValueError("EDNS option runs past OPT")
        options.setdefault(code, rdata[offset : offset + length])
        offset += length
    return options


def read_ecs(data: bytes) -> ClientSubnet:
    """RFC 7871 section 6: anything inconsistent is FORMERR."""
    if len(data) < 4:
        raise ValueError("short ECS")
    family, source, scope = struct.unpack_from("!HBB", data)
    address = data[4:]
    width = {1: 32, 2: 128}.get(family)
    if width is None or source > width or scope != 0:
        raise ValueError("bad ECS family or prefix")
    if len(address) != (source + 7) // 8:
        raise ValueError("ECS address length does not match its prefix")
    if source % 8 and address and address[-1] & (0xFF >> (source % 8)):
        raise ValueError("ECS address has bits set beyond its prefix")
    raw = address.ljust(width // 8, b"\0")
    network = ipaddress.ip_network((ipaddress.ip_address(raw), source))
    return ClientSubnet(family, source, network)


# -- writing -----------------------------------------------------------------------------

_POINTER_REACH = 0x3FFF  # a compression pointer holds a 14-bit offset


class _Buffer(DNSBuffer):
    """dnslib's packing buffer, except that a name is kept as a compression target only where
    a pointer can reach it. dnslib keeps every name, and for one first written past offset
    16383 (a TCP reply over 16 KiB: a large MX, SRV or NS set with its addresses) it wrote
    pointers with the offset's top bits cut off, pointing into the wrong bytes."""

    def encode_name(self, name) -> None:
        if not isinstance(name, DNSLabel):
            name = DNSLabel(name)
        if len(name) > 253:
            raise DNSLabelError(f"Domain label too long: {name!r}")
        labels = list(name.label)
        names = self.names
        while labels:
            key = tuple(labels)
            pointer = names.get(key)
            if pointer is not None:
                self.pack("!H", 0xC000 | pointer)
                return
            if self.offset <= _POINTER_REACH:
                names[key] = self.offset
            label = labels.pop(0)
            if len(label) > 63:
                raise DNSLabelError(f"Label component too long: {label!r}")
            self.pack("!B", len(label))
            self.append(label)
        self.append(b"\x00")


def _pack(record: DNSRecord) -> bytearray:
    """DNSRecord.pack, with the buffer above."""
    record.set_header_qa()
    buffer = _Buffer()
    record.header.pack(buffer)
    for section in (record.questions, record.rr, record.auth, record.ar):
        for item in section:
            item.pack(buffer)
    return buffer.data


def _error(qid: int, flags: int, rcode: int, question: bytes = b"", edns: bytes = b"") -> Reply:
    # Keep opcode and RD, set QR; AA, TC, RA, AD, CD clear.
    out_flags = _QR | (flags & (_OPCODE_MASK | _RD)) | (rcode & 0xF)
    header = _HEADER.pack(qid, out_flags, 1 if question else 0, 0, 0, 1 if edns else 0)
    if edns and rcode > 0xF:
        edns = edns[:5] + bytes([rcode >> 4]) + edns[6:]
    return Reply(header + question + edns)


def edns_opt(dnssec_ok: bool, payload: int) -> bytes:
    """A bare OPT record: root name, type 41, our payload size, version 0."""
    return struct.pack("!BHHIH", 0, OPT, payload, 0x8000 if dnssec_ok else 0, 0)


def _opt_rr(dnssec_ok: bool, ext_rcode: int, payload: int, options: list[EDNSOption]) -> RR:
    ttl = (ext_rcode << 24) | (0x8000 if dnssec_ok else 0)
    return RR(DNSLabel("."), OPT, rclass=payload, ttl=ttl, rdata=options)


def _ecs_option(ecs: ClientSubnet, scope: int) -> EDNSOption:
    source = ecs.source_prefix
    address = ecs.network.network_address.packed[: (source + 7) // 8]
    return EDNSOption(ECS_OPTION, struct.pack("!HBB", ecs.family, source, min(scope, source)) + address)
