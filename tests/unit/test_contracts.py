"""Contracts: JSON round trip, validation messages, date-effective look-up, subscription pro rata."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tables.contracts import (
    AlertTerms,
    Anchor,
    Contract,
    ContractError,
    ContractVersion,
    DebitPriority,
    Offer,
    OverflowPolicy,
    Settlement,
    add_anchor,
    add_version,
    contract_from_dict,
    contract_to_dict,
    effective_at,
    latest_anchor,
    subscription_for_month,
    version_from_dict,
    version_to_dict,
)

PARIS = ZoneInfo("Europe/Paris")

URBAN = {
    "effective_from": "2026-03-01",
    "offer": "virtual_battery",
    "battery": {
        "capacity_wh": None,
        "credit_ratio": "1",
        "settlement": "monthly",
        "debit_priority": "offpeak_first",
        "overflow_policy": "lost",
        "fees_eur_per_kwh": {"HP": "0.1122", "HC": "0.0945", "BASE": "0.111"},
        "subscription_eur_per_month": "6",
    },
}
RESALE = {"effective_from": "2026-03-15", "offer": "surplus_resale", "resale": {"rate_eur_per_kwh": "0.04"}}


def doc(*versions: dict, anchors: list | None = None) -> dict:
    return {"pdl": "12345678901234", "versions": list(versions), "anchors": anchors or []}


def test_round_trip_through_json_is_lossless() -> None:
    contract = contract_from_dict(doc(URBAN, RESALE, anchors=[{"date": "2026-04-01", "balance_wh": 451000, "note": "inv"}]))
    again = contract_from_dict(json.loads(json.dumps(contract_to_dict(contract))))
    assert again == contract
    battery = contract.versions[0].battery
    assert battery is not None
    assert battery.settlement is Settlement.MONTHLY
    assert battery.debit_priority is DebitPriority.OFFPEAK_FIRST
    assert battery.fees_eur_per_kwh["HC"] == Decimal("0.0945")
    assert contract.versions[1].offer is Offer.SURPLUS_RESALE
    assert contract.anchors == (Anchor(date(2026, 4, 1), 451000, "inv"),)


def test_versions_are_sorted_by_date_whatever_the_input_order() -> None:
    contract = contract_from_dict(doc(RESALE, URBAN))
    assert [v.effective_from for v in contract.versions] == [date(2026, 3, 1), date(2026, 3, 15)]


def test_effective_at_uses_the_paris_calendar_day_and_never_looks_back() -> None:
    versions = contract_from_dict(doc(URBAN, RESALE)).versions
    assert effective_at(versions, datetime(2026, 2, 28, 23, 59, tzinfo=PARIS)) is None
    assert effective_at(versions, datetime(2026, 3, 14, 23, 59, 59, tzinfo=PARIS)).offer is Offer.VIRTUAL_BATTERY
    assert effective_at(versions, datetime(2026, 3, 15, 0, 0, tzinfo=PARIS)).offer is Offer.SURPLUS_RESALE
    # 2026-03-14 23:30 UTC is already 00:30 on the 15th in Paris (UTC+1 in March).
    assert effective_at(versions, datetime(2026, 3, 14, 23, 30, tzinfo=timezone.utc)).offer is Offer.SURPLUS_RESALE


def test_version_start_is_local_midnight_across_dst() -> None:
    version = version_from_dict({**URBAN, "effective_from": "2026-03-30"})  # first day in CEST
    assert version.starts_at == datetime(2026, 3, 29, 22, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"credit_ratio": "1.5"}, "credit_ratio: must be between 0 and 1"),
        ({"credit_ratio": "0.12345"}, "credit_ratio: at most 4 decimals"),
        ({"capacity_wh": 0}, "capacity_wh: expected a positive integer"),
        ({"capacity_wh": True}, "capacity_wh: expected a positive integer"),
        ({"settlement": "weekly"}, "settlement: expected one of realtime, monthly"),
        ({"debit_priority": "hp"}, "debit_priority: expected one of"),
        ({"overflow_policy": "sold"}, "overflow_rate_eur_per_kwh: required when overflow_policy is 'sold'"),
        ({"overflow_rate_eur_per_kwh": "0.04"}, "must be null when overflow_policy is 'lost'"),
        ({"fees_eur_per_kwh": {"HP": "-0.1"}}, "fees_eur_per_kwh.HP: must be >= 0"),
        ({"fees_eur_per_kwh": {"HP": "abc"}}, "fees_eur_per_kwh.HP: not a decimal number"),
        ({"capacity": 5}, "unknown field(s) ['capacity']"),
    ],
)
def test_battery_validation_names_the_field(patch: dict, message: str) -> None:
    bad = {**URBAN, "battery": {**URBAN["battery"], **patch}}
    with pytest.raises(ContractError) as err:
        contract_from_dict(doc(bad))
    assert message in str(err.value)
    assert "versions[0].battery" in str(err.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (doc({"effective_from": "2026-03-01", "offer": "virtual_battery"}), "battery: required"),
        (doc({"effective_from": "2026-03-01", "offer": "surplus_resale"}), "resale: required"),
        (doc({**URBAN, "offer": "none"}), "battery: only allowed when offer is virtual_battery"),
        (doc({**URBAN, "resale": {"rate_eur_per_kwh": "0.1"}}), "resale: only allowed when offer is surplus_resale"),
        (doc({**URBAN, "effective_from": "01/03/2026"}), "effective_from: expected an ISO date"),
        (doc({**URBAN, "offer": "battery"}), "offer: expected one of none, virtual_battery, surplus_resale"),
        (doc(URBAN, URBAN), "two versions have the same effective_from"),
        (doc(URBAN, anchors=[{"date": "2026-04-01", "balance_wh": -1}]), "anchors[0].balance_wh"),
        (doc(URBAN, anchors=[{"date": "2026-04-01", "balance_wh": 1.5}]), "anchors[0].balance_wh"),
        ({"pdl": "", "versions": []}, "pdl: expected a non-empty string"),
        ({"pdl": "1", "versions": {}}, "versions: expected a list"),
    ],
)
def test_contract_validation(data: dict, message: str) -> None:
    with pytest.raises(ContractError, match=None) as err:
        contract_from_dict(data)
    assert message in str(err.value)


def test_sold_overflow_needs_and_keeps_its_rate() -> None:
    v = version_from_dict(
        {**URBAN, "battery": {**URBAN["battery"], "overflow_policy": "sold", "overflow_rate_eur_per_kwh": 0.04}}
    )
    assert v.battery is not None
    assert v.battery.overflow_policy is OverflowPolicy.SOLD
    assert v.battery.overflow_rate_eur_per_kwh == Decimal("0.04")  # float accepted via its repr


def test_add_version_never_retroactive_and_replaces_same_date() -> None:
    contract = contract_from_dict(doc(URBAN))
    late = version_from_dict({**RESALE, "effective_from": "2026-03-10"})
    with pytest.raises(ContractError, match="never applies retroactively"):
        add_version(contract, late, today=date(2026, 3, 11))
    updated = add_version(contract, late, today=date(2026, 3, 10))
    assert [v.effective_from for v in updated.versions] == [date(2026, 3, 1), date(2026, 3, 10)]
    replacement = version_from_dict({**RESALE, "effective_from": "2026-03-10", "resale": {"rate_eur_per_kwh": "0.05"}})
    again = add_version(updated, replacement, today=date(2026, 3, 1))
    assert len(again.versions) == 2
    assert again.versions[1].resale is not None and again.versions[1].resale.rate_eur_per_kwh == Decimal("0.05")


def test_anchors_latest_by_date_and_replaced_by_date() -> None:
    contract = Contract(pdl="1")
    contract = add_anchor(contract, Anchor(date(2026, 4, 1), 10))
    contract = add_anchor(contract, Anchor(date(2026, 3, 1), 20))
    contract = add_anchor(contract, Anchor(date(2026, 4, 1), 30))
    assert latest_anchor(contract.anchors) == Anchor(date(2026, 4, 1), 30)
    assert len(contract.anchors) == 2
    with pytest.raises(ContractError):
        add_anchor(contract, Anchor(date(2026, 5, 1), -5))


def test_subscription_is_pro_rata_by_day_on_a_mid_month_change() -> None:
    v1 = version_from_dict(URBAN)  # 6 EUR/month from 2026-03-01
    v2 = version_from_dict({**URBAN, "effective_from": "2026-03-16", "battery": {**URBAN["battery"], "subscription_eur_per_month": "12"}})
    # March has 31 days: 15 days at 6 EUR and 16 days at 12 EUR -> (15*6 + 16*12) / 31 = 282/31.
    assert subscription_for_month([v1, v2], 2026, 3) == Decimal(282) / Decimal(31)
    assert subscription_for_month([v1, v2], 2026, 4) == Decimal(12)
    # February 2026: no version yet.
    assert subscription_for_month([v1, v2], 2026, 2) == Decimal(0)


def test_alerts_section_round_trips_and_defaults_to_absent() -> None:
    with_budget = version_from_dict({**URBAN, "alerts": {"daily_budget_wh": 12_500}})
    assert with_budget.alerts == AlertTerms(daily_budget_wh=12_500) and with_budget.daily_budget_wh == 12_500
    assert version_to_dict(with_budget)["alerts"] == {"daily_budget_wh": 12_500}
    assert version_from_dict(json.loads(json.dumps(version_to_dict(with_budget)))) == with_budget
    # Any offer can carry a budget (it is about the household's import, not the battery).
    none_offer = version_from_dict({"effective_from": "2026-03-01", "offer": "none", "alerts": {"daily_budget_wh": 1}})
    assert none_offer.daily_budget_wh == 1
    # Absent, null, {} and {"daily_budget_wh": null} all mean the deployment default, stored as
    # absent: a document written before the field existed serializes (and fingerprints) as before.
    for alerts in ({}, {"alerts": None}, {"alerts": {}}, {"alerts": {"daily_budget_wh": None}}):
        version = version_from_dict({**URBAN, **alerts})
        assert version.alerts is None and version.daily_budget_wh is None
        assert "alerts" not in version_to_dict(version)
        assert version == version_from_dict(URBAN)
    assert ContractVersion(date(2026, 3, 1), alerts=AlertTerms()).alerts is None  # built in code: same rule
    contract = contract_from_dict(doc(URBAN, {**RESALE, "alerts": {"daily_budget_wh": 7000}}))
    assert contract_from_dict(json.loads(json.dumps(contract_to_dict(contract)))) == contract
    assert [v.daily_budget_wh for v in contract.versions] == [None, 7000]


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"daily_budget_wh": 0}, "alerts.daily_budget_wh: expected a positive integer (Wh) or null, got 0"),
        ({"daily_budget_wh": -5}, "alerts.daily_budget_wh: expected a positive integer"),
        ({"daily_budget_wh": 12.5}, "alerts.daily_budget_wh: expected a positive integer"),
        ({"daily_budget_wh": "12500"}, "alerts.daily_budget_wh: expected a positive integer"),
        ({"daily_budget_wh": True}, "alerts.daily_budget_wh: expected a positive integer"),
        ({"daily_budget_kwh": 12.5}, "alerts: unknown field(s) ['daily_budget_kwh']"),
        ({"daily_budget_wh": 100, "overload_share": 0.9}, "alerts: unknown field(s) ['overload_share']"),
        ([], "alerts: expected an object or null"),
        (12500, "alerts: expected an object or null"),
    ],
)
def test_alerts_validation_names_the_field(alerts: object, message: str) -> None:
    with pytest.raises(ContractError) as err:
        contract_from_dict(doc({**URBAN, "alerts": alerts}))
    assert message in str(err.value)
    assert "versions[0].alerts" in str(err.value)
