"""Consumption per PDL in hour, day and month buckets of the Europe/Paris calendar (pure).

What the consumption agent calls (docs/stream.md explains the storage and the guarantees):

- ``fold_reading(state, reading, config)`` folds one normalized reading (teleinfo/reading.py) and
  returns ``Fold(state, applied, changed, writes, events)``;
- ``render_conso_payload(state, pdl=, config=)`` is the ``linky:{pdl}:conso`` payload;
- ``query_buckets(state, granularity, start, end, load, config)`` answers the HTTP query;
- ``state_to_bytes`` / ``state_from_bytes``, ``record_to_bytes`` / ``record_from_bytes`` store
  values in the faust table.

Energy: integer Wh from index deltas (tables/deltas.py), per import register (``by_period``: the
register label, e.g. ``HCHC`` or ``EASF02``; registers with 0 Wh in a bucket are omitted) and for
injection (EAIT). A bucket's ``import_wh`` is the sum of its ``by_period``. A delta spanning
several hours (reader offline) is split in proportion to time (tables/calendar.py), so totals are
exact to the Wh whatever happens; only the attribution inside the gap is an estimate.

State layout (one faust table; see docs/stream.md for why):

- the *hot* value per PDL: index cursor, the open local day (its hour buckets and total) and the
  open month's total. Buckets are half-open and a bucket is *open* until data after its end
  arrives: an interval ending exactly at midnight leaves the day before open.
- *history records*, written once when a bucket closes and never modified afterwards (so a
  record is either absent or right): ``("H", "2026-10-25")`` the hour buckets of a closed day,
  ``("D", "2026-10-25")`` its total, ``("M", "2026-10")`` a closed month's total. ``Fold.writes``
  maps such keys to the record to store, or to None to delete it (retention).

Retention (``Retention``, event time of the PDL's own data): hour buckets are kept for the open
day and the ``hours_days`` previous days, day buckets for ``days_days`` days, month buckets while
the month ends less than ``months_days`` days ago. Pruning happens when the PDL's open day moves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterator, Mapping, NamedTuple
from zoneinfo import ZoneInfo

from tables.calendar import (
    HOUR,
    PARIS,
    UTC,
    day_bounds,
    iso_local,
    local_date,
    month_bounds,
    month_key,
    next_month,
    split_by_hour,
    to_utc,
)
from tables.deltas import Cursor, IndexEvent, advance, cursor_from_dict, cursor_to_dict

SCHEMA_VERSION = 1
GRANULARITIES = ("hour", "day", "month")
HOURS, DAY, MONTH = "H", "D", "M"  # history record kinds
_EXPORT = ""  # key of the export amount in split_by_hour (never a register label)

__all__ = [
    "SCHEMA_VERSION", "GRANULARITIES", "Totals", "Retention", "ConsumptionConfig", "ConsumptionState",
    "Fold", "fold_reading", "fold", "render_conso_payload", "render_bucket", "query_buckets",
    "reading_time", "state_to_bytes", "state_from_bytes", "record_to_bytes", "record_from_bytes",
]  # fmt: skip


# =========================================================================== public API


@dataclass(frozen=True)
class Totals:
    """Energy of one bucket: Wh drawn per import register, and Wh injected."""

    imports: Mapping[str, int] = field(default_factory=dict)
    export_wh: int = 0

    @property
    def import_wh(self) -> int:
        return sum(self.imports.values())

    def plus(self, parts: Mapping[str, int]) -> "Totals":
        """Add a piece from ``split_by_hour`` (export under the ``_EXPORT`` key)."""
        imports = dict(self.imports)
        export = self.export_wh
        for label, wh in parts.items():
            if label == _EXPORT:
                export += wh
            elif wh:
                imports[label] = imports.get(label, 0) + wh
        return Totals(imports, export)


EMPTY = Totals()


@dataclass(frozen=True)
class Retention:
    """How long closed buckets are kept, in days of the PDL's own event time."""

    hours_days: int = 7
    days_days: int = 400
    months_days: int = 5 * 366


@dataclass(frozen=True)
class ConsumptionConfig:
    tz: ZoneInfo = PARIS
    retention: Retention = Retention()


@dataclass(frozen=True)
class ConsumptionState:
    """The hot value of one PDL."""

    cursor: Cursor = Cursor()
    first_day: date | None = None  # first local day with data
    day: date | None = None  # the open local day
    hours: Mapping[datetime, Totals] = field(default_factory=dict)  # open day's hours, by UTC start
    day_totals: Totals = EMPTY
    month_totals: Totals = EMPTY  # the open month (the month of ``day``)


HistoryKey = tuple[str, str]  # (kind, period): ("H"|"D", "2026-10-25") or ("M", "2026-10")


class Fold(NamedTuple):
    state: ConsumptionState
    applied: bool  # False: duplicate/older/index-less reading, nothing changed
    changed: bool  # the published totals or open buckets changed
    writes: dict[HistoryKey, dict[str, Any] | None]  # records to store (None: delete)
    events: list[IndexEvent]


def reading_time(reading: Mapping[str, Any]) -> datetime:
    """The reading's event time (aware, UTC); ValueError when missing or without an offset."""
    raw = reading.get("time")
    if not isinstance(raw, str):
        raise ValueError(f"reading without a time: {raw!r}")
    return to_utc(datetime.fromisoformat(raw))


def fold_reading(state: ConsumptionState, reading: Mapping[str, Any], config: ConsumptionConfig) -> Fold:
    """Fold one normalized reading (dict from the Kafka JSON)."""
    return fold(
        state,
        time=reading_time(reading),
        meter=reading.get("meter"),
        import_wh_by_period=reading.get("import_wh_by_period"),
        export_wh=reading.get("export_wh"),
        import_wh=reading.get("import_wh"),
        config=config,
    )


def fold(
    state: ConsumptionState,
    *,
    time: datetime,
    meter: str | None,
    import_wh_by_period: Mapping[str, int | None] | None,
    export_wh: int | None,
    import_wh: int | None = None,
    config: ConsumptionConfig = ConsumptionConfig(),
) -> Fold:
    """Fold one reading's indexes into the buckets (see the module docstring)."""
    adv = advance(
        state.cursor, time=time, meter=meter, import_wh_by_period=import_wh_by_period,
        export_wh=export_wh, import_wh=import_wh,
    )  # fmt: skip
    if not adv.applied:
        return Fold(state, False, False, {}, [])
    if adv.start is None:  # baseline: nothing covered yet
        return Fold(replace(state, cursor=adv.cursor), True, False, {}, adv.events)
    amounts = dict(adv.import_wh_by_period)
    amounts[_EXPORT] = adv.export_wh
    work = _Work(state, config)
    for hour, parts in split_by_hour(adv.start, adv.end, amounts, config.tz):
        work.add(hour, parts)
    work.prune(state.day)
    new = work.freeze(adv.cursor)
    energy = adv.export_wh + sum(adv.import_wh_by_period.values())
    changed = bool(energy) or new.day != state.day or max(new.hours) != max(state.hours, default=None)
    return Fold(new, True, changed, work.writes, adv.events)


def render_bucket(start: datetime, end: datetime, totals: Totals, tz: ZoneInfo = PARIS) -> dict[str, Any]:
    """One bucket as in the HTTP contract and the conso payload."""
    return {
        "start": iso_local(start, tz),
        "end": iso_local(end, tz),
        "import_wh": totals.import_wh,
        "export_wh": totals.export_wh,
        "by_period": dict(sorted(totals.imports.items())),
    }


def render_conso_payload(
    state: ConsumptionState,
    *,
    pdl: str,
    config: ConsumptionConfig = ConsumptionConfig(),
    events: list[IndexEvent] | tuple[IndexEvent, ...] = (),
) -> dict[str, Any]:
    """The ``linky:{pdl}:conso`` payload: the open hour, day and month (null before any data)."""
    tz = config.tz
    hour = day = month = None
    if state.day is not None and state.hours:
        last = max(state.hours)
        hour = render_bucket(last, last + HOUR, state.hours[last], tz)
        day = render_bucket(*day_bounds(state.day, tz), state.day_totals, tz)
        month = render_bucket(*month_bounds(state.day, tz), state.month_totals, tz)
    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": pdl,
        "time": iso_local(state.cursor.time, tz) if state.cursor.time else None,
        "hour": hour,
        "day": day,
        "month": month,
        "events": [e.to_dict() for e in events],
    }


Loader = Callable[[str, str], "Mapping[str, Any] | None"]


def query_buckets(
    state: ConsumptionState,
    granularity: str,
    start: datetime | None,
    end: datetime | None,
    load: Loader,
    config: ConsumptionConfig = ConsumptionConfig(),
) -> list[dict[str, Any]]:
    """Buckets overlapping ``[start, end)`` (None: unbounded) in time order, the open one included.

    ``load(kind, period)`` returns a stored history record (``record_from_bytes``) or None.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
    if state.day is None or state.first_day is None:
        return []
    tz, keep = config.tz, config.retention
    lo_time = to_utc(start) if start is not None else None
    hi_time = to_utc(end) if end is not None else None
    if lo_time is not None and hi_time is not None and hi_time <= lo_time:
        return []
    first = state.first_day if lo_time is None else max(state.first_day, local_date(lo_time, tz))
    last = state.day if hi_time is None else min(state.day, local_date(hi_time - timedelta(microseconds=1), tz))

    def overlaps(b_start: datetime, b_end: datetime) -> bool:
        return (hi_time is None or b_start < hi_time) and (lo_time is None or b_end > lo_time)

    out: list[dict[str, Any]] = []
    if granularity == "hour":
        for day in _days(max(first, _minus(state.day, keep.hours_days)), last):
            if day == state.day:
                hours = sorted(state.hours.items())
            else:
                record = load(HOURS, day.isoformat())
                hours = [] if record is None else _hours_from(record)
            out += [render_bucket(h, h + HOUR, t, tz) for h, t in hours if overlaps(h, h + HOUR)]
    elif granularity == "day":
        for day in _days(max(first, _minus(state.day, keep.days_days)), last):
            if day == state.day:
                totals: Totals | None = state.day_totals
            else:
                record = load(DAY, day.isoformat())
                totals = None if record is None else _totals_from(record)
            bounds = day_bounds(day, tz)
            if totals is not None and overlaps(*bounds):
                out.append(render_bucket(*bounds, totals, tz))
    else:
        floor = _minus(state.day, keep.months_days).replace(day=1)
        month = max(first.replace(day=1), floor)
        while month <= last:
            if month_key(month) == month_key(state.day):
                totals = state.month_totals
            else:
                record = load(MONTH, month_key(month))
                totals = None if record is None else _totals_from(record)
            bounds = month_bounds(month, tz)
            if totals is not None and overlaps(*bounds):
                out.append(render_bucket(*bounds, totals, tz))
            month = next_month(month)
    return out


# --------------------------------------------------------------------------- storage format


def state_to_bytes(state: ConsumptionState) -> bytes:
    """Compact JSON of the hot value (hours keyed by UTC epoch seconds)."""
    data = {
        "v": SCHEMA_VERSION,
        "c": cursor_to_dict(state.cursor),
        "f": state.first_day.isoformat() if state.first_day else None,
        "d": state.day.isoformat() if state.day else None,
        "h": _hours_to(state.hours),
        "dt": _totals_to(state.day_totals),
        "mt": _totals_to(state.month_totals),
    }
    return json.dumps(data, separators=(",", ":")).encode()


def state_from_bytes(raw: bytes) -> ConsumptionState:
    data = json.loads(raw)
    if data.get("v") != SCHEMA_VERSION:
        raise ValueError(f"unsupported consumption state version {data.get('v')!r}")
    return ConsumptionState(
        cursor=cursor_from_dict(data["c"]),
        first_day=date.fromisoformat(data["f"]) if data.get("f") else None,
        day=date.fromisoformat(data["d"]) if data.get("d") else None,
        hours=dict(_hours_from({"h": data["h"]})),
        day_totals=_totals_from(data["dt"]),
        month_totals=_totals_from(data["mt"]),
    )


def record_to_bytes(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def record_from_bytes(raw: bytes) -> dict[str, Any]:
    return json.loads(raw)


# =========================================================================== internals


class _Work:
    """Mutable working copy for one fold; frozen back into a ConsumptionState."""

    def __init__(self, state: ConsumptionState, config: ConsumptionConfig) -> None:
        self.tz, self.keep = config.tz, config.retention
        self.first_day = state.first_day
        self.day = state.day
        self.hours = dict(state.hours)
        self.day_totals = state.day_totals
        self.month_totals = state.month_totals
        self.writes: dict[HistoryKey, dict[str, Any] | None] = {}

    def add(self, hour: datetime, parts: Mapping[str, int]) -> None:
        day = local_date(hour, self.tz)
        if self.day is None:
            self.day = day
            self.first_day = self.first_day or day
        elif day > self.day:
            self._close(day)
        elif day < self.day:  # cannot happen: intervals start at the last applied reading
            raise AssertionError(f"piece in {day} before the open day {self.day}")
        self.hours[hour] = self.hours.get(hour, EMPTY).plus(parts)
        self.day_totals = self.day_totals.plus(parts)
        self.month_totals = self.month_totals.plus(parts)

    def _close(self, new_day: date) -> None:
        assert self.day is not None
        old = self.day
        self.writes[(HOURS, old.isoformat())] = {"v": SCHEMA_VERSION, "h": _hours_to(self.hours)}
        self.writes[(DAY, old.isoformat())] = {"v": SCHEMA_VERSION, **_totals_to(self.day_totals)}
        if month_key(new_day) != month_key(old):
            self.writes[(MONTH, month_key(old))] = {"v": SCHEMA_VERSION, **_totals_to(self.month_totals)}
            self.month_totals = EMPTY
        self.day, self.hours, self.day_totals = new_day, {}, EMPTY

    def prune(self, old_day: date | None) -> None:
        """Delete the records that left the retention while the open day moved from ``old_day``."""
        if old_day is None or self.day is None or self.day == old_day or self.first_day is None:
            return
        new_day = self.day
        for kind, keep in ((HOURS, self.keep.hours_days), (DAY, self.keep.days_days)):
            lo = max(_minus(old_day, keep), self.first_day)
            for day in _days(lo, _minus(new_day, keep + 1)):
                self.writes[(kind, day.isoformat())] = None
        months = self.keep.months_days
        month = max(_minus(old_day, months).replace(day=1), self.first_day.replace(day=1))
        stop = _minus(new_day, months).replace(day=1)
        while month < stop:
            self.writes[(MONTH, month_key(month))] = None
            month = next_month(month)

    def freeze(self, cursor: Cursor) -> ConsumptionState:
        return ConsumptionState(cursor, self.first_day, self.day, self.hours, self.day_totals, self.month_totals)


def _minus(day: date, days: int) -> date:
    """``day - days`` clamped to the first representable date (huge retentions)."""
    return day - timedelta(days=days) if day.toordinal() > days else date.min


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _totals_to(totals: Totals) -> dict[str, Any]:
    return {"i": dict(totals.imports), "e": totals.export_wh}


def _totals_from(data: Mapping[str, Any]) -> Totals:
    return Totals({str(k): int(v) for k, v in data["i"].items()}, int(data["e"]))


def _hours_to(hours: Mapping[datetime, Totals]) -> list[list[Any]]:
    return [[int(h.timestamp()), dict(t.imports), t.export_wh] for h, t in sorted(hours.items())]


def _hours_from(record: Mapping[str, Any]) -> list[tuple[datetime, Totals]]:
    return [
        (datetime.fromtimestamp(epoch, UTC), Totals({str(k): int(v) for k, v in imports.items()}, int(export)))
        for epoch, imports, export in record["h"]
    ]
