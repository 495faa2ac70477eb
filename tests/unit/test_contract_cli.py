"""The contract CLI's argument layer and the contracts-topic record codec (no Kafka here;
tests/integration/test_battery_contracts.py runs the CLI against the real broker)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from stream.contract_cli import anchor_from_args, build_parser, render_contract, version_from_args
from stream.contracts import decode_contract, encode_contract, partition_for
from tables.contracts import (
    AlertTerms,
    Anchor,
    Contract,
    ContractError,
    DebitPriority,
    Offer,
    OverflowPolicy,
    Settlement,
    add_anchor,
    add_version,
    version_to_dict,
)

PDL = "12345678901234"


def set_args(*argv: str):
    return build_parser().parse_args(["set", PDL, *argv])


def test_set_options_build_a_validated_battery_version() -> None:
    args = set_args("--from", "2027-01-01", "--offer", "virtual_battery", "--capacity-kwh", "10.5",
                    "--settlement", "monthly", "--debit-priority", "offpeak_first", "--fee", "HP=0.1122",
                    "--fee", "HC = 0.0945", "--subscription", "6", "--overflow", "sold", "--overflow-rate", "0.04")
    version = version_from_args(args)
    assert version.effective_from == date(2027, 1, 1)
    assert version.offer is Offer.VIRTUAL_BATTERY
    terms = version.battery
    assert terms is not None
    assert terms.capacity_wh == 10_500
    assert terms.settlement is Settlement.MONTHLY
    assert terms.debit_priority is DebitPriority.OFFPEAK_FIRST
    assert terms.fees_eur_per_kwh == {"HP": Decimal("0.1122"), "HC": Decimal("0.0945")}
    assert terms.overflow_policy is OverflowPolicy.SOLD and terms.overflow_rate_eur_per_kwh == Decimal("0.04")
    assert terms.subscription_eur_per_month == Decimal(6)


def test_unset_battery_options_take_the_documented_defaults() -> None:
    terms = version_from_args(set_args("--from", "2027-01-01", "--offer", "virtual_battery")).battery
    assert terms is not None
    assert terms.capacity_wh is None and terms.credit_ratio == Decimal(1)
    assert terms.settlement is Settlement.REALTIME and terms.debit_priority is DebitPriority.CHRONOLOGICAL
    assert terms.overflow_policy is OverflowPolicy.LOST and dict(terms.fees_eur_per_kwh) == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--offer", "surplus_resale"], "--rate: required"),
        (["--offer", "virtual_battery", "--rate", "0.1"], "--rate: only for --offer surplus_resale"),
        (["--offer", "surplus_resale", "--rate", "0.1", "--fee", "HP=1"], "--fee: only for --offer virtual_battery"),
        (["--offer", "virtual_battery", "--credit-ratio", "1.5"], "credit_ratio: must be between 0 and 1"),
        (["--offer", "virtual_battery", "--capacity-kwh", "1.0005"], "at most 3 decimals"),
        (["--offer", "virtual_battery", "--fee", "0.11"], "expected PERIOD=EUR"),
        (["--offer", "virtual_battery", "--overflow", "sold"], "overflow_rate_eur_per_kwh: required"),
        ([], "--offer"),
        (["--offer", "none", "--json", "{}"], "without the other version options"),
    ],
)
def test_invalid_set_options_are_refused_with_the_option_named(argv: list[str], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        version_from_args(set_args("--from", "2027-01-01", *argv))


def test_set_accepts_a_whole_version_as_json() -> None:
    version = version_from_args(set_args("--from", "2027-03-01", "--json",
                                         '{"offer": "surplus_resale", "resale": {"rate_eur_per_kwh": "0.1269"}}'))
    assert version.effective_from == date(2027, 3, 1)
    assert version.resale is not None and version.resale.rate_eur_per_kwh == Decimal("0.1269")


def test_anchor_options_in_kwh_or_wh() -> None:
    parser = build_parser()
    kwh = anchor_from_args(parser.parse_args(["anchor", PDL, "--date", "2026-04-01", "--balance-kwh", "451.25",
                                              "--note", "invoice 42"]))
    assert kwh == Anchor(date(2026, 4, 1), 451_250, "invoice 42")
    wh = anchor_from_args(parser.parse_args(["anchor", PDL, "--date", "2026-04-01", "--balance-wh", "7"]))
    assert wh.balance_wh == 7
    with pytest.raises(ContractError, match="whole Wh"):
        anchor_from_args(parser.parse_args(["anchor", PDL, "--date", "2026-04-01", "--balance-kwh", "0.0001"]))
    with pytest.raises(ContractError, match="YYYY-MM-DD"):
        anchor_from_args(parser.parse_args(["anchor", PDL, "--date", "01/04/2026", "--balance-kwh", "1"]))


def test_show_marks_the_version_in_force_and_the_scheduled_ones() -> None:
    contract = Contract(pdl=PDL)
    for argv in (["--from", "2026-01-01", "--offer", "virtual_battery"],
                 ["--from", "2026-06-01", "--offer", "surplus_resale", "--rate", "0.04"],
                 ["--from", "2027-01-01", "--offer", "none"]):
        contract = add_version(contract, version_from_args(set_args(*argv)), today=date(2026, 1, 1))
    contract = add_anchor(contract, Anchor(date(2026, 5, 1), 12_000, "inv 5"))
    text = render_contract(contract, today=date(2026, 11, 23))
    lines = text.splitlines()
    assert "in force today: surplus_resale since 2026-06-01" in lines
    assert any(line.startswith(" * 2026-06-01  surplus_resale at 0.04") for line in lines)
    assert any(line.startswith("   2026-01-01  virtual_battery capacity unlimited") for line in lines)
    assert any(line.startswith(" + 2027-01-01  none") for line in lines)
    assert "   2026-05-01  12000 Wh  (inv 5)" in lines


def test_record_codec_round_trips_and_checks_the_key() -> None:
    contract = add_anchor(Contract(pdl=PDL), Anchor(date(2026, 4, 1), 1000))
    value = encode_contract(contract)
    assert decode_contract(value, pdl=PDL) == contract
    with pytest.raises(ContractError, match="record key"):
        decode_contract(value, pdl="99999999999999")
    with pytest.raises(ContractError, match="not JSON"):
        decode_contract(b"{oops", pdl=PDL)


def test_partition_is_kafkas_default_murmur2_of_the_pdl() -> None:
    # Kafka's Java client: partition = toPositive(murmur2(key)) % n, with murmur2 reference values
    # from Kafka's UtilsTest ("21" -> -973932308, "foobar" -> -790332482, ...).
    java_murmur2 = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536}
    for key, signed in java_murmur2.items():
        assert partition_for(key, 12) == (signed & 0x7FFFFFFF) % 12
    assert {partition_for(f"{i:014d}", 4) for i in range(200)} == {0, 1, 2, 3}


def test_daily_budget_option_sets_the_pdl_budget_for_any_offer() -> None:
    battery = version_from_args(set_args("--from", "2027-01-01", "--offer", "virtual_battery", "--daily-budget-kwh", "12.5"))
    assert battery.alerts == AlertTerms(daily_budget_wh=12_500) and battery.battery is not None
    none = version_from_args(set_args("--from", "2027-01-01", "--offer", "none", "--daily-budget-wh", "8000"))
    assert none.daily_budget_wh == 8000
    resale = version_from_args(set_args("--from", "2027-01-01", "--offer", "surplus_resale", "--rate", "0.1",
                                        "--daily-budget-kwh", "7"))  # fmt: skip
    assert resale.daily_budget_wh == 7000
    # Left out: no alerts section, the deployment default (LINKY_ALERT_DAILY_BUDGET_WH) applies.
    default = version_from_args(set_args("--from", "2027-01-01", "--offer", "none"))
    assert default.alerts is None and "alerts" not in version_to_dict(default)
    # In a --json version, as the "alerts" section.
    as_json = version_from_args(set_args("--from", "2027-01-01", "--json",
                                         '{"offer": "none", "alerts": {"daily_budget_wh": 9000}}'))  # fmt: skip
    assert as_json.daily_budget_wh == 9000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--daily-budget-kwh", "0"], "--daily-budget-kwh: must be > 0"),
        (["--daily-budget-kwh", "-3"], "--daily-budget-kwh: must be > 0"),
        (["--daily-budget-kwh", "12.0005"], "--daily-budget-kwh: at most 3 decimals"),
        (["--daily-budget-kwh", "lots"], "--daily-budget-kwh: not a number"),
        (["--daily-budget-wh", "0"], r"alerts\.daily_budget_wh: expected a positive integer"),
    ],
)
def test_invalid_daily_budget_is_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        version_from_args(set_args("--from", "2027-01-01", "--offer", "none", *argv))


def test_daily_budget_options_are_exclusive_and_not_mixed_with_json() -> None:
    with pytest.raises(SystemExit):  # argparse: mutually exclusive
        set_args("--from", "2027-01-01", "--offer", "none", "--daily-budget-kwh", "1", "--daily-budget-wh", "1000")
    with pytest.raises(ContractError, match="without the other version options"):
        version_from_args(set_args("--from", "2027-01-01", "--json", '{"offer": "none"}', "--daily-budget-kwh", "5"))


def test_show_prints_the_daily_budget_of_each_version() -> None:
    contract = Contract(pdl=PDL)
    for argv in (["--from", "2026-01-01", "--offer", "none", "--daily-budget-kwh", "12.5"],
                 ["--from", "2026-06-01", "--offer", "virtual_battery", "--daily-budget-wh", "9000"],
                 ["--from", "2027-01-01", "--offer", "none"]):  # fmt: skip
        contract = add_version(contract, version_from_args(set_args(*argv)), today=date(2026, 1, 1))
    lines = render_contract(contract, today=date(2026, 11, 23)).splitlines()
    assert "   2026-01-01  none; daily budget 12.5 kWh" in lines
    assert any(line.startswith(" * 2026-06-01  virtual_battery") and line.endswith("; daily budget 9 kWh") for line in lines)
    assert " + 2027-01-01  none" in lines  # no budget of its own: the deployment default
