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


def test_a_full_collection_with_freeze_moves_the_survivors_out_of_every_later_scan() -> None:
    """``full_collection(freeze=True)`` (the worker timer's first run): garbage is collected
    first, and what survives is frozen, so no later collection scans it; a frozen object is still
    freed by reference counting."""
    import gc

    class Node:
        pass

    garbage = Node()
    garbage.self = garbage  # type: ignore[attr-defined]
    garbage_ref = weakref.ref(garbage)
    del garbage
    kept = Node()
    kept_ref = weakref.ref(kept)
    try:
        _, found = allocator.full_collection(freeze=True)
        assert garbage_ref() is None and found >= 1  # collected before the freeze, not frozen
        assert allocator.frozen_objects() > 0
        assert not any(o is kept for o in gc.get_objects())  # no generation holds it any more
        _, found_after = allocator.full_collection()
        assert kept_ref() is kept  # a later collection does not touch it
        del kept
        assert kept_ref() is None  # reference counting frees it as before
    finally:
        gc.unfreeze()
    assert allocator.frozen_objects() == 0


def test_the_worker_freezes_once_at_its_first_timed_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    """stream/ops.py ``collect_garbage``: freeze on the first call only (``LINKY_GC_FREEZE``)."""
    from stream import ops

    calls: list[bool] = []
    monkeypatch.setattr(allocator, "full_collection", lambda freeze=False: (calls.append(freeze), (0.001, 0))[1])
    monkeypatch.setattr(ops, "_gc", {"frozen": False})
    for _ in range(3):
        ops.collect_garbage()
    assert calls == [True, False, False]
    monkeypatch.setattr(ops, "_gc", {"frozen": True})  # LINKY_GC_FREEZE=false starts here
    ops.collect_garbage()
    assert calls[-1] is False
