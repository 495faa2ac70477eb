"""stream/allocator.py against this machine's real glibc (no fake: ctypes calls the libc)."""

from __future__ import annotations

import platform
import weakref

import pytest

from stream import allocator

glibc = platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not glibc, reason="mallopt/malloc_trim are glibc calls; this libc is not glibc")


@needs_glibc
def test_trim_gives_back_the_free_heap_that_malloc_kept() -> None:
    # 64 KiB blocks come from malloc's heap (below its mmap threshold); the last one kept alive pins
    # the top of the heap, so freeing the others leaves ~96 MB free inside it, which free() keeps.
    blocks = [b"x" * 65_536 for _ in range(1_500)]
    keep = blocks[-1]
    del blocks[:-1]
    before = allocator.rss_bytes()
    result = allocator.trim()
    assert result is not None
    took, released = result
    after = allocator.rss_bytes()
    assert took >= 0
    assert released >= 48 * 1024 * 1024, (before, after, released)
    assert abs((before - after) - released) < 4 * 1024 * 1024
    assert keep[:1] == b"x"


@needs_glibc
def test_limit_arenas_sets_the_cap_and_zero_leaves_glibc_alone() -> None:
    assert allocator.limit_arenas(0) is False
    assert allocator.limit_arenas(-1) is False
    assert allocator.limit_arenas(8) is True  # glibc's own bound on 1 core; harmless for the test run


def test_rss_is_read_from_proc() -> None:
    rss = allocator.rss_bytes()
    assert rss > 1024 * 1024  # an interpreter with pytest loaded is at least a few MB


def test_full_collections_move_to_the_timer_and_still_find_cycles() -> None:
    """``defer_full_collections``: CPython's automatic generation-2 collections off, the young
    generations untouched; ``full_collection`` (the worker's timer) still frees cyclic garbage
    that reached the old generation."""
    import gc

    saved = gc.get_threshold()
    try:
        allocator.defer_full_collections(False)
        assert gc.get_threshold() == saved
        allocator.defer_full_collections(True)
        assert gc.get_threshold() == (saved[0], saved[1], allocator.NEVER)

        class Node:
            pass

        gc.collect()
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        gc.collect(1)  # promoted to the old generation, as a reading's state that waited for a flush
        ref = weakref.ref(node)
        del node
        for _ in range(50):  # young collections only now: the cycle stays
            gc.collect(1)
        assert ref() is not None
        took, found = allocator.full_collection()
        assert ref() is None and found >= 1 and took >= 0
    finally:
        gc.set_threshold(*saved)
