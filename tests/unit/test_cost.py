"""tables/cost.py and the cost of consumption buckets, against independent models written from the
rule of docs/cost.md (Decimal at 60 digits, half-even to the cent; not the code's Fractions)."""

from __future__ import annotations

import decimal
import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tables.calendar import PARIS, day_bounds
from tables.contracts import ContractVersion, version_from_dict
from tables.cost import EnergyPart, StandingPart, bucket_cost, hours_in_day, period_name, render_cost
from tables.consumption import ConsumptionState, render_conso_payload, state_from_bytes, state_to_bytes
from tests.unit.test_consumption import Store, paris

HI = decimal.Context(prec=60)
CENT = Decimal("0.01")


def hchp(day: str, hp: str = "0.2700", hc: str = "0.2068", standing: str = "15.37", **extra: str) -> ContractVersion:
    tariff = {"option": "hchp", "prices_eur_per_kwh": {"HP": hp, "HC": hc}, "standing_charge_eur_per_month": standing}
    tariff.update(extra)
    return version_from_dict({"effective_from": day, "tariff": tariff})


def days_in_month(day: date) -> int:
    nxt = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return (nxt - day.replace(day=1)).days


def model_day(wh: dict[str, int], prices: dict[str, str], monthly: str, day: date) -> tuple[Decimal, Decimal]:
    """Energy and standing of one day, the documented way: Wh x price / 1000, sum, round once;
    monthly / days in month, round once."""
    energy = sum((HI.divide(HI.multiply(Decimal(w), Decimal(prices[r])), Decimal(1000)) for r, w in wh.items()),
                 Decimal(0))  # fmt: skip
    standing = HI.divide(Decimal(monthly), Decimal(days_in_month(day)))
    return (energy.quantize(CENT, rounding=decimal.ROUND_HALF_EVEN),
            standing.quantize(CENT, rounding=decimal.ROUND_HALF_EVEN))  # fmt: skip


def test_the_worked_day_of_docs_cost_md() -> None:
    # 2027-01-12, HC 4 321 Wh, HP 7 654 Wh, HP 0.2700, HC 0.2068, 15.37 EUR/month, January = 31 days
    day = date(2027, 1, 12)
    cost = render_cost(bucket_cost([EnergyPart(day, {"EASF01": 4321, "EASF02": 7654})], [StandingPart(day)],
                                   [hchp("2027-01-01")]))  # fmt: skip
    assert cost == {"energy_eur": "2.96", "standing_eur": "0.50", "total_eur": "3.46",
                    "by_period": {"EASF01": "0.89", "EASF02": "2.07"}, "tariff_from": "2027-01-01"}  # fmt: skip


def test_no_tariff_no_cost_and_days_before_the_tariff_are_not_priced() -> None:
    plain = version_from_dict({"effective_from": "2027-01-01", "offer": "none"})
    day = date(2027, 1, 12)
    assert bucket_cost([EnergyPart(day, {"EASF01": 1000})], [StandingPart(day)], [plain]) is None
    assert bucket_cost([EnergyPart(day, {"EASF01": 1000})], [StandingPart(day)], []) is None
    later = hchp("2027-01-20")
    assert bucket_cost([EnergyPart(day, {"EASF01": 1000})], [StandingPart(day)], [plain, later]) is None


@settings(max_examples=60, deadline=None)
@given(
    day=st.sampled_from([date(2026, 3, 29), date(2026, 10, 25), date(2027, 2, 14), date(2028, 2, 29)]),
    wh=st.lists(st.integers(0, 4000), min_size=25, max_size=25),
    hp=st.decimals(min_value=Decimal("0"), max_value=Decimal("2"), places=4),
    standing=st.decimals(min_value=Decimal("0"), max_value=Decimal("80"), places=2),
)
def test_hours_of_any_day_sum_exactly_to_the_day(day: date, wh: list[int], hp: Decimal, standing: Decimal) -> None:
    """DST days (23 and 25 hours) included: the exact hour costs add up to the day's cost."""
    versions = [hchp("2026-01-01", hp=str(hp), standing=str(standing))]
    hours = hours_in_day(day)
    assert hours == int((day_bounds(day)[1] - day_bounds(day)[0]).total_seconds() // 3600)
    per_hour = [{"EASF02": w} for w in wh[:hours]]
    parts = [bucket_cost([EnergyPart(day, h)], [StandingPart(day, Fraction(1, hours))], versions) for h in per_hour]
    whole = bucket_cost([EnergyPart(day, {"EASF02": sum(wh[:hours])})], [StandingPart(day)], versions)
    assert whole is not None and all(p is not None for p in parts)
    assert sum(p.energy for p in parts if p) == whole.energy
    assert sum(p.standing for p in parts if p) == whole.standing == Fraction(standing) / days_in_month(day)
    # and the day's rounded amounts are the documented model's
    energy, stand = model_day({"EASF02": sum(wh[:hours])}, {"EASF02": str(hp)}, str(standing), day)
    rendered = render_cost(whole)
    assert rendered is not None
    assert (rendered["energy_eur"], rendered["standing_eur"]) == (str(energy), str(stand))


def test_days_of_a_month_sum_to_the_monthly_standing_charge() -> None:
    versions = [hchp("2027-02-01", standing="15.37")]
    feb = [StandingPart(date(2027, 2, d)) for d in range(1, 29)]
    cost = bucket_cost([], feb, versions)
    assert cost is not None and cost.standing == Fraction(Decimal("15.37"))


def test_tempo_and_ejp_registers_are_named_and_priced_by_their_period() -> None:
    tempo = version_from_dict({"effective_from": "2027-01-01", "tariff": {"option": "tempo", "prices_eur_per_kwh": {
        "HCJB": "0.1296", "HPJB": "0.1609", "HCJW": "0.1486", "HPJW": "0.1894", "HCJR": "0.1568", "HPJR": "0.7562"},
        "standing_charge_eur_per_month": "0"}})  # fmt: skip
    assert period_name("EASF06", tempo.tariff.option, "HP  ROUGE").to_dict() == {  # type: ignore[union-attr]
        "label": "HP ROUGE", "kind": "HP", "period": "HPJR", "tempo_colour": "red"}
    assert period_name("BBRHCJW", None).to_dict() == {"label": "HC BLANC", "kind": "HC", "period": "HCJW",
                                                      "tempo_colour": "white"}  # fmt: skip
    day = date(2027, 1, 9)
    wh = {"EASF01": 3000, "EASF02": 5000, "EASF05": 1000, "EASF06": 2000}
    prices = {"EASF01": "0.1296", "EASF02": "0.1609", "EASF05": "0.1568", "EASF06": "0.7562"}
    cost = render_cost(bucket_cost([EnergyPart(day, wh)], [StandingPart(day)], [tempo]))
    assert cost is not None and cost["energy_eur"] == str(model_day(wh, prices, "0", day)[0])  # 2.75
    ejp = version_from_dict({"effective_from": "2027-01-01", "tariff": {"option": "ejp", "prices_eur_per_kwh": {
        "normal": "0.1500", "peak": "1.0500"}}})  # fmt: skip
    assert period_name("EJPHPM", ejp.tariff.option).to_dict()["period"] == "peak"  # type: ignore[union-attr]
    cost = render_cost(bucket_cost([EnergyPart(day, {"EASF01": 10_000, "EASF02": 333})], [], [ejp]))
    assert cost is not None and cost["by_period"] == {"EASF01": "1.50", "EASF02": "0.35"}  # 0.34965 -> 0.35
    assert cost["energy_eur"] == "1.85"  # 1.84965, rounded once


def test_a_register_without_price_is_reported_not_guessed() -> None:
    day = date(2027, 1, 9)
    cost = render_cost(bucket_cost([EnergyPart(day, {"EASF01": 1000, "EASF07": 500})], [], [hchp("2027-01-01")]))
    assert cost is not None and cost["unpriced_wh"] == {"EASF07": 500} and cost["energy_eur"] == "0.21"


def feed_month(store: Store, first: date, days: int, seed: int) -> dict[date, dict[str, int]]:
    """Readings every 30 min (HC 22:00-06:00 on EASF01, else HP on EASF02) with a 7-hour gap;
    returns the model's Wh per day computed from the same index series."""
    rng = random.Random(seed)
    idx = {"EASF01": 1_000_000, "EASF02": 2_000_000}
    t = datetime.combine(first, datetime.min.time(), tzinfo=PARIS)
    end = t + timedelta(days=days)
    series = [(t, dict(idx))]
    while t < end:
        t = (t.astimezone(PARIS) + timedelta(minutes=30)).astimezone(PARIS)
        if t.astimezone(PARIS).date() == first + timedelta(days=10) and t.hour == 9:
            t = t + timedelta(hours=7)  # gap, inside one day: no split across days to model
        reg = "EASF01" if t.hour < 6 or t.hour >= 22 else "EASF02"
        idx[reg] += rng.randint(0, 400)
        series.append((t, dict(idx)))
    model: dict[date, dict[str, int]] = {}
    for (a, ia), (b, ib) in zip(series, series[1:]):
        day = (b - timedelta(microseconds=1)).astimezone(PARIS).date()
        for r in ia:
            model.setdefault(day, {}).setdefault(r, 0)
            model[day][r] += ib[r] - ia[r]
    for when, index in series:
        tariff_index = 1 if when.hour < 6 or when.hour >= 22 else 2
        store.feed({"pdl": "P1", "meter": "M1", "time": when.isoformat(), "import_wh_by_period": index,
                    "export_wh": None, "tariff_index": tariff_index,
                    "tariff_period": "HEURE  CREUSE" if tariff_index == 1 else "HEURE  PLEINE"})  # fmt: skip
    return model


def test_a_month_with_a_price_change_is_priced_day_by_day_as_the_model() -> None:
    store = Store()
    model = feed_month(store, date(2027, 1, 1), 31, seed=11)
    versions = (hchp("2027-01-01"), hchp("2027-01-16", hp="0.2881", hc="0.2146", standing="15.80"))
    days = store.query("day")
    months = [b for b in store.query_with("month", versions)]
    by_day = {b["start"][:10]: b for b in store.query_with("day", versions)}
    total_energy = Decimal(0)
    standing = Decimal(0)
    for day, wh in sorted(model.items()):
        if day.month != 1:
            continue
        v = versions[1] if day >= date(2027, 1, 16) else versions[0]
        prices = {"EASF01": str(v.tariff.prices_eur_per_kwh["HC"]), "EASF02": str(v.tariff.prices_eur_per_kwh["HP"])}  # type: ignore[union-attr]
        energy, stand = model_day(wh, prices, str(v.tariff.standing_charge_eur_per_month), day)  # type: ignore[union-attr]
        got = by_day[day.isoformat()]["cost"]
        assert (got["energy_eur"], got["standing_eur"]) == (str(energy), str(stand)), day
        assert got["tariff_from"] == v.effective_from.isoformat()
        total_energy += sum((HI.divide(HI.multiply(Decimal(w), Decimal(prices[r])), Decimal(1000))
                             for r, w in wh.items()), Decimal(0))  # fmt: skip
        standing += HI.divide(v.tariff.standing_charge_eur_per_month, Decimal(31))  # type: ignore[union-attr]
    (jan,) = [m for m in months if m["start"].startswith("2027-01")]
    assert jan["cost"]["energy_eur"] == str(total_energy.quantize(CENT, rounding=decimal.ROUND_HALF_EVEN))
    assert jan["cost"]["standing_eur"] == str(standing.quantize(CENT, rounding=decimal.ROUND_HALF_EVEN))
    assert jan["cost"]["tariff_from"] == "2027-01-01" and jan["cost"]["tariff_changes"] == ["2027-01-16"]
    assert len(days) >= 31
    # the meter's labels name the registers, padding trimmed
    assert jan["periods"]["EASF01"] == {"label": "HEURE CREUSE", "kind": "HC", "period": "HC", "tempo_colour": None}
    # the open month's conso payload agrees with the query
    payload = render_conso_payload(store.state, pdl="P1", versions=versions, load=store.load)
    assert payload["month"]["cost"] == [m for m in months if m["start"] == payload["month"]["start"]][0]["cost"]
    assert payload["day"]["periods"]["EASF02"]["label"] == "HEURE PLEINE"


def test_labels_survive_storage_and_old_values_read_without_them() -> None:
    state = ConsumptionState(labels={"EASF01": "HEURE CREUSE"})
    assert state_from_bytes(state_to_bytes(state)).labels == {"EASF01": "HEURE CREUSE"}
    assert b'"l"' not in state_to_bytes(ConsumptionState())


def test_month_cost_is_null_when_a_day_needed_for_the_split_is_gone() -> None:
    store = Store()
    feed_month(store, date(2027, 1, 1), 20, seed=3)
    versions = (hchp("2027-01-01"), hchp("2027-01-10", hp="0.30"))
    store.records.pop(("D", "2027-01-05"))
    (jan,) = store.query_with("month", versions)
    assert jan["cost"] is None and jan["import_wh"] > 0


# --------------------------------------------------------------------------- index statements

from tables.consumption import index_csv, query_index  # noqa: E402


def test_index_statements_chain_to_the_wh_and_start_at_the_first_reading() -> None:
    store = Store()
    feed_month(store, date(2027, 1, 20), 16, seed=5)  # into February, with a 7-hour gap
    for granularity in ("day", "month"):
        rows = query_index(store.state, granularity, None, None, store.load)
        buckets = store.query(granularity)
        assert [r["start"] for r in rows] == [b["start"] for b in buckets]
        for row, bucket in zip(rows, buckets):
            for register, idx in row["indexes"].items():
                assert idx["end_wh"] - idx["start_wh"] == bucket["by_period"].get(register, 0) == idx["wh"]
        for a, b in zip(rows, rows[1:]):
            assert {r: i["end_wh"] for r, i in a["indexes"].items()} == {r: i["start_wh"] for r, i in b["indexes"].items()}
        assert rows[0]["indexes"]["EASF01"]["start_wh"] == 1_000_000  # the first reading's index
        assert rows[0]["indexes"]["EASF02"]["start_wh"] == 2_000_000
        assert rows[-1]["indexes"]["EASF02"]["end_wh"] == store.state.cursor.imports["EASF02"]
        assert rows[0]["indexes"]["EASF01"]["label"] == "HEURE CREUSE"
    days = query_index(store.state, "day", paris(2027, 1, 25), paris(2027, 1, 27), store.load)
    assert [d["start"][:10] for d in days] == ["2027-01-25", "2027-01-26"]
    last = days[0]["last_reading"]
    assert last["time"] == "2027-01-26T00:00:00+01:00"  # every 30 min: the one at midnight ends the day
    assert days[0]["indexes"]["EASF01"]["start_wh"] <= last["import_wh_by_period"]["EASF01"] <= days[0]["indexes"]["EASF01"]["end_wh"]
    text = index_csv(days)
    lines = text.splitlines()
    assert lines[0] == "start,end,register,label,start_wh,end_wh,wh,last_reading_time,last_reading_wh"
    assert len(lines) == 1 + 2 * 2
    first = lines[1].split(",")
    assert first[2] == "EASF01" and int(first[5]) - int(first[4]) == int(first[6])


def test_index_statements_with_injection_and_a_rollover() -> None:
    store = Store()
    t0 = paris(2027, 3, 1, 12)
    store.feed({"pdl": "P1", "meter": "M1", "time": t0.isoformat(), "import_wh_by_period": {"EASF01": 999_999_500},
                "export_wh": 10})  # fmt: skip
    store.feed({"pdl": "P1", "meter": "M1", "time": (t0 + timedelta(days=1)).isoformat(),
                "import_wh_by_period": {"EASF01": 300}, "export_wh": 70})  # fmt: skip
    rows = query_index(store.state, "day", None, None, store.load)
    # 800 Wh over 24 h split at midnight in proportion to time: 12 h on the 1st, 12 h on the 2nd
    assert [r["indexes"]["EASF01"]["wh"] for r in rows] == [400, 400]
    assert rows[1]["indexes"]["EASF01"]["start_wh"] == 999_999_900  # = the 1st's end
    assert rows[0]["indexes"]["EASF01"]["start_wh"] == 999_999_500
    assert rows[-1]["indexes"]["EASF01"]["end_wh"] == 300
    assert sum(r["indexes"]["EASF01"]["wh"] for r in rows) == 800
    assert rows[0]["indexes"]["EAIT"]["start_wh"] == 10 and rows[-1]["indexes"]["EAIT"]["end_wh"] == 70
    assert rows[0]["indexes"]["EAIT"]["label"] == "INJECTION"


def test_half_cents_round_to_even_once_per_bucket() -> None:
    day = date(2027, 1, 9)
    v = [version_from_dict({"effective_from": "2027-01-01", "tariff": {"option": "base",
                            "prices_eur_per_kwh": {"BASE": "0.1"}}})]  # fmt: skip
    # 50 Wh x 0.1 = 0.005 -> 0.00 (even); 150 Wh -> 0.015 -> 0.02; 250 Wh -> 0.025 -> 0.02
    got = [render_cost(bucket_cost([EnergyPart(day, {"EASF01": wh})], [], v))["energy_eur"]  # type: ignore[index]
           for wh in (50, 150, 250)]  # fmt: skip
    assert got == ["0.00", "0.02", "0.02"]
    # rounded once per bucket: two registers at 0.005 each make 0.01, not 0.00 + 0.00
    two = render_cost(bucket_cost([EnergyPart(day, {"EASF01": 50, "TOTAL": 50})], [], [
        version_from_dict({"effective_from": "2027-01-01", "tariff": {"option": "base",
                           "prices_eur_per_kwh": {"BASE": "0.1"}}})]))  # fmt: skip
    assert two is not None and two["energy_eur"] == "0.01" and two["by_period"] == {"EASF01": "0.00", "TOTAL": "0.00"}
