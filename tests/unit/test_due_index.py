"""The timer's schedule: stream/due_index.py (one live entry per key) and tables/ledger.py
``next_tick_due`` (never later than the first instant ``tick`` has work)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from stream.due_index import DueIndex
from tables.alerts import AlertSettings
from tables.contracts import Contract, version_from_dict
from tables.ledger import LedgerState, fold_alerts, fold_reading, next_tick_due, tick, tick_is_due

PARIS = ZoneInfo("Europe/Paris")
PDL = "12345678901234"


def test_one_live_entry_per_key_and_earliest_first() -> None:
    due: DueIndex[str] = DueIndex()
    due.schedule("a", 100)
    due.schedule("b", 50)
    due.schedule("a", 200)  # later than its entry: the earlier check reschedules it
    due.schedule("c", 80)
    due.schedule("c", 10)  # earlier: replaces
    assert len(due) == 3 and due.next_at() == 10
    assert due.pop_due(60) == ["c", "b"]
    assert due.pop_due(60) == [] and "a" in due
    assert due.pop_due(1000, limit=5) == ["a"] and len(due) == 0


def test_pop_due_respects_the_limit_and_keeps_the_rest() -> None:
    due: DueIndex[int] = DueIndex()
    for k in range(10):
        due.schedule(k, 5.0)  # 10 PDLs due at the same midnight
    assert due.pop_due(5.0, limit=4) == [0, 1, 2, 3]
    assert due.pop_due(5.0, limit=4) == [4, 5, 6, 7]
    assert due.pop_due(5.0) == [8, 9]


def test_stale_entries_are_compacted() -> None:
    due: DueIndex[int] = DueIndex()
    for when in range(10_000, 0, -1):  # the same key ever earlier: 10,000 heap entries, 1 live
        due.schedule(1, float(when))
    assert due.pop_due(0.5) == [] and len(due._heap) < 2000
    assert due.pop_due(1.0) == [1]


def test_ties_are_popped_first_scheduled_first_and_stale_entries_stay_bounded() -> None:
    due: DueIndex[str] = DueIndex()
    for pdl in ("20000000000002", "10000000000001", "30000000000003"):
        due.schedule(pdl, 7.0)  # one midnight
    assert due.pop_due(7.0, limit=2) == ["20000000000002", "10000000000001"]  # not key order
    due.schedule("10000000000001", 7.0)  # rescheduled at the same instant: behind the others
    assert due.pop_due(7.0) == ["30000000000003", "10000000000001"]
    rng = random.Random(5)
    live: dict[str, float] = {}
    for step in range(50_000):  # readings move PDLs earlier and later, the timer pops some
        pdl = f"{rng.randrange(3000):014d}"
        when = float(rng.randrange(1_000_000))
        due.schedule(pdl, when)
        if pdl not in live or when < live[pdl]:
            live[pdl] = when
        assert len(due._heap) <= 2 * len(due) + 1025
        if step % 5000 == 4999:
            now = float(rng.randrange(1_000_000))
            popped = due.pop_due(now)
            assert sorted(popped) == sorted(k for k, w in live.items() if w <= now)
            assert [live[k] for k in popped] == sorted(live[k] for k in popped)  # earliest first
            for k in popped:
                del live[k]
    assert len(due) == len(live) and due.next_at() == min(live.values())


def test_reschedule_sets_the_instant_even_later_and_none_forgets() -> None:
    due: DueIndex[str] = DueIndex()
    due.schedule("a", 10.0)
    due.schedule("b", 20.0)
    due.reschedule("a", 30.0)  # later than its entry: schedule() would keep 10
    assert due.pop_due(25.0) == ["b"]
    due.reschedule("a", 30.0)  # unchanged: no new heap entry
    assert len(due._heap) == 1 and due.pop_due(30.0) == ["a"]
    due.schedule("c", 5.0)
    due.reschedule("c", None)
    assert "c" not in due and due.pop_due(100.0) == []


def _reading(t: datetime, hc: int, hp: int, export: int) -> dict[str, Any]:
    return {"pdl": PDL, "mode": "standard", "time": t.isoformat(), "tariff_index": 1, "tariff_period": "HEURES CREUSES",
            "import_wh_by_period": {"EASF01": hc, "EASF02": hp}, "export_wh": export, "power_va": 500,
            "subscribed_kva": 6}  # fmt: skip


def test_next_tick_due_is_never_after_the_first_instant_tick_has_work() -> None:
    rng = random.Random(7)
    settings = AlertSettings(silent_seconds=600.0)
    contract = Contract(pdl=PDL, versions=(version_from_dict(
        {"effective_from": "2027-01-01", "offer": "virtual_battery", "battery": {}}),))  # fmt: skip
    for case in range(60):
        state = LedgerState(pdl=PDL, partition=0)
        t = datetime(2027, 3, 10, tzinfo=PARIS) + timedelta(minutes=rng.randrange(0, 60 * 24 * 40))
        hc = hp = export = 0
        for _ in range(rng.randrange(1, 6)):
            t += timedelta(minutes=rng.randrange(1, 600))
            hc, hp, export = hc + rng.randrange(0, 500), hp + rng.randrange(0, 500), export + rng.randrange(0, 900)
            reading = _reading(t, hc, hp, export)
            state = fold_reading(state, reading, contract).state
            state, _ = fold_alerts(state, reading, contract, settings, now=t + timedelta(seconds=rng.randrange(0, 5)))
            if rng.random() < 0.3:  # the timer ran meanwhile
                state = tick(state, t + timedelta(minutes=rng.randrange(0, 900)), settings)[0].state
        checks = [t + timedelta(minutes=m) for m in range(0, 3 * 24 * 60, 7)]
        _check_bound(state, settings, None, checks, case)
        for checked_at in checks[::40]:  # the timer found nothing to do at checked_at
            if not tick_is_due(state, checked_at, settings):
                _check_bound(state, settings, checked_at, [c for c in checks if c > checked_at], case)
            else:  # a tick applied at checked_at leaves nothing to do then (agents/battery.py
                # ``_schedule(..., replace=True)`` schedules it as checked)
                after = tick(state, checked_at, settings)[0].state
                assert not tick_is_due(after, checked_at, settings), (case, checked_at)
                _check_bound(after, settings, checked_at, [c for c in checks if c > checked_at], case)


def _check_bound(state: LedgerState, settings: AlertSettings, checked_at: datetime | None,
                 checks: list[datetime], case: int) -> None:  # fmt: skip
    bound = next_tick_due(state, settings, checked_at)
    if bound is None:  # nothing can happen until a reading
        assert not any(tick_is_due(state, now, settings) for now in checks), case
        return
    if checked_at is not None:
        assert bound > checked_at, (case, checked_at, bound)  # progress: the timer never spins on a PDL
    for now in checks + [bound - timedelta(seconds=1)]:
        if now < bound and (checked_at is None or now > checked_at):
            assert not tick_is_due(state, now, settings), (case, checked_at, now, bound)
