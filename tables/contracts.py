"""Per-PDL contracts: date-effective offer versions and invoice anchors, as plain values.

A PDL's contract travels as ONE JSON document on the compacted topic ``linky.contracts`` (key =
PDL), because compaction keeps only the latest value per key::

    {"pdl": "12345678901234",
     "versions": [{"effective_from": "2026-03-01", "offer": "virtual_battery",
                   "battery": {"capacity_wh": null, "credit_ratio": "1",
                               "settlement": "monthly", "debit_priority": "offpeak_first",
                               "overflow_policy": "lost", "overflow_rate_eur_per_kwh": null,
                               "fees_eur_per_kwh": {"HP": "0.1122", "HC": "0.0945"},
                               "subscription_eur_per_month": "6"},
                   "resale": null,
                   "alerts": {"daily_budget_wh": 12500}}],
     "anchors": [{"date": "2026-04-01", "balance_wh": 451000, "note": "invoice 2026-04-14"}]}

Rules (docs/battery.md explains them with sources):

- A version applies from 00:00 Europe/Paris of ``effective_from`` until the next version; it is
  never applied to energy already folded (``effective_at`` looks up by the energy's own time, and
  ``add_version`` refuses a date before "today" unless told otherwise).
- An anchor is the official battery balance printed on an invoice: ``balance_wh`` at 00:00
  Europe/Paris of ``date`` (i.e. after every flow before that day). tables/battery.py applies it.
- Money is ``Decimal`` (JSON strings), energy is integer Wh, the credit ratio has at most four
  decimals so credits stay exact integers (tables/battery.py keeps the remainder).
- ``alerts`` (optional, any offer) holds the PDL's own alert thresholds, date-effective like the
  rest of the version: ``daily_budget_wh`` (positive integer Wh, or null = the deployment's
  ``LINKY_ALERT_DAILY_BUDGET_WH``). Absent, null and ``{"daily_budget_wh": null}`` all mean "the
  deployment defaults" and are stored as absent (so documents written before the field existed
  keep the same fingerprint, tables/ledger.py ``versions_key``).

Everything here is pure: no Kafka, no Faust, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Mapping, Sequence
from tables.calendar import local_date
from tables.calendar import local_midnight as paris_midnight
SCHEMA_VERSION = 1
RATIO_SCALE = 10_000  # credit_ratio is stored with at most 4 decimals (1 = 10 000 / 10 000)


class ContractError(ValueError):
    """A contract document is invalid; the message names the offending field."""


class Offer(StrEnum):
    NONE = "none"
    VIRTUAL_BATTERY = "virtual_battery"
    SURPLUS_RESALE = "surplus_resale"


class Settlement(StrEnum):
    REALTIME = "realtime"  # charge/discharge at each delta (MyLight-style, domain.md 1.6)
    MONTHLY = "monthly"  # a month's credits offset that month's imports (Urban Solar, 1.2)


class DebitPriority(StrEnum):
    CHRONOLOGICAL = "chronological"
    OFFPEAK_FIRST = "offpeak_first"  # HC first (Urban Solar CGV as transcribed, domain.md 1.2)
    PEAK_FIRST = "peak_first"


class TariffOption(StrEnum):
    """The offer's "option tarifaire" (domain.md 4.4): which periods its prices are given for."""

    BASE = "base"
    HCHP = "hchp"  # heures creuses / heures pleines
    TEMPO = "tempo"  # 6 prices: {blue, white, red} x {HC, HP}
    EJP = "ejp"  # normal days / "pointe mobile" days


# The periods of each option, as offers publish their prices (domain.md 4.4), in register order
# (standard mode EASF01, EASF02, ...): code -> (kind, Tempo colour).
OPTION_PERIODS: dict[TariffOption, tuple[tuple[str, str, str | None], ...]] = {
    TariffOption.BASE: (("BASE", "BASE", None),),
    TariffOption.HCHP: (("HC", "HC", None), ("HP", "HP", None)),
    TariffOption.TEMPO: (
        ("HCJB", "HC", "blue"), ("HPJB", "HP", "blue"), ("HCJW", "HC", "white"),
        ("HPJW", "HP", "white"), ("HCJR", "HC", "red"), ("HPJR", "HP", "red"),
    ),
    TariffOption.EJP: (("normal", "BASE", None), ("peak", "HP", None)),
}  # fmt: skip


class OverflowPolicy(StrEnum):
    LOST = "lost"  # MySmartBattery: "injecté sur le réseau à titre gratuit"
    SOLD = "sold"  # valued at overflow_rate_eur_per_kwh in the surplus cagnotte


@dataclass(frozen=True)
class BatteryTerms:
    """Virtual-battery parameters of one contract version (domain.md 1.6)."""

    capacity_wh: int | None = None  # None = unlimited (Urban Solar, MyBattery)
    credit_ratio: Decimal = Decimal(1)
    settlement: Settlement = Settlement.REALTIME
    debit_priority: DebitPriority = DebitPriority.CHRONOLOGICAL
    overflow_policy: OverflowPolicy = OverflowPolicy.LOST
    overflow_rate_eur_per_kwh: Decimal | None = None
    # Restitution fee per kWh withdrawn from the battery, keyed by period label ("HP  BLEU") or
    # period kind ("HP", "HC", "BASE"); looked up label first, then kind, else 0.
    fees_eur_per_kwh: Mapping[str, Decimal] = field(default_factory=dict)
    subscription_eur_per_month: Decimal = Decimal(0)

    @property
    def ratio_units(self) -> int:
        """The credit ratio in 1/10 000 (an exact integer)."""
        return int(self.credit_ratio * RATIO_SCALE)

    def fee_for(self, label: str, kind: str) -> Decimal:
        """€/kWh restitution fee for a period label, falling back to its kind, else 0."""
        if label in self.fees_eur_per_kwh:
            return self.fees_eur_per_kwh[label]
        return self.fees_eur_per_kwh.get(kind, Decimal(0))


@dataclass(frozen=True)
class Tariff:
    """The offer's price grid ("grille tarifaire") of one contract version, all taxes included.

    ``prices_eur_per_kwh`` is keyed like the battery fees: a period label as the meter shows it
    ("HEURE CREUSE", "HC  BLEU"), a period code of the option (``OPTION_PERIODS``: HC, HPJB,
    normal, ...) or a kind (HP, HC, BASE); ``price_for`` looks up label, then code, then kind.
    Every period of the option must resolve to a price (checked when parsing).
    """

    option: TariffOption
    prices_eur_per_kwh: Mapping[str, Decimal]
    standing_charge_eur_per_month: Decimal = Decimal(0)  # "abonnement", TTC
    installment_eur_per_month: Decimal | None = None  # the "échéancier" monthly payment

    def price_for(self, label: str | None, code: str, kind: str) -> Decimal | None:
        """€/kWh for a period (label first, then code, then kind), or None if not priced."""
        for key in (label, code, kind):
            if key is not None and key in self.prices_eur_per_kwh:
                return self.prices_eur_per_kwh[key]
        return None

    def missing_periods(self) -> list[str]:
        """Codes of the option's periods that no price resolves (empty when complete)."""
        return [code for code, kind, _ in OPTION_PERIODS[self.option] if self.price_for(None, code, kind) is None]


@dataclass(frozen=True)
class ResaleTerms:
    """Surplus resale ("Boost Mon Surplus"-style cagnotte): every injected kWh at this rate."""

    rate_eur_per_kwh: Decimal


@dataclass(frozen=True)
class AlertTerms:
    """Per-PDL alert thresholds of one contract version; None = the deployment default."""

    daily_budget_wh: int | None = None  # today's grid import above this opens ``daily_budget``


@dataclass(frozen=True)
class ContractVersion:
    """One date-effective version of a PDL's contract."""

    effective_from: date
    offer: Offer = Offer.NONE
    battery: BatteryTerms | None = None
    resale: ResaleTerms | None = None
    alerts: AlertTerms | None = None  # None: every alert threshold is the deployment default
    tariff: Tariff | None = None  # None: no price grid known (costs are null)

    def __post_init__(self) -> None:
        if self.alerts == AlertTerms():  # all defaults: one representation (stored as absent)
            object.__setattr__(self, "alerts", None)

    @property
    def daily_budget_wh(self) -> int | None:
        """This PDL's daily import budget in Wh, or None for the deployment default."""
        return None if self.alerts is None else self.alerts.daily_budget_wh

    @property
    def starts_at(self) -> datetime:
        """The instant (UTC) the version starts: 00:00 Europe/Paris of ``effective_from``."""
        return paris_midnight(self.effective_from)


@dataclass(frozen=True)
class Anchor:
    """Official balance printed on an invoice: ``balance_wh`` at 00:00 Paris of ``date``."""

    date: date
    balance_wh: int
    note: str = ""

    @property
    def at(self) -> datetime:
        return paris_midnight(self.date)


@dataclass(frozen=True)
class Contract:
    """Everything known about one PDL's contract: versions sorted by date, and anchors."""

    pdl: str
    versions: tuple[ContractVersion, ...] = ()
    anchors: tuple[Anchor, ...] = ()


# --------------------------------------------------------------------------- look-ups


def effective_at(versions: Sequence[ContractVersion], when: datetime) -> ContractVersion | None:
    """The version in force at ``when`` (aware), or None before the first version.

    A version applies from 00:00 Europe/Paris of its ``effective_from``; with several versions of
    the same date the last one in the sequence wins (it is the latest correction).
    """
    day = local_date(when)
    found: ContractVersion | None = None
    for version in versions:
        if version.effective_from <= day and (found is None or version.effective_from >= found.effective_from):
            found = version
    return found


def latest_anchor(anchors: Sequence[Anchor]) -> Anchor | None:
    """The anchor with the latest date (the last one listed on a tie), or None."""
    best: Anchor | None = None
    for anchor in anchors:
        if best is None or anchor.date >= best.date:
            best = anchor
    return best


def version_starts(versions: Sequence[ContractVersion]) -> list[datetime]:
    """Sorted distinct start instants (UTC) of the versions: the boundaries folds split on."""
    return sorted({v.starts_at for v in versions})


_SUBSCRIPTIONS: dict[tuple[int, int, int], tuple[Sequence[ContractVersion], Decimal]] = {}


def subscription_for_month(versions: Sequence[ContractVersion], year: int, month: int) -> Decimal:
    """Battery subscription owed for a calendar month, exact (not rounded).

    Each day of the month is charged 1/(days in month) of the monthly subscription of the
    version in force that day, so a mid-month change is pro rata by day (our rule; the offers
    publish only the monthly amount). Memoized per versions object (every battery payload asks).
    """
    key = (id(versions), year, month)
    cached = _SUBSCRIPTIONS.get(key)
    if cached is not None and cached[0] is versions:
        return cached[1]
    amount = _subscription_for_month(versions, year, month)
    if len(_SUBSCRIPTIONS) >= 4096:
        _SUBSCRIPTIONS.clear()
    _SUBSCRIPTIONS[key] = (versions, amount)  # holding ``versions`` keeps its id unique
    return amount


def _subscription_for_month(versions: Sequence[ContractVersion], year: int, month: int) -> Decimal:
    first = date(year, month, 1)
    days_in_month = (_next_month(first) - first).days
    day_weighted = Decimal(0)  # sum of monthly amounts, one per day; divided once at the end
    for offset in range(days_in_month):
        day = date.fromordinal(first.toordinal() + offset)
        version = effective_at(versions, paris_midnight(day))
        if version is not None and version.offer is Offer.VIRTUAL_BATTERY and version.battery:
            day_weighted += version.battery.subscription_eur_per_month
    return day_weighted / days_in_month


# --------------------------------------------------------------------------- edits


def add_version(contract: Contract, version: ContractVersion, *, today: date, allow_past: bool = False) -> Contract:
    """Return ``contract`` with ``version`` added (replacing a version of the same date).

    Refuses an ``effective_from`` before ``today`` unless ``allow_past``: a change applies from
    its effective date, never retroactively.
    """
    if version.effective_from < today and not allow_past:
        raise ContractError(
            f"effective_from {version.effective_from.isoformat()} is before today "
            f"{today.isoformat()}: a contract change never applies retroactively"
        )
    kept = [v for v in contract.versions if v.effective_from != version.effective_from]
    versions = tuple(sorted([*kept, version], key=lambda v: v.effective_from))
    return replace(contract, versions=versions)


def add_anchor(contract: Contract, anchor: Anchor) -> Contract:
    """Return ``contract`` with ``anchor`` added (replacing an anchor of the same date)."""
    if anchor.balance_wh < 0:
        raise ContractError(f"anchor balance_wh must be >= 0, got {anchor.balance_wh}")
    kept = [a for a in contract.anchors if a.date != anchor.date]
    return replace(contract, anchors=tuple(sorted([*kept, anchor], key=lambda a: a.date)))


# --------------------------------------------------------------------------- JSON


def contract_to_dict(contract: Contract) -> dict[str, Any]:
    """Plain JSON-able dict (Decimals as strings, dates as ISO strings)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": contract.pdl,
        "versions": [version_to_dict(v) for v in contract.versions],
        "anchors": [
            {"date": a.date.isoformat(), "balance_wh": a.balance_wh, "note": a.note} for a in contract.anchors
        ],
    }


def version_to_dict(version: ContractVersion) -> dict[str, Any]:
    battery = version.battery
    data: dict[str, Any] = {
        "effective_from": version.effective_from.isoformat(),
        "offer": version.offer.value,
        "battery": None
        if battery is None
        else {
            "capacity_wh": battery.capacity_wh,
            "credit_ratio": str(battery.credit_ratio),
            "settlement": battery.settlement.value,
            "debit_priority": battery.debit_priority.value,
            "overflow_policy": battery.overflow_policy.value,
            "overflow_rate_eur_per_kwh": _dec_str(battery.overflow_rate_eur_per_kwh),
            "fees_eur_per_kwh": {k: str(v) for k, v in battery.fees_eur_per_kwh.items()},
            "subscription_eur_per_month": str(battery.subscription_eur_per_month),
        },
        "resale": None if version.resale is None else {"rate_eur_per_kwh": str(version.resale.rate_eur_per_kwh)},
    }
    if version.alerts is not None:  # absent = defaults (keeps older versions' fingerprints)
        data["alerts"] = {"daily_budget_wh": version.alerts.daily_budget_wh}
    if version.tariff is not None:  # absent = no tariff (keeps older versions' fingerprints)
        data["tariff"] = tariff_to_dict(version.tariff)
    return data


def tariff_to_dict(tariff: Tariff) -> dict[str, Any]:
    return {
        "option": tariff.option.value,
        "prices_eur_per_kwh": {k: str(v) for k, v in tariff.prices_eur_per_kwh.items()},
        "standing_charge_eur_per_month": str(tariff.standing_charge_eur_per_month),
        "installment_eur_per_month": _dec_str(tariff.installment_eur_per_month),
    }


def contract_from_dict(data: Mapping[str, Any]) -> Contract:
    """Parse and validate a contract document; raises ContractError naming the bad field."""
    if not isinstance(data, Mapping):
        raise ContractError(f"contract: expected an object, got {type(data).__name__}")
    pdl = data.get("pdl")
    if not isinstance(pdl, str) or not pdl.strip() or any(c.isspace() for c in pdl):
        raise ContractError(f"pdl: expected a non-empty string without spaces, got {pdl!r}")
    raw_versions = data.get("versions", [])
    raw_anchors = data.get("anchors", [])
    if not isinstance(raw_versions, list):
        raise ContractError("versions: expected a list")
    if not isinstance(raw_anchors, list):
        raise ContractError("anchors: expected a list")
    versions = [version_from_dict(v, path=f"versions[{i}]") for i, v in enumerate(raw_versions)]
    dates = [v.effective_from for v in versions]
    if len(set(dates)) != len(dates):
        raise ContractError("versions: two versions have the same effective_from")
    anchors = [_anchor_from_dict(a, path=f"anchors[{i}]") for i, a in enumerate(raw_anchors)]
    return Contract(
        pdl=pdl,
        versions=tuple(sorted(versions, key=lambda v: v.effective_from)),
        anchors=tuple(sorted(anchors, key=lambda a: a.date)),
    )


def version_from_dict(data: Mapping[str, Any], *, path: str = "version") -> ContractVersion:
    """Parse one version; raises ContractError with ``path`` in the message."""
    if not isinstance(data, Mapping):
        raise ContractError(f"{path}: expected an object")
    effective_from = _date(data.get("effective_from"), f"{path}.effective_from")
    offer = _enum(Offer, data.get("offer", "none"), f"{path}.offer")
    battery_raw = data.get("battery")
    resale_raw = data.get("resale")
    battery = None if battery_raw is None else _battery_from_dict(battery_raw, f"{path}.battery")
    resale = None if resale_raw is None else _resale_from_dict(resale_raw, f"{path}.resale")
    alerts = _alerts_from_dict(data.get("alerts"), f"{path}.alerts")
    tariff_raw = data.get("tariff")
    tariff = None if tariff_raw is None else _tariff_from_dict(tariff_raw, f"{path}.tariff")
    if offer is Offer.VIRTUAL_BATTERY and battery is None:
        raise ContractError(f"{path}.battery: required when offer is virtual_battery")
    if offer is Offer.SURPLUS_RESALE and resale is None:
        raise ContractError(f"{path}.resale: required when offer is surplus_resale")
    if offer is not Offer.VIRTUAL_BATTERY and battery is not None:
        raise ContractError(f"{path}.battery: only allowed when offer is virtual_battery")
    if offer is not Offer.SURPLUS_RESALE and resale is not None:
        raise ContractError(
            f"{path}.resale: only allowed when offer is surplus_resale "
            "(a battery sells its overflow with overflow_policy 'sold')"
        )
    return ContractVersion(
        effective_from=effective_from, offer=offer, battery=battery, resale=resale, alerts=alerts, tariff=tariff
    )


def _battery_from_dict(data: Any, path: str) -> BatteryTerms:
    if not isinstance(data, Mapping):
        raise ContractError(f"{path}: expected an object")
    unknown = set(data) - {
        "capacity_wh",
        "credit_ratio",
        "settlement",
        "debit_priority",
        "overflow_policy",
        "overflow_rate_eur_per_kwh",
        "fees_eur_per_kwh",
        "subscription_eur_per_month",
    }
    if unknown:
        raise ContractError(f"{path}: unknown field(s) {sorted(unknown)}")
    capacity = data.get("capacity_wh")
    if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0):
        raise ContractError(f"{path}.capacity_wh: expected a positive integer or null, got {capacity!r}")
    ratio = _decimal(data.get("credit_ratio", "1"), f"{path}.credit_ratio")
    if not Decimal(0) <= ratio <= Decimal(1):
        raise ContractError(f"{path}.credit_ratio: must be between 0 and 1, got {ratio}")
    if ratio * RATIO_SCALE != int(ratio * RATIO_SCALE):
        raise ContractError(f"{path}.credit_ratio: at most 4 decimals, got {ratio}")
    policy = _enum(OverflowPolicy, data.get("overflow_policy", "lost"), f"{path}.overflow_policy")
    rate_raw = data.get("overflow_rate_eur_per_kwh")
    rate = None if rate_raw is None else _money(rate_raw, f"{path}.overflow_rate_eur_per_kwh")
    if policy is OverflowPolicy.SOLD and rate is None:
        raise ContractError(f"{path}.overflow_rate_eur_per_kwh: required when overflow_policy is 'sold'")
    if policy is OverflowPolicy.LOST and rate is not None:
        raise ContractError(f"{path}.overflow_rate_eur_per_kwh: must be null when overflow_policy is 'lost'")
    fees_raw = data.get("fees_eur_per_kwh", {})
    if not isinstance(fees_raw, Mapping):
        raise ContractError(f"{path}.fees_eur_per_kwh: expected an object {{period: EUR/kWh}}")
    fees = {str(k): _money(v, f"{path}.fees_eur_per_kwh.{k}") for k, v in fees_raw.items()}
    return BatteryTerms(
        capacity_wh=capacity,
        credit_ratio=ratio,
        settlement=_enum(Settlement, data.get("settlement", "realtime"), f"{path}.settlement"),
        debit_priority=_enum(DebitPriority, data.get("debit_priority", "chronological"), f"{path}.debit_priority"),
        overflow_policy=policy,
        overflow_rate_eur_per_kwh=rate,
        fees_eur_per_kwh=fees,
        subscription_eur_per_month=_money(
            data.get("subscription_eur_per_month", "0"), f"{path}.subscription_eur_per_month"
        ),
    )


def _resale_from_dict(data: Any, path: str) -> ResaleTerms:
    if not isinstance(data, Mapping):
        raise ContractError(f"{path}: expected an object")
    if "rate_eur_per_kwh" not in data:
        raise ContractError(f"{path}.rate_eur_per_kwh: required")
    return ResaleTerms(rate_eur_per_kwh=_money(data["rate_eur_per_kwh"], f"{path}.rate_eur_per_kwh"))


def _alerts_from_dict(data: Any, path: str) -> AlertTerms | None:
    """The optional ``alerts`` section (None when absent)."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ContractError(f"{path}: expected an object or null")
    unknown = set(data) - {"daily_budget_wh"}
    if unknown:
        raise ContractError(f"{path}: unknown field(s) {sorted(unknown)}")
    budget = data.get("daily_budget_wh")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
        raise ContractError(f"{path}.daily_budget_wh: expected a positive integer (Wh) or null, got {budget!r}")
    return AlertTerms(daily_budget_wh=budget)  # all defaults: ContractVersion stores None


def _tariff_from_dict(data: Any, path: str) -> Tariff:
    """The optional ``tariff`` section: option, prices, standing charge, installment."""
    if not isinstance(data, Mapping):
        raise ContractError(f"{path}: expected an object or null")
    unknown = set(data) - {
        "option", "prices_eur_per_kwh", "standing_charge_eur_per_month", "installment_eur_per_month",
    }  # fmt: skip
    if unknown:
        raise ContractError(f"{path}: unknown field(s) {sorted(unknown)}")
    if "option" not in data:
        raise ContractError(f"{path}.option: required (one of {', '.join(o.value for o in TariffOption)})")
    option = _enum(TariffOption, data["option"], f"{path}.option")
    prices_raw = data.get("prices_eur_per_kwh")
    if not isinstance(prices_raw, Mapping) or not prices_raw:
        raise ContractError(f"{path}.prices_eur_per_kwh: expected a non-empty object {{period: EUR/kWh}}")
    prices: dict[str, Decimal] = {}
    for key, value in prices_raw.items():
        if not isinstance(key, str) or not key.strip():
            raise ContractError(f"{path}.prices_eur_per_kwh: empty period name")
        prices[key.strip()] = _money(value, f"{path}.prices_eur_per_kwh.{key}")
    installment_raw = data.get("installment_eur_per_month")
    tariff = Tariff(
        option=option,
        prices_eur_per_kwh=prices,
        standing_charge_eur_per_month=_money(
            data.get("standing_charge_eur_per_month", "0"), f"{path}.standing_charge_eur_per_month"
        ),
        installment_eur_per_month=None
        if installment_raw is None
        else _money(installment_raw, f"{path}.installment_eur_per_month"),
    )
    missing = tariff.missing_periods()
    if missing:
        codes = ", ".join(code for code, _, _ in OPTION_PERIODS[option])
        raise ContractError(
            f"{path}.prices_eur_per_kwh: no price for {', '.join(missing)} (option {option.value} "
            f"has periods {codes}; give each by code or by kind HP/HC/BASE)"
        )
    return tariff


def _anchor_from_dict(data: Any, path: str) -> Anchor:
    if not isinstance(data, Mapping):
        raise ContractError(f"{path}: expected an object")
    balance = data.get("balance_wh")
    if isinstance(balance, bool) or not isinstance(balance, int) or balance < 0:
        raise ContractError(f"{path}.balance_wh: expected an integer >= 0 (Wh), got {balance!r}")
    note = data.get("note", "")
    if not isinstance(note, str):
        raise ContractError(f"{path}.note: expected a string")
    return Anchor(date=_date(data.get("date"), f"{path}.date"), balance_wh=balance, note=note)


def _date(value: Any, path: str) -> date:
    if not isinstance(value, str):
        raise ContractError(f"{path}: expected an ISO date 'YYYY-MM-DD', got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{path}: expected an ISO date 'YYYY-MM-DD', got {value!r}") from None


def _decimal(value: Any, path: str) -> Decimal:
    # Floats are accepted through their shortest repr ("0.1" not 0.1000000000000000055...).
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ContractError(f"{path}: expected a decimal number (string preferred), got {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ContractError(f"{path}: not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ContractError(f"{path}: must be finite, got {value!r}")
    return result


def _money(value: Any, path: str) -> Decimal:
    result = _decimal(value, path)
    if result < 0:
        raise ContractError(f"{path}: must be >= 0, got {result}")
    return result


def _enum(kind: type[StrEnum], value: Any, path: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ContractError(f"{path}: expected one of {allowed}, got {value!r}") from None


def _dec_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- calendar




def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)
