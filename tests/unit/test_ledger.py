"""The battery agent's per-PDL fold: index tracking, idempotence, battery + surplus together."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tables.contracts import Anchor, Contract, add_anchor, version_from_dict
from tables.ledger import LedgerState, Tracker, close_if_due, fold_reading, state_from_dict, state_to_dict, track

PARIS = ZoneInfo("Europe/Paris")
PDL = "12345678901234"


def reading(t: datetime, hc: int | None, hp: int | None, export: int | None, *, index: int = 1,
            label: str | None = None) -> dict[str, Any]:  # fmt: skip
    regs = {k: v for k, v in (("EASF01", hc), ("EASF02", hp)) if v is not None}
    return {"pdl": PDL, "mode": "standard", "time": t.isoformat(), "tariff_index": index,
            "tariff_period": label or ("HEURES CREUSES" if index == 1 else "HEURES PLEINES"),
            "import_wh_by_period": regs or None, "export_wh": export}  # fmt: skip


def contract(*versions: dict[str, Any]) -> Contract:
    return Contract(pdl=PDL, versions=tuple(version_from_dict(v) for v in versions))


def t0(hours: float = 0) -> datetime:
    return datetime(2027, 3, 10, 0, 0, tzinfo=PARIS) + timedelta(hours=hours)


def test_first_reading_is_a_baseline_and_duplicates_change_nothing() -> None:
    tr, delta, status = track(Tracker(), reading(t0(), 100, 200, 50))
    assert (delta, status) == (None, "baseline")
    tr2, delta, status = track(tr, reading(t0(1), 150, 200, 70))
    assert status == "delta" and delta is not None
    assert dict(delta.import_wh_by_period) == {"HEURES CREUSES": 50} and delta.export_wh == 20
    assert (delta.start, delta.end) == (t0(), t0(1))
    for older in (reading(t0(1), 999, 999, 999), reading(t0(0.5), 120, 200, 60)):
        again, none, status = track(tr2, older)
        assert (again, none, status) == (tr2, None, "duplicate")
    assert track(tr2, reading(t0(2), None, None, None)) == (tr2, None, "duplicate")  # no index at all


def test_energy_is_labelled_by_the_period_its_register_was_active_in() -> None:
    # 21:00 HP (EASF02 active), 22:00 the period turned HC: the 21-22 h energy is still HP.
    tr, _, _ = track(Tracker(), reading(t0(21), 1000, 5000, 0, index=2))
    tr, delta, _ = track(tr, reading(t0(22), 1000, 5400, 0, index=1))
    assert delta is not None and dict(delta.import_wh_by_period) == {"HEURES PLEINES": 400}
    tr, delta, _ = track(tr, reading(t0(23), 1300, 5400, 0, index=1))
    assert delta is not None and dict(delta.import_wh_by_period) == {"HEURES CREUSES": 300}


def test_backwards_index_rebaselines_and_a_dropped_register_counts_later() -> None:
    tr, _, _ = track(Tracker(), reading(t0(), 1000, 2000, 300))
    tr, delta, status = track(tr, reading(t0(1), 10, 20, 3))  # indexes went down: re-baselined
    assert status == "delta" and delta is not None
    assert (dict(delta.import_wh_by_period), delta.export_wh) == ({}, 0)
    tr, delta, _ = track(tr, reading(t0(2), 15, None, None))  # EASF02 and EAIT dropped
    assert delta is not None and (dict(delta.import_wh_by_period), delta.export_wh) == ({"HEURES CREUSES": 5}, 0)
    tr, delta, _ = track(tr, reading(t0(3), 15, 27, 9))
    # EASF02 was never seen active, so its period label is unknown: the register name stands in.
    assert delta is not None and (dict(delta.import_wh_by_period), delta.export_wh) == ({"EASF02": 7}, 6)


def test_battery_and_surplus_fold_together_and_replays_are_idempotent() -> None:
    c = contract({"effective_from": "2027-03-01", "offer": "virtual_battery",
                  "battery": {"capacity_wh": 3000, "overflow_policy": "sold", "overflow_rate_eur_per_kwh": "0.1"}})
    rng = random.Random(7)
    hc = hp = exp = 0
    readings = []
    truth_level, truth_overflow = 0, 0
    for h in range(0, 24 * 5):
        if h:
            d_imp, d_exp = rng.randint(0, 900), rng.randint(0, 1500)
            # realtime chronological: charge up to 3000 (rest overflows), then discharge
            room = min(d_exp, 3000 - truth_level)
            truth_overflow += d_exp - room
            truth_level = truth_level + room - min(truth_level + room, d_imp)
            hc, exp = hc + d_imp, exp + d_exp
        readings.append(reading(t0(h), hc, hp, exp))
    straight = LedgerState(pdl=PDL)
    for r in readings:
        straight = fold_reading(straight, r, c).state
    replayed = LedgerState(pdl=PDL)
    for i, r in enumerate(readings):
        replayed = fold_reading(replayed, r, c).state
        if i % 7 == 3:  # at-least-once: a batch of already-folded readings comes again
            for old in readings[max(0, i - 5): i + 1]:
                fold = fold_reading(replayed, old, c)
                assert fold.changed is False and fold.state == replayed
    assert replayed == straight
    assert straight.battery.level_wh == truth_level
    month = straight.surplus.months["2027-03"]
    assert month.surplus_wh == truth_overflow
    assert month.cagnotte_eur == Decimal(truth_overflow) * Decimal("0.1") / 1000


def test_anchor_of_a_new_contract_document_and_timer_close() -> None:
    c = contract({"effective_from": "2027-03-01", "offer": "virtual_battery", "battery": {}})
    s = LedgerState(pdl=PDL)
    for h, (hc, exp) in enumerate([(0, 0), (0, 4000), (500, 4000)]):
        s = fold_reading(s, reading(t0(h), hc, 0, exp), c).state
    assert s.battery.level_wh == 3500
    c2 = add_anchor(c, Anchor(date(2027, 3, 10), 10_000))  # invoice: 10 kWh at 00:00 on the 10th
    fold = fold_reading(s, reading(t0(2), 500, 0, 4000), c2)  # duplicate reading, new document
    assert fold.changed and fold.status == "duplicate"
    assert fold.state.battery.level_wh == 10_000 + 4000 - 500 and fold.state.battery.estimate is False
    closed = close_if_due(fold.state, datetime(2027, 4, 2, 12, tzinfo=PARIS))
    assert closed.changed and [e.kind for e in closed.battery_events] == ["day_closed", "month_closed"]
    assert [e.kind for e in closed.surplus_events] == ["month_final"]
    assert close_if_due(closed.state, datetime(2027, 4, 2, 13, tzinfo=PARIS)).changed is False


def test_state_round_trips_through_json() -> None:
    c = contract({"effective_from": "2027-03-01", "offer": "surplus_resale", "resale": {"rate_eur_per_kwh": "0.06"}})
    s = LedgerState(pdl=PDL, partition=3)
    for h in range(30):
        s = fold_reading(s, reading(t0(h), 10 * h, 7 * h, 33 * h, index=1 + h % 2), c).state
    assert state_from_dict(json.loads(json.dumps(state_to_dict(s)))) == s


CAPPED_MONTHLY_SOLD = {"effective_from": "2027-03-01", "offer": "virtual_battery",
                       "battery": {"capacity_wh": 3000, "settlement": "monthly", "overflow_policy": "sold",
                                   "overflow_rate_eur_per_kwh": "0.1"}}  # fmt: skip


def _capped_monthly_month(c: Contract) -> LedgerState:
    s = LedgerState(pdl=PDL)
    for h, (hc, exp) in enumerate([(0, 0), (0, 4000), (500, 4000)]):
        s = fold_reading(s, reading(t0(h), hc, 0, exp), c).state
    # No anchor yet (opening 0): stored min(4000, 3000 - 0) = 3000, overflow 1000, used 500.
    assert (s.battery.months["2027-03"].overflow_wh, s.surplus.months["2027-03"].surplus_wh) == (1000, 1000)
    return s


def test_late_anchor_resettlement_moves_the_sold_overflow_into_the_cagnotte() -> None:
    c = contract(CAPPED_MONTHLY_SOLD)
    s = _capped_monthly_month(c)
    # Invoice: 2000 Wh on March 1st (before the data: late, the month is re-settled).
    # opening 2000: stored = min(4000, 3000 - 2000) = 1000, overflow = 4000 - 1000 = 3000 (+2000),
    # used 500, level 2000 + 1000 - 500 = 2500. Cagnotte: 3000 Wh x 0.1 EUR/kWh = 0.30 EUR.
    fold = fold_reading(s, reading(t0(2), 500, 0, 4000), add_anchor(c, Anchor(date(2027, 3, 1), 2000)))
    battery_month, surplus_month = fold.state.battery.months["2027-03"], fold.state.surplus.months["2027-03"]
    assert fold.changed and fold.state.battery.level_wh == 2500
    assert battery_month.overflow_wh == 3000
    assert (surplus_month.surplus_wh, surplus_month.eligible_wh) == (3000, 3000)
    assert surplus_month.cagnotte_eur == Decimal(battery_month.overflow_wh) * Decimal("0.1") / 1000 == Decimal("0.3")
    assert fold.state.surplus.days["2027-03-10"].surplus_wh == 3000
    assert state_from_dict(json.loads(json.dumps(state_to_dict(fold.state)))) == fold.state


def test_pending_anchor_resettlement_moves_the_sold_overflow_into_the_cagnotte() -> None:
    c = contract(CAPPED_MONTHLY_SOLD)
    s = _capped_monthly_month(c)
    # Invoice: 2800 Wh on March 11th 00:00, after the data: pending until the stream gets there.
    s = fold_reading(s, reading(t0(2), 500, 0, 4000), add_anchor(c, Anchor(date(2027, 3, 11), 2800))).state
    assert s.battery.pending_anchor is not None
    # Next reading on the 11th at 01:00, no new flow. At 00:00 the month is re-settled: net of the
    # 10th = 4000 - 1000 - 500 = 2500, so opening = 2800 - 2500 = 300; stored = min(4000, 3000 - 300)
    # = 2700, overflow 1300 (+300 on the 11th). Cagnotte: 1300 Wh x 0.1 EUR/kWh = 0.13 EUR.
    s = fold_reading(s, reading(t0(25), 500, 0, 4000), c).state
    battery_month, surplus_month = s.battery.months["2027-03"], s.surplus.months["2027-03"]
    assert s.battery.pending_anchor is None and battery_month.overflow_wh == 1300
    assert (surplus_month.surplus_wh, surplus_month.eligible_wh) == (1300, 1300)
    assert surplus_month.cagnotte_eur == Decimal(battery_month.overflow_wh) * Decimal("0.1") / 1000 == Decimal("0.13")
    assert (s.surplus.days["2027-03-10"].surplus_wh, s.surplus.days["2027-03-11"].surplus_wh) == (1000, 300)
