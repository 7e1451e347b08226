"""Keep a long-running node's heap from holding freed memory (periodic glibc malloc_trim).

Why (issue 13, soak): a node's anonymous memory grew through a 20-minute soak although the
Python objects it kept grew far less: heap snapshots (``engine/memtrace.py``) of a node showed
about 2 MiB/min of Python growth (the committed-id cache), while ``malloc_trim(0)``, called in a
never-killed node from a debugger after 7 minutes, returned 34 of its 84 MiB anonymous RSS to the
OS (down to 50 MiB, near the 43 MiB of a fresh node). glibc gives memory back by itself only
from the top of its heap: a freed block below a live allocation stays resident, and a node
allocates buffers of every size and lifetime (frames, blocks, batches, ids, attackers' data).

``install()`` starts a daemon thread that calls ``malloc_trim(0)`` every
``engine.limits.malloc_trim_interval_s``: glibc (>= 2.8) then releases free pages inside the
heap and its thread arenas, not only at the top. It costs a walk of the free lists, with the GIL
released (tests/test_allocator.py prints the time: about 0.15 s on a 150 MiB fragmented heap).
On another C library it does nothing. ``engine start`` calls it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

from engine import limits

__all__ = ["install", "trim"]

_libc: ctypes.CDLL | None = None
_installed = False


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        if name is None:
            return None
        lib = ctypes.CDLL(name)
        if not hasattr(lib, "malloc_trim"):
            return None
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
        lib.malloc_trim.restype = ctypes.c_int
        _libc = lib
    return _libc


def trim() -> bool:
    """Return free heap pages to the OS now; False when the C library cannot (not glibc)."""
    lib = _glibc()
    if lib is None:
        return False
    lib.malloc_trim(0)  # ctypes releases the GIL for the call
    return True


def install(trim_interval_s: float | None = None) -> bool:
    """Start the periodic trim (once per process); False when the C library is not glibc."""
    global _installed
    lib = _glibc()
    if lib is None:
        return False
    interval_s = limits.malloc_trim_interval_s if trim_interval_s is None else trim_interval_s
    if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) \
            or interval_s <= 0:
        raise ValueError(f"trim_interval_s must be a positive number, not {trim_interval_s!r}")
    if _installed:
        return True

    def run() -> None:
        while True:
            time.sleep(interval_s)
            trim()

    threading.Thread(target=run, name="malloc-trim", daemon=True).start()
    _installed = True
    return True
