"""Split storage of the battery agent's value (tables/ledger.py ``to_storage``/``from_storage``,
tables/rows.py): stored and reloaded after every reading, the state folds exactly like the
state kept in memory, the hot value stays small, closed rows are written once and read only
when a fold needs them."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tables.contracts import Anchor, Contract, add_anchor, version_from_dict
from tables.ledger import (
    as_stored,
    BATTERY_DAY,
    LedgerState,
    battery_document,
    close_if_due,
    fold_reading,
    from_storage,
    state_from_dict,
    state_to_dict,
    to_storage,
)
from tables.frozen import replace
from tables.rows import UNLOADED, LazyRows, copy_rows

PARIS = ZoneInfo("Europe/Paris")
PDL = "12345678901234"


class FakeTable:
    """The faust table as the agent uses it: hot value + records, with counters."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads: list[tuple[str, str]] = []
        self.record_writes: list[tuple[str, str]] = []
        self.cached: LedgerState | None = None
        self.tracked = 0  # row families stored by looking only at the keys the reading changed

    def store(self, before: LedgerState | None, after: LedgerState) -> int:
        hot, writes, deletes = to_storage(before, after)
        # the same writes and deletes as comparing every closed row (the rows then descend from nothing)
        assert (writes, deletes) == to_storage(before, compared_in_full(after))[1:]
        if before is not None:
            self.tracked += sum(rows.changed_since(old) is not None for rows, old in (
                (after.battery.days, before.battery.days), (after.battery.months, before.battery.months),
                (after.surplus.days, before.surplus.days)))  # fmt: skip
        for (kind, key), record in writes.items():
            self.data[f"{kind}|{key}"] = json.dumps(record).encode()
            self.record_writes.append((kind, key))
        raw = json.dumps(hot).encode()
        self.data["hot"] = raw
        self.cached = as_stored(after, self._record)
        for kind, key in deletes:
            del self.data[f"{kind}|{key}"]
        # the size without the day journal (it grows with the day's deltas, not with history)
        return len(raw) - len(json.dumps(hot["journal"]).encode())

    def _record(self, kind: str, key: str) -> dict[str, Any] | None:
        self.reads.append((kind, key))
        value = self.data.get(f"{kind}|{key}")
        return None if value is None else json.loads(value)

    def load(self, cached: bool = False) -> LedgerState | None:
        """Decode the stored hot value, or (``cached``) take what the agent's decode cache holds."""
        if cached:
            return self.cached
        raw = self.data.get("hot")
        return None if raw is None else from_storage(json.loads(raw), self._record)


def compared_in_full(state: LedgerState) -> LedgerState:
    def fresh(rows: Any) -> Any:
        return rows.fresh_copy() if isinstance(rows, LazyRows) else dict(rows)

    return replace(state, battery=replace(state.battery, days=fresh(state.battery.days), months=fresh(state.battery.months)),
                   surplus=replace(state.surplus, days=fresh(state.surplus.days)))  # fmt: skip


def reading(t: datetime, hc: int, hp: int, export: int, index: int) -> dict[str, Any]:
    return {"pdl": PDL, "mode": "standard", "time": t.isoformat(), "tariff_index": index,
            "tariff_period": "HEURES CREUSES" if index == 1 else "HEURES PLEINES",
            "import_wh_by_period": {"EASF01": hc, "EASF02": hp}, "export_wh": export}  # fmt: skip


def contract() -> Contract:
    battery = {"capacity_wh": 40_000, "overflow_policy": "sold", "overflow_rate_eur_per_kwh": "0.1"}
    return Contract(pdl=PDL, versions=(version_from_dict(
        {"effective_from": "2027-01-01", "offer": "virtual_battery", "battery": battery}),))  # fmt: skip


def test_stored_and_reloaded_every_reading_folds_like_memory_with_a_small_hot_value() -> None:
    rng = random.Random(3)
    c = contract()
    memory = LedgerState(pdl=PDL, partition=1)
    table = FakeTable()
    hc = hp = exp = 0
    t = datetime(2027, 1, 20, tzinfo=PARIS)
    sizes: list[int] = []
    reads_outside_anchor = 0
    for step in range(75 * 8):  # 75 days, a reading every 3 hours, a gap of a day now and then
        t += timedelta(hours=3 if step % 97 else 27)
        hc, hp, exp = hc + rng.randrange(400), hp + rng.randrange(900), exp + rng.randrange(1500)
        r = reading(t, hc, hp, exp, 1 + step % 2)
        if step == 400:  # a late invoice anchor: sums the day rows since its date
            c = add_anchor(c, Anchor(date(2027, 3, 1), 12_345))
        before = table.load(cached=step % 3 == 1)
        n_reads = len(table.reads)
        fold = fold_reading(before or LedgerState(pdl=PDL, partition=1), r, c)
        memory = fold_reading(memory, r, c).state
        if step != 400:
            reads_outside_anchor += len(table.reads) - n_reads
        sizes.append(table.store(before, fold.state))
        assert fold.state == memory
        if step % 50 == 0:
            ticked = close_if_due(fold.state, t + timedelta(days=1))
            assert ticked.state == close_if_due(memory, t + timedelta(days=1)).state
    reloaded = table.load()
    assert reloaded == memory
    assert state_to_dict(reloaded) == state_to_dict(memory)
    assert battery_document(reloaded, c) == battery_document(memory, c)
    # closed rows are read only by the anchor fold (and the full comparisons above)
    assert reads_outside_anchor == 0
    assert table.tracked > 3 * 75 * 8 * 0.9  # nearly every reading stored without looking at all its history
    # every closed row was written once, pruned rows are gone, the hot value does not grow
    writes = table.record_writes
    checkpoints = sorted(k.split("|")[1] for k in table.data if k.startswith("ck|"))
    assert checkpoints == [memory.journal.day.isoformat()]  # only the journal day's checkpoint
    assert len(writes) == len(set(writes))
    stored_days = sorted(k.split("|")[1] for k in table.data if k.startswith(f"{BATTERY_DAY}|"))
    assert stored_days == sorted(k for k in memory.battery.days if k != memory.battery.current_day.isoformat())
    assert len(memory.battery.days) > 40 and max(sizes[-100:]) < 4 * min(sizes[-100:]) and max(sizes) < 6000
    whole = len(json.dumps(state_to_dict(memory)).encode())
    assert max(sizes[-100:]) * 5 < whole


def test_values_stored_whole_are_still_read_and_get_split_on_the_next_write() -> None:
    c = contract()
    s = LedgerState(pdl=PDL)
    for h in range(0, 24 * 4, 2):
        s = fold_reading(s, reading(datetime(2027, 2, 1, tzinfo=PARIS) + timedelta(hours=h), h * 10, h * 20, h * 30,
                                    1 + h % 2), c).state  # fmt: skip
    old_format = json.loads(json.dumps(state_to_dict(s)))
    loaded = from_storage(old_format, lambda kind, key: None)
    assert loaded == s
    hot, writes, deletes = to_storage(loaded, loaded)
    assert {key for _, key in writes} >= {"2027-02-01", "2027-02-02", "2027-02-03"} and not deletes
    assert state_from_dict(hot).battery.days.keys() == {"2027-02-04"}


def test_lazy_rows_load_on_access_and_copies_compare_without_loading() -> None:
    loads: list[str] = []

    def load(key: str) -> int | None:
        loads.append(key)
        return None if key == "gone" else len(key)

    rows: LazyRows[int] = LazyRows({"a": UNLOADED, "bb": UNLOADED, "gone": UNLOADED, "open": 7}, load)
    copy = copy_rows(rows)
    copy["new"] = 1
    del copy["a"]
    assert list(rows) == ["a", "bb", "gone", "open"] and loads == []
    assert copy_rows(rows) == rows and loads == []  # same unloaded rows: equal without loading
    assert rows["bb"] == 2 and loads == ["bb"]
    assert rows.get("gone") is None and "gone" not in rows
    assert rows == {"a": 1, "bb": 2, "open": 7}
    assert copy_rows({"x": 1}) == {"x": 1}


def test_a_day_closed_by_the_timer_is_stored_as_a_record_when_the_next_day_opens() -> None:
    """The timer marks the day final (a tick, stored), the next day's first reading makes it a
    closed row: storing writes it as a record, also when the fold did not touch it (it is then
    not among the keys changed, only the old open key)."""
    c = contract()
    table = FakeTable()
    t = datetime(2027, 2, 1, 20, tzinfo=PARIS)
    for step, (hc, hp) in enumerate(((100, 200), (150, 260), (150, 260))):  # the last one adds nothing
        before = table.load()
        table.store(before, fold_reading(before or LedgerState(pdl=PDL, partition=1),
                                         reading(t + timedelta(hours=step), hc, hp, 0, 1), c).state)  # fmt: skip
    before = table.load()
    assert before is not None
    ticked = close_if_due(before, t + timedelta(days=1)).state  # the timer, no reading
    assert ticked.battery.days["2027-02-01"].final and ticked.battery.current_day == date(2027, 2, 1)
    table.store(before, ticked)
    before = table.load()
    after = fold_reading(before, reading(t + timedelta(days=1, hours=1), 150, 260, 0, 1), c).state
    table.store(before, after)  # a reading the next day: every row family tracked, stored right
    assert ("bd", "2027-02-01") in table.record_writes and table.load() == after
    # the same move of the open key with the old open row untouched (not among the changed keys)
    before = table.load()
    assert before is not None
    days = copy_rows(before.battery.days)
    days["2027-02-03"] = replace(days["2027-02-02"], key="2027-02-03")
    moved = replace(before, battery=replace(before.battery, current_day=date(2027, 2, 3), days=days))
    assert days.changed_since(before.battery.days) == {"2027-02-03"}
    tracked = table.tracked
    table.store(before, moved)
    assert table.tracked == tracked + 3
    assert ("bd", "2027-02-02") in table.record_writes and table.load() == moved


def test_lazy_rows_copies_know_the_keys_changed_since_the_stored_rows() -> None:
    stored: LazyRows[int] = LazyRows({"a": UNLOADED, "b": UNLOADED, "gone": UNLOADED, "open": 7},
                                     lambda key: None if key == "gone" else len(key))  # fmt: skip
    first = copy_rows(stored)
    assert isinstance(first, LazyRows) and first.changed_since(stored) == set()
    assert first["a"] == 1 and first.changed_since(stored) == set()  # loading is no change
    first["open"] = 8
    second = copy_rows(first)  # a copy of a copy still counts from the stored rows
    del second["b"]
    assert first.get("gone") is None  # a stored row missing: dropped, a change
    assert first.changed_since(stored) == {"open", "gone"} and second.changed_since(stored) == {"open", "b"}
    assert second.changed_since(first) is None  # not counted from a copy
    assert stored.changed_since(stored) == set() and stored.fresh_copy().changed_since(stored) is None
    stored["c"] = 3  # the base itself changed: nothing is known any more
    assert first.changed_since(stored) is None and stored.changed_since(stored) is None
