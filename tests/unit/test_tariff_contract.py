"""The price grid ("tariff") of a contract version: parsing, validation, JSON round trip, CLI."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from stream.contract_cli import build_parser, render_contract, version_from_args
from tables.contracts import (
    Contract,
    ContractError,
    Offer,
    TariffOption,
    contract_from_dict,
    contract_to_dict,
    version_from_dict,
    version_to_dict,
)

PDL = "12345678901234"


def set_args(*argv: str):
    return build_parser().parse_args(["set", PDL, "--from", "2027-01-01", *argv])


def test_cli_tariff_alone_builds_a_version_with_offer_none() -> None:
    version = version_from_args(set_args("--tariff", "hchp", "--price", "HP=0.2700", "--price", "HC = 0.2068",
                                         "--standing-charge", "15.37", "--installment", "95"))
    assert version.offer is Offer.NONE and version.battery is None
    tariff = version.tariff
    assert tariff is not None and tariff.option is TariffOption.HCHP
    assert tariff.prices_eur_per_kwh == {"HP": Decimal("0.2700"), "HC": Decimal("0.2068")}
    assert tariff.standing_charge_eur_per_month == Decimal("15.37")
    assert tariff.installment_eur_per_month == Decimal(95)


def test_cli_tariff_and_battery_offer_together() -> None:
    version = version_from_args(set_args("--offer", "virtual_battery", "--fee", "HP=0.1", "--tariff", "base",
                                         "--price", "BASE=0.1952", "--standing-charge", "12.03"))
    assert version.battery is not None and version.battery.fees_eur_per_kwh == {"HP": Decimal("0.1")}
    assert version.tariff is not None and version.tariff.installment_eur_per_month is None
    assert version.tariff.price_for(None, "BASE", "BASE") == Decimal("0.1952")


def test_tariff_json_round_trip_keeps_every_field_and_old_documents_unchanged() -> None:
    raw = {"effective_from": "2027-02-01", "offer": "none",
           "tariff": {"option": "tempo", "prices_eur_per_kwh": {"HCJB": "0.1296", "HPJB": "0.1609", "HCJW": "0.1486",
                                                                "HPJW": "0.1894", "HCJR": "0.1568", "HPJR": "0.7562"},
                      "standing_charge_eur_per_month": "15.50", "installment_eur_per_month": "80.00"}}
    version = version_from_dict(raw)
    again = version_from_dict(json.loads(json.dumps(version_to_dict(version))))
    assert again == version
    assert version_to_dict(version)["tariff"] == raw["tariff"]
    without = version_to_dict(version_from_dict({"effective_from": "2027-02-01", "offer": "none"}))
    assert "tariff" not in without  # documents written before the field keep their bytes


def test_price_lookup_is_label_then_code_then_kind() -> None:
    version = version_from_dict({"effective_from": "2027-01-01", "tariff": {
        "option": "tempo", "prices_eur_per_kwh": {"HC": "0.10", "HP": "0.20", "HPJR": "0.70", "HC  ROUGE": "0.15"}}})
    tariff = version.tariff
    assert tariff is not None
    assert tariff.price_for("HC  BLEU", "HCJB", "HC") == Decimal("0.10")
    assert tariff.price_for("HP  ROUGE", "HPJR", "HP") == Decimal("0.70")
    assert tariff.price_for("HC  ROUGE", "HCJR", "HC") == Decimal("0.15")


@pytest.mark.parametrize(
    ("tariff", "message"),
    [
        ({"option": "hchp", "prices_eur_per_kwh": {"HP": "0.27"}}, "no price for HC"),
        ({"option": "tempo", "prices_eur_per_kwh": {"HPJB": "0.2"}}, "no price for HCJB, HCJW"),
        ({"option": "ejp", "prices_eur_per_kwh": {"normal": "0.2"}}, "no price for peak"),
        ({"option": "weekend", "prices_eur_per_kwh": {"BASE": "0.2"}}, "option: expected one of base, hchp"),
        ({"prices_eur_per_kwh": {"BASE": "0.2"}}, "option: required"),
        ({"option": "base", "prices_eur_per_kwh": {"BASE": "-0.2"}}, "must be >= 0"),
        ({"option": "base", "prices_eur_per_kwh": {"BASE": "abc"}}, "not a decimal number"),
        ({"option": "base", "prices_eur_per_kwh": {}}, "non-empty object"),
        ({"option": "base", "prices_eur_per_kwh": {"BASE": "0.2"}, "standing_charge_eur_per_month": "x"},
         "standing_charge_eur_per_month: not a decimal"),
        ({"option": "base", "prices_eur_per_kwh": {"BASE": "0.2"}, "vat": "20"}, "unknown field"),
    ],
)
def test_invalid_tariffs_are_refused_with_the_field_named(tariff: dict, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        version_from_dict({"effective_from": "2027-01-01", "tariff": tariff})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tariff", "hchp"], "--price: at least one"),
        (["--tariff", "hchp", "--price", "0.27"], "expected PERIOD=EUR"),
        (["--offer", "none", "--price", "HP=0.27"], "--price: only with --tariff"),
        (["--offer", "none", "--installment", "95"], "--installment: only with --tariff"),
        (["--tariff", "hchp", "--price", "HP=0.27"], "no price for HC"),
        (["--json", "{}", "--tariff", "base"], "without the other version options"),
    ],
)
def test_invalid_tariff_options_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        version_from_args(set_args(*argv))


def test_show_prints_the_price_grid() -> None:
    version = version_from_args(set_args("--tariff", "hchp", "--price", "HP=0.27", "--price", "HC=0.2068",
                                         "--standing-charge", "15.37", "--installment", "95"))
    text = render_contract(Contract(PDL, (version,)), today=date(2026, 12, 1))
    assert "tariff hchp EUR/kWh: HP 0.27, HC 0.2068, standing charge 15.37 EUR/month, installment 95 EUR/month" in text
    doc = contract_from_dict(contract_to_dict(Contract(PDL, (version,))))
    assert doc.versions[0].tariff == version.tariff
