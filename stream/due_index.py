"""When each PDL next needs the timer: a heap with one live entry per key (issue 14).

The battery timer used to decode and test every PDL of the worker every 10 s (O(PDLs) per tick:
with 100,000 PDLs that alone saturated a core). Instead each stored state schedules its key at
the earliest instant the timer could have work for it (tables/ledger.py ``next_tick_due``), and a
tick pops only the keys that are due.

One live entry per key: scheduling a key that already has an entry at or before the new instant
does nothing (the earlier check will find the state not due and schedule it again), an earlier
instant replaces it (the old heap entry becomes stale and is skipped when popped). So the heap
holds about one entry per PDL, and a reading costs a dict lookup.

Memory matters here: a worker holds one key per PDL (100,000 and more). An entry is a
``(when, sequence number, key)`` tuple sharing the dict's float; stale entries are compacted as
soon as they outnumber the live ones (they were compacted only at 4x, which held about 3 entries
and 365 bytes per PDL at 30,000 PDLs x 3 readings, docs/performance.md). The sequence number makes
ties first-scheduled, first-popped: at midnight every PDL is due at the same instant and the
timer pops a few thousand per run, so a PDL rescheduled at that instant must go behind the
others. Popping ties in key order instead saved 36 bytes per entry but made the timer check
about 1.7x as many PDLs per tick sent during a backlog (docs/performance.md "2026-12-07, night").
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

__all__ = ["DueIndex"]


class DueIndex(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._at: dict[K, float] = {}
        self._seq = 0  # ties: first scheduled, first popped (and keys never compared)

    def schedule(self, key: K, when: float) -> None:
        """Make sure ``key`` is popped no later than ``when`` (epoch seconds)."""
        current = self._at.get(key)
        if current is not None and current <= when:
            return
        self._at[key] = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, key))
        if len(self._heap) > 2 * len(self._at) + 1024:  # stale entries outnumber live ones
            self._compact()

    def reschedule(self, key: K, when: float | None) -> None:
        """Pop ``key`` at ``when`` exactly, even later than its entry (``None``: not at all).
        For a caller that knows the key has nothing to do before ``when``; ``schedule`` keeps
        the earliest instant instead."""
        if when is None:
            self.forget(key)
        elif self._at.get(key) != when:
            self._at.pop(key, None)
            self.schedule(key, when)

    def pop_due(self, now: float, limit: int | None = None) -> list[K]:
        """The keys scheduled at or before ``now``, earliest first, at most ``limit`` of them;
        they are unscheduled (schedule them again if they still need the timer)."""
        out: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            when, _, key = heapq.heappop(heap)
            if self._at.get(key) == when:
                del self._at[key]
                out.append(key)
        return out

    def _compact(self) -> None:
        at = self._at
        self._heap = [entry for entry in self._heap if at.get(entry[2]) == entry[0]]
        heapq.heapify(self._heap)

    def next_at(self) -> float | None:
        """The earliest scheduled instant, if any."""
        while self._heap and self._at.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def forget(self, key: K) -> None:
        self._at.pop(key, None)  # its heap entry is now stale

    def clear(self) -> None:
        self._heap.clear()
        self._at.clear()

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, key: object) -> bool:
        return key in self._at
