"""``linky-stream contract set|show|anchor PDL ...``: write and read the contracts topic.

    linky-stream contract set 12345678901234 --from 2026-12-01 --offer virtual_battery \\
        --settlement monthly --debit-priority offpeak_first --fee HP=0.1122 --fee HC=0.0945 \\
        --subscription 6
    linky-stream contract set 12345678901234 --from 2027-01-01 --offer surplus_resale --rate 0.06
    linky-stream contract set 12345678901234 --from 2027-01-01 --offer none --daily-budget-kwh 12.5
    linky-stream contract set 12345678901234 --from 2027-01-01 --tariff hchp --price HP=0.2700 \\
        --price HC=0.2068 --standing-charge 15.37 --installment 95
    linky-stream contract anchor 12345678901234 --date 2026-11-01 --balance-kwh 451 --note "invoice 2026-11-14"
    linky-stream contract show 12345678901234 [--json]

``set`` adds a date-effective version (it replaces a version of the same date); a date before
today (Europe/Paris) is refused: a change never applies retroactively. A version holds all the
terms from its date: leaving ``--daily-budget-kwh`` (the PDL's own ``daily_budget`` alert
threshold) out means the deployment default (``LINKY_ALERT_DAILY_BUDGET_WH``) from that date.
``anchor`` records the official battery balance printed on an invoice, at 00:00 Europe/Paris of
``--date`` (past dates are the normal case). Kafka and topic come from the ``LINKY_*`` settings; ``--bootstrap`` and
``--topic`` override them. Exit status: 0 done, 1 Kafka error, 2 invalid input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Sequence

from stream.contracts import ContractsTopicError, ensure_contracts_topic, read_contract, today_in_paris, update_contract
from stream.settings import Settings
from tables.contracts import (
    Anchor,
    Contract,
    ContractError,
    ContractVersion,
    add_anchor,
    add_version,
    contract_to_dict,
    effective_at,
    paris_midnight,
    version_from_dict,
    version_to_dict,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``linky-stream contract ...``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    cfg = Settings.from_env(kafka_bootstrap=args.bootstrap, contracts_topic=args.topic)
    try:
        if args.command == "set":
            version = version_from_args(args)
            today = today_in_paris()
            contract = asyncio.run(update_contract(cfg, args.pdl, lambda c: add_version(c, version, today=today)))
            print(f"{args.pdl}: version effective {version.effective_from.isoformat()} written to {cfg.contracts_topic}")
            print(json.dumps(version_to_dict(version), indent=2))
        elif args.command == "anchor":
            anchor = anchor_from_args(args)
            asyncio.run(update_contract(cfg, args.pdl, lambda c: add_anchor(c, anchor)))
            print(
                f"{args.pdl}: anchor {anchor.balance_wh} Wh at {anchor.date.isoformat()} 00:00 Europe/Paris "
                f"written to {cfg.contracts_topic}"
            )
        else:
            asyncio.run(ensure_contracts_topic(cfg))
            contract = asyncio.run(read_contract(cfg, args.pdl))
            if contract is None:
                print(f"{args.pdl}: no contract on {cfg.contracts_topic}", file=sys.stderr)
                return 2
            print(json.dumps(contract_to_dict(contract), indent=2) if args.json else render_contract(contract))
    except ContractError as exc:
        print(f"linky-stream contract: {exc}", file=sys.stderr)
        return 2
    except (ContractsTopicError, OSError) as exc:
        print(f"linky-stream contract: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # aiokafka errors (broker unreachable, ...) have no common base we can name
        if type(exc).__module__.startswith("aiokafka"):
            print(f"linky-stream contract: Kafka error: {exc!r}", file=sys.stderr)
            return 1
        raise
    return 0


def version_from_args(args: argparse.Namespace) -> ContractVersion:
    """Build (and validate, through tables.contracts) the version described by ``set`` options."""
    if args.json is not None:
        others = (*_BATTERY_OPTIONS, *_ALERT_OPTIONS, *_TARIFF_OPTIONS, "rate")
        if args.offer is not None or any(getattr(args, n) not in (None, []) for n in others):
            raise ContractError("--json: give the whole version as JSON, without the other version options")
        raw = _load_json(args.json)
        if not isinstance(raw, dict):
            raise ContractError("--json: expected an object")
        raw = {**raw, "effective_from": args.effective_from}
        return version_from_dict(raw, path="--json")
    if args.offer is None and args.tariff is None:
        raise ContractError("--offer (none, virtual_battery, surplus_resale), --tariff or --json is required")
    offer = args.offer or "none"  # a version with a tariff only: no battery nor resale offer
    data: dict[str, Any] = {"effective_from": args.effective_from, "offer": offer}
    if offer == "virtual_battery":
        options = {
            "credit_ratio": args.credit_ratio,
            "settlement": args.settlement,
            "debit_priority": args.debit_priority,
            "overflow_policy": args.overflow,
            "overflow_rate_eur_per_kwh": args.overflow_rate,
            "subscription_eur_per_month": args.subscription,
        }
        battery: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        battery["capacity_wh"] = _capacity_wh(args)  # None = unlimited
        battery["fees_eur_per_kwh"] = dict(_fee(f) for f in args.fee)
        data["battery"] = battery
    else:
        misplaced = [name for name in _BATTERY_OPTIONS if getattr(args, name) not in (None, [])]
        if misplaced:
            raise ContractError(f"--{misplaced[0].replace('_', '-')}: only for --offer virtual_battery")
    if offer == "surplus_resale":
        if args.rate is None:
            raise ContractError("--rate: required for --offer surplus_resale (EUR per kWh)")
        data["resale"] = {"rate_eur_per_kwh": args.rate}
    elif args.rate is not None:
        raise ContractError("--rate: only for --offer surplus_resale (a battery sells overflow with --overflow-rate)")
    budget = _daily_budget_wh(args)
    if budget is not None:
        data["alerts"] = {"daily_budget_wh": budget}
    if args.tariff is not None:
        if not args.price:
            raise ContractError("--price: at least one PERIOD=EUR per kWh is required with --tariff")
        tariff: dict[str, Any] = {
            "option": args.tariff,
            "prices_eur_per_kwh": dict(_pair(p, "--price", "HP=0.2700") for p in args.price),
            "standing_charge_eur_per_month": args.standing_charge if args.standing_charge is not None else "0",
        }
        if args.installment is not None:
            tariff["installment_eur_per_month"] = args.installment
        data["tariff"] = tariff
    else:
        misplaced = [name for name in _TARIFF_OPTIONS[1:] if getattr(args, name) not in (None, [])]
        if misplaced:
            raise ContractError(f"--{misplaced[0].replace('_', '-')}: only with --tariff")
    return version_from_dict(data, path="set")


def anchor_from_args(args: argparse.Namespace) -> Anchor:
    """The invoice anchor described by ``anchor`` options."""
    day = _iso_date(args.date, "--date")
    if args.balance_wh is not None:
        balance = args.balance_wh
    else:
        kwh = _decimal(args.balance_kwh, "--balance-kwh")
        if kwh * 1000 != int(kwh * 1000):
            raise ContractError(f"--balance-kwh: at most 3 decimals (whole Wh), got {args.balance_kwh}")
        balance = int(kwh * 1000)
    if balance < 0:
        raise ContractError(f"balance must be >= 0, got {balance} Wh")
    return Anchor(date=day, balance_wh=balance, note=args.note)


def render_contract(contract: Contract, today: date | None = None) -> str:
    """Human-readable ``show``: the version in force today, the history, the anchors."""
    today = today or today_in_paris()
    current = effective_at(contract.versions, paris_midnight(today))
    lines = [f"PDL {contract.pdl}"]
    lines.append(
        "in force today: "
        + ("none (no version yet)" if current is None else f"{current.offer.value} since {current.effective_from}")
    )
    lines.append("versions:")
    for version in contract.versions:
        mark = "*" if version == current else ("+" if version.effective_from > today else " ")
        budget = version.daily_budget_wh
        alerts = "" if budget is None else f"; daily budget {_kwh(budget)} kWh"
        lines.append(f" {mark} {version.effective_from}  {_describe(version)}{alerts}{_describe_tariff(version)}")
    if not contract.versions:
        lines.append("   (none)")
    lines.append("anchors (invoice balances at 00:00 Europe/Paris):")
    for anchor in contract.anchors:
        note = f"  ({anchor.note})" if anchor.note else ""
        lines.append(f"   {anchor.date}  {anchor.balance_wh} Wh{note}")
    if not contract.anchors:
        lines.append("   (none)")
    lines.append("(* in force, + scheduled)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers

_BATTERY_OPTIONS = (
    "capacity_kwh", "capacity_wh", "credit_ratio", "settlement", "debit_priority", "overflow", "overflow_rate",
    "fee", "subscription",
)  # fmt: skip
_ALERT_OPTIONS = ("daily_budget_kwh", "daily_budget_wh")
_TARIFF_OPTIONS = ("tariff", "price", "standing_charge", "installment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linky-stream contract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default LINKY_KAFKA_BOOTSTRAP)")
    parser.add_argument("--topic", help="contracts topic (default LINKY_CONTRACTS_TOPIC)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_set = sub.add_parser("set", help="add a date-effective contract version (never retroactive)")
    p_set.add_argument("pdl")
    p_set.add_argument("--from", dest="effective_from", required=True, metavar="YYYY-MM-DD",
                       help="first day (Europe/Paris) the version applies; not before today")  # fmt: skip
    p_set.add_argument("--offer", choices=["none", "virtual_battery", "surplus_resale"], default=None)
    p_set.add_argument("--json", metavar="JSON|@FILE|-", help="the version as JSON (fields of tables/contracts.py)")
    cap = p_set.add_mutually_exclusive_group()
    cap.add_argument("--capacity-kwh", help="battery capacity in kWh (default: unlimited)")
    cap.add_argument("--capacity-wh", type=int, help="battery capacity in Wh")
    p_set.add_argument("--credit-ratio", help="credited kWh per injected kWh, 0..1 (default 1)")
    p_set.add_argument("--settlement", choices=["realtime", "monthly"])
    p_set.add_argument("--debit-priority", choices=["chronological", "offpeak_first", "peak_first"])
    p_set.add_argument("--overflow", choices=["lost", "sold"], help="what happens to credit above the capacity")
    p_set.add_argument("--overflow-rate", help="EUR/kWh paid for overflow (with --overflow sold)")
    p_set.add_argument("--fee", action="append", default=[], metavar="PERIOD=EUR",
                       help="restitution fee per kWh withdrawn, by period label or kind (HP, HC, BASE); repeatable")  # fmt: skip
    p_set.add_argument("--subscription", help="battery subscription, EUR per month")
    p_set.add_argument("--rate", help="surplus resale rate, EUR/kWh (--offer surplus_resale)")
    budget = p_set.add_mutually_exclusive_group()
    budget.add_argument("--daily-budget-kwh", help="this PDL's daily_budget alert: grid import per day (Europe/Paris) "
                        "above which it opens (any offer; default: LINKY_ALERT_DAILY_BUDGET_WH)")  # fmt: skip
    budget.add_argument("--daily-budget-wh", type=int, help="the same in Wh")
    p_set.add_argument("--tariff", choices=["base", "hchp", "tempo", "ejp"],
                       help="the offer's price option (any offer; without --offer the offer is none)")  # fmt: skip
    p_set.add_argument("--price", action="append", default=[], metavar="PERIOD=EUR",
                       help="price per kWh TTC, by period code (BASE; HP, HC; HPJB..HCJR; normal, peak), "
                       "label or kind; repeatable")  # fmt: skip
    p_set.add_argument("--standing-charge", help="the subscription (abonnement), EUR per month TTC")
    p_set.add_argument("--installment", help="monthly installment of the payment schedule (échéancier), EUR")

    p_anchor = sub.add_parser("anchor", help="record the battery balance printed on an invoice")
    p_anchor.add_argument("pdl")
    p_anchor.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="balance at 00:00 Europe/Paris")
    bal = p_anchor.add_mutually_exclusive_group(required=True)
    bal.add_argument("--balance-kwh", help="balance in kWh (as printed on the invoice)")
    bal.add_argument("--balance-wh", type=int, help="balance in Wh")
    p_anchor.add_argument("--note", default="", help="free text, e.g. the invoice number")

    p_show = sub.add_parser("show", help="print the PDL's current contract and its history")
    p_show.add_argument("pdl")
    p_show.add_argument("--json", action="store_true", help="print the raw document")
    return parser


def _capacity_wh(args: argparse.Namespace) -> int | None:
    if args.capacity_wh is not None:
        return args.capacity_wh
    if args.capacity_kwh is None:
        return None
    kwh = _decimal(args.capacity_kwh, "--capacity-kwh")
    if kwh * 1000 != int(kwh * 1000):
        raise ContractError(f"--capacity-kwh: at most 3 decimals (whole Wh), got {args.capacity_kwh}")
    return int(kwh * 1000)


def _daily_budget_wh(args: argparse.Namespace) -> int | None:
    if args.daily_budget_wh is not None:
        return args.daily_budget_wh  # validated (positive) by tables.contracts
    if args.daily_budget_kwh is None:
        return None
    kwh = _decimal(args.daily_budget_kwh, "--daily-budget-kwh")
    if kwh <= 0:
        raise ContractError(f"--daily-budget-kwh: must be > 0, got {args.daily_budget_kwh}")
    if kwh * 1000 != int(kwh * 1000):
        raise ContractError(f"--daily-budget-kwh: at most 3 decimals (whole Wh), got {args.daily_budget_kwh}")
    return int(kwh * 1000)


def _kwh(wh: int) -> str:
    """Wh as a plain kWh number: 12500 -> "12.5", 12000 -> "12"."""
    text = f"{Decimal(wh) / 1000:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _fee(text: str) -> tuple[str, str]:
    return _pair(text, "--fee", "HP=0.1122")


def _pair(text: str, option: str, example: str) -> tuple[str, str]:
    label, sep, amount = text.partition("=")
    if not sep or not label.strip():
        raise ContractError(f"{option}: expected PERIOD=EUR (e.g. {example}), got {text!r}")
    return label.strip(), amount.strip()


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ContractError(f"{option}: not a number: {text!r}") from None
    if not value.is_finite():
        raise ContractError(f"{option}: must be finite, got {text!r}")
    return value


def _iso_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ContractError(f"{option}: expected YYYY-MM-DD, got {text!r}") from None


def _load_json(text: str) -> Any:
    if text == "-":
        source = sys.stdin.read()
    elif text.startswith("@"):
        with open(text[1:], encoding="utf-8") as fh:
            source = fh.read()
    else:
        source = text
    try:
        return json.loads(source)
    except ValueError as exc:
        raise ContractError(f"--json: not valid JSON: {exc}") from None


def _describe(version: ContractVersion) -> str:
    if version.battery is not None:
        b = version.battery
        capacity = "unlimited" if b.capacity_wh is None else f"{b.capacity_wh} Wh"
        fees = ", ".join(f"{k} {v}" for k, v in b.fees_eur_per_kwh.items()) or "none"
        overflow = b.overflow_policy.value + (
            f" at {b.overflow_rate_eur_per_kwh} EUR/kWh" if b.overflow_rate_eur_per_kwh is not None else ""
        )
        return (
            f"virtual_battery capacity {capacity}, ratio {b.credit_ratio}, {b.settlement.value} settlement, "
            f"{b.debit_priority.value}, overflow {overflow}, fees EUR/kWh: {fees}, "
            f"subscription {b.subscription_eur_per_month} EUR/month"
        )
    if version.resale is not None:
        return f"surplus_resale at {version.resale.rate_eur_per_kwh} EUR/kWh"
    return version.offer.value


def _describe_tariff(version: ContractVersion) -> str:
    t = version.tariff
    if t is None:
        return ""
    prices = ", ".join(f"{k} {v}" for k, v in t.prices_eur_per_kwh.items())
    installment = "" if t.installment_eur_per_month is None else f", installment {t.installment_eur_per_month} EUR/month"
    return (
        f"; tariff {t.option.value} EUR/kWh: {prices}, standing charge {t.standing_charge_eur_per_month} EUR/month"
        f"{installment}"
    )
