"""Helpers for the stream integration tests: a deterministic meter simulator with its own ground
truth, the real worker (``faust -A stream.app worker``) as a subprocess, HTTP and metrics probes.

The simulator never uses tables/: the truth of a day is the difference of the simulated meter's
indexes at the two local midnights (a reading is always sent at every local midnight: readings
are every 15 minutes of UTC time, and Paris midnights are whole UTC hours), so whatever the
stream does with gaps inside a day, the day and month totals are known exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import REPO_ROOT, free_port

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc
STEP = timedelta(minutes=15)


# --------------------------------------------------------------------------- simulator


@dataclass
class Meter:
    pdl: str
    mode: str  # "standard" | "historic"
    producer: bool
    gap: tuple[datetime, datetime] | None = None  # no reading sent inside (start, end)
    hc: int = 0
    hp: int = 0
    export: int = 0
    truth_days: dict[str, list[int]] = field(default_factory=dict)  # day -> [import, export]
    truth_months: dict[str, list[int]] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, str]:
        return ("EASF01", "EASF02") if self.mode == "standard" else ("HCHC", "HCHP")

    def reading(self, when: datetime) -> dict[str, Any]:
        hc_label, hp_label = self.labels
        local = when.astimezone(PARIS)
        offpeak = local.hour >= 22 or local.hour < 6
        standard = self.mode == "standard"
        return {
            "pdl": self.pdl, "meter": f"M{self.pdl}", "mode": self.mode, "time": local.isoformat(),
            "tariff_period": ("HEURE CREUSE" if offpeak else "HEURE PLEINE") if standard else ("HC.." if offpeak else "HP.."),
            "import_wh": self.hc + self.hp, "import_wh_by_period": {hc_label: self.hc, hp_label: self.hp},
            "export_wh": self.export if standard else None,
            "power_va": 400 + (self.hc + self.hp) % 2000, "export_power_va": (self.export % 900) if standard else None,
            "current_a": [2], "voltage_v": [231] if standard else None, "subscribed_kva": 9,
            "overload": False, "status": None,
        }  # fmt: skip


def simulate(
    n_pdls: int, first_day: date, days: int, seed: int = 5
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Meter]]:
    """Readings of ``n_pdls`` meters from ``first_day`` 00:00 to ``first_day + days`` 00:00
    (Europe/Paris), every 15 minutes, and the true energy per local day and month."""
    rng = random.Random(seed)
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=PARIS).astimezone(UTC)
    end = datetime.combine(first_day + timedelta(days=days), datetime.min.time(), tzinfo=PARIS).astimezone(UTC)
    meters: dict[str, Meter] = {}
    for i in range(n_pdls):
        pdl = f"{25_000_000_000_000 + i * 7919:014d}"
        meter = Meter(pdl, "historic" if i % 3 == 2 else "standard", producer=i % 2 == 0)
        meter.hc, meter.hp, meter.export = rng.randrange(10**6, 10**8), rng.randrange(10**6, 10**8), rng.randrange(10**5)
        if i % 2 == 1:  # reader offline for several hours in the middle of a day
            gap_day = first_day + timedelta(days=1 + i % max(1, days - 2))
            g0 = datetime.combine(gap_day, datetime.min.time(), tzinfo=PARIS) + timedelta(hours=2, minutes=40)
            meter.gap = (g0.astimezone(UTC), (g0 + timedelta(hours=7)).astimezone(UTC))
        meters[pdl] = meter
    readings: dict[str, list[dict[str, Any]]] = {pdl: [] for pdl in meters}
    t = start
    while True:
        for meter in meters.values():
            if meter.gap is None or not (meter.gap[0] < t < meter.gap[1]):
                readings[meter.pdl].append(meter.reading(t))
        if t >= end:
            break
        # energy of [t, t + STEP): attributed to the local day/month of t (no interval crosses a midnight)
        day = t.astimezone(PARIS).date()
        for meter in meters.values():
            hour = t.astimezone(PARIS).hour
            d_import = rng.randrange(0, 120)
            d_export = rng.randrange(0, 90) if meter.producer and meter.mode == "standard" and 9 <= hour < 17 else 0
            if hour >= 22 or hour < 6:
                meter.hc += d_import
            else:
                meter.hp += d_import
            meter.export += d_export
            for bucket, key in ((meter.truth_days, day.isoformat()), (meter.truth_months, day.isoformat()[:7])):
                totals = bucket.setdefault(key, [0, 0])
                totals[0] += d_import
                totals[1] += d_export
        t += STEP
    return readings, meters


def send_order(readings: dict[str, list[dict[str, Any]]], seed: int = 7) -> list[dict[str, Any]]:
    """All readings interleaved in time order, with duplicates: some sent twice in a row, and a
    block of older readings re-sent later (an edge spool replayed)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for pdl, rs in readings.items():
        seq: list[dict[str, Any]] = []
        for i, r in enumerate(rs):
            seq.append(r)
            if rng.random() < 0.05:
                seq.append(dict(r))
            if i == len(rs) // 2:
                seq += [dict(x) for x in rs[i - 20 : i - 5]]  # replayed older readings
        out += seq
    return interleave(out)


def interleave(readings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Round-robin across PDLs, keeping each PDL's own sequence order."""
    per: dict[str, list[dict[str, Any]]] = {}
    for r in readings:
        per.setdefault(r["pdl"], []).append(r)
    out: list[dict[str, Any]] = []
    queues = list(per.values())
    i = 0
    while any(queues):
        for q in queues:
            if i < len(q):
                out.append(q[i])
        i += 1
        if all(i >= len(q) for q in queues):
            break
    return out


# --------------------------------------------------------------------------- Kafka


async def create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, readings: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, json.dumps(r).encode(), key=r["pdl"].encode()) for r in readings]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- worker


class Worker:
    """``python -m faust -A stream.app worker`` with its own data dir, web port and log."""

    def __init__(self, name: str, env: dict[str, str], datadir: Path, log_dir: Path, root: Path = REPO_ROOT) -> None:
        """``root``: the source tree to run (another version's, for a migration test)."""
        self.name = name
        self.port = free_port()
        self.datadir = datadir
        self.root = root
        self.log = log_dir / f"{name}.log"
        self.env = {**env, "LINKY_DATADIR": str(datadir), "LINKY_WEB_PORT": str(self.port),
                    "LINKY_WEB_HOST": "127.0.0.1", "PYTHONPATH": str(root)}  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", "stream.app", "worker", "-l", "info"],
                env=self.env, cwd=self.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str) -> tuple[int, Any]:
        """(status, decoded JSON body); (0, None) while the server is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body.decode(errors="replace")
        except OSError:
            return 0, None

    def metric(self, name: str, **labels: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            key, _, value = line.rpartition(" ")
            base, _, rest = key.partition("{")
            if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += float(value)
        return total


def wait_for(cond: Callable[[], bool], timeout: float, what: str, workers: list[Worker] = (), interval: float = 0.3) -> None:  # type: ignore[assignment]
    end = time.monotonic() + timeout
    while not cond():
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise AssertionError(f"worker {w.name} exited ({w.proc.returncode}) while waiting for {what}:\n{w.tail()}")
        if time.monotonic() > end:
            logs = "\n".join(f"--- {w.name} ({w.log})\n{w.tail()}" for w in workers)
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}\n{logs}")
        time.sleep(interval)


def worker_env(bootstrap: str, redis_url: str, topic: str, app_id: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKY_")}
    env.update(
        LINKY_KAFKA_BOOTSTRAP=bootstrap, LINKY_REDIS_URL=redis_url, LINKY_READINGS_TOPIC=topic,
        LINKY_APP_ID=app_id, LINKY_CONTRACTS_TOPIC=f"{topic}.contracts", LINKY_GATEWAYS_TOPIC=f"{topic}.gateways",
        LINKY_LOG_FORMAT="text",
        LINKY_METRICS_INTERVAL_SECONDS="1", LINKY_KAFKA_SESSION_TIMEOUT_SECONDS="10", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    env.update(extra)
    return env
