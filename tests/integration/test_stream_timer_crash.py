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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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


async def test_a_reading_behind_a_timer_publish_is_not_lost_by_a_crash_after_their_flush(
    kafka_bootstrap: str, redis_url: str, redis_worker_url: str, unique_name, tmp_path: Path
) -> None:
    """The meter speaks while the timer's ``open`` still waits for its flush. Its readings must not
    wait behind that ``open`` (agents/battery.py ``settle``): queued behind it, their state went to
    the changelog in the same flush, before their publishes were even queued, and a SIGKILL right
    after the ``open`` lost the ``clear`` and the later battery updates for good (the replay found
    them folded). The Redis linger of 1 s holds the tail of the publishes long enough for the kill
    to land before it, every time: this test failed on the code before ``settle``."""
    topic = unique_name("readings")
    await create_topic(kafka_bootstrap, topic)
    readings, _ = simulate(n_pdls=1, first_day=clock.today() - timedelta(days=5), days=4)
    (pdl, rows), = readings.items()
    first, second = rows[:20], rows[20:]
    env = worker_env(kafka_bootstrap, redis_worker_url, topic, unique_name("app"), LINKY_STATE_FLUSH_SECONDS="60",
                     LINKY_BATTERY_TICK_SECONDS="1", LINKY_ALERT_SILENT_SECONDS="4",
                     LINKY_REDIS_LINGER_SECONDS="1")  # fmt: skip
    worker = Worker("worker", env, tmp_path / "data", tmp_path)
    sub = aioredis.from_url(redis_url)
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"linky:{pdl}:alerts", f"linky:{pdl}:battery")
    silent: list[str] = []
    battery_times: set[datetime] = set()

    async def next_message(timeout: float) -> None:
        msg = await pubsub.get_message(timeout=timeout)
        if msg is None:
            return
        event = json.loads(msg["data"])
        if msg["channel"].endswith(b":alerts") and event.get("kind") == "meter_silent":
            silent.append(str(event["action"]))
        elif msg["channel"].endswith(b":battery") and event.get("time"):
            battery_times.add(datetime.fromisoformat(event["time"]))

    async def until(cond: Any, timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not cond():
                    await next_message(0.2)
        except TimeoutError:
            missing = len(times(second) - battery_times)
            raise AssertionError(f"timed out waiting for {what}: meter_silent {silent}, {missing} of the "
                                 f"{len(second)} later readings without a battery view of their own "
                                 f"(coalesced or lost)\n{worker.tail()}") from None  # fmt: skip

    def times(batch: list[dict[str, Any]]) -> set[datetime]:
        return {datetime.fromisoformat(r["time"]) for r in batch}

    try:
        worker.start()
        await produce(kafka_bootstrap, topic, first)
        await until(lambda: times(first[-1:]) <= battery_times, 120, "the first readings")
        # the meter is silent: the timer's tick opens meter_silent; its publish waits for the flush
        await until(lambda: worker.metric("linky_battery_publishes_waiting_for_flush") >= 1 and
                    worker.metric("linky_battery_ticks_sent_total") >= 1, 60, "a tick waiting for its flush")  # fmt: skip
        deadline = asyncio.get_running_loop().time() + 6  # the silence tick (4 s + a timer run)
        while asyncio.get_running_loop().time() < deadline:
            await next_message(0.2)
        assert silent == [], f"a flush before the scenario (interval 60 s): {silent}\n{worker.tail()}"
        await produce(kafka_bootstrap, topic, second)  # the meter speaks again
        await until(lambda: "open" in silent, 120, "the meter_silent open")
        worker.stop(signal.SIGKILL)  # right after the open: the rest waits in the worker's linger
        behind = [line for line in worker.log.read_text(errors="replace").splitlines() if "queue behind a flush" in line]
        worker.start()
        # the battery view is coalesced per group of a PDL's readings (agents/readings.py): the
        # channel must end on the last reading's view (lost with the crash on the old code)
        await until(lambda: max(times(second)) in battery_times and "clear" in silent, 120,
                    "the last reading's battery update and the clear after the restart")  # fmt: skip
        assert worker.metric("linky_stream_state_flush_failures_total") == 0
        assert silent[:2] == ["open", "clear"], silent
        assert not behind, behind  # every reading of the PDL waited for the tick's flush, none queued behind
    finally:
        await pubsub.aclose()
        await sub.aclose()
        worker.stop()
