"""Per-PDL index tracking: turn successive meter readings into energy deltas (pure).

Energy always comes from index differences, never from integrating power. ``advance`` is the one
place where the rules live, for consumption and (once switched over) battery and surplus:

- the first reading of a PDL is a baseline: no energy;
- a reading whose time is not after the last applied one (a duplicate carries the same time; a
  replay or late copy an older one) changes nothing: ``applied`` is False. This is what makes the
  folds idempotent under at-least-once delivery;
- a reading carrying no index at all (no import register and no export) does not move the cursor:
  the next complete reading's delta covers both intervals;
- each register (``import_wh_by_period`` label, and export ``EAIT``) is tracked on its own; a
  register missing from a reading keeps its last index (its energy shows up, in full, in a later
  delta);
- an index lower than the last one re-baselines that register (no energy, never negative energy)
  and yields an ``index_backwards`` event; a 9-digit counter wrapping from near 999 999 999 Wh to
  near 0 is a rollover and counts ``new + 10^9 - old``;
- a different meter id (meter replaced) re-baselines every register: ``meter_changed`` event;
- without ``import_wh_by_period`` but with a total ``import_wh``, the total is tracked as the
  register ``TOTAL`` (only then, so a total and per-period registers are never added together).

The delta of every register is attributed to one interval: ``[start, end)`` = previous applied
reading time -> this reading time (``start`` is None on a baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, NamedTuple

from tables.calendar import to_utc

EXPORT = "EAIT"
TOTAL = "TOTAL"
ROLLOVER = 10**9  # 9-digit Wh indexes (EAST/EASFxx/EAIT, historic HCHC...)
ROLLOVER_WINDOW = 10**6  # "near the top" / "near zero" for a wrap to count as a rollover

__all__ = ["Cursor", "Advance", "IndexEvent", "advance", "cursor_to_dict", "cursor_from_dict", "EXPORT", "TOTAL"]


@dataclass(frozen=True)
class Cursor:
    """What we know of a PDL's meter after the last applied reading."""

    time: datetime | None = None
    meter: str | None = None
    imports: Mapping[str, int] = field(default_factory=dict)  # register label -> last index (Wh)
    export: int | None = None  # last EAIT (Wh)


@dataclass(frozen=True)
class IndexEvent:
    """``kind``: index_backwards, index_rollover, meter_changed."""

    kind: str
    at: datetime
    register: str | None = None
    previous: int | str | None = None
    current: int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "register": self.register,
            "previous": self.previous,
            "current": self.current,
        }


class Advance(NamedTuple):
    cursor: Cursor
    applied: bool  # False: duplicate or older reading (or no index at all): nothing changed
    start: datetime | None  # previous applied reading time; None on a baseline
    end: datetime
    import_wh_by_period: dict[str, int]  # Wh >= 0 per register (registers seen in both readings)
    export_wh: int  # Wh >= 0
    events: list[IndexEvent]


def advance(
    cursor: Cursor,
    *,
    time: datetime,
    meter: str | None,
    import_wh_by_period: Mapping[str, int | None] | None,
    export_wh: int | None,
    import_wh: int | None = None,
) -> Advance:
    """Fold one reading's indexes into ``cursor`` and return the energy since the last one."""
    time = to_utc(time)
    if cursor.time is not None and time <= cursor.time:
        return Advance(cursor, False, None, time, {}, 0, [])
    registers = {k: v for k, v in (import_wh_by_period or {}).items() if v is not None}
    if not registers and import_wh is not None:
        registers = {TOTAL: import_wh}
    if not registers and export_wh is None:
        return Advance(cursor, False, None, time, {}, 0, [])
    for label, value in registers.items():
        _check_index(label, value)
    if export_wh is not None:
        _check_index(EXPORT, export_wh)

    events: list[IndexEvent] = []
    if cursor.time is None:
        new = Cursor(time, meter, registers, export_wh)
        return Advance(new, True, None, time, {}, 0, events)
    if meter is not None and cursor.meter is not None and meter != cursor.meter:
        events.append(IndexEvent("meter_changed", time, None, cursor.meter, meter))
        new = Cursor(time, meter, registers, export_wh)
        return Advance(new, True, cursor.time, time, {}, 0, events)

    imports = dict(cursor.imports)
    deltas: dict[str, int] = {}
    for label, value in registers.items():
        previous = imports.get(label)
        imports[label] = value
        if previous is not None:
            deltas[label] = _delta(label, previous, value, time, events)
    export = cursor.export
    export_delta = 0
    if export_wh is not None:
        if export is not None:
            export_delta = _delta(EXPORT, export, export_wh, time, events)
        export = export_wh
    new = Cursor(time, meter if meter is not None else cursor.meter, imports, export)
    return Advance(new, True, cursor.time, time, deltas, export_delta, events)


def _delta(label: str, previous: int, current: int, at: datetime, events: list[IndexEvent]) -> int:
    if current >= previous:
        return current - previous
    if previous >= ROLLOVER - ROLLOVER_WINDOW and current < ROLLOVER_WINDOW:
        events.append(IndexEvent("index_rollover", at, label, previous, current))
        return current + ROLLOVER - previous
    events.append(IndexEvent("index_backwards", at, label, previous, current))
    return 0


def _check_index(label: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"index {label!r} must be an integer >= 0, got {value!r}")


# --------------------------------------------------------------------------- (de)serialization


def cursor_to_dict(cursor: Cursor) -> dict[str, Any]:
    """Plain JSON-able form (the time keeps its original offset and microseconds)."""
    return {
        "t": cursor.time.isoformat() if cursor.time else None,
        "m": cursor.meter,
        "i": dict(cursor.imports),
        "e": cursor.export,
    }


def cursor_from_dict(data: Mapping[str, Any]) -> Cursor:
    t = data.get("t")
    return Cursor(
        time=to_utc(datetime.fromisoformat(t)) if t else None,
        meter=data.get("m"),
        imports={str(k): int(v) for k, v in (data.get("i") or {}).items()},
        export=None if data.get("e") is None else int(data["e"]),
    )
