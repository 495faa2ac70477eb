"""Virtual-battery ledger. Every expected value is worked out by hand in the comments."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tables.battery import (
    BatteryState,
    close_due,
    fold_delta,
    period_kind,
    projected_month_end_wh,
    render_battery_payload,
    render_history,
    state_from_dict,
    state_to_dict,
    sync_anchors,
)
from tables.calendar import split_delta, split_proportionally
from tables.contracts import Anchor, Contract, ContractVersion, version_from_dict

PARIS = ZoneInfo("Europe/Paris")
FEES = {"HP": "0.1122", "HC": "0.0945", "BASE": "0.111"}  # Urban Solar TTC, 2026-08-01


def battery(effective_from: str = "2026-03-01", **terms: Any) -> ContractVersion:
    base = {"capacity_wh": None, "settlement": "realtime", "debit_priority": "chronological", "fees_eur_per_kwh": FEES}
    return version_from_dict({"effective_from": effective_from, "offer": "virtual_battery", "battery": {**base, **terms}})


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=PARIS)


def fold(state: BatteryState, versions: list[ContractVersion], start: datetime, end: datetime,
         imports: dict[str, int] | None = None, export: int = 0) -> tuple[BatteryState, list, list]:  # fmt: skip
    return fold_delta(state, versions, start=start, end=end, import_wh_by_period=imports or {}, export_wh=export)


def month(state: BatteryState, key: str) -> Any:
    return state.months[key]


# --------------------------------------------------------------------------- realtime


def test_unlimited_realtime_charges_then_discharges_and_never_goes_negative() -> None:
    v = [battery()]
    s = BatteryState()
    s, _, _ = fold(s, v, at(2026, 3, 2, 12), at(2026, 3, 2, 14), export=5000)  # level 5000
    s, _, _ = fold(s, v, at(2026, 3, 2, 19), at(2026, 3, 2, 21), {"HP": 3000})  # 5000-3000 = 2000
    assert s.level_wh == 2000
    s, _, pieces = fold(s, v, at(2026, 3, 2, 22), at(2026, 3, 2, 23), {"HC": 4000})  # only 2000 left
    assert s.level_wh == 0
    assert pieces[0].used_wh_by_period == {"HC": 2000}
    row = month(s, "2026-03")
    assert (row.credited_wh, row.overflow_wh, row.used_wh_by_period) == (5000, 0, {"HP": 3000, "HC": 2000})
    assert row.imported_wh_by_period == {"HP": 3000, "HC": 4000}  # raw grid import kept apart
    # Fees: 3 kWh x 0.1122 + 2 kWh x 0.0945 = 0.3366 + 0.189 = 0.5256 EUR, exact.
    assert row.fees_eur == Decimal("0.5256")
    assert row.closing_wh == 0


def test_capped_realtime_overflows_what_does_not_fit() -> None:
    v = [battery(capacity_wh=3000)]
    s = BatteryState()
    s, events, _ = fold(s, v, at(2026, 6, 1, 11), at(2026, 6, 1, 12), export=5000)  # 3000 stored, 2000 over
    assert (s.level_wh, month(s, "2026-06").overflow_wh) == (3000, 2000)
    assert [e.kind for e in events] == ["overflow_started"]
    s, _, _ = fold(s, v, at(2026, 6, 1, 12), at(2026, 6, 1, 13), {"HP": 1000})  # 2000
    s, events, pieces = fold(s, v, at(2026, 6, 1, 13), at(2026, 6, 1, 14), export=1500)  # 1000 fit, 500 over
    assert events == []  # the day already overflowed: no second "started"
    assert (s.level_wh, pieces[0].overflow_wh) == (3000, 500)
    row = month(s, "2026-06")
    # closing = 0 + 6500 credited - 2500 overflow - 1000 used = 3000
    assert (row.credited_wh, row.overflow_wh, row.used_wh) == (6500, 2500, 1000)
    assert row.closing_wh == s.level_wh == 3000


def test_realtime_priority_inside_one_delta() -> None:
    # One delta carrying both HP and HC import, 1500 Wh in the battery.
    for priority, expected in [("offpeak_first", {"HC": 1000, "HP": 500}), ("peak_first", {"HP": 1000, "HC": 500})]:
        v = [battery(debit_priority=priority)]
        s, _, _ = fold(BatteryState(), v, at(2026, 3, 2, 12), at(2026, 3, 2, 13), export=1500)
        s, _, _ = fold(s, v, at(2026, 3, 2, 21), at(2026, 3, 2, 23), {"HP": 1000, "HC": 1000})
        assert dict(month(s, "2026-03").used_wh_by_period) == expected


def test_credit_ratio_keeps_the_remainder_instead_of_flooring_each_delta() -> None:
    v = [battery(credit_ratio="0.8")]
    s = BatteryState()
    for i in range(5):  # 5 x 3 Wh injected; 15 x 0.8 = 12 Wh (flooring each delta would give 5 x 2 = 10)
        s, _, _ = fold(s, v, at(2026, 3, 2, 12, i), at(2026, 3, 2, 12, i + 1), export=3)
    assert s.level_wh == 12
    assert month(s, "2026-03").exported_wh == 15


# --------------------------------------------------------------------------- monthly settlement


def test_monthly_offpeak_first_settles_the_month_pool() -> None:
    v = [battery(settlement="monthly", debit_priority="offpeak_first")]
    s = BatteryState()
    s, _, _ = fold(s, v, at(2026, 3, 1, 10), at(2026, 3, 1, 16), export=10000)
    s, _, _ = fold(s, v, at(2026, 3, 2, 18), at(2026, 3, 2, 21), {"HP": 6000})
    # So far: avail 10000, HP 6000 used, level 4000.
    assert (s.level_wh, s.days["2026-03-02"].used_wh_by_period) == (4000, {"HP": 6000})
    s, _, _ = fold(s, v, at(2026, 3, 3, 1), at(2026, 3, 3, 5), {"HC": 7000})
    # Month: avail 10000; HC first: used_hc = min(10000, 7000) = 7000; used_hp = min(3000, 6000) = 3000.
    row = month(s, "2026-03")
    assert dict(row.used_wh_by_period) == {"HP": 3000, "HC": 7000}
    assert s.level_wh == row.closing_wh == 0
    # The day rows add up to the month; day 3 takes 3000 Wh of HP back (monthly re-allocation).
    assert dict(s.days["2026-03-03"].used_wh_by_period) == {"HP": -3000, "HC": 7000}
    # Fees: 3 kWh x 0.1122 + 7 kWh x 0.0945 = 0.3366 + 0.6615 = 0.9981 EUR -> 1.00 on display.
    assert row.fees_eur == Decimal("0.9981")
    payload = render_battery_payload(s, v, pdl="p")
    assert payload["month"]["fees_eur"] == "1.00"
    assert (payload["month"]["used_hp_wh"], payload["month"]["used_hc_wh"]) == (3000, 7000)


def test_monthly_peak_first_and_chronological() -> None:
    # Same month for both: HC 3000 on the 1st (nothing banked yet), 5000 injected on the 2nd,
    # HP 4000 on the 3rd. Monthly pool = 5000.
    # peak_first: HP first: used_hp = 4000, used_hc = 1000.
    # chronological: in time order: HC 3000, then HP min(2000, 4000) = 2000.
    for priority, expected in [("peak_first", {"HP": 4000, "HC": 1000}), ("chronological", {"HC": 3000, "HP": 2000})]:
        v = [battery(settlement="monthly", debit_priority=priority)]
        s, _, _ = fold(BatteryState(), v, at(2026, 3, 1, 1), at(2026, 3, 1, 5), {"HC": 3000})
        s, _, _ = fold(s, v, at(2026, 3, 2, 10), at(2026, 3, 2, 15), export=5000)
        s, _, _ = fold(s, v, at(2026, 3, 3, 18), at(2026, 3, 3, 21), {"HP": 4000})
        assert dict(month(s, "2026-03").used_wh_by_period) == expected
        assert s.level_wh == 0
    # Realtime chronological on the same flows: the HC import found an empty battery.
    v = [battery(settlement="realtime")]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 1, 1), at(2026, 3, 1, 5), {"HC": 3000})
    s, _, _ = fold(s, v, at(2026, 3, 2, 10), at(2026, 3, 2, 15), export=5000)
    s, _, _ = fold(s, v, at(2026, 3, 3, 18), at(2026, 3, 3, 21), {"HP": 4000})
    assert (dict(month(s, "2026-03").used_wh_by_period), s.level_wh) == ({"HP": 4000}, 1000)


def test_monthly_capacity_limits_credit_by_the_opening() -> None:
    # domain.md 1.6: stored = min(injected, cap - opening); cap 5000, opening 0, 8000 injected.
    v = [battery(settlement="monthly", capacity_wh=5000)]
    s, _, _ = fold(BatteryState(), v, at(2026, 6, 1, 10), at(2026, 6, 1, 16), export=8000)
    s, _, _ = fold(s, v, at(2026, 6, 2, 20), at(2026, 6, 2, 22), {"HP": 2000})
    row = month(s, "2026-06")
    # credited 8000, overflow 3000, used 2000 -> closing 3000
    assert (row.credited_wh, row.overflow_wh, row.used_wh, row.closing_wh) == (8000, 3000, 2000, 3000)


def test_month_close_carries_the_closing_to_the_next_opening() -> None:
    v = [battery(settlement="monthly", debit_priority="offpeak_first")]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 10, 10), at(2026, 3, 10, 14), export=10000)
    s, _, _ = fold(s, v, at(2026, 3, 31, 1), at(2026, 3, 31, 5), {"HC": 4000})  # March closing 6000
    s, events, _ = fold(s, v, at(2026, 4, 1, 19), at(2026, 4, 1, 20), {"HP": 1000})
    closed = [e for e in events if e.kind == "month_closed"]
    assert len(closed) == 1 and closed[0].data["row"]["closing_wh"] == 6000 and closed[0].data["row"]["final"]
    assert closed[0].at == at(2026, 4, 1)
    assert month(s, "2026-04").opening_wh == 6000
    assert s.level_wh == 5000  # April: opening 6000, nothing credited, 1000 used


# --------------------------------------------------------------------------- contract change


def test_contract_change_mid_month_applies_from_its_date_only() -> None:
    v1 = battery("2026-03-01", settlement="realtime", fees_eur_per_kwh={"HP": "0.10"})
    v2 = battery("2026-03-16", settlement="monthly", capacity_wh=10000, debit_priority="offpeak_first",
                 fees_eur_per_kwh={"HP": "0.20", "HC": "0.05"})  # fmt: skip
    v = [v1, v2]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 10, 12), at(2026, 3, 10, 14), export=8000)  # v1: 8000
    # 2 h delta across the change at midnight: 1000 Wh HP under v1, 1000 Wh under v2.
    s, _, pieces = fold(s, v, at(2026, 3, 15, 23), at(2026, 3, 16, 1), {"HP": 2000})
    assert [p.import_wh_by_period["HP"] for p in pieces] == [1000, 1000]
    assert s.days["2026-03-15"].closing_wh == 7000  # v1 day, unlimited, realtime
    assert s.segment is not None and s.segment.opening_wh == 7000  # v2 segment opens at 7000
    assert s.level_wh == 6000
    # v2 monthly: room = 10000 - 7000 = 3000; 3000 then 1000 injected -> 1000 overflow.
    s, _, _ = fold(s, v, at(2026, 3, 20, 12), at(2026, 3, 20, 13), export=3000)
    s, _, _ = fold(s, v, at(2026, 3, 20, 13), at(2026, 3, 20, 14), export=1000)
    # HC 2000 on the 21st: avail 7000 + 3000 = 10000; HC first 2000, HP 1000 -> level 7000.
    s, _, _ = fold(s, v, at(2026, 3, 21, 2), at(2026, 3, 21, 4), {"HC": 2000})
    row = month(s, "2026-03")
    assert (row.credited_wh, row.overflow_wh) == (12000, 1000)
    assert dict(row.used_wh_by_period) == {"HP": 2000, "HC": 2000}
    assert row.closing_wh == s.level_wh == 7000  # 0 + 12000 - 1000 - 4000
    # Fees: v1 1 kWh HP x 0.10 + v2 (1 kWh HP x 0.20 + 2 kWh HC x 0.05) = 0.10 + 0.30
    assert row.fees_eur == Decimal("0.40")


def test_offer_without_battery_freezes_the_level() -> None:
    v = [battery("2026-03-01"), version_from_dict({"effective_from": "2026-03-05", "offer": "none"})]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 2, 12), at(2026, 3, 2, 13), export=2000)
    s, _, pieces = fold(s, v, at(2026, 3, 6, 12), at(2026, 3, 6, 13), {"HP": 500}, export=700)
    assert s.level_wh == 2000
    assert (pieces[0].credited_wh, pieces[0].used_wh_by_period) == (0, {})
    assert month(s, "2026-03").exported_wh == 2700  # raw flows still recorded


# --------------------------------------------------------------------------- anchors


def test_late_invoice_anchor_at_month_start_resettles_the_month() -> None:
    v = [battery(settlement="monthly", debit_priority="offpeak_first")]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 10, 10), at(2026, 3, 10, 14), export=10000)
    s, _, _ = fold(s, v, at(2026, 3, 31, 1), at(2026, 3, 31, 5), {"HC": 4000})  # estimate 6000
    s, _, _ = fold(s, v, at(2026, 4, 2, 1), at(2026, 4, 2, 3), {"HC": 1000})  # estimate 5000
    assert (s.level_wh, s.estimate) == (5000, True)
    # The March invoice says 4500 Wh at 2026-04-01 00:00.
    s, events = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 4, 1), 4500),)))
    # April: opening 4500, HC 1000 used -> 3500; adjustment 4500 - 6000 = -1500.
    assert (s.level_wh, s.estimate) == (3500, False)
    assert [e.kind for e in events] == ["anchor_applied"] and events[0].data["adjustment_wh"] == -1500
    row = month(s, "2026-04")
    assert (row.opening_wh, row.used_wh, row.adjustment_wh, row.closing_wh) == (6000, 1000, -1500, 3500)
    # Re-sending the same contract changes nothing; an older anchor is ignored.
    same, events = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 4, 1), 4500),)))
    assert same == s and events == []
    older, events = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 3, 1), 1),)))
    assert older == s and events == []


def test_monthly_anchor_can_let_more_imports_be_covered() -> None:
    # Estimate empty, invoice says there was 2000 Wh: the month's imports get covered again.
    v = [battery(settlement="monthly", debit_priority="offpeak_first")]
    s, _, _ = fold(BatteryState(), v, at(2026, 4, 2, 20), at(2026, 4, 2, 22), {"HP": 1500})
    assert s.level_wh == 0 and month(s, "2026-04").used_wh == 0
    s, _ = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 4, 1), 2000),)))
    # opening 2000, HP 1500 used -> 500; fees 1.5 kWh x 0.1122 = 0.1683
    row = month(s, "2026-04")
    assert (s.level_wh, row.used_wh, row.adjustment_wh, row.fees_eur) == (500, 1500, 2000, Decimal("0.1683"))


def test_late_anchor_in_realtime_adds_the_net_flows_since_its_date() -> None:
    v = [battery()]
    s, _, _ = fold(BatteryState(), v, at(2026, 5, 3, 10), at(2026, 5, 3, 12), export=9000)
    s, _, _ = fold(s, v, at(2026, 5, 5, 10), at(2026, 5, 5, 12), export=3000)
    s, _, _ = fold(s, v, at(2026, 5, 6, 20), at(2026, 5, 6, 22), {"HP": 1000})  # estimate 11000
    # Invoice: 4000 Wh on 2026-05-05 00:00. Net since: +3000 - 1000 -> 6000.
    s, _ = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 5, 5), 4000),)))
    assert s.level_wh == 6000
    assert month(s, "2026-05").closing_wh == 6000  # 0 + 12000 - 1000 - 5000 adjustment
    s, _, _ = fold(s, v, at(2026, 5, 7, 20), at(2026, 5, 7, 21), {"HP": 500})
    assert s.level_wh == 5500


def test_future_anchor_waits_for_the_stream_and_splits_the_delta() -> None:
    v = [battery()]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 30, 12), at(2026, 3, 30, 13), export=7000)
    s, events = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 4, 1), 100),)))
    assert s.pending_anchor == Anchor(date(2026, 4, 1), 100) and s.level_wh == 7000
    assert [e.kind for e in events] == ["anchor_pending"]
    # 2 h delta across midnight: 1000 Wh before (level 8000), anchor 100 at 00:00, 1000 after.
    s, events, _ = fold(s, v, at(2026, 3, 31, 23), at(2026, 4, 1, 1), export=2000)
    assert s.level_wh == 1100 and s.pending_anchor is None and not s.estimate
    assert [e.kind for e in events] == ["day_closed", "day_closed", "month_closed", "anchor_applied"]


def test_anchor_never_sets_a_negative_level() -> None:
    v = [battery()]
    s, _, _ = fold(BatteryState(), v, at(2026, 5, 3, 10), at(2026, 5, 3, 12), export=1000)
    s, _, _ = fold(s, v, at(2026, 5, 4, 20), at(2026, 5, 4, 22), {"HP": 1000})
    s, _ = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 5, 4), 0),)))
    assert s.level_wh == 0  # 0 + (0 - 1000) is clamped to 0


# --------------------------------------------------------------------------- DST and splitting


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # 2026-03-29 lasts 23 h: 1 h + 23 h + 1 h = 25 h, 100 Wh per hour.
        (at(2026, 3, 28, 23), at(2026, 3, 30, 1), {"2026-03-28": 100, "2026-03-29": 2300, "2026-03-30": 100}),
        # 2026-10-25 lasts 25 h: 1 h + 25 h + 1 h = 27 h, 100 Wh per hour.
        (at(2026, 10, 24, 23), at(2026, 10, 26, 1), {"2026-10-24": 100, "2026-10-25": 2500, "2026-10-26": 100}),
    ],
)
def test_dst_days_get_their_23_or_25_hours(start: datetime, end: datetime, expected: dict[str, int]) -> None:
    total = sum(expected.values())
    v = [battery(effective_from="2026-01-01")]
    s, _, pieces = fold(BatteryState(), v, start, end, export=total)
    assert {k: r.exported_wh for k, r in s.days.items()} == expected
    assert {k: r.credited_wh for k, r in s.days.items()} == expected
    assert s.level_wh == total
    assert pieces[1].end - pieces[1].start == timedelta(hours=expected[list(expected)[1]] // 100)


def test_split_is_exact_with_largest_remainder() -> None:
    assert split_proportionally(10, [1, 1, 1]) == [4, 3, 3]  # ties go to the earlier piece
    assert split_proportionally(10, [1, 2]) == [3, 7]  # 3.33 -> 3, 6.67 -> 7
    assert split_proportionally(7, [0, 0]) == [7, 0]
    pieces = split_delta(at(2026, 1, 1, 23), at(2026, 1, 2, 2), [], {"HP": 5}, 3)
    assert [p[2]["HP"] for p in pieces] == [2, 3]  # 5 x 1/3 = 1.67 -> 2, 5 x 2/3 = 3.33 -> 3
    assert [p[3] for p in pieces] == [1, 2]


# --------------------------------------------------------------------------- week-long sequence


def reference_level(level: int, cap: int | None, deltas: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    """Straight-line model of realtime, chronological, overflow lost: (level, credited, used, overflow)."""
    credited = used = overflow = 0
    for imp, exp in deltas:
        credited += exp
        room = exp if cap is None else min(exp, cap - level)
        overflow += exp - room
        level += room
        take = min(level, imp)
        used += take
        level -= take
    return level, credited, used, overflow


@pytest.mark.parametrize("capacity", [None, 13000])
def test_week_of_irregular_readings_is_exact_to_the_wh(capacity: int | None) -> None:
    rng = random.Random(6)
    v = [battery(effective_from="2026-06-01", capacity_wh=capacity)]
    contract = Contract("p", tuple(v), (Anchor(date(2026, 6, 1), 12345),))
    s, _ = sync_anchors(BatteryState(), contract)  # no data yet: pending until 06-01 00:00
    t = at(2026, 6, 1)
    deltas: list[tuple[int, int]] = []
    restarts = 0
    while t < at(2026, 6, 8):
        seconds = rng.choice([2, 2, 30, 600, 1800, 3 * 3600])  # gaps, some across midnight
        step = timedelta(seconds=seconds)
        hour = t.astimezone(PARIS).hour
        sunny = 10 <= hour < 17
        exp = rng.randint(0, 4000) * seconds // 3600 if sunny else 0  # up to 4 kW injected
        imp = 0 if sunny and rng.random() < 0.7 else rng.randint(0, 1500) * seconds // 3600
        label = "HC" if hour < 6 or hour >= 22 else "HP"
        s, _, _ = fold(s, v, t, t + step, {label: imp}, export=exp)
        deltas.append((imp, exp))
        s, _, _ = fold(s, v, t + step, t + step, {}, export=0)  # duplicate reading: zero delta
        if rng.random() < 0.01:  # a worker restart: the state goes through JSON
            s = state_from_dict(json.loads(json.dumps(state_to_dict(s))))
            restarts += 1
        t += step
    assert restarts > 0 and len(deltas) > 200
    rows = list(s.days.values())
    credited = sum(r.credited_wh for r in rows)
    used = sum(r.used_wh for r in rows)
    overflow = sum(r.overflow_wh for r in rows)
    assert not s.estimate
    # Identity: level = anchor + credited - used - overflow, to the Wh.
    assert s.level_wh == 12345 + credited - used - overflow
    # And the same numbers as an independent straight-line model of the rules.
    assert (s.level_wh, credited, used, overflow) == reference_level(12345, capacity, deltas)
    assert sum(r.exported_wh for r in rows) == sum(exp for _, exp in deltas)
    if capacity is not None:
        assert overflow > 0  # the capped case really exercised the overflow


# --------------------------------------------------------------------------- misc


def test_state_round_trips_through_json() -> None:
    v = [battery(settlement="monthly", capacity_wh=50000, credit_ratio="0.9")]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 1, 10), at(2026, 3, 1, 12), export=1001)
    s, _, _ = fold(s, v, at(2026, 3, 2, 20), at(2026, 3, 2, 22), {"HP  BLEU": 300, "HC  BLEU": 200})
    s, _ = sync_anchors(s, Contract("p", tuple(v), (Anchor(date(2026, 4, 1), 5),)))
    assert s.pending_anchor is not None
    again = state_from_dict(json.loads(json.dumps(state_to_dict(s))))
    assert again == s
    with pytest.raises(ValueError, match="schema_version"):
        state_from_dict({**state_to_dict(s), "schema_version": 99})


def test_bad_inputs_are_rejected() -> None:
    v = [battery()]
    with pytest.raises(ValueError, match="export_wh"):
        fold(BatteryState(), v, at(2026, 3, 1), at(2026, 3, 1, 1), export=-1)
    with pytest.raises(ValueError, match="import_wh_by_period"):
        fold(BatteryState(), v, at(2026, 3, 1), at(2026, 3, 1, 1), {"HP": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="naive"):
        fold(BatteryState(), v, datetime(2026, 3, 1), datetime(2026, 3, 1, 1))
    with pytest.raises(ValueError, match="ends before"):
        fold(BatteryState(), v, at(2026, 3, 1, 1), at(2026, 3, 1))


def test_a_delta_older_than_the_last_one_is_attributed_at_the_last_end() -> None:
    v = [battery()]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 2, 12), at(2026, 3, 2, 13), export=100)
    s, _, pieces = fold(s, v, at(2026, 3, 1, 12), at(2026, 3, 1, 13), export=50)
    assert pieces[0].start == pieces[0].end == at(2026, 3, 2, 13).astimezone(timezone.utc)
    assert "2026-03-01" not in s.days and s.level_wh == 150


def test_close_due_closes_day_and_month_without_a_reading() -> None:
    v = [battery()]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 31, 12), at(2026, 3, 31, 13), export=100)
    same, events = close_due(s, at(2026, 3, 31, 23, 59))
    assert same == s and events == []
    s, events = close_due(s, at(2026, 4, 1, 0, 1))
    assert [e.kind for e in events] == ["day_closed", "month_closed"]
    assert s.months["2026-03"].final and s.days["2026-03-31"].final
    _, events = close_due(s, at(2026, 4, 1, 0, 2))
    assert events == []  # closed once


def test_payload_percent_estimate_and_subscription() -> None:
    v = [battery(capacity_wh=20000, subscription_eur_per_month="6")]
    s, _, _ = fold(BatteryState(), v, at(2026, 3, 2, 10), at(2026, 3, 2, 12), export=5000)
    payload = render_battery_payload(s, v, pdl="12345678901234")
    assert payload["schema_version"] == 1 and payload["pdl"] == "12345678901234"
    assert (payload["level_wh"], payload["capacity_wh"], payload["percent"], payload["estimate"]) == (5000, 20000, 25.0, True)
    assert payload["today"]["date"] == "2026-03-02" and payload["today"]["credited_wh"] == 5000
    assert payload["month"]["month"] == "2026-03" and payload["month"]["subscription_eur"] == "6.00"
    unlimited = render_battery_payload(s, [battery()], pdl="x")
    assert unlimited["percent"] is None
    assert json.loads(json.dumps(payload)) == payload  # plain JSON
    history = render_history(s, v)
    assert [r["month"] for r in history] == ["2026-03"] and history[0]["closing_wh"] == 5000


def test_projection_extrapolates_month_to_date_rates() -> None:
    v = [battery()]
    s, _, _ = fold(BatteryState(), v, at(2026, 4, 1, 0), at(2026, 4, 1, 12), export=11000)
    s, _, _ = fold(s, v, at(2026, 4, 5, 0), at(2026, 4, 10, 0), {"HP": 6000})
    # At 2026-04-11 00:00: 10 days elapsed; stored 11000, imported 6000 -> +500 Wh/day;
    # 20 days remain -> 5000 + 10000 = 15000.
    assert projected_month_end_wh(s, at(2026, 4, 11)) == 15000
    s, _, _ = fold(s, v, at(2026, 4, 10, 0), at(2026, 4, 11, 0), {"HP": 10000})
    # Now imported 16000: -500 Wh/day; level = 11000 - 16000 clamped... the battery covered 11000.
    assert s.level_wh == 0
    assert projected_month_end_wh(s, at(2026, 4, 11)) == -10000
    assert projected_month_end_wh(s, at(2026, 4, 1, 0, 30)) is None  # under one hour of data


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("HEURE  CREUSE", "HC"), ("HEURE  PLEINE", "HP"), ("HP  BLEU", "HP"), ("HC  ROUGE", "HC"),
        ("HC..", "HC"), ("HP..", "HP"), ("TH..", "BASE"), ("BASE", "BASE"), ("HCHC", "HC"), ("HCHP", "HP"),
        ("HCJB", "HC"), ("HPJR", "HP"), ("BBRHCJW", "HC"), ("BBRHPJB", "HP"), ("EJPHN", "BASE"),
        ("EJPHPM", "HP"), ("PM..", "HP"), ("HN..", "BASE"), ("Heures Creuses", "HC"), ("EASF01", "BASE"),
    ],
)  # fmt: skip
def test_period_kind(label: str, kind: str) -> None:
    assert period_kind(label) == kind


def test_period_kind_overrides_win() -> None:
    assert period_kind("EASF01", {"EASF01": "HC"}) == "HC"


def test_worked_month_of_docs_battery_md() -> None:
    # docs/battery.md "A worked month": Urban Solar-style terms, April 2026, invoice anchor 40 kWh.
    v = [battery(effective_from="2026-01-01", settlement="monthly", debit_priority="offpeak_first",
                 subscription_eur_per_month="6")]  # fmt: skip
    s, _ = sync_anchors(BatteryState(), Contract("p", tuple(v), (Anchor(date(2026, 4, 1), 40000),)))
    s, _, _ = fold(s, v, at(2026, 4, 1), at(2026, 4, 1), {}, 0)  # first reading at 00:00
    s, _, _ = fold(s, v, at(2026, 4, 3, 0), at(2026, 4, 3, 6), {"HC": 70000})
    s, _, _ = fold(s, v, at(2026, 4, 4, 18), at(2026, 4, 4, 22), {"HP": 50000})
    s, _, _ = fold(s, v, at(2026, 4, 5, 10), at(2026, 4, 5, 16), export=110000)
    # Mid-month: avail 40 + 110 = 150 kWh; HC 70 then HP 50 -> level 30 kWh.
    assert s.level_wh == 30000 and not s.estimate
    s, _, _ = fold(s, v, at(2026, 4, 20, 10), at(2026, 4, 20, 16), export=90000)
    s, _, _ = fold(s, v, at(2026, 4, 22, 0), at(2026, 4, 22, 6), {"HC": 80000})
    s, _, _ = fold(s, v, at(2026, 4, 23, 18), at(2026, 4, 23, 22), {"HP": 70000})
    # Month: avail 240 kWh; HC first 150 kWh, then HP 90 of 120 kWh; closing 0.
    # Fees: 150 x 0.0945 + 90 x 0.1122 = 14.175 + 10.098 = 24.273 EUR -> 24.27.
    s, events = close_due(s, at(2026, 5, 1, 0, 1))
    row = [e for e in events if e.kind == "month_closed"][0].data["row"]
    # The anchor came before any April flow, so it is the month's opening (no adjustment).
    assert (row["opening_wh"], row["credited_wh"], row["used_hc_wh"], row["used_hp_wh"]) == (40000, 200000, 150000, 90000)
    assert (row["adjustment_wh"], row["overflow_wh"], row["closing_wh"]) == (0, 0, 0)
    assert row["fees_eur"] == "24.27"
    assert render_history(s, v)[-1]["subscription_eur"] == "6.00"
