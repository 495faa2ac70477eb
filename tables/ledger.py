"""One PDL's battery-agent value: index tracker + battery ledger + surplus + alert episodes.

The battery agent (agents/battery.py) stores ONE ``LedgerState`` per PDL in one table value, so
the index baseline and the ledgers it fed are always written together (atomic changelog write):
after a crash, faust replays readings already folded; the tracker sees them as not newer than
its last reading and nothing is counted twice.

Per reading (``fold_reading``):

1. ``track``: index deltas with the shared rules of tables/deltas.py (as consumption): a reading
   not newer than the last applied one changes nothing (idempotent replays), the first reading
   is a baseline, an index going backwards re-baselines (never negative energy), a register
   missing from a reading keeps its baseline (its energy is counted at the next reading that
   has it), 9-digit rollovers count.
2. The import of each register is labelled with the tariff period that register was last seen
   active under (standard mode: ``EASF{NTARF}`` -> ``LTARF``, learned from readings, so energy
   that crossed a period change between two readings stays on the right period). Historic-mode
   registers (``HCHC``, ``BBRHPJR``...) are their own labels.
3. ``tables.battery.fold_delta`` folds the delta, then ``tables.surplus.fold_surplus`` folds each
   of its pieces (export and overflow of the same spans and contract versions).

4. ``fold_alerts`` folds the same reading into the alert episodes (tables/alerts.py), with the
   battery as of this reading. The alerts live in the same value: one atomic write per reading,
   so a replay after a crash can never see a ledger and alerts of different readings.

Also: ``sync_contract`` (anchors of a new contract document), ``tick`` (timer: day and month ends
on the wall clock, meter silence). Pure: no Faust, no Kafka, no Redis.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from tables import alerts as alr
from tables import battery as bat
from tables import surplus as sur
from tables.contracts import (
    Contract,
    ContractVersion,
    contract_to_dict,
    effective_at,
    latest_anchor,
    version_to_dict,
)
from tables.calendar import local_midnight as paris_midnight
from tables.calendar import local_date, to_utc
from tables.deltas import TOTAL, Cursor, advance, cursor_from_dict, cursor_to_dict
from tables.frozen import replace
from tables.rows import UNLOADED, LazyRows

SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- index tracking


@dataclass(frozen=True)
class Tracker:
    """Index baselines of one PDL (tables/deltas.py ``Cursor``) and the period label each
    register was last seen active under."""

    cursor: Cursor = field(default_factory=Cursor)
    labels: Mapping[str, str] = field(default_factory=dict)  # register -> tariff period label
    active: str | None = None  # register active at the last reading


@dataclass(frozen=True)
class Delta:
    """Energy between two readings: grid import per period label (the previously active
    register first) and injection, integer Wh."""

    start: datetime
    end: datetime
    import_wh_by_period: Mapping[str, int]
    export_wh: int


def track(tracker: Tracker, reading: Mapping[str, Any]) -> tuple[Tracker, Delta | None, str]:
    """Fold one reading into the baselines; returns (tracker, delta or None, status).

    status: ``baseline`` (first usable reading or re-baseline), ``delta``, ``duplicate`` (not
    newer, or no index at all: nothing changed), ``no_time``. The index rules (backwards index,
    rollover, meter change, dropped registers) are tables/deltas.py's.
    """
    raw_time = reading.get("time")
    if not raw_time:
        return tracker, None, "no_time"
    adv = advance(
        tracker.cursor,
        time=datetime.fromisoformat(raw_time),
        meter=reading.get("meter"),
        import_wh_by_period=reading.get("import_wh_by_period"),
        export_wh=reading.get("export_wh"),
        import_wh=reading.get("import_wh"),
    )
    if not adv.applied:
        return tracker, None, "duplicate"
    active = _active_register(reading, adv.cursor.imports)
    labels = dict(tracker.labels)
    label = reading.get("tariff_period")
    if active is not None and isinstance(label, str) and label.strip():
        labels[active] = label.strip()
    new = Tracker(cursor=adv.cursor, labels=labels, active=active)
    if adv.start is None:
        return new, None, "baseline"
    imports: dict[str, int] = {}
    for register in sorted(adv.import_wh_by_period, key=lambda r: (r != tracker.active, r)):
        wh = adv.import_wh_by_period[register]
        if wh > 0:
            name = tracker.labels.get(register) or labels.get(register) or register
            imports[name] = imports.get(name, 0) + wh
    return new, Delta(adv.start, adv.end, imports, adv.export_wh), "delta"


def _active_register(reading: Mapping[str, Any], registers: Mapping[str, int]) -> str | None:
    if TOTAL in registers:
        return TOTAL
    index = reading.get("tariff_index")
    if isinstance(index, int) and not isinstance(index, bool) and f"EASF{index:02d}" in registers:
        return f"EASF{index:02d}"
    label = reading.get("tariff_period")
    if isinstance(label, str) and label.strip() in registers:  # historic: PTEC names its register
        return label.strip()
    return None


# --------------------------------------------------------------------------- the day journal
#
# Contracts and readings travel on two topics with no order between them: a contract version
# effective today (00:00 Europe/Paris) can reach the worker after some of today's readings were
# folded under the previous terms. So the ledger keeps, for the battery's current day, the state
# before the day's first delta (the *checkpoint*, a record of its own) and the day's deltas (the
# *journal*, in the hot value, contiguous deltas of the same shape merged). When the versions in
# force up to that day change, the day is re-folded from the checkpoint under the new versions
# (``reconcile``): the result is the one an in-order stream would have given. Merging is exact:
# consecutive import-only deltas of one period, or export-only ones, fold to the same Wh as their
# sum (battery level monotonic over the run, credit remainder carried, fees linear per period).
# A version dated before the journal's day (only ``contract set --allow-past`` makes one) cannot
# be re-folded further back than the checkpoint: reported as ``contract_retroactive``.

JOURNAL_PAGE_ENTRIES = 64  # entries kept in the hot value; a full page becomes a record of its own
JOURNAL_MAX_ENTRIES = 20_000  # beyond: the day can no longer be re-folded (reported, never silent)
CHECKPOINT = "ck"  # record kind of the checkpoint: ``{pdl}|ck|{day}``
JOURNAL_PAGE = "jp"  # record kind of a full journal page: ``{pdl}|jp|{day}.{page number}``


@dataclass(frozen=True)
class Checkpoint:
    """Battery and surplus before the journal's first delta (rows: as the state had them)."""

    battery: bat.BatteryState
    surplus: sur.SurplusState


@dataclass(frozen=True)
class Journal:
    """The deltas folded since the checkpoint, all of them ending in ``day`` (the battery day)."""

    day: date
    versions_key: str  # fingerprint of the versions in force through ``day`` when folded
    earlier_key: str  # fingerprint of the versions dated before ``day``
    entries: tuple[Delta, ...] = ()  # the current page (in the hot value), after the full pages
    pages: int = 0  # full pages before ``entries`` (records ``{pdl}|jp|{day}.{n}``)
    complete: bool = True  # False once JOURNAL_MAX_ENTRIES was reached
    # In memory until stored (to_storage writes it as its own record); None: read the record.
    # Not part of equality: the same checkpoint either way.
    checkpoint: Checkpoint | None = field(default=None, compare=False)
    # Full pages not stored yet (page number -> entries), like ``checkpoint``.
    new_pages: Mapping[int, tuple[Delta, ...]] = field(default_factory=dict, compare=False)


_FINGERPRINTS: dict[tuple[int, date, bool], tuple[Sequence[ContractVersion], str]] = {}


def versions_key(versions: Sequence[ContractVersion], day: date, *, before: bool = False) -> str:
    """Fingerprint of the versions effective through ``day`` (``before``: strictly before)."""
    memo = (id(versions), day, before)
    cached = _FINGERPRINTS.get(memo)
    if cached is not None and cached[0] is versions:
        return cached[1]
    chosen = [version_to_dict(v) for v in versions if v.effective_from < day or (not before and v.effective_from == day)]
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"))
    key = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    if len(_FINGERPRINTS) >= 4096:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[memo] = (versions, key)  # holding ``versions`` keeps its id unique
    return key


def _journaled(before: LedgerState, after: LedgerState, delta: Delta, versions: Sequence[ContractVersion]) -> Journal | None:
    """The journal of ``after`` once ``delta`` (folded from ``before``) is in it."""
    day = after.battery.current_day
    if day is None:
        return None
    journal = before.journal
    if journal is None or journal.day != day:
        return Journal(
            day=day,
            versions_key=versions_key(versions, day),
            earlier_key=versions_key(versions, day, before=True),
            entries=(delta,),
            checkpoint=Checkpoint(before.battery, before.surplus),
        )
    if not journal.complete:
        return journal
    entries = journal.entries
    # the day's first delta may straddle midnight: never merged into
    last = entries[-1] if entries and (journal.pages or len(entries) > 1) else None
    if last is not None and last.end == delta.start:
        merged = _merge(last, delta)
        if merged is not None:
            return replace(journal, entries=entries[:-1] + (merged,))
    if len(entries) < JOURNAL_PAGE_ENTRIES:
        return replace(journal, entries=entries + (delta,))
    if (journal.pages + 1) * JOURNAL_PAGE_ENTRIES >= JOURNAL_MAX_ENTRIES:
        return replace(journal, entries=(), complete=False, new_pages={})
    new_pages = {**journal.new_pages, journal.pages: entries}
    return replace(journal, entries=(delta,), pages=journal.pages + 1, new_pages=new_pages)


def _merge(a: Delta, b: Delta) -> Delta | None:
    """One delta folding exactly like ``a`` then ``b`` (contiguous), or None."""
    if not b.import_wh_by_period and not b.export_wh:
        return Delta(a.start, b.end, a.import_wh_by_period, a.export_wh)
    if not a.import_wh_by_period and not a.export_wh:
        return Delta(a.start, b.end, b.import_wh_by_period, b.export_wh)
    if not a.export_wh and not b.export_wh and len(a.import_wh_by_period) == 1 and len(b.import_wh_by_period) == 1:
        (la, wa), (lb, wb) = next(iter(a.import_wh_by_period.items())), next(iter(b.import_wh_by_period.items()))
        if la == lb:
            return Delta(a.start, b.end, {la: wa + wb}, 0)
    if not a.import_wh_by_period and not b.import_wh_by_period:
        return Delta(a.start, b.end, {}, a.export_wh + b.export_wh)
    return None


def reconcile(
    state: LedgerState,
    contract: Contract | None,
    *,
    load: RecordLoader | None = None,
    period_kinds: Mapping[str, str] | None = None,
) -> LedgerFold:
    """Bring ``state`` in line with the contract document: re-fold the journal's day if the
    versions in force through it changed, else apply a new invoice anchor (``sync_contract``).

    Battery events ``contract_refolded`` (data: day, entries, retroactive) or
    ``contract_refold_impossible`` (the journal was capped, or a checkpoint or page is missing) say what
    happened; ``status`` is ``refolded`` then."""
    journal = state.journal
    versions = contract.versions if contract is not None else ()
    if journal is None or versions_key(versions, journal.day) == journal.versions_key:
        return sync_contract(state, contract)
    rekeyed = replace(
        journal,
        versions_key=versions_key(versions, journal.day),
        earlier_key=versions_key(versions, journal.day, before=True),
    )
    retroactive = rekeyed.earlier_key != journal.earlier_key
    at = state.battery.last_end or paris_midnight(journal.day)
    checkpoint = journal.checkpoint if journal.checkpoint is not None else _load_checkpoint(journal.day, load)
    deltas = _journal_deltas(journal, load) if journal.complete else None
    if not journal.complete or checkpoint is None or deltas is None:
        why = "journal capped" if not journal.complete else "checkpoint or journal page missing"
        event = bat.BatteryEvent("contract_refold_impossible", at, {"day": journal.day.isoformat(), "reason": why})
        synced = sync_contract(replace(state, journal=rekeyed), contract)
        return synced._replace(changed=True, battery_events=[event, *synced.battery_events])
    base = replace(state, battery=checkpoint.battery, surplus=checkpoint.surplus, journal=None)
    work = sync_contract(base, contract).state
    for delta in deltas:
        work, _, _ = _fold_delta(work, delta, versions, period_kinds)
    data = {"day": journal.day.isoformat(), "entries": len(deltas), "retroactive": retroactive}
    refolded = replace(work, journal=rekeyed)
    return LedgerFold(refolded, True, [bat.BatteryEvent("contract_refolded", at, data)], [], "refolded")


def _journal_deltas(journal: Journal, load: RecordLoader | None) -> list[Delta] | None:
    """Every delta of the journal in order (full pages from memory or their records), or None
    if a page is missing."""
    deltas: list[Delta] = []
    for number in range(journal.pages):
        page = journal.new_pages.get(number)
        if page is None:
            record = None if load is None else load(JOURNAL_PAGE, f"{journal.day.isoformat()}.{number}")
            if record is None:
                return None
            page = _entries_from_list(record["entries"])
        deltas += page
    return deltas + list(journal.entries)


def _load_checkpoint(day: date, load: RecordLoader | None) -> Checkpoint | None:
    record = None if load is None else load(CHECKPOINT, day.isoformat())
    if record is None:
        return None
    battery = bat.state_from_dict(record["battery"])
    surplus = sur.state_from_dict(record["surplus"])
    assert load is not None
    rows = _lazy_rows(record.get("history", {}), load, battery.days, battery.months, surplus.days)
    return Checkpoint(replace(battery, days=rows[0], months=rows[1]), replace(surplus, days=rows[2]))


def _fold_delta(
    state: LedgerState, delta: Delta, versions: Sequence[ContractVersion], period_kinds: Mapping[str, str] | None
) -> tuple[LedgerState, list[bat.BatteryEvent], list[sur.SurplusEvent]]:
    """Battery then surplus (its pieces) of one delta."""
    fold = bat.fold_delta(
        state.battery,
        versions,
        start=delta.start,
        end=delta.end,
        import_wh_by_period=delta.import_wh_by_period,
        export_wh=delta.export_wh,
        period_kinds=period_kinds,
    )
    surplus, surplus_events = state.surplus, []
    for piece in fold.pieces:
        surplus, events = sur.fold_surplus(
            surplus, versions, start=piece.start, end=piece.end, export_wh=piece.export_wh, overflow_wh=piece.overflow_wh
        )
        surplus_events += events
    return replace(state, battery=fold.state, surplus=surplus), fold.events, surplus_events



# --------------------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class LedgerState:
    """The battery agent's table value for one PDL."""

    pdl: str = ""
    partition: int | None = None  # Kafka partition of the PDL (timers send ticks there)
    tracker: Tracker = field(default_factory=Tracker)
    battery: bat.BatteryState = field(default_factory=bat.BatteryState)
    surplus: sur.SurplusState = field(default_factory=sur.SurplusState)
    alerts: alr.AlertState = field(default_factory=alr.AlertState)
    journal: Journal | None = None  # the battery day's deltas, to re-fold it (see "Re-folding")


class LedgerFold(NamedTuple):
    state: LedgerState
    changed: bool  # the ledgers moved (publish); False for duplicates and baselines
    battery_events: list[bat.BatteryEvent]
    surplus_events: list[sur.SurplusEvent]
    status: str


def fold_reading(
    state: LedgerState,
    reading: Mapping[str, Any],
    contract: Contract | None,
    *,
    period_kinds: Mapping[str, str] | None = None,
    load: RecordLoader | None = None,
) -> LedgerFold:
    """Fold one normalized reading (docs/reading-schema.md) under the PDL's contract document.

    First ``reconcile`` (a new anchor, or versions changed for the journal's day: re-fold it; the
    checkpoint record is read with ``load``), then the reading's delta, journaled."""
    versions = contract.versions if contract is not None else ()
    synced = reconcile(state, contract, load=load, period_kinds=period_kinds)
    tracker, delta, status = track(synced.state.tracker, reading)
    state = replace(synced.state, tracker=tracker)
    if delta is None:
        return LedgerFold(state, synced.changed, synced.battery_events, synced.surplus_events, status)
    folded, battery_events, surplus_events = _fold_delta(state, delta, versions, period_kinds)
    folded = replace(folded, journal=_journaled(state, folded, delta, versions))
    events = synced.battery_events + battery_events
    return LedgerFold(folded, True, events, synced.surplus_events + surplus_events, status)


def fold_alerts(
    state: LedgerState,
    reading: Mapping[str, Any],
    contract: Contract | None,
    settings: alr.AlertSettings,
    *,
    now: datetime,
    bill: alr.BillProjection | None = None,
    prefs: alr.AlertPreferences | None = None,
) -> tuple[LedgerState, list[alr.AlertEvent]]:
    """Fold the reading into the alert episodes, after ``fold_reading`` of the same reading (the
    battery alerts see the ledger as of this reading). ``now`` is the reception clock.

    ``settings`` are the deployment's thresholds; the contract version in force at the reading
    overrides ``daily_budget_wh`` when its ``alerts.daily_budget_wh`` is set (the PDL's own budget;
    unset = the deployment default); the household's own budget and bill threshold (``prefs``,
    set in the portal) win over both."""
    try:
        when = datetime.fromisoformat(reading["time"])
    except (KeyError, TypeError, ValueError):
        return state, []
    version = effective_at(contract.versions, when) if contract is not None else None
    budget = version.daily_budget_wh if version is not None else None
    if prefs is not None and prefs.daily_budget_wh is not None:
        budget = prefs.daily_budget_wh
    if budget is not None and budget != settings.daily_budget_wh:
        settings = replace(settings, daily_budget_wh=budget)
    if prefs is not None and prefs.bill_over_installment_share is not None:
        settings = replace(settings, bill_over_installment_share=prefs.bill_over_installment_share)
    alerts, events = alr.fold_reading(
        state.alerts, reading, settings, contract_version=version, battery=state.battery, now=now, bill=bill
    )
    return replace(state, alerts=alerts), events


def tick(state: LedgerState, now: datetime, settings: alr.AlertSettings) -> tuple[LedgerFold, list[alr.AlertEvent]]:
    """Timer work at wall-clock ``now``: close ended days/months, open ``meter_silent``, end the
    daily budget episode. ``fold.changed`` tells whether anything moved."""
    fold = close_if_due(state, now)
    alerts, events = alr.tick(state.alerts, now, settings)
    if alerts != state.alerts:
        fold = fold._replace(state=replace(fold.state, alerts=alerts), changed=True)
    return fold, events


def sync_contract(state: LedgerState, contract: Contract | None) -> LedgerFold:
    """Apply the newest invoice anchor of ``contract`` (no-op if already applied or pending)."""
    if contract is None or latest_anchor(contract.anchors) is None:
        return LedgerFold(state, False, [], [], "synced")
    battery, events = bat.sync_anchors(state.battery, contract)
    if not events:
        return LedgerFold(state, False, [], [], "synced")
    surplus = state.surplus
    day, seg = battery.current_day, battery.segment
    if day is not None and seg is not None:
        # A late anchor re-settles the month (monthly settlement) and can change its overflow:
        # the battery added the change to its current day and month rows; the surplus follows.
        key = bat.month_key(day)
        before = state.battery.months[key].overflow_wh if key in state.battery.months else 0
        after = battery.months[key].overflow_wh if key in battery.months else 0
        if after != before:
            version = next((v for v in contract.versions if v.effective_from == seg.version_from), None)
            surplus = sur.correct_overflow(surplus, version, day=day, overflow_wh=after - before)
    return LedgerFold(replace(state, battery=battery, surplus=surplus), True, events, [], "synced")


def close_if_due(state: LedgerState, now: datetime) -> LedgerFold:
    """Timer: finalize the day/month rows that ended before ``now`` (Europe/Paris)."""
    battery, b_events = bat.close_due(state.battery, now)
    surplus, s_events = sur.close_due(state.surplus, now)
    changed = battery != state.battery or surplus != state.surplus
    return LedgerFold(replace(state, battery=battery, surplus=surplus), changed, b_events, s_events, "closed")


def tick_is_due(state: LedgerState, now: datetime, settings: alr.AlertSettings) -> bool:
    """Whether ``tick`` would change anything (the timer sends a tick message only then)."""
    return tick(state, now, settings)[0].changed


def next_tick_due(state: LedgerState, settings: alr.AlertSettings, checked_at: datetime | None = None) -> datetime | None:
    """The earliest wall-clock instant at which ``tick`` could change ``state`` (None: never
    without a new reading). The timer looks at a PDL only from then on (agents/battery.py), so a
    run costs O(PDLs due), not O(PDLs).

    ``tick(state, now)`` depends on ``now`` only through its local date (closing days and months,
    pruning, the daily-budget episode) and the meter-silence deadline. So, for a state just
    stored (``checked_at`` None): the end of its open battery or surplus day, of an open budget
    episode's day, or the silence deadline. For a state ``tick`` had nothing to do with at
    ``checked_at``: the next local midnight after it, or the silence deadline if later than it.
    Never later than the true instant (tests/unit/test_due_index.py compares with ``tick_is_due``).
    """
    al = state.alerts
    silence = None
    if al.last_seen is not None and "meter_silent" not in al.open:
        silence = to_utc(al.last_seen) + timedelta(seconds=settings.silent_seconds)
    due: list[datetime] = []
    if checked_at is None:
        for day in (state.battery.current_day, state.surplus.current_day):
            if day is not None:
                due.append(paris_midnight(day + timedelta(days=1)))
        if "daily_budget" in al.open and al.day is not None:
            due.append(paris_midnight(al.day + timedelta(days=1)))
        if silence is not None:
            due.append(silence)
    else:
        if state.battery.current_day is not None or state.surplus.current_day is not None or "daily_budget" in al.open:
            due.append(paris_midnight(local_date(checked_at) + timedelta(days=1)))
        if silence is not None and silence > checked_at:
            due.append(silence)
    return min(due) if due else None


# --------------------------------------------------------------------------- rendering


def battery_payload(state: LedgerState, contract: Contract | None) -> dict[str, Any]:
    """``linky:{pdl}:battery`` (tables/battery.py payload, plus the pending anchor if any)."""
    versions = contract.versions if contract is not None else ()
    payload = bat.render_battery_payload(state.battery, versions, pdl=state.pdl)
    pending = state.battery.pending_anchor
    payload["pending_anchor"] = (
        None if pending is None else {"date": pending.date.isoformat(), "balance_wh": pending.balance_wh}
    )
    return payload


def surplus_payload(state: LedgerState, contract: Contract | None) -> dict[str, Any]:
    """``linky:{pdl}:surplus``."""
    versions = contract.versions if contract is not None else ()
    return sur.render_surplus_payload(state.surplus, versions, pdl=state.pdl)


def battery_document(state: LedgerState, contract: Contract | None) -> dict[str, Any]:
    """``GET /pdl/{pdl}/battery``: the live payload, the monthly rows, the kept day rows (this
    month and the previous one), the surplus with its months, and the contract document."""
    versions = contract.versions if contract is not None else ()
    doc = battery_payload(state, contract)
    doc["months"] = bat.render_history(state.battery, versions)
    doc["days"] = [bat.render_row(state.battery.days[k]) for k in sorted(state.battery.days)]
    doc["contract"] = None if contract is None else contract_to_dict(contract)
    doc["surplus"] = surplus_payload(state, contract)
    doc["surplus"]["months"] = sur.render_history(state.surplus)
    return doc


# --------------------------------------------------------------------------- (de)serialization


def state_to_dict(state: LedgerState) -> dict[str, Any]:
    t = state.tracker
    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": state.pdl,
        "partition": state.partition,
        "tracker": {"cursor": cursor_to_dict(t.cursor), "labels": dict(t.labels), "active": t.active},
        "battery": bat.state_to_dict(state.battery),
        "surplus": sur.state_to_dict(state.surplus),
        "alerts": alr.state_to_dict(state.alerts),
        "journal": _journal_to_dict(state.journal),
    }


def state_from_dict(data: Mapping[str, Any]) -> LedgerState:
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported ledger state schema_version {data.get('schema_version')!r}")
    t = data["tracker"]
    return LedgerState(
        pdl=data["pdl"],
        partition=data.get("partition"),
        tracker=Tracker(cursor=cursor_from_dict(t["cursor"]), labels=dict(t["labels"]), active=t.get("active")),
        battery=bat.state_from_dict(data["battery"]),
        surplus=sur.state_from_dict(data["surplus"]),
        alerts=alr.state_from_dict(data["alerts"]),
        journal=_journal_from_dict(data.get("journal")),
    )


def _journal_to_dict(journal: Journal | None) -> dict[str, Any] | None:
    """The journal without its checkpoint (a record of its own). Entries are compact lists:
    ``[start, end, [[period, Wh], ...], export Wh]``, times in integer microseconds since the
    Unix epoch, ``start`` null when it is the previous entry's ``end`` (the usual case)."""
    if journal is None:
        return None
    return {
        "day": journal.day.isoformat(),
        "versions_key": journal.versions_key,
        "earlier_key": journal.earlier_key,
        "complete": journal.complete,
        "pages": journal.pages,
        "entries": _entries_to_list(journal.entries),
    }


def _entries_to_list(entries: Sequence[Delta]) -> list[list[Any]]:
    return [
        [
            None if i and d.start == entries[i - 1].end else _micros(d.start),
            _micros(d.end),
            [[k, v] for k, v in d.import_wh_by_period.items()],
            d.export_wh,
        ]
        for i, d in enumerate(entries)
    ]


def _entries_from_list(data: Sequence[Sequence[Any]]) -> tuple[Delta, ...]:
    entries: list[Delta] = []
    for start, end, imports, export in data:
        begin = entries[-1].end if start is None else _from_micros(start)
        entries.append(Delta(begin, _from_micros(end), {k: v for k, v in imports}, export))
    return tuple(entries)


def _journal_from_dict(data: Mapping[str, Any] | None) -> Journal | None:
    if data is None:
        return None
    return Journal(
        day=date.fromisoformat(data["day"]),
        versions_key=data["versions_key"],
        earlier_key=data["earlier_key"],
        complete=bool(data["complete"]),
        pages=int(data.get("pages", 0)),
        entries=_entries_from_list(data["entries"]),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // _MICRO


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


# --------------------------------------------------------------------------- table storage
#
# A PDL's value is split (docs/stream.md "Battery ledger storage"): the *hot* value holds the
# tracker, the open rows (battery day and month of ``battery.current_day``, surplus day of
# ``surplus.current_day``), the surplus months, the alerts, and the keys of the closed rows;
# each closed row (an earlier day or month) is a record of its own, written once when it stops
# being open. A reading therefore rewrites a few hundred bytes, not two months of day rows.

BATTERY_DAY, BATTERY_MONTH, SURPLUS_DAY = "bd", "bm", "sd"  # record kinds
HISTORY_KINDS = (BATTERY_DAY, BATTERY_MONTH, SURPLUS_DAY)
RecordLoader = Callable[[str, str], "Mapping[str, Any] | None"]  # (kind, key) -> record or None


def _families(state: LedgerState) -> dict[str, tuple[Mapping[str, Any], str | None]]:
    """kind -> (rows, the open key kept in the hot value)."""
    b_day = state.battery.current_day
    s_day = state.surplus.current_day
    return {
        BATTERY_DAY: (state.battery.days, b_day.isoformat() if b_day else None),
        BATTERY_MONTH: (state.battery.months, bat.month_key(b_day) if b_day else None),
        SURPLUS_DAY: (state.surplus.days, s_day.isoformat() if s_day else None),
    }


def to_storage(
    before: LedgerState | None, after: LedgerState, *, _hot: bool = True
) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]], list[tuple[str, str]]]:
    """``(hot, writes, deletes)`` to store ``after`` over ``before`` (the state as loaded, None
    for a new PDL): ``hot`` is the JSON-able hot value, ``writes`` the closed-row records that are
    new or changed (and a new journal checkpoint), ``deletes`` the records to remove (pruned rows,
    rows open again, the previous checkpoint).

    Store the writes, then the hot value, then the deletes: after a crash the stored prefix is
    either the old hot value (its rows all present) or the new one (its rows written before it).
    """
    new_families = _families(after)
    old_families = _families(before) if before is not None else {}
    writes: dict[tuple[str, str], dict[str, Any]] = {}
    deletes: list[tuple[str, str]] = []
    for kind, (rows, open_key) in new_families.items():
        old_rows, old_open = old_families.get(kind, ({}, None))
        # closed rows already stored as records: those of a state read by ``from_storage``
        stored = old_rows if isinstance(old_rows, LazyRows) else {}
        changed = rows.changed_since(old_rows) if isinstance(rows, LazyRows) and isinstance(old_rows, LazyRows) else None
        if changed is not None:  # ``after`` folded from ``before``: only these keys can differ
            keys = {key for key in (old_open, open_key) if key is not None}.union(changed)
        else:
            keys = set(rows).union(stored)
        _row_changes(kind, stored, old_open, rows, open_key, keys, writes, deletes)
    journal = after.journal
    if journal is not None and journal.checkpoint is not None:
        ck = journal.checkpoint
        at_checkpoint = replace(after, battery=ck.battery, surplus=ck.surplus, journal=None)
        writes[(CHECKPOINT, journal.day.isoformat())] = _hot_dict(at_checkpoint)  # reads battery, surplus, history
    if journal is not None:
        for number, page in journal.new_pages.items():
            writes[(JOURNAL_PAGE, f"{journal.day.isoformat()}.{number}")] = {"entries": _entries_to_list(page)}
    old_journal = before.journal if before is not None else None
    if old_journal is not None and (journal is None or journal.day != old_journal.day):
        deletes.append((CHECKPOINT, old_journal.day.isoformat()))
        deletes += [(JOURNAL_PAGE, f"{old_journal.day.isoformat()}.{n}") for n in range(old_journal.pages)]
    return (_hot_dict(after) if _hot else {}), writes, deletes


def _row_changes(
    kind: str,
    stored: Mapping[str, Any],
    old_open: str | None,
    rows: Mapping[str, Any],
    open_key: str | None,
    keys: set[str],
    writes: dict[tuple[str, str], dict[str, Any]],
    deletes: list[tuple[str, str]],
) -> None:
    """``to_storage``'s writes and deletes of one row family, for ``keys``: a closed row is
    written when it is new or differs from the stored one, a stored closed row that is gone (or
    open again) is deleted. ``keys`` is every key, or, when ``rows`` descends from the stored
    rows (``LazyRows.changed_since``), the keys changed and the two open keys: any other key is
    the same stored closed row in both, so O(rows the reading touched), not O(history)."""
    for key in sorted(keys):
        was_closed = key != old_open and key in stored
        is_closed = key != open_key and key in rows
        if is_closed and not (was_closed and _same_row(stored, rows, key)):
            writes[(kind, key)] = _row_to(kind, rows[key])
        elif was_closed and not is_closed:
            deletes.append((kind, key))


def record_changes(
    before: LedgerState | None, after: LedgerState
) -> tuple[dict[tuple[str, str], dict[str, Any]], list[tuple[str, str]]]:
    """``to_storage`` without the hot value: ``(writes, deletes)``. A write-back store keeps
    ``after`` and builds its hot value (``hot_value``) only when it writes it."""
    _, writes, deletes = to_storage(before, after, _hot=False)
    return writes, deletes


def hot_value(state: LedgerState) -> dict[str, Any]:
    """The JSON-able hot value of ``state`` (the same for ``state`` and ``as_stored(state)``)."""
    return _hot_dict(state)


def _hot_dict(state: LedgerState) -> dict[str, Any]:
    """``state`` with only its open rows, plus the keys of its closed rows (``history``)."""
    history: dict[str, list[str]] = {}
    open_rows: dict[str, dict[str, Any]] = {}
    for kind, (rows, open_key) in _families(state).items():
        history[kind] = sorted(k for k in rows if k != open_key)
        open_rows[kind] = {open_key: rows[open_key]} if open_key is not None and open_key in rows else {}
    small = replace(
        state,
        battery=replace(state.battery, days=open_rows[BATTERY_DAY], months=open_rows[BATTERY_MONTH]),
        surplus=replace(state.surplus, days=open_rows[SURPLUS_DAY]),
    )
    hot = state_to_dict(small)
    hot["history"] = history
    return hot


def from_storage(hot: Mapping[str, Any], load: RecordLoader) -> LedgerState:
    """The state of a hot value (``to_storage``), its closed rows read by ``load`` on demand."""
    state = state_from_dict(hot)
    history = hot.get("history")
    if history is None:  # a value stored whole (before the split): every row is in it
        return state
    b_days, b_months, s_days = _lazy_rows(history, load, state.battery.days, state.battery.months, state.surplus.days)
    return replace(
        state,
        battery=replace(state.battery, days=b_days, months=b_months),
        surplus=replace(state.surplus, days=s_days),
    )


def _lazy_rows(
    history: Mapping[str, Any],
    load: RecordLoader,
    battery_days: Mapping[str, Any],
    battery_months: Mapping[str, Any],
    surplus_days: Mapping[str, Any],
) -> tuple[LazyRows[Any], LazyRows[Any], LazyRows[Any]]:
    """The three row families: the open rows given, the closed ones (``history``) from ``load``."""

    def lazy(kind: str, rows: Mapping[str, Any]) -> LazyRows[Any]:
        values: dict[str, Any] = {key: UNLOADED for key in history.get(kind, ())}
        values.update(rows)

        def load_row(key: str) -> Any:
            record = load(kind, key)
            return None if record is None else _row_from(kind, record)

        return LazyRows(values, load_row)

    return lazy(BATTERY_DAY, battery_days), lazy(BATTERY_MONTH, battery_months), lazy(SURPLUS_DAY, surplus_days)


def _same_row(old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> bool:
    if isinstance(old, LazyRows) and isinstance(new, LazyRows) and old.raw(key) is new.raw(key):
        return True  # not even loaded: untouched
    return bool(old[key] == new[key])


def _row_to(kind: str, row: Any) -> dict[str, Any]:
    return sur.row_to_dict(row) if kind == SURPLUS_DAY else bat.row_to_dict(row)


def _row_from(kind: str, record: Mapping[str, Any]) -> Any:
    return sur.row_from_dict(record) if kind == SURPLUS_DAY else bat.row_from_dict(record)


def as_stored(state: LedgerState, load: RecordLoader) -> LedgerState:
    """``state`` as ``from_storage`` would read it back after ``to_storage`` (rows in
    ``LazyRows``, the rows already in memory kept): what a decode cache may hold for it."""

    def lazy(kind: str, rows: Mapping[str, Any]) -> LazyRows[Any]:
        if isinstance(rows, LazyRows):
            return rows.fresh_copy()  # what is stored: the next reading's changes count from here

        def load_row(key: str) -> Any:
            record = load(kind, key)
            return None if record is None else _row_from(kind, record)

        return LazyRows(dict(rows), load_row)

    journal = state.journal
    return replace(
        state,
        battery=replace(
            state.battery, days=lazy(BATTERY_DAY, state.battery.days), months=lazy(BATTERY_MONTH, state.battery.months)
        ),
        surplus=replace(state.surplus, days=lazy(SURPLUS_DAY, state.surplus.days)),
        journal=None if journal is None else replace(journal, checkpoint=None, new_pages={}),
    )
