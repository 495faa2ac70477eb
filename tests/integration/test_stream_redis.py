"""The stream's Redis side on the real stack, with a PRIVATE redis-server (the shared one is never
touched): one worker run carries both scenarios.

1. A strict subscriber: subscribed to ``linky:{pdl}:live`` and ``linky:{pdl}:conso`` before the
   readings are sent (with duplicates and a replayed older block), it receives one live message
   per distinct reading, in strictly increasing time, none missing; conso messages with strictly
   increasing times, day and month totals that never decrease, the last one equal to the truth.
2. Redis down, then back: the private redis-server is stopped while more readings are sent. The
   worker keeps processing (HTTP totals exact to the Wh, consumer group lag back to zero while
   Redis is still down), counts the dropped publishes in /metrics, does not crash; when Redis is
   started again (empty: no persistence) the snapshot keys are rewritten from the tables
   (``GET linky:{pdl}:conso`` and ``:live`` equal the current state).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.conftest import free_port
from tests.integration.stream_support import PARIS, Worker, create_topic, produce, send_order, simulate, worker_env

pytestmark = pytest.mark.integration

PARTITIONS = 4
SPLIT = datetime(2026, 10, 22, tzinfo=PARIS)  # phase 1: Oct 20-21 (and the midnight reading); phase 2: Oct 22-23


class PrivateRedis:
    """``redis-server`` on a free port, no persistence, started and stopped by the test."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log = log_dir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--logfile", str(self.log)],  # fmt: skip
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG":
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"private redis-server on {self.port} did not start: {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None


async def until(cond: Callable[[], Awaitable[bool]], timeout: float, what: str, worker: Worker) -> None:
    end = time.monotonic() + timeout
    while not await cond():
        if worker.proc is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited ({worker.proc.returncode}) while waiting for {what}:\n{worker.tail()}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}\n{worker.tail()}")
        await asyncio.sleep(0.5)


def http_days(worker: Worker, pdl: str, granularity: str = "day") -> dict[str, list[int]]:
    status, body = worker.get(f"/pdl/{pdl}/consumption?granularity={granularity}")
    if status != 200:
        return {"status": [status]}
    n = 7 if granularity == "month" else 10
    return {b["start"][:n]: [b["import_wh"], b["export_wh"]] for b in body["buckets"]}


async def consumer_lag(bootstrap: str, group: str, topic: str) -> int:
    """Sum over partitions of (end offset - committed offset of the worker's group), from Kafka."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        return sum(ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
                   for tp in tps)  # fmt: skip
    finally:
        await consumer.stop()
        await admin.close()


def parse(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["channel"] == kind]


async def test_strict_subscriber_then_redis_down_and_back(kafka_bootstrap: str, unique_name, tmp_path: Path) -> None:
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (the local stack needs it too)")
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    topic, app_id = unique_name("readings"), unique_name("app")
    await create_topic(kafka_bootstrap, topic, PARTITIONS)
    readings, meters = simulate(n_pdls=4, first_day=date(2026, 10, 20), days=4, seed=11)
    phase1 = {pdl: [r for r in rs if datetime.fromisoformat(r["time"]) <= SPLIT] for pdl, rs in readings.items()}
    phase2 = {pdl: [r for r in rs if datetime.fromisoformat(r["time"]) > SPLIT] for pdl, rs in readings.items()}
    watched = next(iter(meters))
    env = worker_env(kafka_bootstrap, redis_server.url, topic, app_id, LINKY_REDIS_TIMEOUT_SECONDS="0.3",
                     LINKY_REDIS_RETRY_SECONDS="0.5")  # fmt: skip
    worker = Worker("worker", env, tmp_path / "data", tmp_path)

    client = aioredis.from_url(redis_server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    channels = {f"linky:{watched}:live": "live", f"linky:{watched}:conso": "conso"}
    await pubsub.subscribe(*channels)
    received: list[dict[str, Any]] = []

    async def listen() -> None:
        async for msg in pubsub.listen():
            if msg["type"] == "message":
                received.append({"channel": channels[msg["channel"].decode()], **json.loads(msg["data"])})

    listener = asyncio.create_task(listen())
    try:
        worker.start()
        # ---- 1. strict subscriber ------------------------------------------------------------
        await produce(kafka_bootstrap, topic, send_order(phase1, seed=3))
        last1 = phase1[watched][-1]["time"]
        await until(lambda: _async(lambda: bool(parse(received, "live")) and parse(received, "live")[-1]["time"] == last1),
                    120, "the live message of the watched PDL's last reading", worker)  # fmt: skip
        await until(lambda: _async(lambda: all(http_days(worker, p).get("2026-10-21") == m.truth_days["2026-10-21"]
                                               for p, m in meters.items())),
                    60, "every PDL's 2026-10-21 total", worker)  # fmt: skip
        await asyncio.sleep(1.0)  # let the last conso message arrive (published in the same batch or the next)
        lives, consos = parse(received, "live"), parse(received, "conso")
        distinct = sorted({datetime.fromisoformat(r["time"]) for r in phase1[watched]})
        assert [datetime.fromisoformat(m["time"]) for m in lives] == distinct  # one per reading, in order, none missing
        assert all(m["pdl"] == watched and m["schema_version"] == 1 for m in lives + consos)
        conso_times = [datetime.fromisoformat(m["time"]) for m in consos]
        # the conso view is coalesced: at least one per group of a PDL's readings folded in a row
        # (agents/readings.py GROUP_MAX, 16), in order, each a later state than the one before
        assert conso_times == sorted(set(conso_times)) and len(consos) >= len(distinct) // 16 > 0
        for prev, cur in zip(consos, consos[1:]):
            if prev["day"] and cur["day"]["start"] == prev["day"]["start"]:
                assert cur["day"]["import_wh"] >= prev["day"]["import_wh"]
                assert cur["day"]["export_wh"] >= prev["day"]["export_wh"]
            if prev["month"]:
                assert cur["month"]["import_wh"] >= prev["month"]["import_wh"]
                assert cur["month"]["export_wh"] >= prev["month"]["export_wh"]
        truth = meters[watched]
        assert consos[-1]["day"]["start"] == "2026-10-21T00:00:00+02:00"
        assert [consos[-1]["day"]["import_wh"], consos[-1]["day"]["export_wh"]] == truth.truth_days["2026-10-21"]
        month1 = [sum(truth.truth_days[d][i] for d in ("2026-10-20", "2026-10-21")) for i in (0, 1)]
        assert [consos[-1]["month"]["import_wh"], consos[-1]["month"]["export_wh"]] == month1
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await pubsub.aclose()

        # ---- 2. Redis down while readings keep coming ------------------------------------------
        failures_before = worker.metric("linky_redis_publish_failures_total")
        redis_server.stop()
        await produce(kafka_bootstrap, topic, send_order(phase2, seed=4))
        last2 = {pdl: rs[-1]["time"] for pdl, rs in phase2.items()}

        async def caught_up() -> bool:
            for pdl, t in last2.items():
                status, body = worker.get(f"/pdl/{pdl}/live")
                if status != 200 or body["time"] != t:
                    return False
            return all(http_days(worker, p) == m.truth_days for p, m in meters.items())

        await until(caught_up, 120, "the worker processing every reading while Redis is down", worker)
        await until(lambda: _lag_is_zero(kafka_bootstrap, app_id, topic), 60, "consumer lag back to 0", worker)
        for pdl, meter in meters.items():
            assert http_days(worker, pdl, "month") == meter.truth_months
        assert redis_server.proc is None  # Redis was down all along
        assert worker.metric("linky_redis_up") == 0
        assert worker.metric("linky_redis_publish_failures_total") > failures_before
        assert worker.metric("linky_stream_readings_processed_total", agent="consumption", outcome="error") == 0

        # ---- Redis back: snapshot keys rewritten from the tables -------------------------------
        redis_server.start()
        fresh = aioredis.from_url(redis_server.url)
        try:
            async def snapshots_back() -> bool:
                raw_live, raw_conso = await fresh.mget(f"linky:{watched}:live", f"linky:{watched}:conso")
                return raw_live is not None and raw_conso is not None and json.loads(raw_conso)["time"] is not None

            await until(snapshots_back, 60, "the snapshot keys rewritten after Redis came back", worker)
            for pdl, meter in meters.items():
                live = json.loads(await fresh.get(f"linky:{pdl}:live"))
                conso = json.loads(await fresh.get(f"linky:{pdl}:conso"))
                status, http_live = worker.get(f"/pdl/{pdl}/live")
                assert status == 200 and live == http_live and live["time"] == last2[pdl]
                assert conso["time"] == last2[pdl]
                assert conso["day"]["start"] == "2026-10-23T00:00:00+02:00"
                assert [conso["day"]["import_wh"], conso["day"]["export_wh"]] == meter.truth_days["2026-10-23"]
                assert [conso["month"]["import_wh"], conso["month"]["export_wh"]] == meter.truth_months["2026-10"]
        finally:
            await fresh.aclose()
        assert worker.metric("linky_redis_up") == 1
        assert worker.metric("linky_redis_snapshots_rewritten_total") >= 2 * len(meters)
        assert worker.proc is not None and worker.proc.poll() is None  # no crash
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await client.aclose()
        worker.stop()
        redis_server.stop()


async def _async(cond: Callable[[], bool]) -> bool:
    return cond()


async def _lag_is_zero(bootstrap: str, group: str, topic: str) -> bool:
    return await consumer_lag(bootstrap, group, topic) == 0
