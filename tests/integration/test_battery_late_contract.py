"""A contract version effective on a day whose readings the worker already folded (issue 6).

Contracts and readings are two topics with no order between them: here the version effective on
May 11th (of next year on the product's clock) is written only after the worker folded that day's morning as "no offer". The worker
must re-fold the day at once (no new reading needed) and, after the rest of the readings, hold
exactly what the independent model gives with the version known from the start.
Real Kafka, real Redis, a real worker subprocess.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from stream import clock
from stream.contracts import write_contract
from stream.settings import Settings
from tables.contracts import Contract, version_from_dict
from tests.conftest import free_port
from tests.integration.battery_world import (
    PARIS,
    Meter,
    Terms,
    Worker,
    realtime_model,
    wait_for,
    worker_env,
)
from tests.integration.stream_support import create_topic

pytestmark = pytest.mark.integration

Y = clock.today().year + 1  # in the future on the product's clock, whatever the date
START = datetime(Y, 5, 10, 0, tzinfo=PARIS)
EFFECTIVE = f"{Y}-05-11"
LATE = datetime(Y, 5, 11, 14, tzinfo=PARIS)  # the version is written after this reading
END = datetime(Y, 5, 12, 12, tzinfo=PARIS)
CAPACITY_WH = 3000


async def test_a_version_written_after_its_day_was_folded_is_applied_to_the_whole_day(
    kafka_bootstrap: str, redis_worker_url: str, unique_name: Any, tmp_path: Path
) -> None:
    pdl = f"{uuid.uuid4().int % 10**14:014d}"
    readings_topic, contracts_topic = unique_name("readings"), unique_name("contracts")
    port = free_port()
    env = worker_env({
        "LINKY_KAFKA_BOOTSTRAP": kafka_bootstrap, "LINKY_REDIS_URL": redis_worker_url,
        "LINKY_APP_ID": unique_name("late-contract"), "LINKY_READINGS_TOPIC": readings_topic,
        "LINKY_CONTRACTS_TOPIC": contracts_topic, "LINKY_TOPIC_PARTITIONS": "2",
        "LINKY_DATADIR": str(tmp_path / "data"), "LINKY_WEB_PORT": str(port), "LINKY_LOG_FORMAT": "text",
    })  # fmt: skip
    await create_topic(kafka_bootstrap, readings_topic, partitions=2)

    meter = Meter(pdl, seed=29)
    readings, intervals = meter.run(START, END)
    early = [r for r in readings if datetime.fromisoformat(r["time"]) <= LATE]
    rest = readings[len(early):]
    version = version_from_dict({"effective_from": EFFECTIVE, "offer": "virtual_battery",
                                 "battery": {"capacity_wh": CAPACITY_WH}})  # fmt: skip
    effective_at = datetime(Y, 5, 11, tzinfo=PARIS)

    def terms_at(t: datetime) -> Terms:
        return Terms(capacity=CAPACITY_WH) if t >= effective_at else Terms(battery=False)

    worker = Worker(env, tmp_path / "worker.log")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    http = aiohttp.ClientSession()

    async def battery() -> dict[str, Any] | None:
        try:
            async with http.get(f"http://127.0.0.1:{port}/pdl/{pdl}/battery") as response:
                return await response.json() if response.status == 200 else None
        except aiohttp.ClientError:
            return None

    async def folded_until(t: datetime) -> dict[str, Any] | None:
        doc = await battery()
        return doc if doc and doc["time"] and datetime.fromisoformat(doc["time"]) == t else None

    async def refolds() -> float:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith('linky_battery_contract_refolds_total{outcome="refolded"}'))  # fmt: skip

    def send(batch: list[dict[str, Any]]) -> list[Any]:
        return [producer.send(readings_topic, json.dumps(r).encode(), key=pdl.encode()) for r in batch]

    await producer.start()
    try:
        worker.start()
        for future in send(early):
            await future
        await producer.flush()
        before = await wait_for(lambda: folded_until(LATE), "the morning of the 11th folded", worker)
        assert before["offer"] == "none" and before["level_wh"] == 0  # folded without an offer

        await write_contract(Settings.from_env(env), Contract(pdl=pdl, versions=(version,)))
        level_at_late, days_late, _ = realtime_model([iv for iv in intervals if iv.end <= LATE], terms_at)
        assert days_late[EFFECTIVE].credited > 0  # the morning had something to re-fold

        async def refolded() -> dict[str, Any] | None:
            doc = await folded_until(LATE)
            return doc if doc and doc["offer"] == "virtual_battery" and doc["level_wh"] == level_at_late else None

        doc = await wait_for(refolded, "the day re-folded under the late version (no new reading)", worker)
        assert doc["today"]["credited_wh"] == days_late[EFFECTIVE].credited
        assert await refolds() == 1

        for future in send(rest):
            await future
        await producer.flush()
        final = await wait_for(lambda: folded_until(END), "the remaining readings", worker)
    finally:
        await http.close()
        await producer.stop()
        worker.stop()

    level, days, _ = realtime_model(intervals, terms_at)
    assert final["level_wh"] == level
    rows = {row["date"]: row for row in final["days"]}
    for key in (f"{Y}-05-10", EFFECTIVE, f"{Y}-05-12"):
        want, got = days[key], rows[key]
        assert (got["credited_wh"], got["overflow_wh"], got["used_hp_wh"], got["used_hc_wh"], got["closing_wh"]) == (
            want.credited, want.overflow, want.used_hp, want.used_hc, want.closing), key  # fmt: skip
    assert rows[f"{Y}-05-10"]["credited_wh"] == 0 and rows[EFFECTIVE]["overflow_wh"] > 0
