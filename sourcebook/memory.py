"""Returning freed heap memory to the operating system.

glibc's malloc keeps what Python and native libraries free in per-thread arenas, at the high-water
mark of the largest piece of work each thread did: a long ingestion run then holds far more memory
than it uses (bench/README.md, Ingestion). ``malloc_trim(0)`` hands the free pages back. Other C
libraries (musl, macOS) have no such call; there this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def trim_heap() -> bool:
    """Give free heap pages back to the OS; False where the C library can't (not glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
