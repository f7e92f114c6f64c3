"""Give memory freed by a large zone load back to the operating system (glibc only).

Python's own allocator returns its arenas as they empty, but the C library's heap keeps the
large blocks a load frees (a 5 MB dict table, the file's text) wherever they were, and the
process's resident size with them: 10 MB or more for a 100k-record zone, on top of the zone.
malloc_trim(0) returns those pages. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

_trim = None
if sys.platform.startswith("linux"):
    try:
        _trim = ctypes.CDLL("libc.so.6").malloc_trim
        _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # not glibc
        _trim = None


def give_back() -> None:
    """Return the C heap's free pages (a few milliseconds; the GIL is released meanwhile)."""
    if _trim is not None:
        _trim(0)
