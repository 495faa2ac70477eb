"""A timer's alert through a crash (write-back state, stream/writeback.py ``PublishOrder``).

The battery timer opens ``meter_silent`` through a tick that is not replayed after a crash. If
the ``open`` were published before its state reached the changelog, a SIGKILL inside the flush
interval would lose the state but not the publish: the meter speaking again would clear nothing
and the household's page would show "compteur muet" until the next episode. The flush interval
here is 30 s, so the kill right after the ``open`` lands well inside it.
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream import clock
from tests.integration.stream_support import Worker, create_topic, produce, simulate, worker_env

pytestmark = pytest.mark.integration


async def next_silent_action(pubsub: aioredis.client.PubSub, timeout: float, worker: Worker) -> str:
    """The action of the next ``meter_silent`` event on the subscribed alerts channel."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None:
                    event = json.loads(msg["data"])
                    if event.get("kind") == "meter_silent":
                        return str(event["action"])
    except TimeoutError:
        raise AssertionError(f"no meter_silent event within {timeout} s\n{worker.tail()}") from None


async def test_a_timer_alert_published_before_a_crash_is_cleared_by_the_next_reading(
    kafka_bootstrap: str, redis_url: str, redis_worker_url: str, unique_name, tmp_path: Path
) -> None:
    topic = unique_name("readings")
    await create_topic(kafka_bootstrap, topic)
    readings, _ = simulate(n_pdls=1, first_day=clock.today() - timedelta(days=2), days=1)
    (pdl, rows), = readings.items()
    env = worker_env(kafka_bootstrap, redis_worker_url, topic, unique_name("app"), LINKY_STATE_FLUSH_SECONDS="30",
                     LINKY_BATTERY_TICK_SECONDS="1", LINKY_ALERT_SILENT_SECONDS="4")  # fmt: skip
    worker = Worker("worker", env, tmp_path / "data", tmp_path)
    sub = aioredis.from_url(redis_url)
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"linky:{pdl}:alerts")
    try:
        worker.start()
        await produce(kafka_bootstrap, topic, rows[:-1])
        assert await next_silent_action(pubsub, 120, worker) == "open"
        # at most a few hundred ms after the open: the 30 s flush interval has not elapsed since
        # the tick; only a state already in the changelog survives this
        worker.stop(signal.SIGKILL)
        await produce(kafka_bootstrap, topic, rows[-1:])  # the meter speaks while the worker is down
        worker.start()
        assert await next_silent_action(pubsub, 120, worker) == "clear"
        snapshot = json.loads(await sub.get(f"linky:{pdl}:alerts"))
        assert snapshot["kind"] == "meter_silent" and snapshot["action"] == "clear"
        assert "meter_silent" not in {a["kind"] for a in snapshot["open"]}
    finally:
        await pubsub.aclose()
        await sub.aclose()
        worker.stop()
