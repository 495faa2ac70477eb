"""What an SRE reads from a real worker (real Kafka, Redis, worker subprocess): ``/healthz``,
``/readyz`` (what is not ready, as JSON), the consumer lag and lag-age gauges, and
``linky-stream status`` (``--json`` and its exit status) before and after the worker dies, and
with Redis unreachable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from stream import clock
from tests.conftest import REPO_ROOT, free_port
from tests.integration.stream_support import Meter, Worker, create_topic, wait_for, worker_env

pytestmark = pytest.mark.integration
PARTITIONS = 2


async def produce_with_partitions(bootstrap: str, topic: str, readings: list[dict[str, Any]]) -> dict[str, int]:
    """Send readings keyed by PDL; return each PDL's partition (Kafka's default partitioner)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [(r["pdl"], await producer.send(topic, json.dumps(r).encode(), key=r["pdl"].encode()))
                   for r in readings]
        return {pdl: (await f).partition for pdl, f in futures}
    finally:
        await producer.stop()


def status(worker_url: str, bootstrap: str, topic: str, group: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "stream", "status", "--json", "--worker", worker_url, "--bootstrap", bootstrap,
         "--topic", topic, "--group", group, "--timeout", "5"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)




async def test_health_lag_and_status_of_a_real_worker(tmp_path: Path, kafka_bootstrap: str, redis_url: str,
                                                      unique_name) -> None:
    topic, app_id = unique_name("ops"), unique_name("ops-app")
    await create_topic(kafka_bootstrap, topic, PARTITIONS)
    env = worker_env(kafka_bootstrap, redis_url, topic, app_id, LINKY_TOPIC_PARTITIONS=str(PARTITIONS),
                     LINKY_CLOCK_OFFSET_SECONDS=repr(clock.offset_seconds()))
    worker = Worker("worker", env, tmp_path / "data", tmp_path).start()
    url = f"http://127.0.0.1:{worker.port}"
    try:
        wait_for(lambda: worker.get("/healthz")[0] == 200, 90, "/healthz answers", [worker])
        assert worker.get("/healthz")[1]["status"] == "ok"
        wait_for(lambda: worker.get("/readyz")[0] == 200, 90, "/readyz ready", [worker])
        body = worker.get("/readyz")[1]
        assert body["ready"] is True and body["not_ready"] == []
        assert set(body["checks"]) == {"partitions", "tables", "kafka", "redis"}
        assert sorted(body["checks"]["partitions"]["active"]) == list(range(PARTITIONS))

        # 6 meters sent one after the other; meter i's readings end (i + 1) minutes before now, so
        # the last reading processed on a partition is the one of its highest-numbered meter
        now = clock.now()
        readings = []
        for i in range(6):
            meter = Meter(f"{26_000_000_000_000 + i * 7919:014d}", "standard", producer=False, hc=1000, hp=1000)
            for k in range(5, -1, -1):
                meter.hc += 3
                readings.append(meter.reading(now - timedelta(minutes=i + 1, seconds=15 * k)))
        partition_of = await produce_with_partitions(kafka_bootstrap, topic, readings)
        newest = {}  # partition -> event time of the last reading sent to it
        for r in readings:
            newest[partition_of[r["pdl"]]] = datetime.fromisoformat(r["time"]).timestamp()
        assert len(set(newest.values())) == len(newest)  # distinguishable per partition
        wait_for(lambda: worker.metric("linky_stream_readings_processed_total", agent="live") >= len(readings),
                 60, "every reading processed", [worker])
        wait_for(lambda: all(worker.metric("linky_stream_consumer_lag_messages", topic=topic, partition=str(p)) == 0
                             for p in range(PARTITIONS)) and "linky_stream_consumer_lag_messages" in
                 urllib_text(worker), 30, "offsets committed: lag 0", [worker])
        for p, last in newest.items():
            age = worker.metric("linky_stream_consumer_lag_seconds", topic=topic, partition=str(p))
            expected = clock.time() - last
            assert expected - 5 <= age <= expected + 1, (p, age, expected)
        assert worker.metric("linky_stream_partitions_assigned", kind="active") == PARTITIONS

        rc, report = status(url, kafka_bootstrap, topic, app_id)
        assert rc == 0, report["problems"]
        assert report["ok"] and report["problems"] == []
        assert [p["partition"] for p in report["partitions"]] == list(range(PARTITIONS))
        for row in report["partitions"]:
            assert row["owner"] == url and row["lag"] == 0
            if row["partition"] in newest:
                assert abs(row["lag_seconds"] - (clock.time() - newest[row["partition"]])) < 10
        assert report["workers"][0]["ready"] and report["workers"][0]["redis"]["up"]
        assert report["workers"][0]["recovery"]["completed"] is True

        # human output renders (rich) and says all is well
        human = subprocess.run([sys.executable, "-m", "stream", "status", "--worker", url, "--bootstrap",
                                kafka_bootstrap, "--topic", topic, "--group", app_id],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert human.returncode == 0 and "all partitions owned" in human.stdout, human.stdout + human.stderr

        # the worker stops: status says so and exits non-zero
        worker.stop(signal.SIGTERM)
        rc, report = status(url, kafka_bootstrap, topic, app_id)
        assert rc == 1
        assert any("unreachable" in p for p in report["problems"])
        assert sum("has no owner" in p for p in report["problems"]) == PARTITIONS

        # restarted with Redis unreachable: alive, not ready, and the body says why
        dead_redis = f"redis://127.0.0.1:{free_port()}/0"
        worker = Worker("worker-no-redis", {**env, "LINKY_REDIS_URL": dead_redis}, tmp_path / "data", tmp_path)
        worker.start()
        url = f"http://127.0.0.1:{worker.port}"
        wait_for(lambda: worker.get("/healthz")[0] == 200, 90, "/healthz answers", [worker])
        wait_for(lambda: worker.get("/readyz")[1] and "redis" in (worker.get("/readyz")[1] or {}).get("not_ready", []),
                 60, "/readyz reports redis", [worker])
        code, body = worker.get("/readyz")
        assert code == 503 and body["ready"] is False and body["checks"]["redis"]["ok"] is False
        rc, report = status(url, kafka_bootstrap, topic, app_id)
        assert rc == 1 and any("Redis down" in p for p in report["problems"])
    finally:
        worker.stop()


def urllib_text(worker: Worker) -> str:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""
