"""Virtual battery, surplus cagnotte and alerts end to end: real Kafka, real Redis, the real
worker (``faust -A stream.app worker``) as a subprocess, contracts written with the real CLI.

One worker run carries every scenario (one PDL each) to keep the wall time down:

- ``rt``  realtime, unlimited, fees by period: level and every day/month row exact to the Wh
          over five weeks, across the March DST day (23 h) and a month change;
- ``cap`` realtime, 4 kWh capacity, overflow sold at 0.10 EUR/kWh: overflow and cagnotte;
          ``battery_full`` opens and clears once per episode;
- ``mon`` monthly settlement, off-peak first (Urban Solar), and a late invoice anchor for
          April 1st that re-settles April;
- ``chg`` a contract change written mid-month, effective later that month (capacity and sold
          overflow from the 20th);
- ``res`` surplus resale with a rate change on the 22nd: cagnotte = surplus x rate in force;
- ``past`` the last October that has ended on the product's clock (the 25-hour DST day): the
          wall-clock timer closes the month without any reading, prunes the day rows older than
          the previous month of the clock's today, and ``meter_silent`` opens from the timer and
          clears with the next reading;
- ``prev`` the last days of the clock's previous month: closed by the timer, day rows kept;
- ``alr`` every reading-driven alert opens once and clears once.

The worker is SIGKILLed mid-stream and restarted on the same data directory. Expected values come
from the simulator's ground truth through an independent model (tests/integration/battery_world.py).

Dates are placed relative to the product's clock (stream/clock.py; ``pytest --clock-at=...`` shifts
it): the main scenario in March/April of next year (future dates, as the CLI requires), the
``past`` and ``prev`` meters before today. The test holds on any date.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream import clock
from stream.contracts import write_contract
from stream.settings import Settings
from tables.contracts import Contract, add_version, version_from_dict
from tests.conftest import free_port
from tests.integration.battery_world import (
    HOUR,
    PARIS,
    Interval,
    Meter,
    Terms,
    Worker,
    cents,
    first_of_previous_month,
    last_sunday,
    loads,
    monthly_offpeak_model,
    paris,
    period_at,
    realtime_model,
    run_cli,
    snapshot_time,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEES = {"HP": Decimal("0.1122"), "HC": Decimal("0.0945")}
FEE_ARGS = ["--fee", "HP=0.1122", "--fee", "HC=0.0945"]
BUDGET_WH = 8_000
TODAY = clock.today()  # the product's clock when the module is collected (pytest --clock-at)
Y = TODAY.year + 1  # the main scenario: March/April of next year, always in the future
START, SPLIT_A, SPLIT_B, SPLIT_C, END = (paris(Y, 3, 8), paris(Y, 3, 18), paris(Y, 3, 30),
                                         paris(Y, 4, 8), paris(Y, 4, 12))  # fmt: skip
MARCH_DST = last_sunday(Y, 3)
P = TODAY.year if TODAY.month >= 11 else TODAY.year - 1  # the last October that has ended
# Up to 00:00 on November 1st: the last reading closes October 31st, which may be the 25-hour day.
PAST_START, PAST_END = paris(P, 10, 24), paris(P, 11, 1)
OCTOBER_DST = last_sunday(P, 10)
_PREV_END = datetime.combine(TODAY.replace(day=1), datetime.min.time(), PARIS)  # 00:00 on the 1st
PREV_START, PREV_END = (_PREV_END - timedelta(days=3)).astimezone(timezone.utc), \
    (_PREV_END - HOUR).astimezone(timezone.utc)  # the previous month's last 3 days (fmt: skip)
ANCHOR_WH = 25_000


def ymd(m: int, d: int) -> str:
    """``YYYY-MM-DD`` in the main scenario's year."""
    return date(Y, m, d).isoformat()


class Stream:
    """Readings of several meters, sent in time order, with the ground truth kept per PDL."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.truth: dict[str, list[Interval]] = defaultdict(list)
        self.readings: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.last: dict[str, datetime] = {}

    async def send(self, batch: list[dict[str, Any]]) -> None:
        batch = sorted(batch, key=lambda r: datetime.fromisoformat(r["time"]))
        for r in batch:
            await self.producer.send(self.topic, json.dumps(r).encode(), key=r["pdl"].encode())
        await self.producer.flush()

    def run(self, meter: Meter, start: datetime, end: datetime, *, first: bool) -> list[dict[str, Any]]:
        readings, intervals = meter.run(start, end)
        if not first:
            readings = readings[1:]  # the reading at ``start`` was sent by the previous phase
        self.truth[meter.pdl] += intervals
        self.readings[meter.pdl] += readings
        self.last[meter.pdl] = end
        return readings


async def test_battery_surplus_and_alerts_end_to_end(kafka_bootstrap: str, redis_url: str, redis_worker_url: str,
                                                     unique_name, tmp_path: Path) -> None:  # fmt: skip
    prefix = f"{uuid.uuid4().int % 10**8:08d}"
    pdl = {name: f"{prefix}{i:06d}" for i, name in enumerate(("rt", "cap", "mon", "chg", "res", "past", "alr", "prev"))}
    readings_topic, contracts_topic = unique_name("readings"), unique_name("contracts")
    port = free_port()
    env = worker_env({
        "LINKY_KAFKA_BOOTSTRAP": kafka_bootstrap, "LINKY_REDIS_URL": redis_worker_url,
        "LINKY_APP_ID": unique_name("battery-app"), "LINKY_READINGS_TOPIC": readings_topic,
        "LINKY_CONTRACTS_TOPIC": contracts_topic, "LINKY_TOPIC_PARTITIONS": "2",
        "LINKY_DATADIR": str(tmp_path / "data"), "LINKY_WEB_PORT": str(port), "LINKY_LOG_FORMAT": "text",
        "LINKY_BATTERY_TICK_SECONDS": "1", "LINKY_ALERT_SILENT_SECONDS": "4",
        "LINKY_ALERT_OVERLOAD_CLEAR_SECONDS": "0", "LINKY_ALERT_BACKWARDS_CLEAR_SECONDS": "7200",
        "LINKY_ALERT_DAILY_BUDGET_WH": str(BUDGET_WH),
    })  # fmt: skip
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(readings_topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()

    # ---- contracts through the CLI (future dates: a change is never retroactive)
    def cli(*argv: str) -> None:
        done = run_cli(env, "contract", *argv)
        assert done.returncode == 0, done.stderr

    cli("set", pdl["rt"], "--from", ymd(3, 1), "--offer", "virtual_battery", *FEE_ARGS)
    cli("set", pdl["cap"], "--from", ymd(3, 1), "--offer", "virtual_battery", "--capacity-kwh", "4",
        "--overflow", "sold", "--overflow-rate", "0.10", *FEE_ARGS)
    cli("set", pdl["mon"], "--from", ymd(3, 1), "--offer", "virtual_battery", "--settlement", "monthly",
        "--debit-priority", "offpeak_first", "--subscription", "6", *FEE_ARGS)
    cli("set", pdl["chg"], "--from", ymd(3, 1), "--offer", "virtual_battery", *FEE_ARGS)
    cli("set", pdl["res"], "--from", ymd(3, 1), "--offer", "surplus_resale", "--rate", "0.06")
    cli("set", pdl["res"], "--from", ymd(3, 22), "--offer", "surplus_resale", "--rate", "0.0875")
    cli("set", pdl["alr"], "--from", ymd(3, 1), "--offer", "surplus_resale", "--rate", "0.06")
    yesterday = (clock.today() - timedelta(days=1)).isoformat()  # the CLI runs on the product's clock
    refused = run_cli(env, "contract", "set", pdl["rt"], "--from", yesterday, "--offer", "none")
    assert refused.returncode == 2 and "never applies retroactively" in refused.stderr
    # The past is refused by the CLI, so these PDLs' documents are written the way an import of
    # existing customers would (the Kafka API of stream/contracts.py).
    cfg = Settings.from_env(env)
    for name, since in (("past", date(P, 10, 1)), ("prev", first_of_previous_month(TODAY))):
        past_version = version_from_dict({"effective_from": since.isoformat(), "offer": "virtual_battery",
                                          "battery": {"fees_eur_per_kwh": {"HP": "0.1122", "HC": "0.0945"}}})  # fmt: skip
        await write_contract(cfg, add_version(Contract(pdl=pdl[name]), past_version, today=since))

    meters = {name: Meter(p, seed=i + 11) for i, (name, p) in enumerate(pdl.items())}
    redis = aioredis.from_url(redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"linky:{prefix}*:alerts")
    alert_events: list[dict[str, Any]] = []

    async def collect() -> None:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None:
                alert_events.append(json.loads(msg["data"]))

    collector = asyncio.create_task(collect())
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    stream = Stream(producer, readings_topic)
    worker = Worker(env, tmp_path / "worker.log")
    http = aiohttp.ClientSession()

    async def snapshot(name: str, channel: str) -> dict[str, Any] | None:
        return loads(await redis.get(f"linky:{pdl[name]}:{channel}"))

    async def caught_up(names: list[str]) -> bool:
        for name in names:
            payload = await snapshot(name, "battery")
            if snapshot_time(payload) != stream.last[pdl[name]]:
                return False
        return True

    async def http_get(name: str, what: str) -> dict[str, Any]:
        async with http.get(f"http://127.0.0.1:{port}/pdl/{pdl[name]}/{what}") as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def contracts_applied() -> float:
        try:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return 0.0
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("linky_contract_records_applied_total"))  # fmt: skip

    main = ["rt", "cap", "mon", "chg", "res"]
    try:
        worker.start()
        # Two topics have no order between them: let the contracts in before the first readings.
        await wait_for(lambda: _at_least(contracts_applied, 9), "the 9 contract records", worker)
        # ---- phase A: 10 days (+ the alerts scenario, the past October and the previous month), with duplicates
        batch: list[dict[str, Any]] = []
        for name in main:
            batch += stream.run(meters[name], START, SPLIT_A, first=True)
        batch += alert_readings(stream, meters["alr"])
        batch += stream.run(meters["past"], PAST_START, PAST_END, first=True)
        batch += stream.run(meters["prev"], PREV_START, PREV_END, first=True)
        for name in ("rt", "cap"):  # at-least-once upstream: copies and late older readings
            batch += [dict(r) for r in stream.readings[pdl[name]][50:60]]
        await stream.send(batch)
        await stream.send([dict(r) for r in stream.readings[pdl["rt"]][100:110]])  # older, after newer ones
        await wait_for(lambda: caught_up([*main, "past", "prev"]), "phase A processed", worker)

        # Those months ended on the product's clock: the timer closes them without any reading.
        async def month_final(name: str, month: str) -> bool:
            doc = await http_get(name, "battery")
            rows = {r["month"]: r for r in doc["months"]}
            surplus = {r["month"]: r for r in doc["surplus"]["months"]}
            return bool(month in rows and rows[month]["final"] and month in surplus and surplus[month]["final"])

        await wait_for(lambda: month_final("past", f"{P}-10"), f"the timer to close October {P}", worker)
        await wait_for(lambda: month_final("prev", first_of_previous_month(TODAY).isoformat()[:7]),
                       "the timer to close the previous month", worker)  # fmt: skip
        for name in ("past", "prev"):
            silent = await wait_for(lambda: open_kinds(redis, pdl[name]), "meter_silent from the timer", worker)
            assert "meter_silent" in silent, name

        # A change written mid-month, effective later in the month.
        cli("set", pdl["chg"], "--from", ymd(3, 20), "--offer", "virtual_battery", "--capacity-kwh", "5",
            "--overflow", "sold", "--overflow-rate", "0.07", *FEE_ARGS)

        async def change_seen() -> bool:
            doc = await http_get("chg", "battery")
            return len(doc["contract"]["versions"]) == 2

        await wait_for(change_seen, "the worker to read the contract change", worker)

        # ---- phase B: half sent, SIGKILL while the worker works on it, the rest sent while it
        # is down, restart on the same data directory (RocksDB + changelog + replayed offsets).
        mid = SPLIT_A + 6 * 24 * HOUR
        await stream.send([r for name in main for r in stream.run(meters[name], SPLIT_A, mid, first=False)])

        async def started_b() -> bool:
            return (snapshot_time(await snapshot("rt", "battery")) or START) > SPLIT_A

        await wait_for(started_b, "phase B to start", worker)
        worker.kill()
        await stream.send([r for name in main for r in stream.run(meters[name], mid, SPLIT_B, first=False)])
        # the silent meter speaks again (one more hour, in the ground truth like every other)
        await stream.send(stream.run(meters["past"], PAST_END, PAST_END + HOUR, first=False))
        worker.start()
        await wait_for(lambda: caught_up(main), "phase B processed after the restart", worker, timeout=120)

        # ---- phase C: up to April 8th, then the March invoice's balance for April 1st (late)
        await stream.send([r for name in main for r in stream.run(meters[name], SPLIT_B, SPLIT_C, first=False)])
        await wait_for(lambda: caught_up(main), "phase C1 processed", worker)
        cli("anchor", pdl["mon"], "--date", ymd(4, 1), "--balance-kwh", str(Decimal(ANCHOR_WH) / 1000),
            "--note", f"invoice {ymd(4, 14)}")

        async def anchored() -> bool:
            b = await snapshot("mon", "battery")
            return bool(b and b["anchor"] and b["anchor"]["date"] == ymd(4, 1))

        await wait_for(anchored, "the invoice anchor", worker)
        await stream.send([r for name in main for r in stream.run(meters[name], SPLIT_C, END, first=False)])
        await wait_for(lambda: caught_up(main), "phase C2 processed", worker)
        docs = {name: await http_get(name, "battery") for name in [*main, "past", "prev"]}
        today_at_end = clock.today()  # the day the timer last pruned on
        open_alerts = {name: await http_get(name, "alerts") for name in ("alr", "cap")}
        await asyncio.sleep(1.5)  # let the last alert messages reach the subscriber
    finally:
        collector.cancel()
        await http.close()
        await producer.stop()
        worker.stop()
        await pubsub.aclose()
        await redis.aclose()

    # ---- the DST days really have 23 and 25 hours in the ground truth
    assert sum(1 for iv in stream.truth[pdl["rt"]] if iv.day == MARCH_DST) == 23
    assert sum(1 for iv in stream.truth[pdl["past"]] if iv.day == OCTOBER_DST) == 25

    # ---- rt, cap, chg, past: realtime model, every day and month row
    def terms_of(name: str):  # noqa: ANN202
        unlimited = Terms(fees=FEES)
        if name == "cap":
            return lambda t: Terms(capacity=4000, fees=FEES, overflow_rate=Decimal("0.10"))
        if name == "chg":
            capped = Terms(capacity=5000, fees=FEES, overflow_rate=Decimal("0.07"))
            return lambda t: capped if t >= paris(Y, 3, 20) else unlimited
        return lambda t: unlimited

    for name in ("rt", "cap", "chg", "past", "prev"):
        level, days, months = realtime_model(stream.truth[pdl[name]], terms_of(name))
        doc = docs[name]
        assert doc["level_wh"] == level, name
        assert doc["estimate"] is True
        got_days = {row["date"]: row for row in doc["days"]}
        # Day rows are kept from the 1st of the previous month of the ledger's day, which the
        # wall-clock timer moves to the clock's today once the data's last day has ended.
        last_day = max(date.fromisoformat(k) for k in days)
        kept_from = first_of_previous_month(max(last_day, today_at_end))
        assert set(got_days) == {k for k in days if date.fromisoformat(k) >= kept_from}, (name, kept_from)
        # The past meter's rows may all be gone, depending on the date; the previous month's too
        # if the clock crossed into a new month during the run. Every other meter keeps rows.
        if name != "past" and not (name == "prev" and today_at_end.replace(day=1) != TODAY.replace(day=1)):
            assert got_days, name
        for key, row in got_days.items():
            assert_row(row, days[key], f"{name} {key}")
        got_months = {row["month"]: row for row in doc["months"]}
        assert set(got_months) == set(months), name
        for key, row in got_months.items():
            assert_row(row, months[key], f"{name} {key}")
        surplus_months = {row["month"]: row for row in doc["surplus"]["months"]}
        for key, row in months.items():
            assert surplus_months[key]["surplus_wh"] == row.surplus, (name, key)
            assert surplus_months[key]["cagnotte_eur"] == cents(row.cagnotte), (name, key)
    assert docs["cap"]["percent"] == round(docs["cap"]["level_wh"] * 100 / 4000, 1)
    assert sum(m.overflow for m in realtime_model(stream.truth[pdl["cap"]], terms_of("cap"))[2].values()) > 0
    assert {r["month"]: r["final"] for r in docs["rt"]["months"]} == {f"{Y}-03": True, f"{Y}-04": False}
    # closed by the timer, not by a reading
    assert {r["month"]: r["final"] for r in docs["past"]["months"]}[f"{P}-10"] is True
    prev_month = first_of_previous_month(TODAY).isoformat()[:7]
    assert {r["month"]: r["final"] for r in docs["prev"]["months"]}[prev_month] is True

    # ---- mon: monthly settlement, off-peak first, April re-settled from the invoice anchor
    level, months = monthly_offpeak_model(stream.truth[pdl["mon"]], FEES, {f"{Y}-04": ANCHOR_WH})
    doc = docs["mon"]
    assert doc["level_wh"] == level and doc["estimate"] is False
    assert doc["anchor"] == {"date": ymd(4, 1), "balance_wh": ANCHOR_WH}
    got = {row["month"]: row for row in doc["months"]}
    assert set(got) == set(months)
    for key, expected in months.items():
        row = got[key]
        assert (row["opening_wh"], row["credited_wh"], row["overflow_wh"]) == (expected.opening, expected.credited, 0)
        assert (row["used_hc_wh"], row["used_hp_wh"]) == (expected.used_hc, expected.used_hp), key
        assert (row["adjustment_wh"], row["closing_wh"]) == (expected.adjustment, expected.closing), key
        assert row["fees_eur"] == cents(expected.fees), key
    assert got[f"{Y}-03"]["subscription_eur"] == "6.00"

    # ---- res: cagnotte = surplus x the rate in force on the injection date
    res_months = {row["month"]: row for row in docs["res"]["surplus"]["months"]}
    expected_res: dict[str, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
    for iv in stream.truth[pdl["res"]]:
        rate = Decimal("0.0875") if iv.start >= paris(Y, 3, 22) else Decimal("0.06")
        wh, eur = expected_res[iv.month]
        expected_res[iv.month] = (wh + iv.export_wh, eur + Decimal(iv.export_wh) * rate / 1000)
    assert set(res_months) == set(expected_res)
    for key, (wh, eur) in expected_res.items():
        assert (res_months[key]["surplus_wh"], res_months[key]["eligible_wh"]) == (wh, wh)
        assert res_months[key]["cagnotte_eur"] == cents(eur)
    assert res_months[f"{Y}-03"]["final"] is True and res_months[f"{Y}-04"]["final"] is False
    assert docs["res"]["level_wh"] == 0 and docs["res"]["offer"] == "surplus_resale"

    # ---- alerts: after deduplicating at-least-once replays, every kind alternates open/clear
    by_pdl_kind: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple[str, str, str, str]] = set()
    for event in alert_events:
        ident = (event["pdl"], event["kind"], event["action"], event["at"])
        if ident not in seen:
            seen.add(ident)
            by_pdl_kind[(event["pdl"], event["kind"])].append(event)
    for (p, kind), events in by_pdl_kind.items():
        actions = [e["action"] for e in events]
        if kind == "meter_silent":
            # Stamped on the worker's reception clock, not on event time: a reading replayed after
            # the SIGKILL can re-publish its episode change with another `at`. Subscribers treat a
            # repeated action for the same (pdl, kind) as a no-op (docs/battery.md, alerts).
            actions = [a for i, a in enumerate(actions) if i == 0 or a != actions[i - 1]]
        assert actions[::2] == ["open"] * len(actions[::2]) and actions[1::2] == ["clear"] * len(actions[1::2]), (
            p, kind, actions)  # fmt: skip
    expected_alerts = expected_alert_episodes(stream.readings[pdl["alr"]])
    for kind, (opens, clears) in expected_alerts.items():
        events = by_pdl_kind[(pdl["alr"], kind)]
        assert [e["at"] for e in events if e["action"] == "open"] == opens, kind
        assert [e["at"] for e in events if e["action"] == "clear"] == clears, kind
    last_open = {kind for kind, (opens, clears) in expected_alerts.items() if len(opens) > len(clears)}
    assert {a["kind"] for a in open_alerts["alr"]["open"]} - {"meter_silent"} == last_open
    full_opens, full_clears = expected_battery_full(stream.truth[pdl["cap"]], 4000)
    events = by_pdl_kind[(pdl["cap"], "battery_full")]
    assert [e["at"] for e in events if e["action"] == "open"] == full_opens
    assert [e["at"] for e in events if e["action"] == "clear"] == full_clears
    assert len(full_opens) >= 3
    silent = [e["action"] for e in by_pdl_kind[(pdl["past"], "meter_silent")]]
    assert silent[:2] == ["open", "clear"]  # opened by the timer, cleared by the next reading


# --------------------------------------------------------------------------- helpers


async def _at_least(probe: Any, n: float) -> bool:
    return await probe() >= n


def assert_row(row: dict[str, Any], expected: Any, where: str) -> None:
    got = (row["opening_wh"], row["credited_wh"], row["overflow_wh"], row["used_hp_wh"], row["used_hc_wh"],
           sum(row["imported_wh_by_period"].values()), row["exported_wh"], row["closing_wh"], row["fees_eur"])  # fmt: skip
    want = (expected.opening, expected.credited, expected.overflow, expected.used_hp, expected.used_hc,
            expected.imported, expected.exported, expected.closing, cents(expected.fees))  # fmt: skip
    assert got == want, where


async def open_kinds(redis: aioredis.Redis, pdl: str) -> set[str]:
    payload = loads(await redis.get(f"linky:{pdl}:alerts"))
    return {a["kind"] for a in payload["open"]} if payload else set()


def alert_readings(stream: Stream, meter: Meter) -> list[dict[str, Any]]:
    """Four days of readings that trigger every reading-driven alert kind once or more:
    historic TIC mode first (producer contract), a meter overload flag, a red Tempo day announced
    the evening before, a meter reset (index backwards), and a daily import budget."""
    start, hours = START, 96
    readings = [meter.reading(start, mode="historic", export_wh=None)]
    t = start
    for i in range(1, hours + 1):
        iv = meter.step(t)
        stream.truth[meter.pdl].append(iv)
        t += HOUR
        if i == 50:  # meter replaced: every index restarts near zero
            meter.hc, meter.hp, meter.eait = 1000, 2000, 300
        extra: dict[str, Any] = {}
        local = t.astimezone(PARIS)
        if i <= 3:
            extra.update(mode="historic", export_wh=None)
        if 30 <= i <= 32:
            extra["overload"] = True
        if datetime(Y, 3, 9, 20, tzinfo=PARIS) <= local < datetime(Y, 3, 10, 6, tzinfo=PARIS):
            extra["status"] = {"tempo_today": "blue", "tempo_tomorrow": "red"}
        if datetime(Y, 3, 10, 6, tzinfo=PARIS) <= local < datetime(Y, 3, 11, 6, tzinfo=PARIS):
            extra["tariff_period"] = "HC  ROUGE" if period_at(t) == "HC" else "HP  ROUGE"
            extra["status"] = {"tempo_today": "red", "tempo_tomorrow": None}
        readings.append(meter.reading(t, **extra))
    stream.readings[meter.pdl] += readings
    stream.last[meter.pdl] = t
    return readings


def expected_alert_episodes(readings: list[dict[str, Any]]) -> dict[str, tuple[list[str], list[str]]]:
    """Open and clear times (ISO UTC) per kind, from the documented rules (docs/battery.md 5)."""
    episodes: dict[str, tuple[list[str], list[str]]] = {}
    state: dict[str, bool] = defaultdict(bool)
    backwards_at: datetime | None = None
    red_tomorrow_day: date | None = None
    day, day_import, last_import = None, 0, None

    def set_(kind: str, active: bool, at: str) -> None:
        opens, clears = episodes.setdefault(kind, ([], []))
        if active and not state[kind]:
            opens.append(at)
        elif not active and state[kind]:
            clears.append(at)
        state[kind] = active

    for r in readings:
        t = datetime.fromisoformat(r["time"])
        at = t.astimezone(timezone.utc).isoformat()
        local = t.astimezone(PARIS)
        set_("historic_mode", r["mode"] == "historic", at)
        if r["overload"]:
            set_("overload", True, at)
        elif state["overload"]:
            set_("overload", False, at)
        imp = r["import_wh"]
        went_back = last_import is not None and imp < last_import
        if went_back:
            backwards_at = t
            set_("index_backwards", True, at)
        elif state["index_backwards"] and backwards_at is not None and t - backwards_at >= timedelta(seconds=7200):
            set_("index_backwards", False, at)
        today = local.date()
        if day is not None and today > day:
            set_("daily_budget", False, at)
            day_import = 0
        if last_import is not None and not went_back:
            day_import += imp - last_import
        day, last_import = today, imp
        if day_import > BUDGET_WH:
            set_("daily_budget", True, at)
        label = r["tariff_period"]
        set_("peak_period", "PLEINES" in label or label.startswith("HP"), at)
        set_("red_period", "ROUGE" in label, at)
        tempo_today = local.date() if local.hour >= 6 else local.date() - timedelta(days=1)
        if red_tomorrow_day is not None and tempo_today >= red_tomorrow_day:
            set_("red_tomorrow", False, at)
            red_tomorrow_day = None
        status = r["status"] or {}
        if status.get("tempo_tomorrow") == "red" and not state["red_tomorrow"]:
            red_tomorrow_day = tempo_today + timedelta(days=1)
            set_("red_tomorrow", True, at)
    for kind in ("historic_mode", "overload", "index_backwards", "red_period", "red_tomorrow"):
        opens, clears = episodes[kind]
        assert len(opens) == 1 and len(clears) == 1, (kind, episodes[kind])  # the scenario's intent
    assert len(episodes["daily_budget"][0]) >= 1 and len(episodes["peak_period"][0]) >= 3
    return episodes


def expected_battery_full(intervals: list[Interval], capacity: int) -> tuple[list[str], list[str]]:
    """battery_full: opens when the month's overflow grows, clears at a reading without new
    overflow with the level below capacity x 0.98 (evaluated at each reading, after its delta)."""
    level, opened = 0, False
    month_overflow: dict[str, int] = defaultdict(int)
    seen, seen_month = 0, None
    opens: list[str] = []
    clears: list[str] = []
    for iv in intervals:
        room = max(0, min(iv.export_wh, capacity - level))
        month_overflow[iv.month] += iv.export_wh - room
        level += room
        level -= min(level, iv.import_wh)
        t = iv.end
        local = t.astimezone(PARIS)
        month = f"{local.year:04d}-{local.month:02d}"
        overflow = month_overflow.get(month, 0)
        previous = seen if seen_month == month else 0
        at = t.astimezone(timezone.utc).isoformat()
        grew = overflow > previous
        if opened and not grew and level < capacity * (1 - 0.02):
            clears.append(at)
            opened = False
        if grew and not opened:
            opens.append(at)
            opened = True
        seen, seen_month = overflow, month
    return opens, clears
