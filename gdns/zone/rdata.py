"""Record data: one small parser per type, from YAML value to dnslib rdata.

A value is the presentation-format string (``"10 mail.example.com."``) or, for
structured types, a mapping with the RFC's field names. Every parser raises
RdataError with the sub-path of the offending field, so the caller can point at it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from dnslib import AAAA, CAA, CNAME, MX, NS, PTR, QTYPE, RD, SRV, TXT, A, DNSLabel

from gdns.zone.errors import Path


class RdataError(ValueError):
    def __init__(self, message: str, path: Path = ()):
        super().__init__(message)
        self.path = path


_LABEL = re.compile(r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)$")


def check_labels(labels: list[str], allow_wildcard: bool = False, suffix_octets: int = 0) -> None:
    """Hostname-style labels (letters, digits, hyphen, underscore), 255 octets in all, counting
    `suffix_octets` for labels after these that were checked already (a zone's origin)."""
    for i, label in enumerate(labels):
        if _LABEL.match(label) and len(label) <= 63:
            continue
        if label == "*" and allow_wildcard and i == 0:
            continue
        if not label:
            raise RdataError("empty label (two dots in a row?)")
        if len(label) > 63:
            raise RdataError(f"label {label[:20]!r}... is longer than 63 characters")
        if not _LABEL.match(label):
            if label == "*":
                raise RdataError("'*' is allowed only as the leftmost label")
            if "*" in label:
                raise RdataError(f"'*' is allowed only as the whole leftmost label, not in {label!r}")
            raise RdataError(
                f"invalid label {label!r}: use letters, digits, '-' and '_' (no leading or trailing '-')"
            )
    if sum(len(label) + 1 for label in labels) + 1 + suffix_octets > 255:
        raise RdataError("name is longer than 255 octets")


def absolute_name(value: Any, allow_root: bool = False) -> DNSLabel:
    """A fully qualified target name; a missing trailing dot is a classic mistake, so it's an error."""
    if not isinstance(value, str):
        raise RdataError(f"expected a domain name, got {describe(value)}")
    if value == "." and allow_root:
        return DNSLabel(".")
    if not value.endswith("."):
        raise RdataError(f"name {value!r} must be fully qualified (end with '.')")
    if value == ".":
        raise RdataError("the root name '.' is not allowed here")
    check_labels(value[:-1].split("."))
    return DNSLabel(value)


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f"the string {value if len(value) <= 40 else value[:37] + '...'!r}"
    return type(value).__name__


def _uint(value: Any, bits: int, what: str, path: Path = ()) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():  # "²".isdigit() is True
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RdataError(f"{what} must be an integer, got {describe(value)}", path)
    if not 0 <= value < (1 << bits):
        raise RdataError(f"{what} must be between 0 and {(1 << bits) - 1}, got {value}", path)
    return value


def _fields(value: Any, names: tuple[str, ...], rtype: str) -> list[Any]:
    """Accept a mapping with exactly `names`, or the presentation string."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise RdataError(
                f"unknown {rtype} field {unknown[0]!r} (fields: {', '.join(names)})", (unknown[0],)
            )
        missing = [n for n in names if n not in value]
        if missing:
            raise RdataError(f"{rtype} is missing field {missing[0]!r}")
        return [value[n] for n in names]
    if isinstance(value, str):
        parts = value.split()
        if len(parts) != len(names):
            raise RdataError(f"{rtype} needs {len(names)} fields ({' '.join(names)}), got {value!r}")
        return parts
    raise RdataError(f"{rtype} must be a mapping ({', '.join(names)}) or a string, got {describe(value)}")


# What ipaddress.IPv4Address accepts: four decimal octets, no leading zeros, none above 255.
_IPV4 = re.compile(r"(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})")


def parse_a(value: Any) -> RD:
    if not isinstance(value, str):
        raise RdataError(f"expected an IPv4 address, got {describe(value)}")
    match = _IPV4.fullmatch(value)
    if match:  # the common case, without ipaddress's object and dnslib's second parse
        octets = tuple(map(int, match.groups()))
        if max(octets) <= 255:
            return A(octets)
    try:
        return A(str(ipaddress.IPv4Address(value)))
    except ValueError:
        raise RdataError(f"{value!r} is not an IPv4 address") from None


def parse_aaaa(value: Any) -> RD:
    if not isinstance(value, str):
        raise RdataError(f"expected an IPv6 address, got {describe(value)}")
    try:
        addr = ipaddress.IPv6Address(value)
    except ValueError:
        raise RdataError(f"{value!r} is not an IPv6 address") from None
    if addr.scope_id:
        raise RdataError(f"{value!r} has a scope id, which DNS cannot carry")
    return AAAA(tuple(addr.packed))  # what AAAA(str(addr)) parses back to


def _named(cls: type[RD]) -> Callable[[Any], RD]:
    def parse(value: Any) -> RD:
        return cls(absolute_name(value))

    return parse


def parse_mx(value: Any) -> RD:
    pref, exchange = _fields(value, ("preference", "exchange"), "MX")
    path = ("exchange",) if isinstance(value, dict) else ()
    try:
        target = absolute_name(exchange, allow_root=True)
    except RdataError as exc:
        raise RdataError(str(exc), path) from None
    return MX(target, _uint(pref, 16, "preference", ("preference",) if path else ()))


def parse_srv(value: Any) -> RD:
    names = ("priority", "weight", "port", "target")
    prio, weight, port, target = _fields(value, names, "SRV")
    mapping = isinstance(value, dict)
    try:
        name = absolute_name(target, allow_root=True)
    except RdataError as exc:
        raise RdataError(str(exc), ("target",) if mapping else ()) from None
    nums = [
        _uint(v, 16, n, (n,) if mapping else ()) for v, n in zip((prio, weight, port), names, strict=False)
    ]
    return SRV(priority=nums[0], weight=nums[1], port=nums[2], target=name)


_CAA_TEXT = re.compile(r'^\s*(\d+)\s+([A-Za-z0-9]+)\s+(?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$')


def parse_caa(value: Any) -> RD:
    if isinstance(value, str):
        m = _CAA_TEXT.match(value)
        if not m:
            raise RdataError(f"CAA must look like '0 issue \"ca.example.net\"', got {value!r}")
        flags, tag, quoted, bare = m.groups()
        text = quoted if quoted is not None else bare
        text = re.sub(r"\\(.)", r"\1", text)
        path: Path = ()
    else:
        flags, tag, text = _fields(value, ("flags", "tag", "value"), "CAA")
        path = ("tag",)
        if not isinstance(text, str):
            raise RdataError(f"CAA value must be a string, got {describe(text)}", ("value",))
    flags = _uint(flags, 8, "flags", ("flags",) if path else ())
    if not isinstance(tag, str) or not re.fullmatch(r"[A-Za-z0-9]{1,15}", tag):
        raise RdataError(f"CAA tag must be 1-15 letters or digits, got {tag!r}", path)
    return CAA(flags=flags, tag=tag.lower(), value=text)


def parse_txt(value: Any) -> RD:
    if not isinstance(value, str):
        raise RdataError(f"TXT must be a string, got {describe(value)} (quote it)")
    data = value.encode()
    # A character-string holds 255 octets; longer text is split, as zone compilers do.
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return TXT(chunks)


PARSERS: dict[str, Callable[[Any], RD]] = {
    "A": parse_a,
    "AAAA": parse_aaaa,
    "CNAME": _named(CNAME),
    "NS": _named(NS),
    "PTR": _named(PTR),
    "MX": parse_mx,
    "SRV": parse_srv,
    "CAA": parse_caa,
    "TXT": parse_txt,
}

QTYPES: dict[str, int] = {name: getattr(QTYPE, name) for name in PARSERS}


def target_of(rtype: str, rd: RD) -> DNSLabel | None:
    """The name an rdata points at, for additional-section processing and checks."""
    if rtype in ("CNAME", "NS", "PTR"):
        return rd.label
    if rtype == "MX":
        return rd.label
    if rtype == "SRV":
        return rd.target
    return None
