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

    def store(self, before: LedgerState | None, after: LedgerState) -> int:
        hot, writes, deletes = to_storage(before, after)
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
