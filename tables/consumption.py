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
from fractions import Fraction
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterator, Mapping, NamedTuple
from zoneinfo import ZoneInfo

from tables import stored_json
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
from tables.cost import BucketCost, EnergyPart, StandingPart, bucket_cost, hours_in_day, normalize_label, period_names, render_cost
from tables.cost import tariff_on
from tables.contracts import ContractVersion, TariffOption
from tables.deltas import EXPORT, ROLLOVER, TOTAL, Cursor, IndexEvent, advance, cursor_from_dict, cursor_to_dict
from tables.frozen import replace

SCHEMA_VERSION = 1
GRANULARITIES = ("hour", "day", "month")
HOURS, DAY, MONTH = "H", "D", "M"  # history record kinds
_EXPORT = ""  # key of the export amount in split_by_hour (never a register label)

__all__ = [
    "SCHEMA_VERSION", "GRANULARITIES", "Totals", "Retention", "ConsumptionConfig", "ConsumptionState",
    "Fold", "fold_reading", "fold", "render_conso_payload", "render_bucket", "query_buckets",
    "reading_time", "state_to_bytes", "state_from_bytes", "record_to_bytes", "record_from_bytes",
    "query_index", "index_csv", "Pricing",
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
    # register -> the meter's period label (LTARF / PTEC, padding trimmed) last seen while that
    # register was the active one: what ``periods`` calls it (no dashboard shows "EASF01")
    labels: Mapping[str, str] = field(default_factory=dict)


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
        tariff_period=reading.get("tariff_period"),
        tariff_index=reading.get("tariff_index"),
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
    tariff_period: str | None = None,
    tariff_index: int | None = None,
) -> Fold:
    """Fold one reading's indexes into the buckets (see the module docstring).

    ``tariff_period`` / ``tariff_index`` (the meter's LTARF / NTARF, or PTEC in historic mode)
    name the active register; the label is remembered for ``periods``."""
    adv = advance(
        state.cursor, time=time, meter=meter, import_wh_by_period=import_wh_by_period,
        export_wh=export_wh, import_wh=import_wh,
    )  # fmt: skip
    if not adv.applied:
        return Fold(state, False, False, {}, [])
    labels = _learn_label(state.labels, adv.cursor.imports, tariff_period, tariff_index)
    if adv.start is None:  # baseline: nothing covered yet
        return Fold(replace(state, cursor=adv.cursor, labels=labels), True, False, {}, adv.events)
    amounts = dict(adv.import_wh_by_period)
    amounts[_EXPORT] = adv.export_wh
    work = _Work(state, config)
    work.labels = labels
    for hour, parts in split_by_hour(adv.start, adv.end, amounts, config.tz):
        work.add(hour, parts)
    work.prune(state.day)
    new = work.freeze(adv.cursor)
    energy = adv.export_wh + sum(adv.import_wh_by_period.values())
    changed = bool(energy) or new.day != state.day or max(new.hours) != max(state.hours, default=None)
    changed = changed or labels != state.labels
    return Fold(new, True, changed, work.writes, adv.events)


def _learn_label(
    labels: Mapping[str, str], registers: Mapping[str, int], tariff_period: Any, tariff_index: Any
) -> Mapping[str, str]:
    """``labels`` with the active register's label updated (same object when unchanged)."""
    if not isinstance(tariff_period, str) or not tariff_period.strip():
        return labels
    label = normalize_label(tariff_period)
    active: str | None = None
    if TOTAL in registers:
        active = TOTAL
    elif isinstance(tariff_index, int) and not isinstance(tariff_index, bool) and f"EASF{tariff_index:02d}" in registers:
        active = f"EASF{tariff_index:02d}"
    elif label in registers:  # historic: PTEC names its register only through the option (HCJB...)
        active = label
    if active is None or labels.get(active) == label:
        return labels
    return {**labels, active: label}


@dataclass(frozen=True)
class Pricing:
    """What turns a bucket's Wh into euros and names: the PDL's contract versions and the
    meter labels of its registers (``ConsumptionState.labels``)."""

    versions: tuple[ContractVersion, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def option_on(self, day: date) -> TariffOption | None:
        return None if (t := tariff_on(self.versions, day)[1]) is None else t.option


NO_PRICING = Pricing()


def render_bucket(
    start: datetime,
    end: datetime,
    totals: Totals,
    tz: ZoneInfo = PARIS,
    *,
    cost: dict[str, Any] | None = None,
    option: TariffOption | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One bucket as in the HTTP contract and the conso payload: energy, the readable name of
    each register of ``by_period`` (``periods``) and its ``cost`` (tables/cost.py, or null)."""
    names = period_names(list(totals.imports), option, labels or {})
    return {
        "start": iso_local(start, tz),
        "end": iso_local(end, tz),
        "import_wh": totals.import_wh,
        "export_wh": totals.export_wh,
        "by_period": dict(sorted(totals.imports.items())),
        "periods": {r: n.to_dict() for r, n in names.items()},
        "cost": cost,
    }


def hour_cost(hour: datetime, totals: Totals, pricing: Pricing, tz: ZoneInfo = PARIS) -> dict[str, Any] | None:
    day = local_date(hour, tz)
    parts = [EnergyPart(day, totals.imports)]
    return render_cost(bucket_cost(parts, [StandingPart(day, Fraction(1, hours_in_day(day)))], pricing.versions,
                                   pricing.labels))  # fmt: skip


def day_cost(day: date, totals: Totals, pricing: Pricing) -> dict[str, Any] | None:
    return render_cost(bucket_cost([EnergyPart(day, totals.imports)], [StandingPart(day)], pricing.versions,
                                   pricing.labels))  # fmt: skip


def month_cost(
    month_first: date,
    totals: Totals,
    pricing: Pricing,
    *,
    first_day: date,
    last_day: date,
    day_totals: Callable[[date], "Totals | None"],
) -> dict[str, Any] | None:
    """A month bucket's rendered cost (``month_bucket_cost``)."""
    return render_cost(month_bucket_cost(month_first, totals, pricing, first_day=first_day, last_day=last_day,
                                         day_totals=day_totals))  # fmt: skip


def month_bucket_cost(
    month_first: date,
    totals: Totals,
    pricing: Pricing,
    *,
    first_day: date,
    last_day: date,
    day_totals: Callable[[date], "Totals | None"],
) -> BucketCost | None:
    """A month bucket's exact cost: standing charge for its days up to ``last_day`` (the PDL's
    open day, or the month's end), energy priced day by day when the versions change within the
    month (from the day buckets: ``day_totals(day)``), else from the month's totals. None also
    when a day needed for the split is no longer kept (beyond the day retention)."""
    if not pricing.versions:
        return None
    end = min(last_day, next_month(month_first) - timedelta(days=1))
    days = [month_first + timedelta(days=i) for i in range((end - month_first).days + 1)]
    if not days:
        return None
    in_force = {id(tariff_on(pricing.versions, d)[0]) for d in days}
    if len(in_force) == 1:
        energy = [EnergyPart(days[-1], totals.imports)]
    else:
        energy = []
        for d in days:
            if d < first_day:
                continue
            t = day_totals(d)
            if t is None:
                return None
            energy.append(EnergyPart(d, t.imports))
    return bucket_cost(energy, [StandingPart(d) for d in days], pricing.versions, pricing.labels)




def render_conso_payload(
    state: ConsumptionState,
    *,
    pdl: str,
    config: ConsumptionConfig = ConsumptionConfig(),
    events: list[IndexEvent] | tuple[IndexEvent, ...] = (),
    versions: tuple[ContractVersion, ...] = (),
    load: "Loader | None" = None,
) -> dict[str, Any]:
    """The ``linky:{pdl}:conso`` payload: the open hour, day and month (null before any data),
    each with its ``periods`` names and ``cost`` under the PDL's contract ``versions``.
    ``load``: the history loader (needed only when the prices change within the open month)."""
    tz = config.tz
    hour = day = month = None
    pricing = Pricing(tuple(versions), state.labels)
    if state.day is not None and state.hours:
        last = max(state.hours)
        option = pricing.option_on(state.day)
        named = {"option": option, "labels": state.labels}
        hour = render_bucket(last, last + HOUR, state.hours[last], tz, cost=hour_cost(last, state.hours[last], pricing, tz),
                             **named)  # fmt: skip
        day = render_bucket(*day_bounds(state.day, tz), state.day_totals, tz,
                            cost=day_cost(state.day, state.day_totals, pricing), **named)  # fmt: skip
        month = render_bucket(*month_bounds(state.day, tz), state.month_totals, tz, cost=month_cost(
            state.day.replace(day=1), state.month_totals, pricing, first_day=state.first_day or state.day,
            last_day=state.day, day_totals=_day_loader(state, load)), **named)  # fmt: skip
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
    versions: tuple[ContractVersion, ...] = (),
) -> list[dict[str, Any]]:
    """Buckets overlapping ``[start, end)`` (None: unbounded) in time order, the open one included.

    ``load(kind, period)`` returns a stored history record (``record_from_bytes``) or None.
    ``versions``: the PDL's contract versions, for each bucket's ``cost`` and ``periods``.
    """
    pricing = Pricing(tuple(versions), state.labels)
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
            named = {"option": pricing.option_on(day), "labels": state.labels}
            out += [
                render_bucket(h, h + HOUR, t, tz, cost=hour_cost(h, t, pricing, tz), **named)
                for h, t in hours
                if overlaps(h, h + HOUR)
            ]
    elif granularity == "day":
        for day in _days(max(first, _minus(state.day, keep.days_days)), last):
            if day == state.day:
                totals: Totals | None = state.day_totals
            else:
                record = load(DAY, day.isoformat())
                totals = None if record is None else _totals_from(record)
            bounds = day_bounds(day, tz)
            if totals is not None and overlaps(*bounds):
                out.append(render_bucket(*bounds, totals, tz, cost=day_cost(day, totals, pricing),
                                         option=pricing.option_on(day), labels=state.labels))  # fmt: skip
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
                last_of_month = next_month(month) - timedelta(days=1)
                cost = month_cost(month, totals, pricing, first_day=state.first_day, last_day=min(last_of_month, state.day),
                                  day_totals=_day_loader(state, load))  # fmt: skip
                out.append(render_bucket(*bounds, totals, tz, cost=cost, option=pricing.option_on(min(last_of_month, state.day)),
                                         labels=state.labels))  # fmt: skip
            month = next_month(month)
    return out


def _day_loader(state: ConsumptionState, load: "Loader | None") -> Callable[[date], "Totals | None"]:
    """Day totals by date: the open day from the state, closed days from their records."""

    def day_totals(day: date) -> Totals | None:
        if day == state.day:
            return state.day_totals
        if load is None:
            return None
        record = load(DAY, day.isoformat())
        return None if record is None else _totals_from(record)

    return day_totals


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
    if state.labels:  # absent in values written before labels existed
        data["l"] = dict(state.labels)
    return stored_json.dumps(data)


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
        labels={str(k): str(v) for k, v in (data.get("l") or {}).items()},
    )


def record_to_bytes(record: Mapping[str, Any]) -> bytes:
    return stored_json.dumps(record)


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
        self.labels: Mapping[str, str] = state.labels
        self.last_reading = state.cursor  # the last reading before this fold's (for index statements)
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
        last = self.last_reading  # the reading before this fold's: the last one of any bucket it closes
        # a reading at instant t ends the interval before t: it belongs to the day (month) of
        # t - 1 us (a reading at 00:00 is the last one of the day before, its index that day's end)
        last_day = None if last.time is None else local_date(last.time - timedelta(microseconds=1), self.tz)
        # the raw last reading seen in the closing day (and month), if any: for index statements
        day_extra = {"lr": cursor_to_dict(last)} if last_day == old else {}
        self.writes[(HOURS, old.isoformat())] = {"v": SCHEMA_VERSION, "h": _hours_to(self.hours)}
        self.writes[(DAY, old.isoformat())] = {"v": SCHEMA_VERSION, **_totals_to(self.day_totals), **day_extra}
        if month_key(new_day) != month_key(old):
            in_month = last_day is not None and month_key(last_day) == month_key(old)
            month_extra = {"lr": cursor_to_dict(last)} if in_month else {}
            self.writes[(MONTH, month_key(old))] = {"v": SCHEMA_VERSION, **_totals_to(self.month_totals), **month_extra}
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
        return ConsumptionState(
            cursor, self.first_day, self.day, self.hours, self.day_totals, self.month_totals, self.labels
        )


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


# =========================================================================== index statements


def query_index(
    state: ConsumptionState,
    granularity: str,
    start: datetime | None,
    end: datetime | None,
    load: Loader,
    config: ConsumptionConfig = ConsumptionConfig(),
    versions: tuple[ContractVersion, ...] = (),
) -> list[dict[str, Any]]:
    """Index statements ("relevés"): per day or month bucket overlapping ``[start, end)``, each
    register's index at the bucket's start and end (and the injection index EAIT), and the raw
    last reading seen in the bucket.

    The indexes are the energy buckets' running sums anchored on the latest reading: the open
    bucket ends at the current index, and each earlier bucket ends where the next one starts,
    ``start = end - Wh`` (modulo the 9-digit rollover). So ``end - start`` is the bucket's Wh to
    the Wh (gaps split in proportion to time included) and one bucket's end is the next one's
    start. After a re-baseline (index backwards, meter changed) earlier statements are expressed
    on the current counter (docs/cost.md "Index statements").
    """
    if granularity not in ("day", "month"):
        raise ValueError(f"granularity must be day or month, got {granularity!r}")
    if state.day is None or state.first_day is None or state.cursor.time is None:
        return []
    tz, keep = config.tz, config.retention
    chain: list[tuple[datetime, datetime, Totals | None, Mapping[str, Any] | None]] = []
    if granularity == "day":
        for day in _days(max(state.first_day, _minus(state.day, keep.days_days)), state.day):
            if day == state.day:
                chain.append((*day_bounds(day, tz), state.day_totals, None))
            else:
                record = load(DAY, day.isoformat())
                chain.append((*day_bounds(day, tz), None if record is None else _totals_from(record), record))
    else:
        month = max(state.first_day.replace(day=1), _minus(state.day, keep.months_days).replace(day=1))
        while month <= state.day:
            if month_key(month) == month_key(state.day):
                chain.append((*month_bounds(month, tz), state.month_totals, None))
            else:
                record = load(MONTH, month_key(month))
                chain.append((*month_bounds(month, tz), None if record is None else _totals_from(record), record))
            month = next_month(month)
    cursor = state.cursor
    current: dict[str, int] = dict(cursor.imports)
    if cursor.export is not None:
        current[EXPORT] = cursor.export
    lo = to_utc(start) if start is not None else None
    hi = to_utc(end) if end is not None else None
    option = None if (t := tariff_on(versions, state.day)[1]) is None else t.option
    names = period_names([r for r in current if r != EXPORT], option, state.labels)
    out: list[dict[str, Any]] = []
    ends = current
    for b_start, b_end, totals, record in reversed(chain):
        if totals is None:  # a record is missing (retention): the chain stops here
            break
        wh = {r: (totals.export_wh if r == EXPORT else totals.imports.get(r, 0)) for r in ends}
        starts = {r: (ends[r] - wh[r]) % ROLLOVER for r in ends}
        if (hi is None or b_start < hi) and (lo is None or b_end > lo):
            last = _last_reading(cursor, b_start, b_end) if record is None else record.get("lr")
            out.append({
                "start": iso_local(b_start, tz),
                "end": iso_local(b_end, tz),
                "indexes": {
                    r: {"label": "INJECTION" if r == EXPORT else names[r].label, "start_wh": starts[r],
                        "end_wh": ends[r], "wh": wh[r]}
                    for r in sorted(ends)
                },
                "last_reading": None if last is None else _render_reading(last, tz),
            })  # fmt: skip
        ends = starts
    out.reverse()
    return out


def _last_reading(cursor: Cursor, start: datetime, end: datetime) -> dict[str, Any] | None:
    if cursor.time is None or not start < cursor.time <= end:
        return None
    return cursor_to_dict(cursor)


def _render_reading(data: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    reading = cursor_from_dict(data)
    return {
        "time": iso_local(reading.time, tz) if reading.time else None,
        "meter": reading.meter,
        "import_wh_by_period": dict(sorted(reading.imports.items())),
        "export_wh": reading.export,
    }


def index_csv(rows: list[dict[str, Any]]) -> str:
    """The statements as CSV (header row; one line per bucket and register)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["start", "end", "register", "label", "start_wh", "end_wh", "wh", "last_reading_time",
                     "last_reading_wh"])  # fmt: skip
    for row in rows:
        last = row["last_reading"]
        for register, idx in row["indexes"].items():
            if last is None:
                seen: Any = ""
            elif register == EXPORT:
                seen = "" if last["export_wh"] is None else last["export_wh"]
            else:
                seen = last["import_wh_by_period"].get(register, "")
            writer.writerow([row["start"], row["end"], register, idx["label"], idx["start_wh"], idx["end_wh"],
                             idx["wh"], "" if last is None else last["time"], seen])  # fmt: skip
    return buf.getvalue()


def month_totals_of(state: ConsumptionState, month_first: date, load: Loader) -> Totals | None:
    """A month's totals: the open month from the state, a closed one from its record."""
    if state.day is None:
        return None
    if month_key(month_first) == month_key(state.day):
        return state.month_totals
    record = load(MONTH, month_key(month_first))
    return None if record is None else _totals_from(record)


def day_totals_loader(state: ConsumptionState, load: Loader) -> Callable[[date], "Totals | None"]:
    """Day totals by date (the open day from the state, closed ones from their records)."""
    return _day_loader(state, load)
