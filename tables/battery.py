"""The virtual-battery ledger: plain immutable state and pure folds over index deltas.

What the battery agent calls (docs/battery.md has the rules and a worked month):

- ``fold_delta(state, versions, start=, end=, import_wh_by_period=, export_wh=)`` folds one index
  delta (grid import per tariff period and injection, integer Wh, between two readings) and
  returns ``Fold(state, events, pieces)``;
- ``sync_anchors(state, contract)`` applies the newest invoice anchor of a contract document;
- ``close_due(state, now)`` closes days and months that ended (timer tick, no reading needed);
- ``render_battery_payload(state, versions, pdl=)`` is the ``linky:{pdl}:battery`` payload;
- ``state_to_dict`` / ``state_from_dict`` store the state in a faust table as plain JSON.

Caller contract (idempotence): every Wh is passed exactly once. The caller derives deltas from
the meter's indexes and drops duplicate or older readings (the consumption fold does the same);
``start`` is the previous reading's time and ``end`` this one's. A delta that starts before
``state.last_end`` is moved to start there (time attribution only, the Wh still count).

Units: energy in integer Wh everywhere; money in exact ``Decimal`` euros, rounded only when
rendered (``round_eur``: 0.01 €, ROUND_HALF_EVEN, once per displayed total, never per delta).

Time: instants are aware and handled in UTC; days and months are Europe/Paris calendar days
(23 h and 25 h on DST days). A delta spanning several days, contract versions or a pending anchor
is split in proportion to time with a largest-remainder rule, so totals stay exact to the Wh.

Row convention: ``credited_wh`` is the gross credit (injected Wh x credit ratio), ``overflow_wh``
the part that did not fit, so ``closing = opening + credited - overflow - used + adjustment``
(``adjustment_wh`` = anchor corrections). solarnext-crm's ``credited_kwh`` is our credited - overflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Mapping, NamedTuple, Sequence

from tables.calendar import month_key, next_month, prev_month, split_delta, to_utc
from tables.contracts import (
    RATIO_SCALE,
    Anchor,
    BatteryTerms,
    Contract,
    ContractVersion,
    DebitPriority,
    Offer,
    Settlement,
    effective_at,
    latest_anchor,
    local_date,
    paris_midnight,
    subscription_for_month,
    version_starts,
)
from tables.frozen import replace
from tables.rows import copy_rows

SCHEMA_VERSION = 1
KINDS = ("HP", "HC", "BASE")
MONTHS_KEPT = 60  # monthly rows: five years
CENT = Decimal("0.01")


# =========================================================================== public API


@dataclass(frozen=True)
class LedgerRow:
    """Flows of one Europe/Paris day ("2026-03-29") or month ("2026-03"); never mutated."""

    key: str
    opening_wh: int
    credited_wh: int = 0
    overflow_wh: int = 0
    used_wh_by_period: Mapping[str, int] = field(default_factory=dict)
    fees_eur: Decimal = Decimal(0)  # exact; round with round_eur for display
    imported_wh_by_period: Mapping[str, int] = field(default_factory=dict)  # raw grid import
    exported_wh: int = 0  # raw injection
    adjustment_wh: int = 0  # anchor corrections
    final: bool = False

    @property
    def used_wh(self) -> int:
        return sum(self.used_wh_by_period.values())

    @property
    def closing_wh(self) -> int:
        return self.opening_wh + self.credited_wh - self.overflow_wh - self.used_wh + self.adjustment_wh


@dataclass(frozen=True)
class Segment:
    """The stretch of ledger under one contract version within one month.

    Monthly settlement keeps the raw inputs (``gross_wh`` and the import sequence as runs of
    ``(label, Wh)``) and recomputes the settlement from them; realtime settlement accumulates.
    ``credited_wh``/``overflow_wh``/``used_wh_by_period`` are the segment's current result.
    """

    start: datetime
    month: str
    version_from: date
    opening_wh: int
    gross_wh: int = 0
    import_runs: tuple[tuple[str, int], ...] = ()
    credited_wh: int = 0
    overflow_wh: int = 0
    used_wh_by_period: Mapping[str, int] = field(default_factory=dict)

    @property
    def net_wh(self) -> int:
        return self.credited_wh - self.overflow_wh - sum(self.used_wh_by_period.values())


@dataclass(frozen=True)
class BatteryState:
    """Everything the battery agent stores per PDL."""

    level_wh: int = 0
    estimate: bool = True  # cleared by the first invoice anchor
    last_end: datetime | None = None
    current_day: date | None = None
    credit_carry: int = 0  # credit remainder in 1/10 000 Wh (credit ratio below 1)
    segment: Segment | None = None
    days: Mapping[str, LedgerRow] = field(default_factory=dict)
    months: Mapping[str, LedgerRow] = field(default_factory=dict)
    days_kept_from: date | None = None  # older day rows were pruned
    anchor: Anchor | None = None  # last applied
    pending_anchor: Anchor | None = None  # dated after the data seen so far


@dataclass(frozen=True)
class BatteryEvent:
    """Something worth telling downstream: ``kind`` in day_closed, month_closed (``data["row"]``
    is the rendered final row), anchor_applied, anchor_pending, anchor_ignored, overflow_started
    (the first overflow of a day)."""

    kind: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Piece:
    """The part of a delta inside one day and one contract version, and what the ledger did with
    it. The surplus fold takes ``export_wh`` and ``overflow_wh`` from here (same boundaries)."""

    start: datetime
    end: datetime
    import_wh_by_period: Mapping[str, int]
    export_wh: int
    credited_wh: int
    overflow_wh: int  # may be negative under monthly settlement after an anchor (re-settlement)
    used_wh_by_period: Mapping[str, int]
    # A pending anchor that re-settles the month is a zero-length piece at the anchor's instant
    # (no import or export, the change of credited/overflow/used), so the surplus follows it.


class Fold(NamedTuple):
    state: BatteryState
    events: list[BatteryEvent]
    pieces: list[Piece]


def fold_delta(
    state: BatteryState,
    versions: Sequence[ContractVersion],
    *,
    start: datetime,
    end: datetime,
    import_wh_by_period: Mapping[str, int],
    export_wh: int,
    period_kinds: Mapping[str, str] | None = None,
) -> Fold:
    """Fold one index delta into the ledger.

    ``import_wh_by_period`` maps tariff-period labels to grid import Wh (its order is the time
    order for chronological priority); ``period_kinds`` optionally maps labels to HP/HC/BASE
    (default: ``period_kind``). Versions not offering a virtual battery leave the level unchanged
    (raw flows are still recorded in the rows).
    """
    _check_amounts(import_wh_by_period, export_wh)
    start, end = to_utc(start), to_utc(end)
    if end < start:
        raise ValueError(f"delta ends before it starts: {start.isoformat()} > {end.isoformat()}")
    if state.last_end is not None and start < state.last_end:
        start = state.last_end
        end = max(end, start)
    cuts = list(version_starts(versions))
    if state.pending_anchor is not None:
        cuts.append(state.pending_anchor.at)
    work = _Work(state)
    events: list[BatteryEvent] = []
    pieces: list[Piece] = []
    for p_start, p_end, p_import, p_export in split_delta(start, end, cuts, import_wh_by_period, export_wh):
        version = effective_at(versions, p_start)
        work.roll_to(p_start, version, events)
        pending = work.pending_anchor
        if pending is not None and pending.at <= p_start:
            resettled = work.apply_anchor(pending, versions, events, at=p_start)
            if resettled.credited or resettled.overflow or resettled.used:
                # The re-settlement of the month, as a zero-length piece (the surplus folds it).
                pieces.append(Piece(p_start, p_start, {}, 0, *resettled))
        pieces.append(work.fold_piece(p_start, p_end, p_import, p_export, version, period_kinds, events))
    work.last_end = end if state.last_end is None else max(end, state.last_end)
    return Fold(work.freeze(), events, pieces)


def sync_anchors(state: BatteryState, contract: Contract) -> tuple[BatteryState, list[BatteryEvent]]:
    """Apply the newest invoice anchor of ``contract`` if it was not applied yet.

    An anchor dated before the last applied one is ignored (older information). One dated after
    the data seen so far is kept pending and applied when the stream reaches its date. A late
    anchor sets the level to ``balance + net flows recorded since its date`` (see docs/battery.md).
    """
    anchor = latest_anchor(contract.anchors)
    if anchor is None or anchor == state.anchor or anchor == state.pending_anchor:
        return state, []
    if state.anchor is not None and anchor.date < state.anchor.date:
        return state, []
    if state.last_end is None or anchor.at > state.last_end:
        data = {"date": anchor.date.isoformat(), "balance_wh": anchor.balance_wh}
        event = BatteryEvent("anchor_pending", anchor.at, data)
        return replace(state, pending_anchor=anchor), [event]
    work = _Work(state)
    events: list[BatteryEvent] = []
    work.apply_anchor(anchor, contract.versions, events, at=state.last_end)
    return work.freeze(), events


def close_due(state: BatteryState, now: datetime) -> tuple[BatteryState, list[BatteryEvent]]:
    """Close the current day (and month) if ``now`` is past it: a timer tick, no reading needed."""
    if state.current_day is None or local_date(now) <= state.current_day:
        return state, []
    work = _Work(state)
    events: list[BatteryEvent] = []
    work.close_current(local_date(now), events)
    return work.freeze(), events


def projected_month_end_wh(state: BatteryState, now: datetime) -> int | None:
    """Level expected at the end of ``now``'s month if the month-to-date rates go on.

    projected = level + (stored - imported) / elapsed x remaining, with stored = credited -
    overflow and imported = raw grid import of the month so far. None before one hour of month
    data (too noisy) or without a row for the month.
    """
    now = to_utc(now)
    day = local_date(now)
    row = state.months.get(month_key(day))
    if row is None:
        return None
    month_start = paris_midnight(day.replace(day=1))
    month_end = paris_midnight(next_month(day))
    elapsed = (now - month_start).total_seconds()
    if elapsed < 3600:
        return None
    stored = row.credited_wh - row.overflow_wh
    imported = sum(row.imported_wh_by_period.values())
    remaining = max(0.0, (month_end - now).total_seconds())
    return int(state.level_wh + (stored - imported) / elapsed * remaining)


def render_battery_payload(
    state: BatteryState,
    versions: Sequence[ContractVersion],
    *,
    pdl: str,
    period_kinds: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON payload published on ``linky:{pdl}:battery`` (and stored under the same key).

    ``percent`` is level / capacity x 100 rounded to 0.1 (null when the capacity is unlimited);
    ``today`` and ``month`` are the rows of the day of the latest data.
    """
    when = state.last_end
    version = effective_at(versions, when) if when is not None else None
    terms = version.battery if version is not None else None
    capacity = terms.capacity_wh if terms is not None else None
    today = state.days.get(state.current_day.isoformat()) if state.current_day else None
    month = state.months.get(month_key(state.current_day)) if state.current_day else None
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "pdl": pdl,
        "time": when.isoformat() if when else None,
        "offer": version.offer.value if version else Offer.NONE.value,
        "settlement": terms.settlement.value if terms else None,
        "level_wh": state.level_wh,
        "capacity_wh": capacity,
        "percent": None if not capacity else round(state.level_wh * 100 / capacity, 1),
        "estimate": state.estimate,
        "anchor": None
        if state.anchor is None
        else {"date": state.anchor.date.isoformat(), "balance_wh": state.anchor.balance_wh},
        "today": None if today is None else render_row(today, period_kinds),
        "month": None if month is None else render_row(month, period_kinds),
    }
    if month is not None:
        year, mon = (int(x) for x in month.key.split("-"))
        payload["month"]["subscription_eur"] = str(round_eur(subscription_for_month(versions, year, mon)))
    return payload


def render_history(
    state: BatteryState, versions: Sequence[ContractVersion], period_kinds: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """All kept monthly rows, oldest first, each with its subscription (for the HTTP query)."""
    rows = []
    for key in sorted(state.months):
        row = render_row(state.months[key], period_kinds)
        year, mon = (int(x) for x in key.split("-"))
        row["subscription_eur"] = str(round_eur(subscription_for_month(versions, year, mon)))
        rows.append(row)
    return rows


def render_row(row: LedgerRow, period_kinds: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A day or month row as published (monthly rows: opening / credited / used_hp / used_hc /
    overflow / closing, plus the rest)."""
    by_kind = dict.fromkeys(KINDS, 0)
    for label, wh in row.used_wh_by_period.items():
        by_kind[period_kind(label, period_kinds)] += wh
    return {
        ("month" if len(row.key) == 7 else "date"): row.key,
        "opening_wh": row.opening_wh,
        "credited_wh": row.credited_wh,
        "overflow_wh": row.overflow_wh,
        "used_wh": row.used_wh,
        "used_hp_wh": by_kind["HP"],
        "used_hc_wh": by_kind["HC"],
        "used_base_wh": by_kind["BASE"],
        "used_wh_by_period": dict(row.used_wh_by_period),
        "imported_wh_by_period": dict(row.imported_wh_by_period),
        "exported_wh": row.exported_wh,
        "adjustment_wh": row.adjustment_wh,
        "closing_wh": row.closing_wh,
        "fees_eur": str(round_eur(row.fees_eur)),
        "final": row.final,
    }


def round_eur(amount: Decimal) -> Decimal:
    """Round an exact euro amount to the cent, half to even (done once, on display/posting)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def period_kind(label: str, overrides: Mapping[str, str] | None = None) -> str:
    """Classify a tariff-period label as "HP", "HC" or "BASE" (domain.md 4.4).

    ``overrides`` (label -> kind) wins. Otherwise: historique codes (HCHC, HCHP, BBRHCJB...,
    HCJB..., TH.., HN/PM), then words (CREUSE/HC -> HC, PLEINE/HP/POINTE -> HP), else BASE.
    EJP "heures normales" count as BASE and "pointe mobile" as HP. Standard-mode register names
    (EASF01...) follow the supplier calendar and cannot be classified here: pass ``overrides``.
    """
    if overrides and label in overrides:
        return overrides[label]
    return _label_kind(label)


@lru_cache(maxsize=4096)
def _label_kind(label: str) -> str:
    """``period_kind`` without overrides (memoized: a handful of labels, asked for several times
    per reading)."""
    text = " ".join(label.upper().replace(".", " ").split())
    if text in _HISTORIC_KINDS:
        return _HISTORIC_KINDS[text]
    words = text.split()
    if "CREUSE" in text or "HC" in words or text.startswith("HCJ"):
        return "HC"
    if "PLEINE" in text or "POINTE" in text or "HP" in words or "PM" in words:
        return "HP"
    if text.startswith(("HPJ", "BBRHP")):
        return "HP"
    if text.startswith("BBRHC"):
        return "HC"
    return "BASE"


_HISTORIC_KINDS = {
    "HCHC": "HC", "HCHP": "HP", "BASE": "BASE", "TH": "BASE", "HN": "BASE", "PM": "HP",
    "EJPHN": "BASE", "EJPHPM": "HP", "HC": "HC", "HP": "HP",
}  # fmt: skip


# --------------------------------------------------------------------------- (de)serialization


def state_to_dict(state: BatteryState) -> dict[str, Any]:
    """Plain JSON-able dict of the state (ISO datetimes, Decimals as strings)."""
    seg = state.segment
    return {
        "schema_version": SCHEMA_VERSION,
        "level_wh": state.level_wh,
        "estimate": state.estimate,
        "last_end": _iso(state.last_end),
        "current_day": _iso(state.current_day),
        "credit_carry": state.credit_carry,
        "segment": None
        if seg is None
        else {
            "start": seg.start.isoformat(),
            "month": seg.month,
            "version_from": seg.version_from.isoformat(),
            "opening_wh": seg.opening_wh,
            "gross_wh": seg.gross_wh,
            "import_runs": [[label, wh] for label, wh in seg.import_runs],
            "credited_wh": seg.credited_wh,
            "overflow_wh": seg.overflow_wh,
            "used_wh_by_period": dict(seg.used_wh_by_period),
        },
        "days": [row_to_dict(r) for r in state.days.values()],
        "months": [row_to_dict(r) for r in state.months.values()],
        "days_kept_from": _iso(state.days_kept_from),
        "anchor": _anchor_to_dict(state.anchor),
        "pending_anchor": _anchor_to_dict(state.pending_anchor),
    }


def state_from_dict(data: Mapping[str, Any]) -> BatteryState:
    """Inverse of ``state_to_dict``."""
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported battery state schema_version {data.get('schema_version')!r}")
    seg = data.get("segment")
    return BatteryState(
        level_wh=int(data["level_wh"]),
        estimate=bool(data["estimate"]),
        last_end=_parse_dt(data.get("last_end")),
        current_day=_parse_date(data.get("current_day")),
        credit_carry=int(data.get("credit_carry", 0)),
        segment=None
        if seg is None
        else Segment(
            start=datetime.fromisoformat(seg["start"]),
            month=seg["month"],
            version_from=date.fromisoformat(seg["version_from"]),
            opening_wh=int(seg["opening_wh"]),
            gross_wh=int(seg["gross_wh"]),
            import_runs=tuple((str(label), int(wh)) for label, wh in seg["import_runs"]),
            credited_wh=int(seg["credited_wh"]),
            overflow_wh=int(seg["overflow_wh"]),
            used_wh_by_period={k: int(v) for k, v in seg["used_wh_by_period"].items()},
        ),
        days={r["key"]: row_from_dict(r) for r in data.get("days", [])},
        months={r["key"]: row_from_dict(r) for r in data.get("months", [])},
        days_kept_from=_parse_date(data.get("days_kept_from")),
        anchor=_anchor_from_dict(data.get("anchor")),
        pending_anchor=_anchor_from_dict(data.get("pending_anchor")),
    )


# =========================================================================== internals


class _Flows(NamedTuple):
    credited: int
    overflow: int
    used: dict[str, int]


class _Work:
    """A mutable working copy used inside one public call; frozen back into a BatteryState.

    Containers are copied shallowly and rows are replaced (never mutated), so the input state
    is left untouched.
    """

    def __init__(self, state: BatteryState) -> None:
        self.level = state.level_wh
        self.estimate = state.estimate
        self.last_end = state.last_end
        self.current_day = state.current_day
        self.carry = state.credit_carry
        self.segment = state.segment
        self.days = copy_rows(state.days)
        self.months = copy_rows(state.months)
        self.days_kept_from = state.days_kept_from
        self.anchor = state.anchor
        self.pending_anchor = state.pending_anchor

    def freeze(self) -> BatteryState:
        return BatteryState(
            level_wh=self.level,
            estimate=self.estimate,
            last_end=self.last_end,
            current_day=self.current_day,
            credit_carry=self.carry,
            segment=self.segment,
            days=self.days,
            months=self.months,
            days_kept_from=self.days_kept_from,
            anchor=self.anchor,
            pending_anchor=self.pending_anchor,
        )

    # ---- calendar

    def roll_to(self, when: datetime, version: ContractVersion | None, events: list[BatteryEvent]) -> None:
        """Make ``when``'s day current (closing the previous day/month) and pick the segment."""
        day = local_date(when)
        if self.current_day is None or day > self.current_day:
            if self.current_day is not None:
                self.close_current(day, events)
            self.current_day = day
        day_key, mkey = day.isoformat(), month_key(day)
        if day_key not in self.days:
            self.days[day_key] = LedgerRow(key=day_key, opening_wh=self.level)
        if mkey not in self.months:
            self.months[mkey] = LedgerRow(key=mkey, opening_wh=self.level)
        terms = _battery_terms(version)
        if terms is None or version is None:
            self.segment = None
        elif self.segment is None or (self.segment.month, self.segment.version_from) != (mkey, version.effective_from):
            self.segment = Segment(start=when, month=mkey, version_from=version.effective_from, opening_wh=self.level)

    def close_current(self, new_day: date, events: list[BatteryEvent]) -> None:
        assert self.current_day is not None
        old_day = self.current_day
        at = paris_midnight(old_day + timedelta(days=1))  # the end of the closed day
        row = self.days.get(old_day.isoformat())
        if row is not None and not row.final:
            self.days[row.key] = replace(row, final=True)
            events.append(BatteryEvent("day_closed", at, {"row": render_row(self.days[row.key])}))
        if month_key(new_day) != month_key(old_day):
            mrow = self.months.get(month_key(old_day))
            if mrow is not None and not mrow.final:
                self.months[mrow.key] = replace(mrow, final=True)
                events.append(BatteryEvent("month_closed", at, {"row": render_row(self.months[mrow.key])}))
        self._prune(new_day)

    def _prune(self, today: date) -> None:
        # Keep the day rows of this month and the previous one (late invoice anchors need them).
        first_prev = prev_month(today.replace(day=1))
        for key in [k for k in self.days if date.fromisoformat(k) < first_prev]:
            del self.days[key]
            self.days_kept_from = first_prev
        for key in sorted(self.months)[:-MONTHS_KEPT]:
            del self.months[key]

    # ---- folding

    def fold_piece(
        self,
        start: datetime,
        end: datetime,
        imports: dict[str, int],
        export_wh: int,
        version: ContractVersion | None,
        kinds: Mapping[str, str] | None,
        events: list[BatteryEvent],
    ) -> Piece:
        terms = _battery_terms(version)
        if terms is None or self.segment is None:
            self._add_to_rows(_Flows(0, 0, {}), imports, export_wh, Decimal(0))
            return Piece(start, end, imports, export_wh, 0, 0, {})
        gross = self._credit(export_wh, terms)
        seg = self.segment
        if terms.settlement is Settlement.MONTHLY:
            runs = _append_runs(seg.import_runs, imports)
            seg = replace(seg, gross_wh=seg.gross_wh + gross, import_runs=runs)
            new = settle(seg.opening_wh, seg.gross_wh, runs, terms.capacity_wh, terms.debit_priority, kinds)
            diff = _diff(new, _Flows(seg.credited_wh, seg.overflow_wh, dict(seg.used_wh_by_period)))
        else:
            diff = _realtime_step(self.level, gross, imports, terms, kinds)
            new = _add(_Flows(seg.credited_wh, seg.overflow_wh, dict(seg.used_wh_by_period)), diff)
        self.segment = replace(seg, credited_wh=new.credited, overflow_wh=new.overflow, used_wh_by_period=new.used)
        self.level = self.segment.opening_wh + self.segment.net_wh
        was_overflowing = self.days[self.current_day.isoformat()].overflow_wh > 0  # type: ignore[union-attr]
        self._add_to_rows(diff, imports, export_wh, _fees(diff.used, terms, kinds))
        if diff.overflow > 0 and not was_overflowing:
            events.append(BatteryEvent("overflow_started", start, {"level_wh": self.level}))
        return Piece(start, end, imports, export_wh, diff.credited, diff.overflow, diff.used)

    def _credit(self, export_wh: int, terms: BatteryTerms) -> int:
        scaled = export_wh * terms.ratio_units + self.carry
        self.carry = scaled % RATIO_SCALE
        return scaled // RATIO_SCALE

    def _add_to_rows(
        self, diff: _Flows, imports: Mapping[str, int], export_wh: int, fees: Decimal, adjustment: int = 0
    ) -> None:
        assert self.current_day is not None
        for rows, key in ((self.days, self.current_day.isoformat()), (self.months, month_key(self.current_day))):
            row = rows[key]
            if adjustment and _untouched(row):
                # An anchor landing before any flow of the row (typically at 00:00) is its opening.
                row = replace(row, opening_wh=row.opening_wh + adjustment)
                adjustment_here = 0
            else:
                adjustment_here = adjustment
            rows[key] = replace(
                row,
                credited_wh=row.credited_wh + diff.credited,
                overflow_wh=row.overflow_wh + diff.overflow,
                used_wh_by_period=_merge(row.used_wh_by_period, diff.used),
                fees_eur=row.fees_eur + fees,
                imported_wh_by_period=_merge(row.imported_wh_by_period, imports),
                exported_wh=row.exported_wh + export_wh,
                adjustment_wh=row.adjustment_wh + adjustment_here,
            )

    # ---- anchors

    def apply_anchor(
        self, anchor: Anchor, versions: Sequence[ContractVersion], events: list[BatteryEvent], *, at: datetime | None
    ) -> _Flows:
        """Apply ``anchor``; returns the flows it changed (monthly re-settlement), added to the
        rows of the current day and month."""
        anchor_day = anchor.date
        if self.days_kept_from is not None and anchor_day < self.days_kept_from:
            reason = {"date": anchor_day.isoformat(), "reason": "older than the kept day rows"}
            events.append(BatteryEvent("anchor_ignored", anchor.at, reason))
            if self.pending_anchor == anchor:
                self.pending_anchor = None
            return _Flows(0, 0, {})
        seg = self.segment
        version = next((v for v in versions if seg is not None and v.effective_from == seg.version_from), None)
        terms = _battery_terms(version)
        if seg is None or terms is None or terms.settlement is Settlement.REALTIME:
            new_level = max(0, anchor.balance_wh + self._net_days(anchor_day, None))
            adjustment = new_level - self.level
            if seg is not None:
                self.segment = replace(seg, opening_wh=seg.opening_wh + adjustment)
            self.level = new_level
            diff = _Flows(0, 0, {})
        else:
            seg_day = local_date(seg.start)
            if anchor_day <= seg_day:
                between = self._net_days(anchor_day, seg_day)
            else:
                between = -self._net_days(seg_day, anchor_day)
            opening = max(0, anchor.balance_wh + between)
            adjustment = opening - seg.opening_wh
            new = settle(opening, seg.gross_wh, seg.import_runs, terms.capacity_wh, terms.debit_priority, None)
            diff = _diff(new, _Flows(seg.credited_wh, seg.overflow_wh, dict(seg.used_wh_by_period)))
            self.segment = replace(
                seg, opening_wh=opening, credited_wh=new.credited, overflow_wh=new.overflow, used_wh_by_period=new.used
            )
            self.level = opening + self.segment.net_wh
        fees = _fees(diff.used, terms, None) if terms is not None else Decimal(0)
        self._add_to_rows(diff, {}, 0, fees, adjustment)
        self.anchor, self.estimate = anchor, False
        if self.pending_anchor is not None and self.pending_anchor.date <= anchor.date:
            self.pending_anchor = None
        events.append(
            BatteryEvent(
                "anchor_applied",
                at or anchor.at,
                {
                    "date": anchor_day.isoformat(),
                    "balance_wh": anchor.balance_wh,
                    "adjustment_wh": adjustment,
                    "level_wh": self.level,
                },
            )
        )
        return diff

    def _net_days(self, first: date, until: date | None) -> int:
        """Net ledger flow (credited - overflow - used, adjustments excluded) of the day rows in
        [first, until)."""
        total = 0
        for key, row in self.days.items():
            day = date.fromisoformat(key)
            if day >= first and (until is None or day < until):
                total += row.credited_wh - row.overflow_wh - row.used_wh
        return total


def settle(
    opening_wh: int,
    gross_wh: int,
    import_runs: Sequence[tuple[str, int]],
    capacity_wh: int | None,
    priority: DebitPriority,
    kinds: Mapping[str, str] | None = None,
) -> _Flows:
    """Monthly settlement (domain.md 1.6): credits fill up to the capacity, the rest overflows;
    then the available energy covers the imports in priority order.

        stored = min(gross, max(0, capacity - opening))   (no limit when capacity is None)
        avail  = opening + stored;  used_s = min(avail, import_s) in priority order
    """
    room = gross_wh if capacity_wh is None else max(0, min(gross_wh, capacity_wh - opening_wh))
    overflow = gross_wh - room
    avail = opening_wh + room
    used: dict[str, int] = {}
    for label, wh in _ordered_runs(import_runs, priority, kinds):
        take = min(avail, wh)
        avail -= take
        used[label] = used.get(label, 0) + take
    return _Flows(gross_wh, overflow, {k: v for k, v in used.items() if v})


def _realtime_step(
    level: int, gross: int, imports: Mapping[str, int], terms: BatteryTerms, kinds: Mapping[str, str] | None
) -> _Flows:
    # domain.md 1.6 "chronological model": charge with the export up to the capacity, then
    # discharge against the import.
    room = gross if terms.capacity_wh is None else max(0, min(gross, terms.capacity_wh - level))
    level += room
    used: dict[str, int] = {}
    for label, wh in _ordered_runs(tuple(imports.items()), terms.debit_priority, kinds):
        take = min(level, wh)
        level -= take
        if take:
            used[label] = used.get(label, 0) + take
    return _Flows(gross, gross - room, used)


def _ordered_runs(
    runs: Sequence[tuple[str, int]], priority: DebitPriority, kinds: Mapping[str, str] | None
) -> list[tuple[str, int]]:
    if priority is DebitPriority.CHRONOLOGICAL:
        return [(label, wh) for label, wh in runs if wh > 0]
    totals: dict[str, int] = {}
    for label, wh in runs:
        totals[label] = totals.get(label, 0) + wh
    rank = {"HC": 0, "BASE": 1, "HP": 2} if priority is DebitPriority.OFFPEAK_FIRST else {"HP": 0, "BASE": 1, "HC": 2}
    labels = sorted(totals, key=lambda label: rank[period_kind(label, kinds)])  # stable: first seen first
    return [(label, totals[label]) for label in labels if totals[label] > 0]


def _append_runs(runs: tuple[tuple[str, int], ...], imports: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    out = list(runs)
    for label, wh in imports.items():
        if wh <= 0:
            continue
        if out and out[-1][0] == label:
            out[-1] = (label, out[-1][1] + wh)
        else:
            out.append((label, wh))
    return tuple(out)


def _diff(new: _Flows, old: _Flows) -> _Flows:
    used = {k: new.used.get(k, 0) - old.used.get(k, 0) for k in {*new.used, *old.used}}
    return _Flows(new.credited - old.credited, new.overflow - old.overflow, {k: v for k, v in used.items() if v})


def _add(a: _Flows, b: _Flows) -> _Flows:
    return _Flows(a.credited + b.credited, a.overflow + b.overflow, _merge(a.used, b.used))


def _fees(used: Mapping[str, int], terms: BatteryTerms, kinds: Mapping[str, str] | None) -> Decimal:
    # Exact: Wh x EUR/kWh / 1000 has a finite decimal expansion.
    return sum(
        (Decimal(wh) * terms.fee_for(label, period_kind(label, kinds)) / 1000 for label, wh in used.items()),
        Decimal(0),
    )


def _untouched(row: LedgerRow) -> bool:
    return not (row.credited_wh or row.overflow_wh or row.used_wh_by_period or row.exported_wh
                or row.imported_wh_by_period or row.adjustment_wh)  # fmt: skip


def _merge(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def _battery_terms(version: ContractVersion | None) -> BatteryTerms | None:
    if version is None or version.offer is not Offer.VIRTUAL_BATTERY:
        return None
    return version.battery


def _check_amounts(imports: Mapping[str, int], export_wh: int) -> None:
    for label, wh in imports.items():
        if isinstance(wh, bool) or not isinstance(wh, int) or wh < 0:
            raise ValueError(f"import_wh_by_period[{label!r}] must be an integer >= 0, got {wh!r}")
    if isinstance(export_wh, bool) or not isinstance(export_wh, int) or export_wh < 0:
        raise ValueError(f"export_wh must be an integer >= 0, got {export_wh!r}")


def row_to_dict(row: LedgerRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "opening_wh": row.opening_wh,
        "credited_wh": row.credited_wh,
        "overflow_wh": row.overflow_wh,
        "used_wh_by_period": dict(row.used_wh_by_period),
        "fees_eur": str(row.fees_eur),
        "imported_wh_by_period": dict(row.imported_wh_by_period),
        "exported_wh": row.exported_wh,
        "adjustment_wh": row.adjustment_wh,
        "final": row.final,
    }


def row_from_dict(data: Mapping[str, Any]) -> LedgerRow:
    return LedgerRow(
        key=data["key"],
        opening_wh=int(data["opening_wh"]),
        credited_wh=int(data["credited_wh"]),
        overflow_wh=int(data["overflow_wh"]),
        used_wh_by_period={k: int(v) for k, v in data["used_wh_by_period"].items()},
        fees_eur=Decimal(data["fees_eur"]),
        imported_wh_by_period={k: int(v) for k, v in data["imported_wh_by_period"].items()},
        exported_wh=int(data["exported_wh"]),
        adjustment_wh=int(data["adjustment_wh"]),
        final=bool(data["final"]),
    )


def _anchor_to_dict(anchor: Anchor | None) -> dict[str, Any] | None:
    if anchor is None:
        return None
    return {"date": anchor.date.isoformat(), "balance_wh": anchor.balance_wh, "note": anchor.note}


def _anchor_from_dict(data: Mapping[str, Any] | None) -> Anchor | None:
    if data is None:
        return None
    return Anchor(date=date.fromisoformat(data["date"]), balance_wh=int(data["balance_wh"]), note=data.get("note", ""))


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _parse_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)
