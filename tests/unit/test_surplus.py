"""Surplus and cagnotte: surplus x rate effective on the injection date, provisional then final."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tables.battery import BatteryState, fold_delta
from tables.contracts import ContractVersion, version_from_dict
from tables.surplus import SurplusState, close_due, fold_surplus, render_surplus_payload, state_from_dict, state_to_dict

PARIS = ZoneInfo("Europe/Paris")


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=PARIS)


def resale(effective_from: str, rate: str) -> ContractVersion:
    return version_from_dict({"effective_from": effective_from, "offer": "surplus_resale", "resale": {"rate_eur_per_kwh": rate}})


def test_cagnotte_uses_the_rate_in_force_on_the_injection_date() -> None:
    v = [resale("2026-07-01", "0.10"), resale("2026-07-15", "0.12")]
    s = SurplusState()
    # 2 h delta across the rate change at midnight: 1000 Wh at 0.10 and 1000 Wh at 0.12.
    s, _ = fold_surplus(s, v, start=at(2026, 7, 14, 23), end=at(2026, 7, 15, 1), export_wh=2000)
    assert s.days["2026-07-14"].cagnotte_eur == Decimal("0.1")  # 1 kWh x 0.10
    assert s.days["2026-07-15"].cagnotte_eur == Decimal("0.12")  # 1 kWh x 0.12
    s, _ = fold_surplus(s, v, start=at(2026, 7, 20, 12), end=at(2026, 7, 20, 14), export_wh=8500)
    month = s.months["2026-07"]
    # 1 x 0.10 + 1 x 0.12 + 8.5 x 0.12 = 0.10 + 0.12 + 1.02 = 1.24
    assert (month.surplus_wh, month.eligible_wh, month.cagnotte_eur) == (10500, 10500, Decimal("1.24"))
    assert not month.final


def test_month_is_provisional_then_final_once() -> None:
    v = [resale("2026-07-01", "0.10")]
    s, _ = fold_surplus(SurplusState(), v, start=at(2026, 7, 31, 12), end=at(2026, 7, 31, 13), export_wh=3333)
    payload = render_surplus_payload(s, v, pdl="p")
    assert payload["month"]["final"] is False and payload["month"]["cagnotte_eur"] == "0.33"  # 0.3333
    s, events = close_due(s, at(2026, 8, 1, 0, 5))
    assert [e.kind for e in events] == ["month_final"]
    assert events[0].data["row"] == {"month": "2026-07", "surplus_wh": 3333, "eligible_wh": 3333, "cagnotte_eur": "0.33", "final": True}
    _, again = close_due(s, at(2026, 8, 1, 0, 6))
    assert again == []
    # The next injection starts August; July stays as posted.
    s, _ = fold_surplus(s, v, start=at(2026, 8, 1, 12), end=at(2026, 8, 1, 13), export_wh=100)
    payload = render_surplus_payload(s, v, pdl="p")
    assert payload["previous_month"]["final"] is True and payload["month"]["month"] == "2026-08"
    assert payload["total_eur"] == "0.34"  # 0.3333 + 0.01 = 0.3433


def test_a_later_delta_finalizes_the_month_too() -> None:
    v = [resale("2026-07-01", "0.10")]
    s, _ = fold_surplus(SurplusState(), v, start=at(2026, 7, 31, 12), end=at(2026, 7, 31, 13), export_wh=1000)
    s, events = fold_surplus(s, v, start=at(2026, 8, 2, 12), end=at(2026, 8, 2, 13), export_wh=1000)
    assert [e.kind for e in events] == ["month_final"] and s.months["2026-07"].final


def test_rounding_is_half_even_on_the_total_only() -> None:
    v = [resale("2026-07-01", "0.1")]
    s, _ = fold_surplus(SurplusState(), v, start=at(2026, 7, 2, 12), end=at(2026, 7, 2, 13), export_wh=250)
    # 0.25 kWh x 0.1 = 0.025 EUR: half-even gives 0.02 (half-up would give 0.03).
    assert render_surplus_payload(s, v, pdl="p")["month"]["cagnotte_eur"] == "0.02"
    for _ in range(3):  # 3 more x 0.025 = 0.100 in total: summed exactly, not 4 x 0.02
        s, _ = fold_surplus(s, v, start=s.last_end, end=s.last_end, export_wh=250)
    assert render_surplus_payload(s, v, pdl="p")["month"]["cagnotte_eur"] == "0.10"


def capped_battery(policy: str, rate: str | None) -> ContractVersion:
    return version_from_dict(
        {
            "effective_from": "2026-07-01",
            "offer": "virtual_battery",
            "battery": {"capacity_wh": 1000, "overflow_policy": policy, "overflow_rate_eur_per_kwh": rate},
        }
    )


@pytest.mark.parametrize(("policy", "rate", "eligible", "eur"), [("sold", "0.05", 2000, Decimal("0.1")), ("lost", None, 0, Decimal(0))])
def test_with_a_battery_only_the_overflow_is_surplus(policy: str, rate: str | None, eligible: int, eur: Decimal) -> None:
    v = [capped_battery(policy, rate)]
    # 3000 Wh injected into an empty 1000 Wh battery: 1000 stored, 2000 overflow.
    fold = fold_delta(BatteryState(), v, start=at(2026, 7, 2, 12), end=at(2026, 7, 2, 13), import_wh_by_period={}, export_wh=3000)
    s = SurplusState()
    for piece in fold.pieces:
        s, _ = fold_surplus(s, v, start=piece.start, end=piece.end, export_wh=piece.export_wh, overflow_wh=piece.overflow_wh)
    month = s.months["2026-07"]
    # sold: 2 kWh x 0.05 = 0.10 EUR; lost: surplus counted, worth nothing
    assert (month.surplus_wh, month.eligible_wh, month.cagnotte_eur) == (2000, eligible, eur)


def test_battery_contract_needs_the_overflow() -> None:
    with pytest.raises(ValueError, match="overflow_wh is required"):
        fold_surplus(SurplusState(), [capped_battery("lost", None)], start=at(2026, 7, 2), end=at(2026, 7, 2, 1), export_wh=5)


def test_no_offer_counts_surplus_without_money() -> None:
    v = [version_from_dict({"effective_from": "2026-07-01", "offer": "none"})]
    s, _ = fold_surplus(SurplusState(), v, start=at(2026, 7, 2, 12), end=at(2026, 7, 2, 13), export_wh=700)
    s, _ = fold_surplus(s, [], start=at(2026, 7, 2, 13), end=at(2026, 7, 2, 14), export_wh=300)  # no contract at all
    assert (s.months["2026-07"].surplus_wh, s.months["2026-07"].cagnotte_eur) == (1000, Decimal(0))


def test_negative_overflow_correction_splits_exactly() -> None:
    v = [capped_battery("sold", "0.10")]
    s, _ = fold_surplus(SurplusState(), v, start=at(2026, 7, 2, 12), end=at(2026, 7, 2, 13), export_wh=0, overflow_wh=1000)
    s, _ = fold_surplus(s, v, start=at(2026, 7, 2, 23), end=at(2026, 7, 3, 1), export_wh=0, overflow_wh=-301)
    # -301 over two equal hours: -151 on the 2nd (earlier piece takes the remainder), -150 on the 3rd.
    assert (s.days["2026-07-02"].surplus_wh, s.days["2026-07-03"].surplus_wh) == (849, -150)
    assert s.months["2026-07"].cagnotte_eur == Decimal("0.0699")  # 0.699 kWh x 0.10


def test_state_round_trips_through_json() -> None:
    v = [resale("2026-07-01", "0.1234")]
    s, _ = fold_surplus(SurplusState(), v, start=at(2026, 7, 30, 12), end=at(2026, 8, 1, 13), export_wh=12345)
    assert state_from_dict(json.loads(json.dumps(state_to_dict(s)))) == s


def test_day_rows_older_than_days_kept_are_pruned_and_the_months_stay() -> None:
    """The day rows kept are those of the last DAYS_KEPT days before the open one (the keys are
    compared as ISO dates), across a year boundary; the month rows, up to MONTHS_KEPT, all stay."""
    from datetime import date, timedelta

    from tables.surplus import DAYS_KEPT

    v = [resale("2026-01-01", "0.10")]
    s = SurplusState()
    first = date(2026, 11, 20)
    for i in range(80):
        day = first + timedelta(days=i)
        s, _ = fold_surplus(s, v, start=at(day.year, day.month, day.day, 12), end=at(day.year, day.month, day.day, 13),
                            export_wh=100)  # fmt: skip
    last = first + timedelta(days=79)
    oldest = last - timedelta(days=DAYS_KEPT)
    assert sorted(s.days) == [(oldest + timedelta(days=i)).isoformat() for i in range(DAYS_KEPT + 1)]
    assert sorted(s.months) == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert s.months["2026-12"].surplus_wh == 3100  # pruning days never touches the month totals
