"""Response rate limiting (RRL) for UDP, in the manner of BIND's and Knot's.

A UDP query's source address can be forged, so an authoritative server can be used to
reflect (and amplify) traffic at a victim. RRL keeps an *account* per client network and
answer identity, and answers at most `responses-per-second` identical responses to one
network; past that, responses are dropped, except every `slip`-th, which is sent as a small
truncated reply (TC=1, no records) so a real resolver behind that network retries over TCP,
where the source address is proven. TCP is never limited.

The account is keyed by
- the client network: the source address cut to --rrl-ipv4-prefix / --rrl-ipv6-prefix bits;
- the answer identity (`identity()`): for a positive answer the query name and type (a name
  answered from a wildcard counts as the wildcard), for NODATA the name, for a referral the
  delegation point, for NXDOMAIN the zone (the SOA owner), so a flood of random names under
  one zone is one account; and for errors (REFUSED, FORMERR, SERVFAIL ...) nothing: one
  account per network.

Each account is a token bucket kept as a single number, the time its debt runs out (the
"theoretical arrival time" of GCRA). Every response, sent or not, adds 1/rate seconds of
debt; a response is sent while the debt is at most one second (a burst of `rate` responses
is allowed), and the debt is capped at one second plus `window`: so a network that keeps
asking faster than the rate gets nothing (but slips) until it slows down, and one that
stops is answered again at most `window` seconds later. An account whose debt has run out
is the same as no account, which is what lets the table forget accounts freely.

The table has at most `table_size` accounts. When it is full, the oldest quarter (by
creation) is looked at: accounts being limited move to the end, the rest are forgotten (at
most a second's worth of responses is forgiven); if that frees nothing (every account is
being limited: the table is too small for the attack), the oldest are forgotten anyway. One
table per process (per worker with --workers), shared by its UDP threads: reads and
writes of the table are single dictionary operations under the GIL, and a rare lost update
only means one response more or less.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass
from itertools import islice

from dnslib import QTYPE

log = logging.getLogger("gdns.rrl")

SEND, DROP, SLIP = 0, 1, 2
# Identity classes: the first byte of an identity.
POSITIVE, NODATA, REFERRAL, NXDOMAIN, ERROR = range(5)
_CLASS_NAMES = ("responses", "nodata", "referrals", "nxdomain", "errors")
_RATE = (0, 0, 0, 1, 2)  # class -> index of its rate: responses, nxdomains, errors
ERROR_IDENTITY = bytes([ERROR])
_EPS = 1e-9  # float slack: `rate` debits of 1/rate must add up to one second, not a hair more
_V6 = 1 << 129  # IPv6 network keys are above every IPv4 one
_UNSEEN = object()
LOG_EVERY = 5.0  # seconds between "began limiting" lines; the ones in between are counted
_SOA = QTYPE.SOA
_SLIPPED = struct.Struct("!2sBB4H")  # ID, flags (two bytes), the four counts


@dataclass(frozen=True)
class RRLSettings:
    """--rrl-* flags. Rates are responses per second per account; 0 = not limited."""

    responses_per_second: int = 0  # positive answers, NODATA, referrals; 0 with the others unset = off
    nxdomains_per_second: int | None = None  # None: as responses_per_second
    errors_per_second: int | None = None  # None: as responses_per_second
    slip: int = 2  # every slip-th limited response is sent truncated; 0 never, 1 always
    window: int = 15  # seconds: the most debt an account can run up beyond its one-second burst
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple = ()  # ipaddress networks never limited
    table_size: int = 100_000  # accounts at most
    log_only: bool = False  # count and log what would be limited, but send everything

    @property
    def rates(self) -> tuple[int, int, int]:
        r = self.responses_per_second
        nx = r if self.nxdomains_per_second is None else self.nxdomains_per_second
        errors = r if self.errors_per_second is None else self.errors_per_second
        return r, nx, errors

    @property
    def enabled(self) -> bool:
        return any(self.rates)


def _wire(labels) -> bytes:
    return b"".join(bytes([len(label)]) + label.lower() for label in labels) + b"\0"


def identity(query, answer) -> bytes:
    """The account an answer to `query` is charged to, less the client network (see above)."""
    rcode = answer.rcode
    if rcode == 3:
        soa = next((rr for rr in answer.authority if rr.rtype == _SOA), None)
        zone = _wire(soa.rname.label) if soa is not None else query.question[:-4].lower()
        return bytes([NXDOMAIN]) + zone
    if rcode:
        return ERROR_IDENTITY
    name = _wire(answer.wildcard) if answer.wildcard else query.question[:-4].lower()
    if answer.answer:
        return bytes([POSITIVE]) + name + query.question[-4:]
    if not answer.aa and answer.authority:
        return bytes([REFERRAL]) + _wire(answer.authority[0].rname.label)
    return bytes([NODATA]) + name


def describe(identity: bytes) -> str:
    """An identity for people: 'www.example.com. A', 'example.com. (nxdomain)' ..."""
    kind = identity[0]
    if kind == ERROR:
        return "errors"
    name, offset, data = [], 1, identity
    while offset < len(data) and data[offset]:
        length = data[offset]
        name.append(data[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += length + 1
    text = ".".join(name) + "."
    if kind == POSITIVE:
        qtype = int.from_bytes(data[offset + 1 : offset + 3], "big")
        return f"{text} {QTYPE.get(qtype, qtype)}"
    return f"{text} ({_CLASS_NAMES[kind]})"


def slipped(reply: bytes, question_length: int, opt: bytes = b"") -> bytes:
    """`reply` cut to its header and question (and a bare OPT when the query had EDNS), with
    TC set and the rcode and AA kept: the client learns nothing but to ask again over TCP."""
    head = _SLIPPED.pack(reply[:2], reply[2] | 0x02, reply[3], 1, 0, 0, 1 if opt else 0)
    return head + reply[12 : 12 + question_length] + opt


class RateLimiter:
    def __init__(self, settings: RRLSettings, clock=time.monotonic):
        self.settings = settings
        self.clock = clock
        rates = settings.rates
        self.intervals = tuple(1.0 / rates[i] if rates[i] else 0.0 for i in _RATE)
        self.ceiling = 1.0 + settings.window  # seconds of debt at most
        self.v4_shift = 32 - settings.ipv4_prefix
        self.v6_shift = 128 - settings.ipv6_prefix
        self.exempt4 = tuple(_mask(n) for n in settings.exempt if n.version == 4)
        self.exempt6 = tuple(_mask(n) for n in settings.exempt if n.version == 6)
        self.slip = settings.slip
        self.log_only = settings.log_only
        self.max_entries = settings.table_size
        self.table: dict[tuple[int, bytes], float] = {}  # (network, identity) -> debt runs out at
        self.nets: dict[str, int | None] = {}  # address -> network key, None when exempt
        self.slips = 0  # limited responses since the last slip
        self.evicted = 0  # accounts forgotten while being limited (the table was too small)
        self._evicting = threading.Lock()
        self._logged_at = self._full_logged_at = -LOG_EVERY
        self._unlogged = 0

    def check(self, address: str, identity: bytes, stats) -> int:
        """SEND, DROP or SLIP for one UDP response; limited ones are counted in `stats`."""
        interval = self.intervals[identity[0]]
        if not interval:
            return SEND
        net = self.nets.get(address, _UNSEEN)
        if net is _UNSEEN:
            net = self._network(address)
        if net is None:
            return SEND
        now = self.clock()
        key = (net, identity)
        table = self.table
        due = table.get(key)
        if due is None:
            if len(table) >= self.max_entries:
                self._evict(now)
            due = now + interval
        elif due < now:
            due = now + interval
        else:
            due += interval
        debt = due - now
        if debt <= 1.0 + _EPS:
            table[key] = due
            return SEND
        table[key] = due if debt <= self.ceiling else now + self.ceiling
        if debt - interval <= 1.0 + _EPS:  # the previous response was still within the burst
            self._began(net, identity, now)
        limited = stats.limited
        if self.log_only:
            limited["log_only"] = limited.get("log_only", 0) + 1
            return SEND
        if self.slip and identity[0] != ERROR:  # an error is not worth a retry over TCP
            self.slips += 1
            if self.slips >= self.slip:
                self.slips = 0
                limited["slipped"] = limited.get("slipped", 0) + 1
                return SLIP
        limited["dropped"] = limited.get("dropped", 0) + 1
        return DROP

    def _network(self, address: str) -> int | None:
        """The account's network for a client address (None: exempt), remembered."""
        nets = self.nets
        if len(nets) >= self.max_entries:
            nets.clear()
        try:
            if ":" in address:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address.partition("%")[0]), "big")
                exempt, net = self.exempt6, (value >> self.v6_shift) | _V6
            else:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
                exempt, net = self.exempt4, value >> self.v4_shift
        except OSError:  # not an address we can read: one account of its own
            exempt, value, net = (), 0, (hash(address) & 0xFFFFFFFFFFFFFFFF) | (1 << 130)
        for base, mask in exempt:
            if value & mask == base:
                net = None
                break
        nets[address] = net
        return net

    def network_text(self, net: int) -> str:
        if net & _V6:
            prefix = self.settings.ipv6_prefix
            return str(ipaddress.IPv6Network(((net ^ _V6) << self.v6_shift, prefix)))
        if net >> 32:
            return "?"
        return str(ipaddress.IPv4Network((net << self.v4_shift, self.settings.ipv4_prefix)))

    def _began(self, net: int, identity: bytes, now: float) -> None:
        """Log that an account began to be limited: at most one line every LOG_EVERY seconds."""
        if now - self._logged_at < LOG_EVERY:
            self._unlogged += 1
            return
        self._logged_at = now
        more, self._unlogged = self._unlogged, 0
        rate = round(1.0 / self.intervals[identity[0]])
        log.info(
            "rate limiting UDP responses to %s for %s (over %d/s)%s%s",
            self.network_text(net),
            describe(identity),
            rate,
            "; log only, still sent" if self.log_only else "",
            f"; {more} more account(s) began to be limited since the last such line" if more else "",
        )

    def _evict(self, now: float) -> None:
        """Make room: forget the oldest quarter of the accounts, except those being limited."""
        if not self._evicting.acquire(blocking=False):
            return  # another thread is at it
        try:
            table = self.table
            # One C call, which no other thread interrupts, so the table cannot change under it.
            oldest = list(islice(table, max(1, self.max_entries // 4)))
            freed = 0
            for key in oldest:
                due = table.pop(key, None)
                if due is None:
                    continue
                if due - now > 1.0:
                    table[key] = due  # being limited: kept (forgetting it would lift the limit)
                else:
                    freed += 1  # at most a second's worth of responses forgiven
            if not freed:  # every one is being limited: the table is too small; forget them anyway
                for key in oldest:
                    if table.pop(key, None) is not None:
                        self.evicted += 1
                if now - self._full_logged_at < LOG_EVERY:
                    return
                self._full_logged_at = now
                log.warning(
                    "rate limiting table full (%d accounts, all being limited): forgot the %d oldest; "
                    "consider a larger --rrl-table-size",
                    self.max_entries,
                    len(oldest),
                )
        finally:
            self._evicting.release()

    def export(self) -> dict:
        return {"rrl_entries": len(self.table), "rrl_evicted": self.evicted}


def _mask(network) -> tuple[int, int]:
    return int(network.network_address), int(network.netmask)
