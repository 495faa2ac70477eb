"""stream/allocator.py against this machine's real glibc (no fake: ctypes calls the libc)."""

from __future__ import annotations

import platform

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
