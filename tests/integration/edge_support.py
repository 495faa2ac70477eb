"""Helpers for the edge integration tests: run the real reader process, scrape its metrics,
read a topic back, compare with the simulator's ground truth."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.conftest import REPO_ROOT

VALUES = ("import_wh", "import_wh_by_period", "export_wh", "power_va", "tariff_period")


def start_reader(devices: list[str], bootstrap: str, topic: str, spool_dir: Path,
                 metrics_port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``teleinfo publish`` as the daemon runs it (JSON logs to ``log``)."""
    cmd = [sys.executable, "-m", "teleinfo", "publish", *devices, "--bootstrap", bootstrap,
           "--topic", topic, "--spool-dir", str(spool_dir), "--metrics-port", str(metrics_port),
           "--log-format", "json"]
    full_env = {**os.environ, "LINKY_SPOOL_AFTER_SECONDS": "1", **env}
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def scrape(port: int) -> dict[str, float]:
    """``{"name{labels}": value}`` from /metrics ({} while the endpoint is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metric(port: int, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` matching ``labels``."""
    total = 0.0
    for key, value in scrape(port).items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(interval)


def read_topic(bootstrap: str, topic: str) -> dict[str, list[dict[str, Any]]]:
    """Every message of ``topic``, as readings grouped by key (= PDL), in partition order;
    checks that each key lives in one partition."""
    return asyncio.run(_read_topic(bootstrap, topic))


async def _read_topic(bootstrap: str, topic: str) -> dict[str, list[dict[str, Any]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or
                                                          await _partitions(consumer, topic))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        by_key: dict[str, list[dict[str, Any]]] = {}
        partition_of: dict[str, int] = {}
        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in parts])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for m in messages:
                    reading = json.loads(m.value)
                    key = m.key.decode()
                    assert key == reading["pdl"], "messages are keyed by PDL"
                    assert partition_of.setdefault(key, tp.partition) == tp.partition
                    by_key.setdefault(key, []).append(reading)
        return by_key
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001
    return consumer.partitions_for_topic(topic) or set()


def first_occurrences(readings: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Drop duplicates by ``time`` as the stream side does; returns (unique, duplicates)."""
    seen: set[str] = set()
    unique = []
    for r in readings:
        if r["time"] in seen:
            continue
        seen.add(r["time"])
        unique.append(r)
    return unique, len(readings) - len(unique)


def assert_gapless_tail(readings: list[dict[str, Any]], truth_meter: dict[str, Any]) -> int:
    """The readings are exactly the simulator's frames from some point to its last frame, in
    order, none missing (compared on values, and on ``time`` in standard mode). Returns the
    index in the truth where they start."""
    truth = truth_meter["readings"]
    assert truth_meter["frames_by_status"].get("corrupted", 0) == 0
    assert readings, f"no reading at all for {truth_meter['pdl']}"
    got = [tuple(json.dumps(r[k], sort_keys=True) for k in VALUES) +
           ((r["time"],) if truth_meter["mode"] == "standard" else ()) for r in readings]
    want = [tuple(json.dumps(t[k], sort_keys=True) for k in VALUES) +
            ((t["time"],) if truth_meter["mode"] == "standard" else ()) for t in truth]
    start = len(want) - len(got)
    assert start >= 0, f"{len(got)} readings but the simulator sent {len(want)} frames"
    assert all(t["status"] == "intact" for t in truth[start:]), \
        "a frame the reader should have had was lost on the line"
    if got != want[start:]:
        for i, (g, w) in enumerate(zip(got, want[start:])):
            if g != w:
                raise AssertionError(f"{truth_meter['pdl']}: reading {i} differs from frame "
                                     f"{start + i}: {g} != {w}")
    if truth_meter["mode"] == "historic":
        times = [r["time"] for r in readings]
        assert times == sorted(times)
    return start
