"""Per-process memo of decoded table values, keyed by the stored bytes (docs/performance.md).

Every reading of a PDL reads the PDL's table values back (live, consumption, battery) and used
to parse their JSON and rebuild their dataclasses each time. ``DecodeCache`` keeps the last
decoded value per key together with the exact bytes it came from: a lookup returns it only when
the table still holds *those bytes* (a byte comparison), so it can never serve a stale value
(another worker's writes, a recovery, a replay all change the bytes or are byte-identical).
Cached values are immutable (frozen dataclasses; folds copy what they change).

Bounded: when ``max_entries`` is reached the cache is emptied (cheap, and a worker holding more
PDLs than that gains nothing from an LRU with one reading per PDL per pass). The default,
``LINKY_DECODE_CACHE_ENTRIES`` (5,000), is a memory bound: a decoded consumption or battery state
is several KB of Python objects, and a worker of 100,000 PDLs read round-robin gets no hit from
any size short of all of them (bench/stream_scale.py).
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")

__all__ = ["DecodeCache"]

DEFAULT_MAX_ENTRIES = 5_000  # per cache; stream/app.py sets it from LINKY_DECODE_CACHE_ENTRIES


class DecodeCache(Generic[T]):
    def __init__(self, max_entries: int | None = None) -> None:
        self._max = max_entries
        self._entries: dict[bytes, tuple[bytes, T]] = {}

    @property
    def max_entries(self) -> int:
        return self._max if self._max is not None else DEFAULT_MAX_ENTRIES

    def get(self, key: bytes, raw: bytes, decode: Callable[[bytes], T]) -> T:
        """``decode(raw)``, memoized for ``key`` while the stored bytes stay ``raw``."""
        hit = self._entries.get(key)
        if hit is not None and hit[0] == raw:
            return hit[1]
        value = decode(raw)
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (bytes(raw), value)
        return value

    def put(self, key: bytes, raw: bytes, value: T) -> None:
        """Remember that ``raw`` (just written for ``key``) decodes to ``value``."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (raw, value)

    def __len__(self) -> int:
        return len(self._entries)
