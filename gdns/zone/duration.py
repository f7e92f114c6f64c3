"""The one duration syntax of a zone file, for TTLs, SOA timers and check timings.

A duration is a number of seconds (`300`, `0.5`, or the same as a string) or one or more
`<number><unit>` parts with units `w d h m s ms`, largest first, each at most once:
`500ms`, `1.5s`, `5m`, `1h30m`, `1d12h`, `2w`. TTLs must come to whole seconds (`1.5h` is
fine, `1.5s` and `500ms` are not), since DNS carries TTLs as integers.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": Fraction(1, 1000)}
_ORDER = list(_UNITS)
_NUMBER = r"\d+(?:\.\d+)?"
_BARE = re.compile(rf"^{_NUMBER}$")
_PART = re.compile(rf"({_NUMBER})(ms|[wdhms])")
EXAMPLES = "e.g. 300, 30s, 5m, 1h30m, 1d, 500ms"


def parse_duration(text: str) -> Fraction:
    """Exact seconds of a duration string; ValueError with a message for people."""
    if _BARE.match(text):
        return Fraction(text)
    total, last, pos = Fraction(0), -1, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        index = _ORDER.index(match.group(2))
        if index <= last:
            raise ValueError(f"{text!r} is not a duration: give each unit once, largest first (e.g. 1h30m)")
        total += Fraction(match.group(1)) * _UNITS[match.group(2)]
        last, pos = index, match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"{text!r} is not a duration ({EXAMPLES})")
    return total


def ttl_seconds(value: Any) -> Any:
    """A TTL or SOA timer: whole seconds, as an int. Other types are left to the model."""
    if isinstance(value, float) and math.isfinite(value):
        exact = Fraction(value)
        shown = f"{value:g}"
    elif isinstance(value, str):
        exact = parse_duration(value)
        shown = repr(value)
    else:
        return value
    if exact.denominator != 1:
        raise ValueError(f"{shown} is not a whole number of seconds: TTLs and SOA timers are whole seconds")
    return int(exact)


def check_seconds(value: Any) -> Any:
    """A check timing: seconds as a float, fractions allowed. Other types are left to the model."""
    if isinstance(value, str):
        return float(parse_duration(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
