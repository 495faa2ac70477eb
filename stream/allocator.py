"""glibc's allocator, tuned for a worker that holds 100,000 PDLs (docs/performance.md).

Two settings; what they give is measured in docs/performance.md (bench/stream_scale.py at
30,000 and 100,000 PDLs): a few percent to about 10 % of RSS, not the whole way to its target.

- ``LINKY_MALLOC_ARENA_MAX`` (default 2): glibc gives each thread that allocates its own arena,
  up to 8 per core; RocksDB's background threads and the worker's few helper threads each keep
  one, with its free lists. ``mallopt(M_ARENA_MAX)`` caps them; it must run before those threads
  start, so ``stream.app`` calls ``limit_arenas`` at import, before any table opens. 0 leaves
  glibc's default (the ``MALLOC_ARENA_MAX`` environment variable still applies then).
- ``LINKY_MALLOC_TRIM_SECONDS`` (default 60): the Python heap's peak during a burst (a
  restore, a midnight, a backlog) is freed to malloc, which keeps it; ``malloc_trim(0)`` gives the
  free pages back to the system. The worker calls it on a timer; each call is timed in
  ``linky_stream_malloc_trim_seconds`` and what it returned is in
  ``linky_stream_malloc_trim_released_bytes_total`` (RSS before minus after). 0 = never.

On a libc without these calls (musl, macOS) both are no-ops, said once in the log.

And one setting of Python's own collector, ``LINKY_GC_FULL_SECONDS`` (default 60): CPython runs a
full (generation-2) collection whenever the objects promoted since the last one reach a quarter
of the old ones. A reading's state lives until the write-back flush writes it (up to 5 s), so it
is promoted, and at 1,000 meters that made a full collection every 2-3 s, each pausing the event
loop 100-190 ms: most of the latency p99 once the flush stall was gone (docs/performance.md).
Those states are freed by reference counting; the full collection only finds cycles. So the
worker turns CPython's automatic full collections off (``defer_full_collections``; the young
generations are collected as before) and runs one on a timer (``full_collection``), timed in
``linky_stream_gc_full_seconds``: one pause a minute instead of twenty. Cyclic garbage that
reaches the old generation waits for that timer. 0 leaves CPython's behaviour.

The timer's first collection also freezes what survived it (``LINKY_GC_FREEZE``, default on;
``gc.freeze``): the modules, classes, faust's services and everything else of the start-up,
which every later full collection would scan again for nothing. Only the objects made since are
scanned then. An object frozen there that later becomes part of a reference cycle is never
freed; objects freed by reference counting (nearly all of them) are freed as usual.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc.h

_libc: Any = None
_looked_up = False


def _glibc() -> Any:
    """glibc through ctypes, or None when this is not glibc."""
    global _libc, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.mallopt.restype = ctypes.c_int
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            lib.malloc_trim.restype = ctypes.c_int
            _libc = lib
        except (OSError, AttributeError) as exc:
            log.info("allocator: not glibc (%s): arena limit and malloc_trim are off", exc)
            _libc = None
    return _libc


def limit_arenas(arena_max: int) -> bool:
    """Cap glibc's malloc arenas at ``arena_max`` (0: leave them). True when the cap is set."""
    if arena_max <= 0:
        return False
    lib = _glibc()
    if lib is None:
        return False
    if lib.mallopt(M_ARENA_MAX, int(arena_max)) != 1:
        log.warning("allocator: mallopt(M_ARENA_MAX, %d) refused", arena_max)
        return False
    return True


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc), 0 when unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def trim() -> tuple[float, int] | None:
    """``malloc_trim(0)``: (seconds it took, RSS bytes it gave back), None when not glibc."""
    lib = _glibc()
    if lib is None:
        return None
    before = rss_bytes()
    started = time.perf_counter()
    lib.malloc_trim(0)
    took = time.perf_counter() - started
    return took, max(0, before - rss_bytes())


NEVER = 2**31 - 1  # a generation-2 threshold CPython never reaches


def defer_full_collections(enabled: bool) -> None:
    """Turn CPython's automatic full collections off (the young generations keep their
    thresholds); ``full_collection`` then runs them on a timer. ``enabled`` False: nothing."""
    if enabled:
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, NEVER)


def full_collection(freeze: bool = False) -> tuple[float, int]:
    """``gc.collect()`` once: (seconds it took, unreachable objects it found). ``freeze``: then
    ``gc.freeze()``, which moves every object that survived into CPython's permanent generation,
    never scanned again by any collection (they are still freed by reference counting)."""
    started = time.perf_counter()
    found = gc.collect()
    if freeze:
        gc.freeze()
    return time.perf_counter() - started, found


def frozen_objects() -> int:
    """Objects in CPython's permanent generation (``gc.freeze``)."""
    return gc.get_freeze_count()
