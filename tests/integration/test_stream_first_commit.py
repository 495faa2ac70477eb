"""A worker SIGKILLed before its first offset commit (docs/stream.md "Processing guarantee").

A brand-new consumer group has no committed offset until the first commit (faust's timer,
``LINKY_KAFKA_COMMIT_INTERVAL_SECONDS``, raised here to 60 s so that the kill always comes first).
After a restart, a partition without a committed offset must be read from the beginning
(``consumer_auto_offset_reset="earliest"``): if it started at the end of the log instead, the
backlog would never be folded and its energy would be lost. The killed worker is restarted on its
data dir (its local tables are discarded and recovered from the changelogs, stream/datadir.py),
more readings are sent, and every PDL's day totals must equal the simulator's truth to the Wh.

Variants: killed while folding the backlog, or killed once its partitions are assigned but before
anything was folded; one partition or two; restarted alone or next to a second, new worker.
"""

from __future__ import annotations

import signal
import time
from datetime import date
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.stream_support import Worker, create_topic, produce, send_order, simulate, wait_for, worker_env

pytestmark = pytest.mark.integration

PROCESSED = "linky_stream_readings_processed_total"


def day_totals(worker: Worker, pdl: str) -> dict[str, list[int]] | None:
    status, body = worker.get(f"/pdl/{pdl}/consumption?granularity=day")
    if status != 200:
        return None
    return {b["start"][:10]: [b["import_wh"], b["export_wh"]] for b in body["buckets"]}


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return [ends[tp] for tp in tps]


def kill_when(worker: Worker, cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL ``worker`` as soon as ``cond()`` holds (polled every 20 ms)."""
    wait_for(cond, timeout, what, [worker], interval=0.02)
    worker.stop(signal.SIGKILL)


@pytest.mark.parametrize(
    ("partitions", "kill", "second_worker"),
    [
        pytest.param(2, "while-folding", True, id="2p-killed-while-folding-restart-with-second-worker"),
        pytest.param(2, "before-folding", True, id="2p-killed-before-folding-restart-with-second-worker"),
        pytest.param(1, "while-folding", False, id="1p-killed-while-folding"),
    ],
)
async def test_backlog_is_folded_after_a_kill_before_the_first_commit(
    kafka_bootstrap: str, redis_worker_url: str, unique_name, tmp_path: Path, partitions: int, kill: str, second_worker: bool
) -> None:
    topic, app_id = unique_name("readings"), unique_name("app")
    await create_topic(kafka_bootstrap, topic, partitions)
    readings, meters = simulate(n_pdls=6, first_day=date(2026, 10, 24), days=3)
    sequence = send_order(readings)
    backlog = len(sequence) * 2 // 3
    await produce(kafka_bootstrap, topic, sequence[:backlog])
    last_time = {pdl: rs[-1]["time"] for pdl, rs in readings.items()}
    # a short write-back flush interval: the changelogs hold table changes before the kill
    # (what makes the case), while the commit timer still has not run
    env = worker_env(kafka_bootstrap, redis_worker_url, topic, app_id, LINKY_TOPIC_PARTITIONS=str(partitions),
                     LINKY_KAFKA_COMMIT_INTERVAL_SECONDS="60", LINKY_STATE_FLUSH_SECONDS="0.5")  # fmt: skip
    a = Worker("worker-a", env, tmp_path / "data-a", tmp_path)
    b = Worker("worker-b", env, tmp_path / "data-b", tmp_path)
    try:
        a.start()
        if kill == "while-folding":
            kill_when(a, lambda: a.metric(PROCESSED, agent="consumption") >= 100
                      and a.metric("linky_stream_state_flushed_keys_total") > 0, 60, "worker A folding readings")  # fmt: skip
            # what makes the case: the tables' changelogs hold changes (the restart recovers them)...
            changelog = await end_offsets(kafka_bootstrap, f"{app_id}-pdl-state-changelog", partitions)
            assert sum(changelog) > 0, "nothing reached the pdl-state changelog before the kill"
        else:  # its partitions assigned (tables recovering), nothing folded yet
            kill_when(a, lambda: "Executing _on_partitions_assigned" in a.tail(200), 60, "worker A assigned its partitions")
            assert "Worker ready" not in a.tail(200), "worker A was ready before the kill: not the case under test"
        killed_at = time.monotonic()
        commits = await committed_offsets(kafka_bootstrap, app_id, topic)
        # ...while the consumer group has no committed offset yet
        assert commits == {}, f"worker A committed before the kill ({commits}): not the case under test"

        a.start()
        if second_worker:
            b.start()
        await produce(kafka_bootstrap, topic, sequence[backlog:])

        def caught_up() -> bool:
            for pdl, t in last_time.items():
                status, body = a.get(f"/pdl/{pdl}/live")
                if status != 200 or body["time"] != t:
                    return False
            return True

        workers = [a, b] if second_worker else [a]
        try:
            wait_for(caught_up, 45, "the restarted worker(s) folding every PDL's last reading", workers)
        except AssertionError as exc:
            lives = {pdl: (a.get(f"/pdl/{pdl}/live")[1] or {}).get("time") for pdl in last_time}
            stale = {pdl: (got, last_time[pdl]) for pdl, got in lives.items() if got != last_time[pdl]}
            folded = {w.name: w.metric(PROCESSED, agent="consumption") for w in workers}
            commits = await committed_offsets(kafka_bootstrap, app_id, topic)
            raise AssertionError(
                f"{exc}\nlast reading folded vs sent, per stale PDL: {stale}\nreadings folded since the restart: "
                f"{folded} of {len(sequence)} sent\ncommitted offsets now: {commits}"
            ) from None
        diffs = {}
        for pdl, meter in meters.items():
            got = day_totals(a, pdl)
            if got != meter.truth_days:
                diffs[pdl] = {d: (v, meter.truth_days.get(d)) for d, v in (got or {}).items() if v != meter.truth_days.get(d)}
        commits = await committed_offsets(kafka_bootstrap, app_id, topic)
        assert not diffs, (
            f"day totals differ from the truth after a kill before the first commit (got, truth): {diffs}\n"
            f"backlog {backlog} readings, restart {time.monotonic() - killed_at:.1f} s after the kill, "
            f"committed now {commits}\n--- {a.name}\n{a.tail(60)}"
        )
    finally:
        a.stop()
        b.stop()
