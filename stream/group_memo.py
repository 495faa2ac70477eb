"""``GroupMemo``: a per-PDL lookup read once per group of readings (agents/readings.py folds a PDL's
readings of one fetch in a row, between ``begin_group`` and ``end_group``, awaiting nothing: the
agents that change these documents cannot run before the group ends), and at every call outside
a group."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

__all__ = ["GroupMemo"]


class GroupMemo(Generic[K, V]):
    def __init__(self, load: Callable[[K], V]) -> None:
        self._load = load
        self._values: dict[K, V] | None = None  # inside a group: key -> value read

    def begin(self) -> None:
        self._values = {}

    def end(self) -> None:
        self._values = None

    def get(self, key: K) -> V:
        values = self._values
        if values is None:
            return self._load(key)
        if key not in values:
            values[key] = self._load(key)
        return values[key]
