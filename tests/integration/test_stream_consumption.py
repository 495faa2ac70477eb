"""The stream end to end on the real stack: simulated meters -> Kafka -> real workers -> tables,
HTTP queries and Redis, against the simulator's ground truth.

Nine days (2026-10-24 .. 2026-11-01, Europe/Paris) include the 25-hour day of 2026-10-25 and a
month change; half of the meters have a reader offline for seven hours inside a day; readings
are duplicated and an older block is replayed; the first worker is SIGKILLed mid-stream, then
restarted on its data dir next to a second worker with an empty one (changelog recovery and a
rebalance), and both must answer every query identically, to the Wh.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import date
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from stream.datadir import MARKER
from tests.integration.stream_support import (
    Worker,
    create_topic,
    produce,
    send_order,
    simulate,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration


def day_totals(worker: Worker, pdl: str, granularity: str = "day", **params: str) -> dict[str, list[int]]:
    query = "&".join([f"granularity={granularity}", *(f"{k}={v}" for k, v in params.items())])
    status, body = worker.get(f"/pdl/{pdl}/consumption?{query}")
    if status != 200:
        return {"status": [status]}
    key_len = 10 if granularity != "month" else 7
    return {b["start"][:key_len]: [b["import_wh"], b["export_wh"]] for b in body["buckets"]}


@pytest.mark.parametrize(("flush_seconds", "direct", "max_keys"),
                         [("5", "true", None), ("30", "true", None), ("5", "false", None), ("30", "true", "20")],
                         ids=["flush-5s", "flush-30s", "faust-agent-flush-5s", "flush-30s-key-budget-20"])
async def test_day_and_month_totals_match_the_ground_truth_through_a_crash(
    kafka_bootstrap: str, redis_url: str, redis_worker_url: str, unique_name, tmp_path: Path, flush_seconds: str,
    direct: str, max_keys: str | None,
) -> None:
    """``flush_seconds``: the write-back interval (stream/writeback.py). With 30 s the kill lands
    between two flushes with thousands of readings folded in memory only: they must be replayed
    from the committed offsets, none lost, none counted twice. ``direct``: readings folded by the
    consumer per fetch (the default, agents/readings.py ``fold_messages``) or through faust's
    agent one event at a time (``LINKY_READINGS_DIRECT=false``). ``max_keys``: the dirty-key
    budget (``LINKY_STATE_FLUSH_MAX_KEYS``); 20 for 12 PDLs makes most flushes come from it,
    in the middle of the interval, so the kill lands among flushes the budget started."""
    topic = unique_name("readings")
    await create_topic(kafka_bootstrap, topic)
    readings, meters = simulate(n_pdls=12, first_day=date(2026, 10, 24), days=9)
    sequence = send_order(readings)
    last_time = {pdl: rs[-1]["time"] for pdl, rs in readings.items()}
    watched = next(iter(meters))
    env = worker_env(kafka_bootstrap, redis_worker_url, topic, unique_name("app"), LINKY_STATE_FLUSH_SECONDS=flush_seconds,
                     LINKY_READINGS_DIRECT=direct)  # fmt: skip
    if max_keys is not None:
        env["LINKY_STATE_FLUSH_MAX_KEYS"] = max_keys
    a = Worker("worker-a", env, tmp_path / "data-a", tmp_path)
    b = Worker("worker-b", env, tmp_path / "data-b", tmp_path)
    sub = aioredis.from_url(redis_url)
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"linky:{watched}:live", f"linky:{watched}:conso")
    try:
        a.start()
        first, half = len(sequence) // 10, len(sequence) // 2
        await produce(kafka_bootstrap, topic, sequence[:first])
        # Kill only after every partition has a committed offset: this test is the resume from
        # committed offsets; a kill before the first commit is test_stream_first_commit.py's.
        wait_for(lambda: all(a.metric("linky_faust_topic_partition_offset_commited", topic=topic, partition=str(p)) > 0
                             for p in range(4)), 120, "worker A committing every partition", [a])  # fmt: skip
        await produce(kafka_bootstrap, topic, sequence[first:half])
        target = first + (half - first) // 4
        wait_for(lambda: a.metric("linky_stream_readings_processed_total", agent="consumption") >= target,
                 120, "worker A processing the first half", [a])  # fmt: skip
        seen = a.metric("linky_stream_readings_processed_total", agent="consumption")
        held = a.metric("linky_stream_state_held_readings")
        by_keys = a.metric("linky_stream_state_flushes_total", reason="keys")
        a.stop(signal.SIGKILL)
        if flush_seconds == "30" and max_keys is None:
            assert held > 0, "no reading waited for a flush at the kill: not the case under test"
        if max_keys is not None:
            assert by_keys > 0, "no flush came from the key budget before the kill: not the case under test"
        assert seen < half, "worker A finished the first half before the kill: not a mid-stream crash"

        a.start()
        b.start()
        await produce(kafka_bootstrap, topic, sequence[half:])

        def caught_up() -> bool:
            for pdl, t in last_time.items():
                status, body = a.get(f"/pdl/{pdl}/live")
                if status != 200 or body["time"] != t:
                    return False
            return all(day_totals(a, pdl) == meters[pdl].truth_days for pdl in meters)

        try:
            wait_for(caught_up, 180, "both workers caught up with every PDL", [a, b], interval=1.0)
        except AssertionError as exc:
            diffs = {pdl: {d: (got, meter.truth_days.get(d)) for d, got in day_totals(a, pdl).items()
                           if got != meter.truth_days.get(d)} for pdl, meter in meters.items()}  # fmt: skip
            raise AssertionError(f"{exc}\nday totals differing from the truth: {diffs}") from None

        for worker in (a, b):  # whichever worker holds the partition, the answer is the same
            for pdl, meter in meters.items():
                assert day_totals(worker, pdl) == meter.truth_days, (worker.name, pdl)
                assert day_totals(worker, pdl, "month") == meter.truth_months, (worker.name, pdl)
        # the 25-hour day, hour by hour, with a from/to range
        for pdl, meter in meters.items():
            status, body = a.get(f"/pdl/{pdl}/consumption?granularity=hour&from=2026-10-25&to=2026-10-26")
            assert status == 200 and len(body["buckets"]) == 25
            assert sum(b["import_wh"] for b in body["buckets"]) == meter.truth_days["2026-10-25"][0]
            assert sum(b["export_wh"] for b in body["buckets"]) == meter.truth_days["2026-10-25"][1]
            starts = [b["start"] for b in body["buckets"]]
            assert len(set(starts)) == 25 and starts[2:4] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
        # the restarted workers' tables came from the changelogs through the bulk restore
        # (stream/restore.py), and faust's recovery only read what it left, if anything
        restored = {w.name: w.metric("linky_stream_state_bulk_restored_records_total") for w in (a, b)}
        assert sum(restored.values()) > 0, restored
        assert a.metric("linky_stream_state_bulk_restore_failures_total", reason="error") == 0, a.tail()
        assert b.metric("linky_stream_state_bulk_restore_failures_total", reason="error") == 0, b.tail()
        # both workers own some of the partitions (the answers above were routed)
        assert a.metric("linky_stream_readings_processed_total", agent="live") > 0
        assert b.metric("linky_stream_readings_processed_total", agent="live") > 0
        # the restarted workers fetched their backlog gathered by the broker (stream/consumer.py
        # FetchPacer): the exact totals above hold through batched fetches too. The pacer judges a
        # second of fetches at its end: a worker that folds its backlog in less than that (a fetch
        # folded per PDL, agents/readings.py) switches just after it caught up, so this waits
        wait_for(lambda: sum(w.metric("linky_stream_fetch_mode_changes_total", mode="batched") for w in (a, b)) >= 1,
                 10, "a restarted worker switching its fetches to batched", [a, b])  # fmt: skip

        status, body = a.get("/pdl/99999999999999/consumption?granularity=day")
        assert status == 404 and "error" in body
        status, body = b.get(f"/pdl/{watched}/consumption?granularity=week")
        assert status == 400 and "granularity" in body["error"]

        # Redis: the snapshot keys hold the final state; the watched PDL's channels carried it
        live = json.loads(await sub.get(f"linky:{watched}:live"))
        conso = json.loads(await sub.get(f"linky:{watched}:conso"))
        assert live["time"] == last_time[watched] and live["schema_version"] == 1
        assert conso["day"]["start"] == "2026-11-01T00:00:00+01:00"
        assert [conso["day"]["import_wh"], conso["day"]["export_wh"]] == meters[watched].truth_days["2026-11-01"]
        messages: list[dict] = []
        async with asyncio.timeout(10):
            while True:
                msg = await pubsub.get_message(timeout=0.5)
                if msg is None:
                    if messages:
                        break
                    continue
                messages.append(json.loads(msg["data"]))
        lives = [m for m in messages if "power_va" in m]
        assert lives and lives[-1]["time"] == last_time[watched]
    finally:
        await pubsub.aclose()
        await sub.aclose()
        a.stop()
        b.stop()


async def test_a_worker_upgraded_to_write_back_state_continues_the_tables_of_the_previous_one(
    kafka_bootstrap: str, redis_worker_url: str, unique_name, tmp_path: Path
) -> None:
    """The migration of issue 14: write-back changes *when* table values are written, not what
    is written (same tables, keys and bytes). A worker writing every reading's values at once
    (``LINKY_STATE_FLUSH_SECONDS=0``, the previous behaviour) folds the first half and stops; the
    same data dir and changelogs are taken over by a write-back worker, and by a new worker with an
    empty data dir (changelog recovery): every total equals the ground truth."""
    topic = unique_name("readings")
    await create_topic(kafka_bootstrap, topic)
    readings, meters = simulate(n_pdls=6, first_day=date(2026, 10, 30), days=3)
    sequence = send_order(readings)
    half = len(sequence) // 2
    app_id = unique_name("app")
    old = Worker("worker-old", worker_env(kafka_bootstrap, redis_worker_url, topic, app_id,
                                          LINKY_STATE_FLUSH_SECONDS="0"), tmp_path / "data-a", tmp_path)  # fmt: skip
    new_env = worker_env(kafka_bootstrap, redis_worker_url, topic, app_id, LINKY_STATE_FLUSH_SECONDS="2")
    new = Worker("worker-new", new_env, tmp_path / "data-a", tmp_path)
    # the fresh worker recovers through faust's recovery alone (the bulk restore off): that path
    # stays tested; test_day_and_month_totals_match_the_ground_truth_through_a_crash is the bulk one's
    fresh = Worker("worker-fresh", {**new_env, "LINKY_STATE_BULK_RESTORE": "false"}, tmp_path / "data-b", tmp_path)
    try:
        old.start()
        await produce(kafka_bootstrap, topic, sequence[:half])
        wait_for(lambda: old.metric("linky_stream_readings_processed_total", agent="consumption") >= half, 120,
                 "the previous-behaviour worker folding the first half", [old])  # fmt: skip
        assert old.metric("linky_stream_state_held_readings") == 0  # it held nothing back
        old.stop()
        new.start()
        wait_for(lambda: new.metric("linky_stream_partitions_assigned", kind="active") > 0, 120,
                 "the write-back worker taking the partitions", [new])  # fmt: skip
        await produce(kafka_bootstrap, topic, sequence[half:])
        new_folded = lambda: new.metric("linky_stream_readings_processed_total", agent="consumption")  # noqa: E731
        wait_for(lambda: new_folded() >= len(sequence) - half, 120, "the write-back worker folding the rest", [new])
        assert new_folded() < len(sequence), "the write-back worker re-folded the first half from scratch"
        fresh.start()  # a rebalance: half the partitions move to a worker recovering from the changelogs

        def exact() -> bool:
            return all(day_totals(w, pdl) == meter.truth_days for w in (new, fresh) for pdl, meter in meters.items())

        wait_for(exact, 180, "both workers answering the ground truth", [new, fresh], interval=1.0)
        assert fresh.metric("linky_stream_partitions_assigned", kind="active") > 0
        assert fresh.metric("linky_stream_state_bulk_restored_records_total") == 0
        for pdl, meter in meters.items():
            assert day_totals(fresh, pdl, "month") == meter.truth_months
        # a write-back worker stops cleanly on SIGTERM: it flushes what it holds and faust's wait
        # for unacked events ends (it once waited forever), so its data dir is marked clean
        started = time.monotonic()
        new.stop()
        assert (tmp_path / "data-a" / MARKER).exists(), f"no clean stop marker\n{new.tail(30)}"
        assert time.monotonic() - started < 30
    finally:
        old.stop()
        new.stop()
        fresh.stop()
