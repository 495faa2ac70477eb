"""Latency at real pace: simulated meters (one reading every 1-2 s each) into one worker, from
each reading's ``received_at`` (the edge's decode time, ms precision) to its Redis publish.

    .venv/bin/python bench/stream_latency.py [--meters 1000] [--seconds 60] [--warmup 15]

The bench plays the edge: it stamps ``received_at`` on each reading as it sends it (acks=1,
linger 5 ms, like teleinfo/publisher.py's producer) to a fresh 4-partition topic, while one worker
pinned to CPU 0 (``taskset -c 0``) folds them live. p50/p99 come from the worker's own histogram
``linky_stream_publish_latency_seconds{channel="live"}`` (buckets from 5 ms), the difference of
two scrapes after the warm-up, interpolated within a bucket as Prometheus' ``histogram_quantile``
does. The same for the conso channel. Target (issue 14): p99 < 100 ms at 1,000 meters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stream_throughput import _free_port, cpu_seconds, metric, worker_env  # noqa: E402
from deploy.local import stack as local_stack  # noqa: E402
from stream import clock  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
HISTOGRAM = "linky_stream_publish_latency_seconds"


def buckets(port: int, channel: str | None, histogram: str = HISTOGRAM) -> dict[float, float]:
    """Cumulative bucket counts of the histogram (for ``channel``): upper bound -> count."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{histogram}_bucket{{") and (channel is None or f'channel="{channel}"' in line):
            labels, _, value = line.rpartition(" ")
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(value)
    return out


def quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over cumulative buckets (linear within a bucket)."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for upper in bounds:
        count = cumulative[upper]
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return bounds[-1]


async def play(bootstrap: str, topic: str, meters: int, seconds: float) -> int:
    rng = random.Random(5)
    pdls = [f"{50_000_000_000_000 + i:014d}" for i in range(meters)]
    index = {p: [rng.randrange(10**6), rng.randrange(10**6)] for p in pdls}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    sent = 0
    loop = asyncio.get_running_loop()
    next_at = {p: loop.time() + rng.uniform(0, 1.5) for p in pdls}
    end = loop.time() + seconds
    try:
        while loop.time() < end:
            now = loop.time()
            due = [p for p, t in next_at.items() if t <= now]
            for pdl in due:
                next_at[pdl] = now + rng.uniform(1.0, 2.0)
                idx = index[pdl]
                idx[0] += rng.randrange(0, 3)
                wall = clock.now()
                reading = {"pdl": pdl, "meter": "M" + pdl, "mode": "standard",
                           "time": wall.astimezone(PARIS).replace(microsecond=0).isoformat(),
                           "received_at": wall.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
                           "tariff_period": "HEURE PLEINE", "import_wh": idx[0] + idx[1],
                           "import_wh_by_period": {"EASF01": idx[0], "EASF02": idx[1]}, "export_wh": 0,
                           "power_va": rng.randrange(100, 6000), "subscribed_kva": 9}  # fmt: skip
                await producer.send(topic, json.dumps(reading).encode(), key=pdl.encode())
                sent += 1
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose worker runs (e.g. an older one)")
    parser.add_argument("--histogram", default=HISTOGRAM,
                        help="the worker's latency histogram (linky_stream_processing_latency_seconds: from the "
                             "meter time, whole seconds, so about +0.5 s; the one an older worker has)")  # fmt: skip
    parser.add_argument("--slow-steps", type=Path, metavar="FILE",
                        help="time every event-loop step of the worker (bench/slowsteps) and write the steps "
                             "over LINKY_BENCH_SLOW_STEP_MS (20) to FILE, by where they stood, when it stops")  # fmt: skip
    args = parser.parse_args()
    cfg = local_stack.StackConfig.from_env()
    local_stack.up(cfg, quiet=True)
    tag = uuid.uuid4().hex[:8]
    topic = f"bench.latency.{tag}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=cfg.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
        finally:
            await admin.close()

    asyncio.run(create())
    tmp = Path(tempfile.mkdtemp(prefix="linky-latency-"))
    port = _free_port()
    env = worker_env(cfg, topic, f"bench-latency-{tag}", args.root, dict(item.split("=", 1) for item in args.env),
                     LINKY_DATADIR=str(tmp / "data"), LINKY_WEB_PORT=str(port))  # fmt: skip
    if args.slow_steps is not None:  # bench/slowsteps/sitecustomize.py, imported at the worker's start
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench" / "slowsteps"), env.get("PYTHONPATH", "")])
        env["LINKY_BENCH_SLOW_STEPS"] = str(args.slow_steps.absolute())
    cmd = [sys.executable, "-m", "faust", "-A", "stream.app", "worker", "-l", "warn"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, env=env, cwd=args.root, stdout=open(tmp / "worker.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while metric(port, "linky_stream_partitions_assigned", {"kind": "active"}) < 4:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"worker not ready; see {tmp / 'worker.log'}")
            time.sleep(0.5)

        async def run() -> tuple[int, dict[str, dict[float, float]], float | None, float]:
            player = asyncio.ensure_future(play(cfg.bootstrap_servers, topic, args.meters, args.warmup + args.seconds))
            await asyncio.sleep(args.warmup)
            start = {ch: buckets(port, ch, args.histogram) for ch in ("live", "conso")}
            start["flush"] = buckets(port, None, "linky_stream_state_flush_seconds")
            start["fold"] = buckets(port, None, "linky_stream_fold_latency_seconds")
            gc0 = [metric(port, f"linky_stream_gc_full_seconds{part}", {}) for part in ("_sum", "_count")]
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            sent = await player
            await asyncio.sleep(2.0)  # the last readings reach Redis
            end = {ch: buckets(port, ch, args.histogram) for ch in ("live", "conso")}
            end["flush"] = buckets(port, None, "linky_stream_state_flush_seconds")
            end["fold"] = buckets(port, None, "linky_stream_fold_latency_seconds")
            gc1 = [metric(port, f"linky_stream_gc_full_seconds{part}", {}) for part in ("_sum", "_count")]
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            delta = {ch: {le: end[ch].get(le, 0) - start[ch].get(le, 0) for le in end[ch]} for ch in end}
            busy = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / (t1 - t0)
            return sent, delta, busy, t1 - t0, (gc1[0] - gc0[0], gc1[1] - gc0[1])

        sent, delta, busy, span, (gc_seconds, gc_count) = asyncio.run(run())
        print(f"# {args.meters} meters, one reading every 1-2 s each ({sent / (args.warmup + args.seconds):.0f} "
              f"readings/s), {args.seconds:.0f} s measured after {args.warmup:.0f} s of warm-up; one worker on CPU 0")  # fmt: skip
        flush, fold = delta.pop("flush"), delta.pop("fold")
        if fold:
            print(f"received_at -> folded by the agent: p50 {quantile(0.5, fold) * 1e3:.1f} ms, "
                  f"p90 {quantile(0.9, fold) * 1e3:.1f} ms, p95 {quantile(0.95, fold) * 1e3:.1f} ms, "
                  f"p99 {quantile(0.99, fold) * 1e3:.1f} ms")  # fmt: skip
        if flush:
            print(f"write-back flushes: {flush.get(float('inf'), 0):.0f}, p50 {quantile(0.5, flush) * 1e3:.0f} ms, "
                  f"p99 {quantile(0.99, flush) * 1e3:.0f} ms (table writes to Kafka's acknowledgement)")  # fmt: skip
        for ch, cum in delta.items():
            total = cum.get(float("inf"), 0)
            print(f"{ch:<6} {'received_at' if args.histogram == HISTOGRAM else 'reading time'} -> Redis publish: p50 {quantile(0.5, cum) * 1e3:.1f} ms, "
                  f"p99 {quantile(0.99, cum) * 1e3:.1f} ms ({total:.0f} publishes)")  # fmt: skip
        if gc_count:
            print(f"timed full garbage collections: {gc_count:.0f}, {gc_seconds / gc_count * 1e3:.0f} ms each on average")
        modes = {m: metric(port, "linky_stream_fetch_mode_changes_total", {"mode": m}) for m in ("batched", "at_once")}
        if any(modes.values()):
            print(f"fetch mode changes (stream/consumer.py FetchPacer): to batched {modes['batched']:.0f}, "
                  f"to at once {modes['at_once']:.0f}")  # fmt: skip
        if busy is not None:
            print(f"worker CPU: {100 * busy:.0f} % of one core over {span:.0f} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    if args.slow_steps is not None:
        lines = args.slow_steps.read_text().splitlines() if args.slow_steps.exists() else ["(no report: the worker did not exit cleanly)"]
        print(f"slow event-loop steps ({args.slow_steps}, whole run including start and stop):")
        print("\n".join(lines[:17]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
