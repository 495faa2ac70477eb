"""A contract version that reaches the worker after readings of its own day (issue 6).

Contracts and readings are two topics with no order between them. A version effective today that
arrives after some of today's readings must leave the ledger exactly as if it had been known
before them: the day is re-folded from its checkpoint (tables/ledger.py "the day journal").
The reference here is always the same readings folded with the final contract from the start.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import ledger
from tables.contracts import Contract, version_from_dict
from tables.ledger import LedgerState, fold_reading, reconcile
from tests.unit.test_ledger_storage import FakeTable

PARIS = ZoneInfo("Europe/Paris")
PDL = "12345678901234"
DAY1 = datetime(2027, 3, 29, 0, 0, tzinfo=PARIS)  # 2027-03-28 is the spring DST day: not here
LAST_DAY = "2027-03-31"  # the day the late version is effective from (also a month end)


def readings(seed: int, days: int = 3) -> list[dict[str, Any]]:
    """Indexes of a producer every 3-40 minutes: night imports (HC), day imports (HP), sunny
    exports, a few mixed deltas and idle ones, so the journal merges some deltas and not others."""
    rng = random.Random(seed)
    hc = hp = export = 0
    t = DAY1 + timedelta(minutes=rng.randrange(30))
    out = []
    while t < DAY1 + timedelta(days=days):
        hour = t.hour
        index = 1 if hour < 6 or hour >= 22 else 2
        mode = rng.choice(["import", "import", "export", "mixed", "idle"]) if 9 <= hour < 17 else "import"
        if mode in ("import", "mixed"):
            if index == 1:
                hc += rng.randrange(1, 400)
            else:
                hp += rng.randrange(1, 600)
        if mode in ("export", "mixed"):
            export += rng.randrange(1, 1500)
        out.append({"pdl": PDL, "mode": "standard", "time": t.isoformat(), "tariff_index": index,
                    "tariff_period": "HEURES CREUSES" if index == 1 else "HEURES PLEINES",
                    "import_wh_by_period": {"EASF01": hc, "EASF02": hp}, "export_wh": export})  # fmt: skip
        t += timedelta(minutes=rng.randrange(3, 40))
    return out


def battery_version(day: str, **terms: Any) -> dict[str, Any]:
    return {"effective_from": day, "offer": "virtual_battery", "battery": terms}


def doc(*versions: dict[str, Any]) -> Contract:
    return Contract(pdl=PDL, versions=tuple(version_from_dict(v) for v in versions))


def fold_all(rs: list[dict[str, Any]], contract_at: Any) -> LedgerState:
    state = LedgerState(pdl=PDL)
    for i, r in enumerate(rs):
        state = fold_reading(state, r, contract_at(i)).state
    return state


def first_index_of_day(rs: list[dict[str, Any]], day: str) -> int:
    """Index of the first reading at or after ``day`` (a date, or a local date-time prefix)."""
    start = day if "T" in day else f"{day}T00:00"
    return next(i for i, r in enumerate(rs) if r["time"] >= start)


TERMS = st.fixed_dictionaries(
    {
        "capacity_wh": st.sampled_from([None, 1500, 6000]),
        "credit_ratio": st.sampled_from(["1", "0.8", "0.3333"]),
        "settlement": st.sampled_from(["realtime", "monthly"]),
        "debit_priority": st.sampled_from(["chronological", "offpeak_first", "peak_first"]),
        "overflow_policy": st.just("sold"),
        "overflow_rate_eur_per_kwh": st.just("0.1"),
        "fees_eur_per_kwh": st.just({"HP": "0.0484", "HC": "0.0300"}),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), old=st.one_of(st.none(), TERMS), new=TERMS, late_by=st.integers(1, 60),
       page=st.sampled_from([2, 5, 64]))
def test_a_version_of_today_arriving_late_leaves_the_ledger_as_if_known_before(
    seed: int, old: dict[str, Any] | None, new: dict[str, Any], late_by: int, page: int
) -> None:
    with patch.object(ledger, "JOURNAL_PAGE_ENTRIES", page):
        _late_equals_known_first(seed, old, new, late_by)


def _late_equals_known_first(seed: int, old: dict[str, Any] | None, new: dict[str, Any], late_by: int) -> None:
    rs = readings(seed)
    earlier = [] if old is None else [battery_version("2027-03-01", **old)]
    before_doc = doc(*earlier)  # what the worker knew
    final_doc = doc(*earlier, battery_version(LAST_DAY, **new))  # the document with today's version
    arrives = min(first_index_of_day(rs, LAST_DAY) + late_by, len(rs) - 1)
    reference = fold_all(rs, lambda i: final_doc)
    late = fold_all(rs, lambda i: final_doc if i >= arrives else before_doc)
    assert late == reference
    assert late.battery == reference.battery and late.surplus == reference.surplus


def test_without_reconciling_the_late_version_the_day_would_be_wrong() -> None:
    """The property above is not vacuous: skipping the re-fold gives another ledger."""
    rs = readings(11)
    new = battery_version(LAST_DAY, capacity_wh=3000)
    arrives = first_index_of_day(rs, f"{LAST_DAY}T14:00")  # after the morning's first exports
    reference = fold_all(rs, lambda i: doc(new))
    state = LedgerState(pdl=PDL)
    for i, r in enumerate(rs):
        c = doc(new) if i >= arrives else doc()
        if i == arrives:  # pretend the journal already knew this document: no re-fold happens
            assert state.journal is not None
            keys = {"versions_key": ledger.versions_key(c.versions, state.journal.day),
                    "earlier_key": ledger.versions_key(c.versions, state.journal.day, before=True)}  # fmt: skip
            state = ledger.replace(state, journal=ledger.replace(state.journal, **keys))
        state = fold_reading(state, r, c).state
    day = reference.battery.days[LAST_DAY]
    assert day.credited_wh > 0 and state.battery.days[LAST_DAY].credited_wh < day.credited_wh


def test_the_listener_path_refolds_at_once_and_reports_it() -> None:
    rs = readings(5)
    new = battery_version(LAST_DAY, capacity_wh=4000)
    arrives = first_index_of_day(rs, LAST_DAY) + 30
    state = fold_all(rs[:arrives], lambda i: doc())
    assert state.battery.level_wh == 0  # no offer yet: nothing credited
    fold = reconcile(state, doc(new))  # what the contracts agent's listener calls
    assert fold.changed and fold.status == "refolded"
    [event] = [e for e in fold.battery_events if e.kind == "contract_refolded"]
    assert event.data["day"] == LAST_DAY and event.data["retroactive"] is False
    assert fold.state == fold_all(rs[:arrives], lambda i: doc(new))
    assert fold.state.battery.level_wh > 0
    # the same document again: nothing to do
    assert reconcile(fold.state, doc(new)).changed is False


def test_the_checkpoint_and_journal_pages_are_read_back_from_their_records(monkeypatch: Any) -> None:
    monkeypatch.setattr(ledger, "JOURNAL_PAGE_ENTRIES", 4)  # a few full pages by the afternoon
    rs = readings(21)
    new = battery_version(LAST_DAY, capacity_wh=2500, settlement="monthly", debit_priority="offpeak_first")
    arrives = first_index_of_day(rs, f"{LAST_DAY}T15:00")
    table = FakeTable()
    for i, r in enumerate(rs):
        before = table.load(cached=i % 2 == 0)
        c = doc(new) if i >= arrives else doc()
        fold = fold_reading(before or LedgerState(pdl=PDL), r, c, load=table._record)
        table.store(before, fold.state)
    reloaded = table.load()
    reference = fold_all(rs, lambda i: doc(new))
    assert reloaded == reference
    assert ("ck", LAST_DAY) in table.reads  # the re-fold read the checkpoint record
    pages = sorted(key for kind, key in table.reads if kind == "jp")
    assert reloaded.journal is not None and reloaded.journal.pages >= 2
    assert pages == [f"{LAST_DAY}.{n}" for n in range(len(pages))] and pages  # and the full pages
    # the earlier days' checkpoints and pages were deleted when their day ended
    assert all(key.split("|")[1].startswith(LAST_DAY) for key in table.data if key.startswith(("ck|", "jp|")))
    stored = json.loads(table.data[f"ck|{LAST_DAY}"])
    assert stored["battery"]["current_day"] == "2027-03-30"  # the state before the day's first delta


def test_a_version_dated_before_the_journal_day_is_refolded_from_the_checkpoint_only() -> None:
    rs = readings(8)
    back = battery_version("2027-03-30", capacity_wh=5000)  # yesterday: `contract set --allow-past`
    arrives = first_index_of_day(rs, f"{LAST_DAY}T15:00")
    state = fold_all(rs[:arrives], lambda i: doc())
    fold = reconcile(state, doc(back))
    [event] = [e for e in fold.battery_events if e.kind == "contract_refolded"]
    assert event.data["retroactive"] is True
    # yesterday stays as folded (no offer): only today is re-folded under the version
    assert fold.state.battery.days["2027-03-30"] == state.battery.days["2027-03-30"]
    assert fold.state.battery.days[LAST_DAY].credited_wh > 0


def test_a_capped_journal_cannot_refold_and_says_so(monkeypatch: Any) -> None:
    monkeypatch.setattr(ledger, "JOURNAL_PAGE_ENTRIES", 2)
    monkeypatch.setattr(ledger, "JOURNAL_MAX_ENTRIES", 6)
    rs = readings(9)
    arrives = first_index_of_day(rs, LAST_DAY) + 40
    state = fold_all(rs[:arrives], lambda i: doc())
    assert state.journal is not None and state.journal.complete is False and state.journal.entries == ()
    fold = reconcile(state, doc(battery_version(LAST_DAY)))
    assert [e.kind for e in fold.battery_events] == ["contract_refold_impossible"]
    assert fold.state.battery == state.battery  # applies from now on only
    assert reconcile(fold.state, doc(battery_version(LAST_DAY))).changed is False  # reported once


def test_the_journal_holds_the_day_s_energy_exactly_in_fewer_runs() -> None:
    rs = readings(3)
    state = fold_all(rs, lambda i: doc())
    journal = state.journal
    assert journal is not None and journal.day.isoformat() == LAST_DAY
    deltas = ledger._journal_deltas(journal, None)
    assert deltas is not None
    first = first_index_of_day(rs, LAST_DAY)
    # every Wh from the last reading before the day to the last one, computed from the indexes
    start, end = rs[first - 1], rs[-1]
    hc = end["import_wh_by_period"]["EASF01"] - start["import_wh_by_period"]["EASF01"]
    hp = end["import_wh_by_period"]["EASF02"] - start["import_wh_by_period"]["EASF02"]
    imported: dict[str, int] = {}
    for d in deltas:
        for label, wh in d.import_wh_by_period.items():
            imported[label] = imported.get(label, 0) + wh
    assert imported == {k: v for k, v in {"HEURES CREUSES": hc, "HEURES PLEINES": hp}.items() if v}
    assert sum(d.export_wh for d in deltas) == end["export_wh"] - start["export_wh"]
    assert (deltas[0].start, deltas[-1].end) == (datetime.fromisoformat(start["time"]), datetime.fromisoformat(end["time"]))
    assert len(deltas) < len(rs) - first  # runs were merged
    for a, b in zip(deltas[1:], deltas[2:]):
        assert ledger._merge(a, b) is None and a.end == b.start  # nothing left to merge, contiguous
