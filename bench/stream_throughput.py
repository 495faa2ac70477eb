"""Single-worker stream throughput (readings/s on one core), against a baseline in the same run.

    .venv/bin/python bench/stream_throughput.py [--readings 20000] [--pdls 200] [--repeat 1]
        [--apps floor,baseline,stream[,before] --before DIR] [--env LINKY_X=Y ...]

For each app, a fresh topic (4 partitions) is filled with the same simulated readings (standard
mode, every 2 s per PDL, two tariff registers and injection, 2 % duplicates), then one worker is
started pinned to CPU 0 (``taskset -c 0``) on the local stack (Kafka + Redis, started if needed)
and its /metrics polled (one scrape per poll, every 0.5 s for the stream workers, 0.1 s for
the others). Until 2026-12-03 the bench scraped the stream worker three times every 0.1 s; a
render costs it 6.8 ms of CPU and py-spy put 17 % of its samples there, though its CPU per
reading did not move measurably with the new polling (docs/performance.md). The rate is measured from the poll that saw 10 % of the readings processed to the last poll before
100 % (start-up, partition assignment and the poll's overshoot excluded), with the worker's CPU
time per reading over the same span (Linux: /proc; less sensitive than the rate to other load on
the machine):

- ``floor``: bench/stream_floor_app.py, a bare aiokafka consumer + ``json.loads`` (no faust);
- ``baseline``: bench/stream_noop_app.py, the same faust configuration with one agent that
  only decodes each reading's JSON (faust + aiokafka + event loop cost);
- ``stream``: the real worker, ``faust -A stream.app worker`` (every agent of agents/: the
  readings agent with its live, consumption and battery handlers, contracts, ticks...; RocksDB
  tables with changelogs; Redis publishes). A reading counts as processed once the live,
  consumption *and* battery counters have all passed it.

- ``before``: the real worker of another checkout (``--before DIR``, e.g. a git worktree of an
  older commit), same data, interleaved with the others: before/after in the same run.

For the stream workers the bench also reports the changelog records sent per reading (the end
offsets of the app's changelog topics, after the last write-back flush) and the worker's RSS.
Kafka, Redis and the producer run on the other core. Numbers are for this machine only; compare
the ratio, not the absolute figure, across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.local import stack as local_stack  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
APPS = {
    "floor": ("bench.stream_floor_app", [("linky_bench_floor_readings_total", {})]),
    "baseline": ("bench.stream_noop_app", [("linky_bench_noop_readings_total", {})]),
    "stream": (
        "stream.app",
        [
            ("linky_stream_readings_processed_total", {"agent": "live"}),
            ("linky_stream_readings_processed_total", {"agent": "consumption"}),
            ("linky_battery_readings_total", {}),  # every outcome (the bench has no invalid reading)
        ],
    ),
}


def readings(n: int, pdls: int, seed: int = 1, history_days: int = 0) -> list[tuple[bytes, bytes]]:
    """``n`` readings of ``pdls`` meters, one every 2 s each from 2026-10-24 20:00 UTC (about 2 %
    sent twice), preceded, with ``history_days``, by three readings a day per meter (03:00,
    11:00, 19:00 UTC) over that many days up to the first one: closed day and month rows in
    every table, the last of them an hour before the first of the ``n``."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 24, 20, 0, tzinfo=timezone.utc)
    state = {f"{30_000_000_000_000 + i:014d}": [rng.randrange(10**7), rng.randrange(10**7), rng.randrange(10**6)]
             for i in range(pdls)}  # fmt: skip
    history = [start.replace(hour=h) - timedelta(days=d) for d in range(history_days - 1, -1, -1) for h in (3, 11, 19)]
    out: list[tuple[bytes, bytes]] = []
    step = 0
    while len(out) < n + len(history) * pdls:
        t = history[step] if step < len(history) else start + timedelta(seconds=2 * (step - len(history)))
        local = t.astimezone(PARIS)
        offpeak = local.hour >= 22 or local.hour < 6
        for pdl, idx in state.items():
            idx[0 if offpeak else 1] += rng.randrange(0, 4)
            idx[2] += rng.randrange(0, 2)
            value = json.dumps({
                "pdl": pdl, "meter": "M" + pdl, "mode": "standard", "time": local.isoformat(),
                "tariff_period": "HEURE CREUSE" if offpeak else "HEURE PLEINE",
                "import_wh": idx[0] + idx[1], "import_wh_by_period": {"EASF01": idx[0], "EASF02": idx[1]},
                "export_wh": idx[2], "power_va": rng.randrange(100, 6000), "export_power_va": rng.randrange(0, 900),
                "current_a": [rng.randrange(1, 30)], "voltage_v": [rng.randrange(225, 240)], "subscribed_kva": 9,
                "overload": False, "status": None,
            }).encode()  # fmt: skip
            out.append((pdl.encode(), value))
            if step >= len(history) and rng.random() < 0.02:
                out.append((pdl.encode(), value))
        step += 1
    return out[: n + len(history) * pdls]


async def fill_topic(bootstrap: str, topic: str, data: list[tuple[bytes, bytes]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in data]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def worker_env(cfg: local_stack.StackConfig, topic: str, app_id: str, root: Path = ROOT,
               extra: dict[str, str] | None = None, **more: str) -> dict[str, str]:  # fmt: skip
    """A bench worker's environment: no inherited ``LINKY_*``, the local stack, its own topics
    (readings, contracts, gateways) and consumer group, the code of ``root``; then ``extra``
    (``--env`` ablations) and ``more`` (data dir, web port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKY_")}
    env.update(
        LINKY_KAFKA_BOOTSTRAP=cfg.bootstrap_servers, LINKY_REDIS_URL=cfg.redis_worker_url, LINKY_READINGS_TOPIC=topic,
        LINKY_CONTRACTS_TOPIC=f"{topic}.contracts", LINKY_GATEWAYS_TOPIC=f"{topic}.gateways", LINKY_APP_ID=app_id,
        PYTHONPATH=str(root),
    )  # fmt: skip
    env.update(extra or {})
    env.update(more)
    return env


# A /metrics render costs the stream worker ~7 ms of CPU (hundreds of series): poll it slowly.
# The floor and baseline apps expose one counter: cheap to poll often.
POLL_SECONDS = {"stream": 0.5, "before": 0.5}
POLL_SECONDS_DEFAULT = 0.1


def scrape(port: int) -> str:
    """The worker's /metrics text ("" when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()  # type: ignore[no-any-return]
    except OSError:
        return ""


def metric_in(text: str, name: str, labels: dict[str, str]) -> float:
    """The sum of the samples of ``name`` with ``labels`` in a /metrics text."""
    total = 0.0
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            base, _, rest = key.partition("{")
            if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += float(value)
    return total


def metric(port: int, name: str, labels: dict[str, str]) -> float:
    return metric_in(scrape(port), name, labels)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its threads (Linux /proc), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Run(NamedTuple):
    rate: float  # readings/s between 10 % and 100 % processed
    cpu_ms: float | None  # worker CPU ms per reading over the same span
    changelog_per_reading: float | None  # changelog records sent per reading (all tables)
    rss_mb: float | None  # worker resident memory at the end
    flushes: float | None = None  # write-back flushes of the run (``linky_stream_state_flush_seconds_count``)
    flushed_keys: float | None = None  # table keys they wrote (``linky_stream_state_flushed_keys_total``)
    payloads_per_reading: float | None = None  # Redis payloads published (``linky_redis_published_total``)
    snapshots: str | None = None  # digest of the PDLs' live/conso/battery/surplus snapshot keys at the end


def run_one(
    kind: str, cfg: local_stack.StackConfig, data: list[tuple[bytes, bytes]], workdir: Path,
    before: Path | None = None, extra_env: dict[str, str] | None = None, workers: int = 1,
) -> Run:  # fmt: skip
    """One worker of ``kind`` on a fresh topic filled with ``data``."""
    module, counters = APPS["stream" if kind == "before" else kind]
    root = before if kind == "before" and before is not None else ROOT
    tag = uuid.uuid4().hex[:8]
    topic = f"bench.readings.{tag}"
    app_id = f"bench-{kind}-{tag}"
    asyncio.run(fill_topic(cfg.bootstrap_servers, topic, data))
    base_env = worker_env(cfg, topic, app_id, root, extra_env)
    if kind in ("stream", "before") and "LINKY_CLOCK_OFFSET_SECONDS" not in base_env:
        # the workers' clock a minute after the last reading: no day or month of the readings is
        # over, so the battery timer closes none during the run (it did, at a time that varied from
        # run to run, and the end views then differed by whether a PDL's day was closed yet)
        last = max(datetime.fromisoformat(json.loads(value)["time"]) for _, value in data[-1000:])
        base_env["LINKY_CLOCK_OFFSET_SECONDS"] = str(last.timestamp() + 60 - time.time())
    if kind == "floor":
        cmd = [sys.executable, "-m", module]
    else:
        cmd = [sys.executable, "-m", "faust", "-A", module, "worker", "-l", "warn"]
    ports, procs = [], []
    for i in range(workers):  # worker i pinned to CPU i (Kafka, Redis and this bench share them)
        port = _free_port()
        env = {**base_env, "LINKY_DATADIR": str(workdir / f"{kind}-{tag}-{i}"), "LINKY_WEB_PORT": str(port)}
        pinned = ["taskset", "-c", str(i % (os.cpu_count() or 1)), *cmd] if shutil.which("taskset") else cmd
        log = open(workdir / f"{kind}-{tag}-{i}.log", "wb")
        procs.append(subprocess.Popen(pinned, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))  # fmt: skip
        ports.append(port)
    n = len(data)

    def cpu_all() -> float | None:
        values = [cpu_seconds(p.pid) for p in procs]  # taskset execs: same pid
        return None if any(v is None for v in values) else sum(values)  # type: ignore[misc]

    try:
        def done() -> float:  # ONE scrape per worker per poll: rendering /metrics is not free
            texts = [scrape(port) for port in ports]
            return min(sum(metric_in(t, name, labels) for t in texts) for name, labels in counters)

        t10 = None
        end: tuple[float, float, float | None] | None = None  # (time, count, cpu) of the last poll before 100 %
        deadline = time.monotonic() + 900
        while True:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{kind} worker exited; see {workdir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} worker too slow; see {workdir}")
            count = done()
            now, cpu = time.monotonic(), cpu_all()
            if t10 is None and count >= n * 0.1:
                t10, c10, cpu10 = now, count, cpu
            elif t10 is not None and count < n:
                end = (now, count, cpu)
            if count >= n:
                if t10 is None or c10 >= n:  # 10 % and 100 % seen by the same poll: no interval to time
                    raise RuntimeError(f"{kind}: all {n} readings processed between two polls; use more readings")
                if end is None or end[1] - c10 < n * 0.4:  # too few polls in between: up to the end
                    end = (now, count, cpu)
                break
            time.sleep(POLL_SECONDS.get(kind, POLL_SECONDS_DEFAULT))
        t_end, c_end, cpu_end = end
        cpu_ms = None if cpu10 is None or cpu_end is None else (cpu_end - cpu10) / (c_end - c10) * 1e3
        rss = rss_mb(procs[0].pid)
        if kind in ("stream", "before"):
            time.sleep(float(base_env.get("LINKY_STATE_FLUSH_SECONDS", "5")) + 1.0)  # the last flush
            records = asyncio.run(changelog_records(cfg.bootstrap_servers, app_id))
            per_reading: float | None = records / n
            # what the changelog records come from: each flush writes every key changed since the
            # last one, so a run that lasts one flush interval more writes about one more key per
            # PDL and table (a slower run sends more records per reading)
            texts = [scrape(port) for port in ports]
            flushes: float | None = sum(metric_in(t, "linky_stream_state_flush_seconds_count", {}) for t in texts)
            keys: float | None = sum(metric_in(t, "linky_stream_state_flushed_keys_total", {}) for t in texts)
            payloads: float | None = sum(metric_in(t, "linky_redis_published_total", {}) for t in texts) / n
            digest: str | None = snapshot_digest(cfg, sorted({key for key, _ in data}))
        else:
            per_reading = flushes = keys = payloads = digest = None
        return Run((c_end - c10) / (t_end - t10), cpu_ms, per_reading, rss, flushes, keys, payloads, digest)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


SNAPSHOT_KINDS = ("live", "conso", "battery", "surplus")


def snapshot_digest(cfg: local_stack.StackConfig, pdls: list[bytes]) -> str:
    """What the households see at the end of a run: a digest of every PDL's live, conso, battery
    and surplus snapshot keys (every run folds the same readings, so two versions of the worker
    that fold them alike end with the same digest, whatever payloads they published on the way).
    Each run overwrites the keys of the one before. ``LINKY_BENCH_SNAPSHOTS_DIR``: also write
    them there, one JSON file per run, to diff."""
    import hashlib

    import redis

    client = redis.Redis.from_url(cfg.redis_admin_url)
    try:
        keys = [f"linky:{pdl.decode()}:{kind}" for pdl in pdls for kind in SNAPSHOT_KINDS]
        values = client.mget(keys)
    finally:
        client.close()
    keep = os.environ.get("LINKY_BENCH_SNAPSHOTS_DIR")  # to diff two runs' end views
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:4]}.json"
        (Path(keep) / name).write_text(json.dumps({k: json.loads(v) if v else None for k, v in zip(keys, values)},
                                                  indent=1, sort_keys=True))  # fmt: skip
    missing = sum(v is None for v in values)
    digest = hashlib.sha256(b"\0".join(v or b"-" for v in values)).hexdigest()[:12]
    return digest if not missing else f"{digest} ({missing} keys missing)"


async def changelog_records(bootstrap: str, app_id: str) -> int:
    """Records written to the app's changelog topics (``{app_id}-{table}-changelog``), counted as
    offsets (end - beginning): the broker's cleaner may already have compacted some of them away
    (they are ``cleanup.policy=compact``), so a restore can read fewer records than this."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith(f"{app_id}-") and t.endswith("-changelog")]
        consumer.subscribe(topics)  # makes the client fetch these topics' partition metadata
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        if not tps:
            return 0
        begin, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    finally:
        await consumer.stop()


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--pdls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs per app; the best is kept")
    parser.add_argument("--apps", default="floor,baseline,stream", help="comma-separated: floor, baseline, stream, before")
    parser.add_argument("--before", type=Path, help="a checkout of the code to compare with (app 'before')")
    parser.add_argument("--workers", type=int, default=1, help="stream workers on the topic (scale-out), worker i on CPU i")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the stream workers (an ablation), repeatable")  # fmt: skip
    args = parser.parse_args()
    kinds = [k for k in args.apps.split(",") if k]
    if "before" in kinds and args.before is None:
        parser.error("app 'before' needs --before DIR (e.g. git worktree add /tmp/before HEAD~3)")
    extra = dict(item.split("=", 1) for item in args.env)
    cfg = local_stack.StackConfig.from_env()
    local_stack.up(cfg, quiet=True)
    data = readings(args.readings, args.pdls)
    print(f"# stream throughput: {len(data)} readings, {args.pdls} PDLs, 1 worker on CPU 0 "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})")  # fmt: skip
    if extra:
        print(f"# stream workers' extra environment: {extra}")
    if args.workers > 1:
        print(f"# {args.workers} stream workers on the topic, worker i pinned to CPU i (aggregate rate)")
    runs: dict[str, list[Run]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="linky-bench-") as tmp:
        for _ in range(args.repeat):  # interleaved: the machine's noise hits every app alike
            for kind in kinds:
                runs[kind].append(run_one(kind, cfg, data, Path(tmp), args.before,
                                          extra if kind in ("stream", "before") else None,
                                          args.workers if kind in ("stream", "before") else 1))  # fmt: skip
    results = {kind: max(rs, key=lambda r: r.rate) for kind, rs in runs.items()}
    base = results["baseline"].rate if "baseline" in results else None
    print(f"{'app':<10} {'readings/s':>12} {'vs baseline':>12} {'CPU ms/reading':>15} {'changelog/reading':>18} "
          f"{'flushes':>8} {'keys/flush':>10} {'RSS MB':>7} {'payloads/reading':>17}")  # fmt: skip
    for kind, r in results.items():
        cpu = "n/a" if r.cpu_ms is None else f"{r.cpu_ms:.3f}"
        ratio = "n/a" if base is None else f"{r.rate / base:.2f}x"
        per = "" if r.changelog_per_reading is None else f"{r.changelog_per_reading:.3f}"
        rss = "" if r.rss_mb is None else f"{r.rss_mb:.0f}"
        flushes = "" if not r.flushes else f"{r.flushes:.0f}"
        keys = "" if not r.flushes or r.flushed_keys is None else f"{r.flushed_keys / r.flushes:.0f}"
        payloads = "" if r.payloads_per_reading is None else f"{r.payloads_per_reading:.2f}"
        print(f"{kind:<10} {r.rate:>12.0f} {ratio:>12} {cpu:>15} {per:>18} {flushes:>8} {keys:>10} {rss:>7} "
              f"{payloads:>17}")
    digests = {d for rs in runs.values() for r in rs if (d := r.snapshots) is not None}
    if digests:  # the households' end view: the same for every run of every worker version, or not
        print("# snapshot keys at the end of each run: " + "; ".join(
            f"{k}: " + ", ".join(str(r.snapshots) for r in rs) for k, rs in runs.items() if rs and rs[0].snapshots)
            + (" (all identical)" if len(digests) == 1 else " (DIFFERENT)"))  # fmt: skip
    if args.repeat > 1:
        print("# every run (readings/s): " + "; ".join(f"{k}: " + ", ".join(f"{r.rate:.0f}" for r in rs) for k, rs in runs.items()))
        print("# every run (CPU ms/reading): " + "; ".join(
            f"{k}: " + ", ".join("?" if r.cpu_ms is None else f"{r.cpu_ms:.3f}" for r in rs) for k, rs in runs.items()))
        print("# every run (changelog/reading, flushes): " + "; ".join(
            f"{k}: " + ", ".join(f"{r.changelog_per_reading:.3f} ({r.flushes:.0f})" for r in rs)
            for k, rs in runs.items() if rs and rs[0].flushes is not None))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
