"""The month's estimated bill and its installments (pure; docs/cost.md "Estimated bill").

A month's bill puts together, each line rounded half-even to the cent once:

- ``energy``: the month bucket's energy cost (tables/cost.py: priced day by day);
- ``standing``: the tariff's standing charge for the month's days (to date while it is open);
- ``battery_fees``: the restitution fees of the kWh taken from the virtual battery that month
  (tables/battery.py month row);
- ``battery_subscription``: the battery subscription for the month (pro rata by day,
  tables/contracts.py ``subscription_for_month``);
- ``cagnotte``: minus the month's surplus cagnotte (tables/surplus.py) when the deployment
  deducts it from bills (``LINKY_BILL_DEDUCT_CAGNOTTE``; domain.md leaves open whether an offer
  pays it out or offsets invoices).

``total_eur`` is the sum of the rounded lines, so the lines add up. The bill is ``estimate``
until the PDL's data has moved past the month (event time, like the consumption buckets), then
``closed``. For an open month the ``projected`` total extrapolates the month to date at its
current pace: the amounts that grow with use (energy, battery fees, cagnotte) are divided by the
elapsed share of the month (up to the last reading), the fixed ones (standing charge, battery
subscription) are counted for the whole month.

Installments ("échéancier"): for the months of the bill's year up to the bill's month, from the
PDL's first month with data, each month where a version with ``installment_eur_per_month`` is in
force on the month's last covered day pays that installment; ``paid_eur`` is their sum,
``billed_eur`` the sum of those months' bills (the open month to date), and ``difference_eur`` =
paid - billed: ``ahead`` when positive (the customer paid more than used), ``behind`` when
negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, Sequence

from tables.cost import BucketCost, round_cents

__all__ = ["MonthMoney", "month_lines", "render_bill", "projected_total", "installment_position"]


@dataclass(frozen=True)
class MonthMoney:
    """Exact (unrounded) money of one month, to date."""

    month: str  # "2027-01"
    consumption: BucketCost | None  # energy + standing (None: no tariff or not computable)
    battery_fees: Decimal = Decimal(0)
    battery_subscription: Decimal = Decimal(0)
    cagnotte: Decimal = Decimal(0)  # deducted (0 when the deployment does not deduct it)
    standing_full_month: Fraction = Fraction(0)  # the standing charge of the whole month
    elapsed: Fraction = Fraction(1)  # share of the month covered by data (1 once closed)


def month_lines(money: MonthMoney) -> list[dict[str, Any]]:
    """The bill's lines, each rounded once (zero battery/cagnotte lines are omitted)."""
    lines: list[dict[str, Any]] = []
    if money.consumption is not None:
        lines.append({"kind": "energy", "eur": str(round_cents(money.consumption.energy))})
        lines.append({"kind": "standing", "eur": str(round_cents(money.consumption.standing))})
    if money.battery_fees:
        lines.append({"kind": "battery_fees", "eur": str(round_cents(Fraction(money.battery_fees)))})
    if money.battery_subscription:
        lines.append({"kind": "battery_subscription", "eur": str(round_cents(Fraction(money.battery_subscription)))})
    if money.cagnotte:
        lines.append({"kind": "cagnotte", "eur": str(-round_cents(Fraction(money.cagnotte)))})
    return lines


def _total(lines: Sequence[dict[str, Any]]) -> Decimal:
    return sum((Decimal(line["eur"]) for line in lines), Decimal("0.00"))


def projected_total(money: MonthMoney) -> Decimal | None:
    """The month's total at its current pace (see the module docstring), rounded to the cent."""
    if money.elapsed <= 0:
        return None
    variable = Fraction(money.battery_fees) - Fraction(money.cagnotte)
    if money.consumption is not None:
        variable += money.consumption.energy
    fixed = money.standing_full_month + Fraction(money.battery_subscription)
    return round_cents(variable / money.elapsed + fixed)


def render_bill(
    pdl: str,
    money: MonthMoney,
    *,
    closed: bool,
    through: datetime | None,
    installments: dict[str, Any] | None,
) -> dict[str, Any]:
    """``GET /pdl/{pdl}/bill?month=`` document."""
    lines = month_lines(money)
    doc: dict[str, Any] = {
        "pdl": pdl,
        "month": money.month,
        "status": "closed" if closed else "estimate",
        "through": None if through is None else through.isoformat(),
        "lines": lines,
        "total_eur": str(_total(lines)),
        "tariff": None
        if money.consumption is None
        else {"from": money.consumption.tariff_dates[0].isoformat(),
              "changes": [d.isoformat() for d in money.consumption.tariff_dates[1:]]},  # fmt: skip
        "projected_total_eur": None,
        "installments": installments,
    }
    if not closed:
        projected = projected_total(money)
        doc["projected_total_eur"] = None if projected is None else str(projected)
    return doc


def installment_position(year: int, months: Sequence[tuple[str, Decimal | None, Decimal]]) -> dict[str, Any] | None:
    """``months``: (month key, installment in force or None, that month's bill total) from
    January (or the first month with data) to the bill's month. None without any installment."""
    paid = Decimal("0.00")
    billed = Decimal("0.00")
    counted: list[str] = []
    for key, installment, total in months:
        if installment is None:
            continue
        paid += installment
        billed += total
        counted.append(key)
    if not counted:
        return None
    diff = (paid - billed).quantize(Decimal("0.01"))
    return {
        "year": year,
        "months": counted,
        "paid_eur": str(paid.quantize(Decimal("0.01"))),
        "billed_eur": str(billed.quantize(Decimal("0.01"))),
        "difference_eur": str(diff),
        "position": "ahead" if diff > 0 else ("behind" if diff < 0 else "even"),
    }


def month_first(key: str) -> date:
    year, month = key.split("-")
    return date(int(year), int(month), 1)


# --------------------------------------------------------------------------- gathering


def month_money(
    month: date,
    *,
    consumption: Any,  # tables.consumption.ConsumptionState
    load: Any,  # its history loader
    ledger: Any | None,  # tables.ledger.LedgerState, None: no battery data
    versions: Sequence[Any],
    deduct_cagnotte: bool = True,
) -> MonthMoney:
    """The exact money of ``month`` (its first day) from the PDL's consumption and ledger."""
    from tables.calendar import month_bounds, month_key, next_month
    from tables.consumption import Pricing, day_totals_loader, month_bucket_cost, month_totals_of
    from tables.contracts import subscription_for_month
    from tables.cost import StandingPart, bucket_cost

    key = month_key(month)
    versions = tuple(versions)
    pricing = Pricing(versions, consumption.labels)
    last_of_month = date.fromordinal(next_month(month).toordinal() - 1)
    totals = month_totals_of(consumption, month, load)
    cost = None
    if totals is not None and consumption.first_day is not None:
        cost = month_bucket_cost(month, totals, pricing, first_day=consumption.first_day,
                                 last_day=min(last_of_month, consumption.day),
                                 day_totals=day_totals_loader(consumption, load))  # fmt: skip
    days = [date.fromordinal(d) for d in range(month.toordinal(), last_of_month.toordinal() + 1)]
    full = bucket_cost([], [StandingPart(d) for d in days], versions)
    fees = Decimal(0)
    cagnotte = Decimal(0)
    if ledger is not None:
        row = ledger.battery.months.get(key) if key in ledger.battery.months else None
        fees = row.fees_eur if row is not None else Decimal(0)
        srow = ledger.surplus.months.get(key) if key in ledger.surplus.months else None
        cagnotte = srow.cagnotte_eur if (srow is not None and deduct_cagnotte) else Decimal(0)
    start, end = month_bounds(month)
    through = consumption.cursor.time
    if through is None or through >= end:
        elapsed = Fraction(1)
    elif through <= start:
        elapsed = Fraction(0)
    else:
        elapsed = Fraction(int((through - start).total_seconds()), int((end - start).total_seconds()))
    return MonthMoney(
        month=key,
        consumption=cost,
        battery_fees=fees,
        battery_subscription=subscription_for_month(versions, month.year, month.month),
        cagnotte=cagnotte,
        standing_full_month=Fraction(0) if full is None else full.standing,
        elapsed=elapsed,
    )


def installment_on(versions: Sequence[Any], day: date) -> Decimal | None:
    """The installment of the version in force on ``day``, or None."""
    from tables.cost import tariff_on

    tariff = tariff_on(versions, day)[1]
    return None if tariff is None else tariff.installment_eur_per_month


def bill_document(
    pdl: str,
    month: date,
    *,
    consumption: Any,
    load: Any,
    ledger: Any | None,
    versions: Sequence[Any],
    deduct_cagnotte: bool = True,
) -> dict[str, Any]:
    """The whole ``GET /pdl/{pdl}/bill?month=`` answer: the month's bill and the installments
    of its year so far (see the module docstring)."""
    from tables.calendar import month_bounds, next_month

    def bill_of(first: date) -> tuple[MonthMoney, dict[str, Any]]:
        money = month_money(first, consumption=consumption, load=load, ledger=ledger, versions=versions,
                            deduct_cagnotte=deduct_cagnotte)  # fmt: skip
        end = month_bounds(first)[1]
        closed = consumption.cursor.time is not None and consumption.day is not None and consumption.day >= next_month(first)
        through = consumption.cursor.time if not closed else end
        return money, render_bill(pdl, money, closed=closed, through=through, installments=None)

    _, doc = bill_of(month)
    history: list[tuple[str, Decimal | None, Decimal]] = []
    first_data = consumption.first_day.replace(day=1) if consumption.first_day is not None else month
    current = max(date(month.year, 1, 1), first_data)
    while current <= month:
        last_of = date.fromordinal(next_month(current).toordinal() - 1)
        covered = min(last_of, consumption.day) if consumption.day is not None else last_of
        _, other = (None, doc) if current == month else bill_of(current)
        history.append((other["month"], installment_on(versions, covered), Decimal(other["total_eur"])))
        current = next_month(current)
    doc["installments"] = installment_position(month.year, history)
    return doc


def bill_projection(
    *, consumption: Any, load: Any, ledger: Any | None, versions: Sequence[Any], deduct_cagnotte: bool = True
) -> Any:
    """The open month's ``tables.alerts.BillProjection`` (None without data, or without an
    installment in force on the PDL's open day: nothing to compare with)."""
    from tables.alerts import BillProjection
    from tables.calendar import month_bounds

    if consumption is None or consumption.day is None or consumption.cursor.time is None:
        return None
    installment = installment_on(versions, consumption.day)
    if installment is None:
        return None
    month = consumption.day.replace(day=1)
    money = month_money(month, consumption=consumption, load=load, ledger=ledger, versions=versions,
                        deduct_cagnotte=deduct_cagnotte)  # fmt: skip
    projected = projected_total(money)
    if projected is None:
        return None
    start = month_bounds(month)[0]
    elapsed = max(0.0, (consumption.cursor.time - start).total_seconds() / 3600)
    return BillProjection(money.month, projected, installment, elapsed)
