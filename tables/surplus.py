"""Surplus per PDL, day and month, and its money pot (the "cagnotte"), as pure folds.

Surplus is the injected energy (delta of EAIT, domain.md 5) that no virtual battery absorbed:

- offer ``surplus_resale``: every injected Wh is surplus and eligible, valued at ``resale.rate``;
- offer ``virtual_battery``: the surplus is the battery's overflow (tables/battery.py ``Piece``);
  it is eligible only when ``overflow_policy`` is ``sold``, at ``overflow_rate_eur_per_kwh``;
- offer ``none`` (or no contract yet): every injected Wh is surplus, nothing is eligible.

The rate is the one of the contract version in force on the injection date (each piece of a delta
is valued with the version at its start; deltas are split at midnights and version changes).
Euros are exact ``Decimal`` sums; ``round_eur`` (0.01 €, half-even) is applied once per displayed
or posted total, as domain.md 2 ``cagnotte_m = round2(eligible_kWh_m x rate)``. A month is
provisional until it ends (Europe/Paris), then final: ``close_due`` posts it on a timer tick, or
the first delta of a later day does.

Calls per delta, in the battery agent or after it (so the overflow is known)::

    fold = battery.fold_delta(...)
    for piece in fold.pieces:
        state, events = fold_surplus(state, versions, start=piece.start, end=piece.end,
                                     export_wh=piece.export_wh, overflow_wh=piece.overflow_wh)

Without a battery, call it once per delta with ``overflow_wh=None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping, MutableMapping, Sequence

from tables.battery import month_key, round_eur
from tables.frozen import replace
from tables.rows import copy_rows
from tables.calendar import split_delta, split_proportionally, to_utc
from tables.contracts import (
    ContractVersion,
    Offer,
    OverflowPolicy,
    effective_at,
    local_date,
    paris_midnight,
    version_starts,
)

SCHEMA_VERSION = 1
MONTHS_KEPT = 60
DAYS_KEPT = 62


@dataclass(frozen=True)
class SurplusRow:
    """One day ("2026-07-14") or month ("2026-07") of surplus."""

    key: str
    surplus_wh: int = 0  # injected and not absorbed by a battery
    eligible_wh: int = 0  # the part that earns money
    cagnotte_eur: Decimal = Decimal(0)  # exact; round_eur on display
    final: bool = False


@dataclass(frozen=True)
class SurplusState:
    last_end: datetime | None = None
    current_day: date | None = None
    days: Mapping[str, SurplusRow] = field(default_factory=dict)
    months: Mapping[str, SurplusRow] = field(default_factory=dict)


@dataclass(frozen=True)
class SurplusEvent:
    """``kind`` = "month_final": ``data["row"]`` is the posted month (rounded cagnotte)."""

    kind: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


def fold_surplus(
    state: SurplusState,
    versions: Sequence[ContractVersion],
    *,
    start: datetime,
    end: datetime,
    export_wh: int,
    overflow_wh: int | None = None,
) -> tuple[SurplusState, list[SurplusEvent]]:
    """Fold one injection delta (and the battery overflow of the same span, if any).

    ``overflow_wh`` is required when a version in the span offers a virtual battery; it may be
    negative (a battery re-settlement after an invoice anchor) and corrects the month then.
    """
    if isinstance(export_wh, bool) or not isinstance(export_wh, int) or export_wh < 0:
        raise ValueError(f"export_wh must be an integer >= 0, got {export_wh!r}")
    start, end = to_utc(start), to_utc(end)
    if end < start:
        raise ValueError("delta ends before it starts")
    if state.last_end is not None and start < state.last_end:
        start = state.last_end
        end = max(end, start)
    cuts = version_starts(versions)
    spans = split_delta(start, end, cuts, {}, export_wh)
    weights = [int((b - a) / timedelta(microseconds=1)) for a, b, _, _ in spans]
    overflows = split_overflow(overflow_wh or 0, weights)
    days, months = copy_rows(state.days), copy_rows(state.months)
    events: list[SurplusEvent] = []
    current = state.current_day
    for (p_start, _p_end, _imports, p_export), p_overflow in zip(spans, overflows):
        day = local_date(p_start)
        if current is not None and day > current:
            _close(days, months, current, day, events)
        current = day if current is None else max(current, day)
        version = effective_at(versions, p_start)
        surplus, eligible, rate = _valuation(version, p_export, p_overflow, overflow_wh is None)
        amount = Decimal(eligible) * rate / 1000
        for rows, key in ((days, day.isoformat()), (months, month_key(day))):
            row = rows.get(key, SurplusRow(key=key))
            rows[key] = replace(
                row,
                surplus_wh=row.surplus_wh + surplus,
                eligible_wh=row.eligible_wh + eligible,
                cagnotte_eur=row.cagnotte_eur + amount,
            )
    _prune(days, months, current)
    last_end = end if state.last_end is None else max(end, state.last_end)
    return SurplusState(last_end=last_end, current_day=current, days=days, months=months), events


def correct_overflow(
    state: SurplusState, version: ContractVersion | None, *, day: date, overflow_wh: int
) -> SurplusState:
    """Fold a change of the battery overflow of ``day`` that is not a delta: the re-settlement of
    the month by a late invoice anchor (``battery.sync_anchors``), added by the battery to the
    rows of its current day and month. Valued under ``version`` (the one that settled the month);
    the day and month rows of ``day`` move (even if final), the clock does not."""
    if isinstance(overflow_wh, bool) or not isinstance(overflow_wh, int):
        raise ValueError(f"overflow_wh must be an integer, got {overflow_wh!r}")
    if not overflow_wh:
        return state
    surplus, eligible, rate = _valuation(version, 0, overflow_wh, False)
    amount = Decimal(eligible) * rate / 1000
    days, months = copy_rows(state.days), copy_rows(state.months)
    for rows, key in ((days, day.isoformat()), (months, month_key(day))):
        row = rows.get(key, SurplusRow(key=key))
        rows[key] = replace(
            row,
            surplus_wh=row.surplus_wh + surplus,
            eligible_wh=row.eligible_wh + eligible,
            cagnotte_eur=row.cagnotte_eur + amount,
        )
    return replace(state, days=days, months=months)


def close_due(state: SurplusState, now: datetime) -> tuple[SurplusState, list[SurplusEvent]]:
    """Finalize the current day and, at a month change, post the month (timer tick)."""
    if state.current_day is None or local_date(now) <= state.current_day:
        return state, []
    days, months = copy_rows(state.days), copy_rows(state.months)
    events: list[SurplusEvent] = []
    _close(days, months, state.current_day, local_date(now), events)
    return replace(state, days=days, months=months), events


def render_surplus_payload(state: SurplusState, versions: Sequence[ContractVersion], *, pdl: str) -> dict[str, Any]:
    """The JSON payload of ``linky:{pdl}:surplus``: today, this month (provisional until final),
    the previous month, the rate in force, and the total of the kept months."""
    day = state.current_day
    version = effective_at(versions, state.last_end) if state.last_end is not None else None
    this_month = month_key(day) if day else None
    previous_key = month_key(date(day.year, day.month, 1) - timedelta(days=1)) if day else None
    total = sum((r.cagnotte_eur for r in state.months.values()), Decimal(0))
    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": pdl,
        "time": state.last_end.isoformat() if state.last_end else None,
        "offer": version.offer.value if version else Offer.NONE.value,
        "rate_eur_per_kwh": _rate_str(version),
        "today": _render(state.days.get(day.isoformat())) if day else None,
        "month": _render(state.months.get(this_month)) if this_month else None,
        "previous_month": _render(state.months.get(previous_key)) if previous_key else None,
        "total_eur": str(round_eur(total)),
    }


def render_history(state: SurplusState) -> list[dict[str, Any]]:
    """All kept months, oldest first (for the HTTP query)."""
    return [r for r in (_render(state.months[k]) for k in sorted(state.months)) if r is not None]


def split_overflow(total: int, weights: Sequence[int]) -> list[int]:
    """``split_proportionally`` for a signed total."""
    if total >= 0:
        return split_proportionally(total, weights)
    return [-x for x in split_proportionally(-total, weights)]


def state_to_dict(state: SurplusState) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "last_end": state.last_end.isoformat() if state.last_end else None,
        "current_day": state.current_day.isoformat() if state.current_day else None,
        "days": [row_to_dict(r) for r in state.days.values()],
        "months": [row_to_dict(r) for r in state.months.values()],
    }


def state_from_dict(data: Mapping[str, Any]) -> SurplusState:
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported surplus state schema_version {data.get('schema_version')!r}")
    return SurplusState(
        last_end=datetime.fromisoformat(data["last_end"]) if data.get("last_end") else None,
        current_day=date.fromisoformat(data["current_day"]) if data.get("current_day") else None,
        days={r["key"]: row_from_dict(r) for r in data.get("days", [])},
        months={r["key"]: row_from_dict(r) for r in data.get("months", [])},
    )


# --------------------------------------------------------------------------- internals


def _valuation(
    version: ContractVersion | None, export_wh: int, overflow_wh: int, no_battery_data: bool
) -> tuple[int, int, Decimal]:
    """(surplus Wh, eligible Wh, EUR/kWh) for one piece under ``version``."""
    if version is None or version.offer is Offer.NONE:
        return export_wh, 0, Decimal(0)
    if version.offer is Offer.SURPLUS_RESALE:
        assert version.resale is not None
        return export_wh, export_wh, version.resale.rate_eur_per_kwh
    if no_battery_data:
        raise ValueError("overflow_wh is required while a virtual-battery version is in force")
    terms = version.battery
    assert terms is not None
    if terms.overflow_policy is OverflowPolicy.SOLD and terms.overflow_rate_eur_per_kwh is not None:
        return overflow_wh, overflow_wh, terms.overflow_rate_eur_per_kwh
    return overflow_wh, 0, Decimal(0)


def _close(
    days: MutableMapping[str, SurplusRow], months: MutableMapping[str, SurplusRow], old: date, new: date, events: list[SurplusEvent]
) -> None:
    key = old.isoformat()
    if key in days and not days[key].final:
        days[key] = replace(days[key], final=True)
    mkey = month_key(old)
    if month_key(new) != mkey and mkey in months and not months[mkey].final:
        months[mkey] = replace(months[mkey], final=True)
        at = paris_midnight(date(old.year + (old.month == 12), old.month % 12 + 1, 1))
        events.append(SurplusEvent("month_final", at, {"row": _render(months[mkey])}))


def _prune(days: MutableMapping[str, SurplusRow], months: MutableMapping[str, SurplusRow], today: date | None) -> None:
    if today is None:
        return
    # day keys are ISO dates ("2026-10-25"), which sort as the days do: compared as strings, not
    # parsed (this runs at every reading, over up to DAYS_KEPT keys)
    oldest = (today - timedelta(days=DAYS_KEPT)).isoformat()
    for key in [k for k in days if k < oldest]:
        del days[key]
    if len(months) > MONTHS_KEPT:
        for key in sorted(months)[:-MONTHS_KEPT]:
            del months[key]


def _render(row: SurplusRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        ("month" if len(row.key) == 7 else "date"): row.key,
        "surplus_wh": row.surplus_wh,
        "eligible_wh": row.eligible_wh,
        "cagnotte_eur": str(round_eur(row.cagnotte_eur)),
        "final": row.final,
    }


def _rate_str(version: ContractVersion | None) -> str | None:
    if version is None:
        return None
    if version.offer is Offer.SURPLUS_RESALE and version.resale is not None:
        return str(version.resale.rate_eur_per_kwh)
    if version.battery is not None and version.battery.overflow_rate_eur_per_kwh is not None:
        return str(version.battery.overflow_rate_eur_per_kwh)
    return None


def row_to_dict(row: SurplusRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "surplus_wh": row.surplus_wh,
        "eligible_wh": row.eligible_wh,
        "cagnotte_eur": str(row.cagnotte_eur),
        "final": row.final,
    }


def row_from_dict(data: Mapping[str, Any]) -> SurplusRow:
    return SurplusRow(
        key=data["key"],
        surplus_wh=int(data["surplus_wh"]),
        eligible_wh=int(data["eligible_wh"]),
        cagnotte_eur=Decimal(data["cagnotte_eur"]),
        final=bool(data["final"]),
    )
