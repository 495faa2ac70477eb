"""Row mappings whose closed rows are loaded on demand (pure; no Faust).

The battery agent keeps a PDL's *closed* day and month rows (days before the current one) under
their own table keys, written once, and only the open rows in the PDL's hot value
(tables/ledger.py ``to_storage``/``from_storage``, docs/stream.md). ``LazyRows`` is what the
ledger folds see: a mapping whose keys are all known, but whose closed rows are read from the
table only when a fold really looks at them (an invoice anchor summing the day rows, an HTTP
history query). Folds that only touch the current rows and prune old keys never load anything.

The folds copy their inputs with ``copy_rows`` (never mutate them): a copy shares the loader and
the rows already loaded. A copy also knows which keys were set or removed since the mapping it
descends from (``changed_since``), so storing a reading's state looks at the rows the reading
changed, not at every closed row (tables/ledger.py ``to_storage``).
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, Mapping, MutableMapping, TypeVar

V = TypeVar("V")

__all__ = ["LazyRows", "copy_rows", "UNLOADED"]


class _Unloaded:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unloaded>"


UNLOADED: Any = _Unloaded()


class LazyRows(MutableMapping[str, V], Generic[V]):
    """``key -> row``; a value ``UNLOADED`` is fetched with ``load(key)`` on first access.

    ``load`` returns the row, or None when the stored row is missing (the key is then dropped).
    Equality is by content, but two copies holding the same not-yet-loaded key compare equal
    without loading it (closed rows are immutable: same key, same stored row).
    """

    __slots__ = ("_rows", "_load", "_origin", "_changed")

    def __init__(self, rows: dict[str, Any], load: Callable[[str], V | None]) -> None:
        self._rows = rows
        self._load = load
        self._origin: LazyRows[V] | None = None  # the mapping copied from (through copies); None: none
        # keys set, deleted or dropped since ``_origin`` (or since made); None: none (no empty
        # set kept per mapping: 100,000 PDLs hold three of these each)
        self._changed: set[str] | None = None

    def __getitem__(self, key: str) -> V:
        value = self._rows[key]
        if value is UNLOADED:
            loaded = self._load(key)
            if loaded is None:
                del self._rows[key]
                self._note(key)
                raise KeyError(key)
            self._rows[key] = value = loaded
        return value  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: V) -> None:
        self._rows[key] = value
        self._note(key)

    def __delitem__(self, key: str) -> None:
        del self._rows[key]
        self._note(key)

    def _note(self, key: str) -> None:
        if self._changed is None:
            self._changed = {key}
        else:
            self._changed.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._rows))

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def copy(self) -> "LazyRows[V]":
        """A copy that remembers where it comes from: see ``changed_since``."""
        copied = LazyRows(dict(self._rows), self._load)
        copied._origin = self if self._origin is None else self._origin
        copied._changed = None if self._changed is None else set(self._changed)
        return copied

    def fresh_copy(self) -> "LazyRows[V]":
        """A copy that descends from nothing (what is stored: changes are counted from here)."""
        return LazyRows(dict(self._rows), self._load)

    def changed_since(self, base: "LazyRows[V]") -> set[str] | None:
        """The keys that may differ from ``base`` (set, deleted, or dropped as missing), when this
        mapping is ``base`` or copied from it (through any number of copies) and ``base`` itself
        descends from nothing and has not changed; None when that is not known (compare all).
        Every other key has the same stored value object in both, loaded or not."""
        if base._origin is not None or base._changed:
            return None
        if self is base:
            return set()
        return (self._changed or set()) if self._origin is base else None

    def raw(self, key: str) -> Any:
        """The stored value without loading (``UNLOADED`` for a closed row not read yet)."""
        return self._rows[key]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyRows):
            if self._rows.keys() != other._rows.keys():
                return False
            for key, mine in self._rows.items():
                theirs = other._rows[key]
                if mine is theirs:
                    continue
                try:
                    if self[key] != other[key]:
                        return False
                except KeyError:
                    return False
            return True
        if isinstance(other, Mapping):
            return self._rows.keys() == other.keys() and all(self[k] == other[k] for k in self._rows)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LazyRows({self._rows!r})"


def copy_rows(rows: Mapping[str, V]) -> MutableMapping[str, V]:
    """A mutable copy for a fold: ``LazyRows`` stays lazy, anything else becomes a dict."""
    if isinstance(rows, LazyRows):
        return rows.copy()
    return dict(rows)
