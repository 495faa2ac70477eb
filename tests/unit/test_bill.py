"""tables/bill.py: the month's estimated bill, its projection and the installments, against an
independent computation from the documented rule (docs/cost.md "Estimated bill")."""

from __future__ import annotations

import decimal
from datetime import date
from decimal import Decimal

from tables.battery import BatteryState, LedgerRow
from tables.bill import bill_document
from tables.contracts import version_from_dict
from tables.ledger import LedgerState
from tables.surplus import SurplusRow, SurplusState
from tests.unit.test_cost import HI, feed_month
from tests.unit.test_consumption import Store

CENT = Decimal("0.01")


def r2(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=decimal.ROUND_HALF_EVEN)


def versions() -> tuple:
    return (
        version_from_dict({"effective_from": "2027-01-01", "offer": "virtual_battery",
                           "battery": {"fees_eur_per_kwh": {"HP": "0.1122"}, "subscription_eur_per_month": "6"},
                           "tariff": {"option": "hchp", "prices_eur_per_kwh": {"HP": "0.27", "HC": "0.2068"},
                                      "standing_charge_eur_per_month": "15.37", "installment_eur_per_month": "60"}}),
    )  # fmt: skip


def ledger() -> LedgerState:
    battery = BatteryState(months={"2027-01": LedgerRow("2027-01", 0, fees_eur=Decimal("3.14159")),
                                   "2027-02": LedgerRow("2027-02", 0, fees_eur=Decimal("1.005"))})  # fmt: skip
    surplus = SurplusState(months={"2027-01": SurplusRow("2027-01", cagnotte_eur=Decimal("4.4449")),
                                   "2027-02": SurplusRow("2027-02", cagnotte_eur=Decimal("0.125"))})  # fmt: skip
    return LedgerState(pdl="P1", battery=battery, surplus=surplus)


def test_closed_month_bill_lines_add_up_and_match_the_model() -> None:
    store = Store()
    feed_month(store, date(2027, 1, 1), 45, seed=7)  # through mid-February: January is closed
    jan = [b for b in store.query("month") if b["start"].startswith("2027-01")][0]
    doc = bill_document("P1", date(2027, 1, 1), consumption=store.state, load=store.load, ledger=ledger(),
                        versions=versions())  # fmt: skip
    energy = sum((HI.divide(HI.multiply(Decimal(wh), Decimal("0.2068" if r == "EASF01" else "0.27")), Decimal(1000))
                  for r, wh in jan["by_period"].items()), Decimal(0))  # fmt: skip
    expected = {"energy": r2(energy), "standing": Decimal("15.37"), "battery_fees": Decimal("3.14"),
                "battery_subscription": Decimal("6.00"), "cagnotte": Decimal("-4.44")}  # fmt: skip
    assert {line["kind"]: Decimal(line["eur"]) for line in doc["lines"]} == expected
    assert doc["status"] == "closed" and doc["projected_total_eur"] is None
    assert Decimal(doc["total_eur"]) == sum(expected.values())


def test_open_month_is_an_estimate_projected_at_its_pace_and_installments_compare() -> None:
    store = Store()
    feed_month(store, date(2027, 1, 1), 45, seed=7)  # last reading 2027-02-15 00:00
    doc = bill_document("P1", date(2027, 2, 1), consumption=store.state, load=store.load, ledger=ledger(),
                        versions=versions())  # fmt: skip
    assert doc["status"] == "estimate"
    lines = {line["kind"]: Decimal(line["eur"]) for line in doc["lines"]}
    # 14 of February's 28 days have data (the last reading is at 00:00 of the 15th): half the month
    feb = [b for b in store.query("month") if b["start"].startswith("2027-02")][0]
    energy = sum((HI.divide(HI.multiply(Decimal(wh), Decimal("0.2068" if r == "EASF01" else "0.27")), Decimal(1000))
                  for r, wh in feb["by_period"].items()), Decimal(0))  # fmt: skip
    # standing to date: through the open day, the 14th (the reading at 00:00 of the 15th ends it)
    assert lines["standing"] == r2(HI.divide(Decimal("15.37") * 14, Decimal(28)))
    projected = (energy + Decimal("1.005") - Decimal("0.125")) * 2 + Decimal("15.37") + Decimal(6)
    assert Decimal(doc["projected_total_eur"]) == r2(projected)
    inst = doc["installments"]
    jan = bill_document("P1", date(2027, 1, 1), consumption=store.state, load=store.load, ledger=ledger(),
                        versions=versions())  # fmt: skip
    billed = Decimal(jan["total_eur"]) + Decimal(doc["total_eur"])
    assert inst["months"] == ["2027-01", "2027-02"] and inst["paid_eur"] == "120.00"
    assert Decimal(inst["billed_eur"]) == billed
    assert Decimal(inst["difference_eur"]) == Decimal(120) - billed
    assert inst["position"] == ("ahead" if billed < 120 else "behind")


def test_no_tariff_no_energy_lines_and_no_installments() -> None:
    store = Store()
    feed_month(store, date(2027, 1, 1), 3, seed=1)
    plain = (version_from_dict({"effective_from": "2027-01-01", "offer": "none"}),)
    doc = bill_document("P1", date(2027, 1, 1), consumption=store.state, load=store.load, ledger=None, versions=plain)
    assert doc["lines"] == [] and doc["total_eur"] == "0.00" and doc["installments"] is None and doc["tariff"] is None


# --------------------------------------------------------------------------- bill_over_installment

from datetime import datetime, timedelta  # noqa: E402

from tables.alerts import AlertSettings, AlertState, BillProjection, fold_reading  # noqa: E402
from tables.calendar import PARIS  # noqa: E402


def test_bill_over_installment_opens_once_per_episode_and_clears() -> None:
    settings = AlertSettings(bill_over_installment_share=0.10, bill_min_elapsed_hours=72, peak_alerts=False)
    state = AlertState()
    t = datetime(2027, 1, 1, 0, 30, tzinfo=PARIS)
    events: list = []

    def feed(hours: float, projected: str, installment: str | None = "60", month: str = "2027-01") -> list:
        nonlocal state, t
        t = t + timedelta(minutes=30)
        reading = {"pdl": "P1", "mode": "standard", "time": t.isoformat()}
        bill = BillProjection(month, Decimal(projected), None if installment is None else Decimal(installment), hours)
        state, got = fold_reading(state, reading, settings, bill=bill)
        events.extend(got)
        return [(e.kind, e.action) for e in got]

    assert feed(10, "500") == []  # too early in the month to project
    assert feed(80, "66.00") == []  # exactly installment x 1.10: not above
    assert feed(80, "66.01") == [("bill_over_installment", "open")]
    assert feed(90, "70") == [] and feed(100, "61") == []  # still open: no second event
    assert state.open["bill_over_installment"].details == {"month": "2027-01", "projected_eur": "66.01",
                                                           "installment_eur": "60", "over_eur": "6.01"}  # fmt: skip
    assert feed(110, "60") == [("bill_over_installment", "clear")]
    assert feed(120, "80") == [("bill_over_installment", "open")]  # a new episode
    assert feed(10, "90", month="2027-02") == [("bill_over_installment", "clear")]  # the month changed
    assert feed(80, "90", month="2027-02") == [("bill_over_installment", "open")]
    assert feed(81, "90", installment=None, month="2027-02") == [("bill_over_installment", "clear")]
    assert [e.action for e in events] == ["open", "clear", "open", "clear", "open", "clear"]
