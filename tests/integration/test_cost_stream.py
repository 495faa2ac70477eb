"""Euros end to end (issue 11): real Kafka, real Redis, the real worker subprocess, contracts
written with the real CLI (``--tariff``, ``--price``, ``--standing-charge``, ``--installment``).

Two meters over January of next year (future dates, as the CLI requires; placed on the product's
clock so ``pytest --clock-at`` holds) and the first two days of February, hourly readings:

- ``hchp``: a producer on HP/HC with a small virtual battery (overflow sold: a cagnotte), fees and
  a battery subscription, prices changed on the 16th, an installment of 20 EUR/month (below what it
  uses: ``bill_over_installment`` opens once in January and clears when February starts);
- ``tempo``: a Tempo meter (six registers EASF01-06, colours per 06:00-06:00 Tempo day, labels
  padded as on the wire), prices changed on the 16th.

Expected values come from the simulators' ground truth through models written from docs/cost.md
(Decimal, half-even once per bucket) and, for the battery lines, battery_world's realtime model.
"""

from __future__ import annotations

import asyncio
import csv
import decimal
import io
import json
import random
import uuid
from calendar import monthrange
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream import clock
from tests.conftest import free_port
from tests.integration.battery_world import (
    HOUR,
    PARIS,
    Interval,
    Meter,
    Terms,
    Worker,
    loads,
    paris,
    realtime_model,
    run_cli,
    snapshot_time,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration]

Y = clock.today().year + 1
START, SPLIT, END = paris(Y, 1, 1), paris(Y, 1, 16), paris(Y, 2, 3)
HI = decimal.Context(prec=60)
CENT = Decimal("0.01")
HCHP_PRICES = [(date(Y, 1, 1), {"HP": "0.2700", "HC": "0.2068"}, "15.37"),
               (date(Y, 1, 16), {"HP": "0.2881", "HC": "0.2146"}, "15.80")]  # fmt: skip
TEMPO_CODES = ["HCJB", "HPJB", "HCJW", "HPJW", "HCJR", "HPJR"]  # EASF01..06 (domain.md 4.4)
TEMPO_PRICES = [(date(Y, 1, 1), dict(zip(TEMPO_CODES, ["0.1296", "0.1609", "0.1486", "0.1894", "0.1568", "0.7562"])),
                 "12.80"),
                (date(Y, 1, 16), dict(zip(TEMPO_CODES, ["0.1325", "0.1612", "0.1499", "0.1871", "0.1575", "0.7060"])),
                 "13.05")]  # fmt: skip
FEES = {"HP": Decimal("0.1122"), "HC": Decimal("0.0945")}


def r2(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=decimal.ROUND_HALF_EVEN)


def prices_on(grid: list, day: date) -> tuple[dict[str, str], str]:
    chosen = [g for g in grid if g[0] <= day][-1]
    return chosen[1], chosen[2]


def days_in_month(day: date) -> int:
    nxt = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return (nxt - day.replace(day=1)).days


class TempoMeter:
    """A consumer on Tempo: HP 06-22, HC 22-06, a colour per Tempo day (06:00 -> 06:00)."""

    LABELS = ["HC  BLEU", "HP  BLEU", "HC  BLANC", "HP  BLANC", "HC  ROUGE", "HP  ROUGE"]

    def __init__(self, pdl: str, seed: int) -> None:
        self.pdl, self.rng = pdl, random.Random(seed)
        self.index = [self.rng.randint(10**6, 10**7) for _ in range(6)]
        self.colours: dict[date, int] = {}

    def register(self, t: datetime) -> int:
        local = t.astimezone(PARIS)
        tempo_day = (local - timedelta(hours=6)).date()
        colour = self.colours.setdefault(tempo_day, self.rng.choice([0, 0, 0, 1, 2]))
        hc = local.hour >= 22 or local.hour < 6
        return colour * 2 + (0 if hc else 1)

    def reading(self, t: datetime) -> dict[str, Any]:
        reg = self.register(t)
        return {"pdl": self.pdl, "meter": "T" + self.pdl, "mode": "standard", "time": t.astimezone(PARIS).isoformat(),
                "tariff_period": self.LABELS[reg], "tariff_index": reg + 1, "import_wh": sum(self.index),
                "import_wh_by_period": {f"EASF{i + 1:02d}": v for i, v in enumerate(self.index)},
                "export_wh": None, "power_va": 900, "subscribed_kva": 9, "overload": False, "status": None}  # fmt: skip

    def run(self, start: datetime, end: datetime) -> tuple[list[dict[str, Any]], dict[date, dict[str, int]]]:
        readings, truth = [self.reading(start)], {}
        t = start
        while t < end:
            reg = self.register(t)
            wh = self.rng.randint(200, 1500)
            self.index[reg] += wh
            day = t.astimezone(PARIS).date()
            per = truth.setdefault(day, {})
            per[f"EASF{reg + 1:02d}"] = per.get(f"EASF{reg + 1:02d}", 0) + wh
            t += HOUR
            readings.append(self.reading(t))
        return readings, truth


def model_cost(wh: dict[str, int], grid: list, day: date, code_of: dict[str, str]) -> tuple[Decimal, Decimal]:
    """Exact energy and standing of one day (unrounded)."""
    prices, standing = prices_on(grid, day)
    energy = sum((HI.divide(HI.multiply(Decimal(w), Decimal(prices[code_of[r]])), Decimal(1000))
                  for r, w in wh.items()), Decimal(0))  # fmt: skip
    return energy, HI.divide(Decimal(standing), Decimal(days_in_month(day)))


async def test_costs_index_statements_bill_and_alert_on_the_real_stack(kafka_bootstrap: str, redis_url: str,
                                                                       unique_name, tmp_path: Path) -> None:  # fmt: skip
    prefix = f"{uuid.uuid4().int % 10**8:08d}"
    pdl = {"hchp": f"{prefix}000001", "tempo": f"{prefix}000002"}
    readings_topic, contracts_topic = unique_name("readings"), unique_name("contracts")
    port = free_port()
    env = worker_env({
        "LINKY_KAFKA_BOOTSTRAP": kafka_bootstrap, "LINKY_REDIS_URL": redis_url,
        "LINKY_APP_ID": unique_name("cost-app"), "LINKY_READINGS_TOPIC": readings_topic,
        "LINKY_CONTRACTS_TOPIC": contracts_topic, "LINKY_TOPIC_PARTITIONS": "2",
        "LINKY_DATADIR": str(tmp_path / "data"), "LINKY_WEB_PORT": str(port), "LINKY_LOG_FORMAT": "text",
        "LINKY_ALERT_BILL_OVER_INSTALLMENT_SHARE": "0.10", "LINKY_ALERT_BILL_MIN_ELAPSED_HOURS": "72",
    })  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(readings_topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()

    def cli(*argv: str) -> None:
        done = run_cli(env, "contract", *argv)
        assert done.returncode == 0, done.stderr

    battery = ["--offer", "virtual_battery", "--capacity-kwh", "3", "--overflow", "sold", "--overflow-rate", "0.10",
               "--fee", "HP=0.1122", "--fee", "HC=0.0945", "--subscription", "6"]  # fmt: skip
    for day, prices, standing in HCHP_PRICES:
        cli("set", pdl["hchp"], "--from", day.isoformat(), *battery, "--tariff", "hchp",
            *[a for k, v in prices.items() for a in ("--price", f"{k}={v}")], "--standing-charge", standing,
            "--installment", "20")
    for day, prices, standing in TEMPO_PRICES:
        cli("set", pdl["tempo"], "--from", day.isoformat(), "--tariff", "tempo",
            *[a for k, v in prices.items() for a in ("--price", f"{k}={v}")], "--standing-charge", standing)
    bad = run_cli(env, "contract", "set", pdl["tempo"], "--from", f"{Y}-03-01", "--tariff", "tempo", "--price", "HP=1")
    assert bad.returncode == 2 and "no price for HCJB" in bad.stderr
    shown = run_cli(env, "contract", "show", pdl["hchp"])
    assert "tariff hchp EUR/kWh: HC 0.2146, HP 0.2881, standing charge 15.80 EUR/month, installment 20" in shown.stdout, shown.stdout

    hchp_meter = Meter(pdl["hchp"], seed=31)
    hchp_readings, intervals = hchp_meter.run(START, END)
    tempo_meter = TempoMeter(pdl["tempo"], seed=32)
    tempo_readings, tempo_truth = tempo_meter.run(START, END)

    redis = aioredis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"linky:{pdl['hchp']}:alerts")
    alert_events: list[dict[str, Any]] = []

    async def collect() -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None:
                alert_events.append(json.loads(msg["data"]))

    collector = asyncio.create_task(collect())
    worker = Worker(env, tmp_path / "worker.log")
    http = aiohttp.ClientSession()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()

    async def get(name: str, what: str) -> Any:
        async with http.get(f"http://127.0.0.1:{port}/pdl/{pdl[name]}/{what}") as response:
            assert response.status == 200, await response.text()
            if response.content_type == "text/csv":
                return await response.text()
            return await response.json()

    async def applied() -> bool:
        try:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return False
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("linky_contract_records_applied_total")) >= 4  # fmt: skip

    async def caught_up() -> bool:
        for name, last in (("hchp", hchp_readings[-1]), ("tempo", tempo_readings[-1])):
            conso = loads(await redis.get(f"linky:{pdl[name]}:conso"))
            if snapshot_time(conso) != datetime.fromisoformat(last["time"]):
                return False
        battery_snap = loads(await redis.get(f"linky:{pdl['hchp']}:battery"))
        return snapshot_time(battery_snap) == datetime.fromisoformat(hchp_readings[-1]["time"])

    try:
        worker.start()
        await wait_for(applied, "the 4 contract records", worker)
        batch = sorted(hchp_readings + tempo_readings, key=lambda r: datetime.fromisoformat(r["time"]))
        for r in batch:
            await producer.send(readings_topic, json.dumps(r).encode(), key=r["pdl"].encode())
        await producer.flush()
        await wait_for(caught_up, "every reading processed", worker, timeout=180)
        await asyncio.sleep(1.5)  # the last alert events

        # ---- HC/HP meter: day and month costs equal the model to the cent
        hchp_truth: dict[date, dict[str, int]] = {}
        for iv in intervals:
            per = hchp_truth.setdefault(iv.day, {})
            reg = "EASF01" if iv.kind == "HC" else "EASF02"
            per[reg] = per.get(reg, 0) + iv.import_wh
        hchp_codes = {"EASF01": "HC", "EASF02": "HP"}
        tempo_codes = {f"EASF{i + 1:02d}": c for i, c in enumerate(TEMPO_CODES)}
        for name, truth, grid, codes in (("hchp", hchp_truth, HCHP_PRICES, hchp_codes),
                                         ("tempo", tempo_truth, TEMPO_PRICES, tempo_codes)):  # fmt: skip
            doc = await get(name, f"consumption?granularity=day&from={Y}-01-01&to={Y}-02-01")
            days = {date.fromisoformat(b["start"][:10]): b for b in doc["buckets"]}
            assert sorted(days) == sorted(d for d in truth if d.month == 1), name
            month_energy = month_standing = Decimal(0)
            for day, wh in truth.items():
                if day.month != 1:
                    continue
                energy, standing = model_cost(wh, grid, day, codes)
                month_energy += energy
                month_standing += standing
                cost = days[day]["cost"]
                assert days[day]["by_period"] == {r: w for r, w in sorted(wh.items()) if w}, (name, day)
                assert (cost["energy_eur"], cost["standing_eur"]) == (str(r2(energy)), str(r2(standing))), (name, day)
                assert cost["total_eur"] == str(r2(energy) + r2(standing))
                assert cost["tariff_from"] == prices_on_date(grid, day)
            months = (await get(name, "consumption?granularity=month"))["buckets"]
            jan = [m for m in months if m["start"].startswith(f"{Y}-01")][0]
            assert jan["cost"]["energy_eur"] == str(r2(month_energy)), name
            assert jan["cost"]["standing_eur"] == str(r2(month_standing)) == prices_standing_full(grid), name
            assert jan["cost"]["tariff_changes"] == [f"{Y}-01-16"]
            # readable names: the meter's labels, padding trimmed, and the offer's periods
            if name == "tempo":
                assert jan["periods"]["EASF06"] == {"label": "HP ROUGE", "kind": "HP", "period": "HPJR",
                                                    "tempo_colour": "red"}  # fmt: skip
            else:
                assert jan["periods"]["EASF01"]["label"] == "HEURES CREUSES"

            # ---- index statements consistent with the buckets, to the Wh
            statements = (await get(name, "index?granularity=day"))["statements"]
            all_days = (await get(name, "consumption?granularity=day"))["buckets"]
            assert [s["start"] for s in statements] == [b["start"] for b in all_days]
            first = (hchp_readings if name == "hchp" else tempo_readings)[0]["import_wh_by_period"]
            assert {r: i["start_wh"] for r, i in statements[0]["indexes"].items() if r != "EAIT"} == first
            for st, bucket in zip(statements, all_days):
                for reg, idx in st["indexes"].items():
                    wh = bucket["export_wh"] if reg == "EAIT" else bucket["by_period"].get(reg, 0)
                    assert idx["end_wh"] - idx["start_wh"] == wh == idx["wh"], (name, st["start"], reg)
            for a, b in zip(statements, statements[1:]):
                assert {r: i["end_wh"] for r, i in a["indexes"].items()} == \
                    {r: i["start_wh"] for r, i in b["indexes"].items()}  # fmt: skip
            last = (hchp_readings if name == "hchp" else tempo_readings)[-1]
            assert {r: i["end_wh"] for r, i in statements[-1]["indexes"].items() if r != "EAIT"} == \
                last["import_wh_by_period"]  # fmt: skip
            jan5 = [s for s in statements if s["start"].startswith(f"{Y}-01-05")][0]
            assert jan5["last_reading"]["time"] == f"{Y}-01-06T00:00:00+01:00"  # hourly: the midnight one ends the day
            monthly = (await get(name, "index?granularity=month"))["statements"]
            assert monthly[0]["indexes"]["EASF01"]["start_wh"] == first["EASF01"]
            assert monthly[0]["indexes"]["EASF01"]["end_wh"] == monthly[1]["indexes"]["EASF01"]["start_wh"]
            text = await get(name, f"index?granularity=month&format=csv")
            rows = list(csv.DictReader(io.StringIO(text)))
            assert rows and all(int(r["end_wh"]) - int(r["start_wh"]) == int(r["wh"]) for r in rows)

        # ---- Redis: the open buckets' cost and names
        conso = loads(await redis.get(f"linky:{pdl['tempo']}:conso"))
        assert conso is not None and conso["day"]["cost"] is not None and conso["month"]["cost"]["tariff_from"] == f"{Y}-01-16"
        assert all(p["label"] != r for r, p in conso["day"]["periods"].items())

        # ---- the bill: energy + standing + battery fees and subscription - cagnotte
        terms = Terms(capacity=3000, fees=FEES, overflow_rate=Decimal("0.10"))
        _, _, model_months = realtime_model(intervals, lambda t: terms)
        jan_model = model_months[f"{Y}-01"]
        bill = await get("hchp", f"bill?month={Y}-01")
        hchp_jan = [m for m in (await get("hchp", "consumption?granularity=month"))["buckets"]
                    if m["start"].startswith(f"{Y}-01")][0]  # fmt: skip
        lines = {line["kind"]: line["eur"] for line in bill["lines"]}
        assert lines == {"energy": hchp_jan["cost"]["energy_eur"], "standing": "15.59",
                         "battery_fees": str(r2(jan_model.fees)), "battery_subscription": "6.00",
                         "cagnotte": str(-r2(jan_model.cagnotte))}  # fmt: skip
        assert jan_model.fees > 0 and jan_model.cagnotte > 0
        assert bill["status"] == "closed" and Decimal(bill["total_eur"]) == sum(Decimal(v) for v in lines.values())
        feb = await get("hchp", f"bill?month={Y}-02")
        assert feb["status"] == "estimate" and feb["projected_total_eur"] is not None
        inst = feb["installments"]
        assert inst["months"] == [f"{Y}-01", f"{Y}-02"] and inst["paid_eur"] == "40.00"
        assert Decimal(inst["billed_eur"]) == Decimal(bill["total_eur"]) + Decimal(feb["total_eur"])
        assert inst["position"] == "behind" and Decimal(inst["difference_eur"]) < 0
        async with http.get(f"http://127.0.0.1:{port}/pdl/{pdl['hchp']}/bill?month=2027-13") as response:
            assert response.status == 400 and "YYYY-MM" in (await response.json())["error"]
        async with http.get(f"http://127.0.0.1:{port}/pdl/{pdl['hchp']}/index?granularity=hour") as response:
            assert response.status == 400

        # ---- the alert: opened once in January (after 72 h), cleared once when February began
        bill_events = [e for e in alert_events if e["kind"] == "bill_over_installment"]
        assert [e["action"] for e in bill_events] == ["open", "clear"], bill_events
        opened, cleared = bill_events
        assert opened["details"]["month"] == f"{Y}-01" and opened["details"]["installment_eur"] == "20"
        assert datetime.fromisoformat(opened["at"]) >= paris(Y, 1, 4)
        assert datetime.fromisoformat(cleared["at"]).astimezone(PARIS).date() == date(Y, 2, 1)

        # ---- a price change for the open day reaches the conso snapshot without a new reading
        before = loads(await redis.get(f"linky:{pdl['tempo']}:conso"))
        assert before is not None and before["day"]["start"].startswith(f"{Y}-02-02")
        cli("set", pdl["tempo"], "--from", f"{Y}-02-02", "--tariff", "tempo",
            *[a for k in TEMPO_CODES for a in ("--price", f"{k}=1.0000")], "--standing-charge", "31")

        async def repriced() -> Any:
            conso = loads(await redis.get(f"linky:{pdl['tempo']}:conso"))
            return conso if conso and conso["day"]["cost"]["tariff_from"] == f"{Y}-02-02" else None

        after = await wait_for(repriced, "the conso snapshot repriced by the contract change", worker)
        day_wh = sum(tempo_truth[date(Y, 2, 2)].values())
        assert after["time"] == before["time"] and after["day"]["import_wh"] == day_wh
        assert after["day"]["cost"]["energy_eur"] == str(r2(Decimal(day_wh) / 1000))
        assert after["day"]["cost"]["standing_eur"] == str(r2(Decimal(31) / monthrange(Y, 2)[1]))  # 31 / 28 or 29
    finally:
        collector.cancel()
        await producer.stop()
        await http.close()
        await pubsub.aclose()
        await redis.aclose()
        worker.stop()


def prices_on_date(grid: list, day: date) -> str:
    return [g for g in grid if g[0] <= day][-1][0].isoformat()


def prices_standing_full(grid: list) -> str:
    """January's standing charge: 15 days of the first version, 16 of the second, exact then rounded."""
    total = sum((HI.divide(Decimal(prices_on(grid, date(Y, 1, d))[1]), Decimal(31)) for d in range(1, 32)), Decimal(0))
    return str(r2(total))
