"""Euros from Wh: period names of the meter's registers, and the exact cost of a bucket (pure).

Rule (docs/cost.md, with a worked day):

- **Energy**: for each register, Wh x price / 1000, the price being the one of the contract
  version in force on the day the Wh were drawn (a version applies from 00:00 Europe/Paris of its
  date, so hours and days never span a price change; a month does, and is priced day by day).
  The sum is exact (``Fraction``) and rounded half-even to the cent **once per bucket**; each
  ``by_period`` amount is its own exact sum rounded once as well (so the displayed periods may
  differ from ``energy_eur`` by a cent of rounding).
- **Standing charge** ("abonnement"): a day costs monthly / days in that month (of the version in
  force that day); an hour costs the day's share / hours in that day (23, 24 or 25), so the hours
  of any day, DST days included, add up exactly to the day, and the days of a month to the month.
  Rounded half-even to the cent once per bucket.
- ``total_eur`` = ``energy_eur`` + ``standing_eur`` (the rounded amounts, so the line adds up).
- Days without a version carrying a tariff are not priced; a bucket with no priced day has
  ``cost`` null. Wh of a register the option has no price for (e.g. EASF07 under ``hchp``) are
  listed in ``unpriced_wh`` and cost nothing.

Everything is exact: prices are ``Decimal`` (converted exactly to ``Fraction``), Wh integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any, Mapping, Sequence

from tables.battery import period_kind
from tables.calendar import PARIS, day_bounds, next_month
from tables.contracts import OPTION_PERIODS, ContractVersion, Tariff, TariffOption, effective_at
from tables.calendar import local_midnight

__all__ = [
    "PeriodName", "period_name", "period_names", "normalize_label", "EnergyPart", "StandingPart", "BucketCost",
    "bucket_cost", "day_standing_share", "hours_in_day", "round_cents", "render_cost", "tariff_on",
]  # fmt: skip

# Historic-mode index labels -> period code of their option (domain.md 4.4).
_HISTORIC_CODES = {
    "BASE": "BASE", "HCHC": "HC", "HCHP": "HP", "EJPHN": "normal", "EJPHPM": "peak",
    "BBRHCJB": "HCJB", "BBRHPJB": "HPJB", "BBRHCJW": "HCJW", "BBRHPJW": "HPJW", "BBRHCJR": "HCJR", "BBRHPJR": "HPJR",
}  # fmt: skip
_CODE_INFO = {code: (kind, colour) for periods in OPTION_PERIODS.values() for code, kind, colour in periods}
# Readable names for a register whose label the meter has not shown yet (offer's wording).
_DEFAULT_LABELS = {
    "BASE": "BASE", "HC": "HEURES CREUSES", "HP": "HEURES PLEINES", "HCJB": "HC BLEU", "HPJB": "HP BLEU",
    "HCJW": "HC BLANC", "HPJW": "HP BLANC", "HCJR": "HC ROUGE", "HPJR": "HP ROUGE",
    "normal": "HEURES NORMALES", "peak": "POINTE MOBILE",
}  # fmt: skip
_COLOUR_WORDS = {"BLEU": "blue", "BLANC": "white", "ROUGE": "red"}


def normalize_label(label: str) -> str:
    """The meter's label without its padding: ``" HEURE  CREUSE "`` -> ``"HEURE CREUSE"``."""
    return " ".join(label.split())


@dataclass(frozen=True)
class PeriodName:
    """What a register is called: ``label`` (the meter's, else the offer's), ``kind`` (HP, HC,
    BASE), ``code`` (the option's period code, None when unknown) and the Tempo colour."""

    label: str
    kind: str
    code: str | None
    tempo_colour: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "period": self.code, "tempo_colour": self.tempo_colour}


@lru_cache(maxsize=4096)
def period_name(register: str, option: TariffOption | None, meter_label: str | None = None) -> PeriodName:
    """Name a register: standard ``EASFnn`` by its rank in the option (EASF01 = HC under hchp,
    HCJB under tempo, ...), historic index labels by their own meaning (HCHC = HC); the label is
    the one the meter showed while the register was active (padding trimmed), else the offer's.
    Memoized (pure; the answer is frozen): each payload names every register of three buckets."""
    code: str | None = _HISTORIC_CODES.get(register)
    if register.startswith("EASF") and register[4:].isdigit() and option is not None:
        rank = int(register[4:]) - 1
        periods = OPTION_PERIODS[option]
        code = periods[rank][0] if 0 <= rank < len(periods) else None
    elif register == "TOTAL" and option is TariffOption.BASE:
        code = "BASE"
    label = normalize_label(meter_label) if meter_label and meter_label.strip() else None
    if label is None:
        label = _DEFAULT_LABELS.get(code, register) if code is not None else register
    if code is not None:
        kind, colour = _CODE_INFO[code]
    else:
        kind = period_kind(label)
        colour = next((c for word, c in _COLOUR_WORDS.items() if word in label.upper().split()), None)
    return PeriodName(label, kind, code, colour)


def period_names(
    registers: Sequence[str], option: TariffOption | None, labels: Mapping[str, str]
) -> dict[str, PeriodName]:
    """``period_name`` of each register (sorted), with the meter labels seen so far."""
    return {r: period_name(r, option, labels.get(r)) for r in sorted(registers)}


_IN_FORCE: dict[tuple[int, date], tuple[Sequence[ContractVersion], ContractVersion | None]] = {}


def tariff_on(versions: Sequence[ContractVersion], day: date) -> tuple[ContractVersion | None, Tariff | None]:
    """The version in force on ``day`` (Europe/Paris) and its tariff (None without one).
    Memoized per versions object (every payload asks for each day of the month)."""
    key = (id(versions), day)
    cached = _IN_FORCE.get(key)
    if cached is not None and cached[0] is versions:
        version = cached[1]
    else:
        version = effective_at(versions, local_midnight(day))
        if len(_IN_FORCE) >= 20_000:
            _IN_FORCE.clear()
        _IN_FORCE[key] = (versions, version)  # holding ``versions`` keeps its id unique
    return version, (None if version is None else version.tariff)


# --------------------------------------------------------------------------- standing charge


def hours_in_day(day: date) -> int:
    """23, 24 or 25 (Europe/Paris DST days)."""
    start, end = day_bounds(day, PARIS)
    return int((end - start).total_seconds()) // 3600


def day_standing_share(monthly: Decimal, day: date) -> Fraction:
    """A day's share of a monthly standing charge: monthly / days in the day's month (exact)."""
    first = day.replace(day=1)
    return Fraction(monthly) / (next_month(first) - first).days


# --------------------------------------------------------------------------- bucket cost


@dataclass(frozen=True)
class EnergyPart:
    """Wh drawn per register on one local day (the day picks the contract version)."""

    day: date
    imports: Mapping[str, int]


@dataclass(frozen=True)
class StandingPart:
    """A share of one local day's standing charge (1 = the whole day, 1/23 = one hour of a
    23-hour day)."""

    day: date
    share: Fraction = Fraction(1)


@dataclass(frozen=True)
class BucketCost:
    """Exact (unrounded) cost of a bucket; ``render_cost`` rounds it."""

    energy: Fraction
    standing: Fraction
    by_period: Mapping[str, Fraction]
    unpriced_wh: Mapping[str, int]
    tariff_dates: tuple[date, ...]  # effective dates of the versions whose prices were used


def bucket_cost(
    energy: Sequence[EnergyPart],
    standing: Sequence[StandingPart],
    versions: Sequence[ContractVersion],
    labels: Mapping[str, str] | None = None,
) -> BucketCost | None:
    """Exact cost of a bucket from its energy per day and its standing-charge shares.

    None when no day of the bucket has a tariff. ``labels``: the meter's label per register
    (tables/consumption.py state), used for prices given by label.
    """
    labels = labels or {}
    total_energy = Fraction(0)
    by_period: dict[str, Fraction] = {}
    unpriced: dict[str, int] = {}
    dates: set[date] = set()
    for part in energy:
        version, tariff = tariff_on(versions, part.day)
        if tariff is None or version is None:
            continue
        dates.add(version.effective_from)
        for register, wh in part.imports.items():
            name = period_name(register, tariff.option, labels.get(register))
            price = tariff.price_for(name.label, name.code or register, name.kind)
            if price is None:
                unpriced[register] = unpriced.get(register, 0) + wh
                continue
            amount = Fraction(wh) * Fraction(price) / 1000
            by_period[register] = by_period.get(register, Fraction(0)) + amount
            total_energy += amount
    # shares of the same monthly charge (same version, same month) are summed first: exact, and
    # one multiplication per month instead of one per day
    grouped: dict[tuple[int, int, int], tuple[Tariff, date, int, Fraction]] = {}
    for share in standing:
        version, tariff = tariff_on(versions, share.day)
        if tariff is None or version is None:
            continue
        dates.add(version.effective_from)
        key = (id(version), share.day.year, share.day.month)
        _, _, whole, part = grouped.get(key, (tariff, share.day, 0, Fraction(0)))
        if share.share == 1:
            whole += 1
        else:
            part += share.share
        grouped[key] = (tariff, share.day, whole, part)
    total_standing = Fraction(0)
    for tariff, day, whole, part in grouped.values():
        total_standing += day_standing_share(tariff.standing_charge_eur_per_month, day) * (whole + part)
    if not dates:
        return None
    return BucketCost(total_energy, total_standing, by_period, unpriced, tuple(sorted(dates)))


def round_cents(amount: Fraction) -> Decimal:
    """An exact amount rounded half-even to the cent (``round`` of a Fraction is exact)."""
    cents = round(amount * 100)
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def render_cost(cost: BucketCost | None) -> dict[str, Any] | None:
    """The ``cost`` object of a bucket (amounts as decimal strings), or None."""
    if cost is None:
        return None
    energy, standing = round_cents(cost.energy), round_cents(cost.standing)
    out: dict[str, Any] = {
        "energy_eur": str(energy),
        "standing_eur": str(standing),
        "total_eur": str(energy + standing),
        "by_period": {r: str(round_cents(a)) for r, a in sorted(cost.by_period.items())},
        "tariff_from": cost.tariff_dates[0].isoformat(),
    }
    if len(cost.tariff_dates) > 1:
        out["tariff_changes"] = [d.isoformat() for d in cost.tariff_dates[1:]]
    if cost.unpriced_wh:
        out["unpriced_wh"] = dict(sorted(cost.unpriced_wh.items()))
    return out


def days_of(first: date, last: date) -> list[date]:
    """Every local day from ``first`` to ``last`` included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
