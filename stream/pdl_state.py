"""One state value per PDL (issue 14): the ``pdl-state`` table.

Before, a reading's hot state went to three tables (``live``, ``consumption``, ``battery-ledger``):
three RocksDB values, three changelog records per PDL per flush, three keys against the flush
budget (``LINKY_STATE_FLUSH_MAX_KEYS``). Now one table holds, per PDL:

- key ``{pdl}``: ONE value with the PDL's hot parts, one per concern (a *slot*): ``live`` (the
  latest live payload), ``consumption`` (tables/consumption.py's hot state) and
  ``battery-ledger`` (tables/ledger.py's hot value). Each part keeps its own bytes, so each concern
  still decodes only its own part, and only when the part changed (stream/decode_cache.py);
- keys ``{pdl}|{kind}|{period}``: closed history records, written once, as before
  (consumption kinds ``H``, ``D``, ``M``; ledger kinds ``bd``, ``bm``, ``sd``). They share the
  table, hence the changelog partition, of the hot value that lists them: the flush writes them
  first, so what a crash leaves is always a prefix (stream/writeback.py).

The stored value is text a person can read off the changelog::

    linky-state 1
    battery-ledger 812
    {...812 bytes...}
    consumption 1530
    {...}
    live 301
    {...}

(a header line, then per part ``{slot} {length}`` and the part's bytes and a newline; slots in
name order). Code reads and writes a part through a ``Slot``: a table-like view of one concern in
the shared table. The write-back buffer (stream/writeback.py) keeps each slot's writes apart and
merges a PDL's dirty slots into one value at flush: one RocksDB write and one changelog record per
PDL per flush. A PDL's tables written by a version before this one are converted by
``linky-stream migrate-state`` (stream/migrate.py, docs/stream.md "Migrating to one state").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["HEADER", "Slot", "decode_parts", "encode_parts", "merge_parts"]

HEADER = b"linky-state 1\n"


def encode_parts(parts: Mapping[str, bytes]) -> bytes:
    """The stored value of a PDL's hot parts (see the module docstring)."""
    chunks = [HEADER]
    for name in sorted(parts):
        body = parts[name]
        chunks.append(b"%s %d\n" % (name.encode(), len(body)))
        chunks.append(body)
        chunks.append(b"\n")
    return b"".join(chunks)


def decode_parts(raw: bytes | None) -> dict[str, bytes]:
    """The parts of a stored value (an empty dict for None). Raises ValueError on a value that is
    not one (a truncated or foreign record)."""
    if raw is None:
        return {}
    if not raw.startswith(HEADER):
        raise ValueError(f"not a PDL state value: {raw[:40]!r}")
    parts: dict[str, bytes] = {}
    pos, end = len(HEADER), len(raw)
    while pos < end:
        line_end = raw.find(b"\n", pos)
        if line_end < 0:
            raise ValueError("PDL state value: part header without its newline")
        name, _, length = raw[pos:line_end].partition(b" ")
        size = int(length)
        body_start = line_end + 1
        body_end = body_start + size
        if raw[body_end : body_end + 1] != b"\n":
            raise ValueError(f"PDL state value: part {name!r} truncated")
        parts[name.decode()] = raw[body_start:body_end]
        pos = body_end + 1
    return parts


def merge_parts(raw: bytes | None, changes: Mapping[str, bytes | None]) -> bytes | None:
    """``raw`` with the parts in ``changes`` replaced (``None``: removed); None when no part is
    left (the key is then deleted)."""
    parts = decode_parts(raw)
    for name, body in changes.items():
        if body is None:
            parts.pop(name, None)
        else:
            parts[name] = body
    return encode_parts(parts) if parts else None


class Slot:
    """One concern's view of the shared per-PDL table, with the interface the write-back buffer
    and the handlers use of a faust table (``get``, ``items``, ``in``, item assignment).

    Hot keys (no ``|``) read and write this slot's part of the PDL's value; history keys
    (``{pdl}|{kind}|...``) are the table's own keys, each slot's kinds its own (consumption
    ``H``/``D``/``M``, battery ledger ``bd``/``bm``/``sd``/``ck``/``jp``)."""

    def __init__(self, store: Any, name: str) -> None:
        self.store = store  # the faust table (RocksDB + changelog), or a dict in unit tests
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r} of {getattr(self.store, 'name', 'a table')!r})"

    def get(self, key: bytes, default: Any = None) -> Any:
        if b"|" in key:
            return self.store.get(key, default)
        part = decode_parts(self.store.get(key)).get(self.name)
        return default if part is None else part

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        """Write-through (write-back off, or a test): read, replace this part, write back."""
        if b"|" in key:
            self.store[key] = value
        else:
            self.store[key] = merge_parts(self.store.get(key), {self.name: value})

    def __delitem__(self, key: bytes) -> None:
        if b"|" in key:
            if key in self.store:
                del self.store[key]
            return
        merged = merge_parts(self.store.get(key), {self.name: None})
        if merged is None:
            if key in self.store:
                del self.store[key]
        else:
            self.store[key] = merged

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """``(PDL key, this slot's part)`` of every PDL in the local partitions that has one
        (history records are not listed: a faust table's RocksDB store skips them with one seek
        per PDL, stream/factory.py ``hot_items``)."""
        hot_items = getattr(getattr(self.store, "data", None), "hot_items", None)
        pairs = hot_items() if hot_items is not None else self.store.items()
        for key, raw in pairs:
            if raw is None or b"|" in key:
                continue
            part = decode_parts(raw).get(self.name)
            if part is not None:
                yield key, part
