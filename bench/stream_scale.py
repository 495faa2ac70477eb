"""One worker with many PDLs: throughput, memory, changelog bytes, the day/month closing of every
PDL at once, and the recovery of a worker restarted on an empty data dir.

    .venv/bin/python bench/stream_scale.py [--pdls 100000] [--readings-per-pdl 3] [--age-days 31]

The readings of every PDL are dated ``--age-days`` before the product clock (half an hour apart),
so every PDL's battery day and month are due for closing as soon as it is folded: what happens to
every PDL at each midnight and month end, all at once. One worker (``taskset -c 0``) folds them
from a fresh 4-partition topic; every second the bench samples its counters and RSS, and reports:

- the readings/s over the whole run and the lowest rate over any 10 s window (a stall shows there),
  with the timer's checks and ticks over the run (``linky_battery_timer_checks_total``,
  ``linky_battery_ticks_sent_total``, ``linky_battery_ticks_applied_total``: sent, handled;
  ``linky_battery_tick_releases_total``: the ticks agent's flushes before a burst of publishes
  could overflow the Redis queue) and the payloads dropped;
- RSS at the end and one minute later (steady state, after the timer closed what was due);
- changelog records and bytes per reading (the app's changelog topics on the local broker's disk);
- then the worker is SIGKILLed, its data dir deleted, and a new worker started on an empty one:
  the time until it has recovered its tables from the changelogs and folds new readings (one new
  reading for 100 PDLs, sent right after the start), and how many changelog records the bulk
  restore (stream/restore.py) wrote before faust's own recovery (``--env
  LINKY_STATE_BULK_RESTORE=false`` for faust's recovery alone).

Run on the local stack (``make stack-up``); numbers are for this machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stream_throughput import _free_port, changelog_records, fill_topic, metric, metric_in, rss_mb, scrape, worker_env  # noqa: E402
from deploy.local import stack as local_stack  # noqa: E402
from stream import clock  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
PROCESSED = ("linky_stream_readings_processed_total", {"agent": "consumption"})


def readings(pdls: int, per_pdl: int, age_days: float, seed: int = 3) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    start = clock.now().astimezone(PARIS) - timedelta(days=age_days)
    out: list[tuple[bytes, bytes]] = []
    index = [[rng.randrange(10**6), rng.randrange(10**6), rng.randrange(10**5)] for _ in range(pdls)]
    for step in range(per_pdl):
        t = start + timedelta(minutes=30 * step)
        for i in range(pdls):
            pdl = f"{40_000_000_000_000 + i:014d}"
            idx = index[i]
            idx[0] += rng.randrange(0, 400)
            idx[1] += rng.randrange(0, 400)
            idx[2] += rng.randrange(0, 300)
            value = {"pdl": pdl, "meter": "M" + pdl, "mode": "standard", "time": t.isoformat(),
                     "tariff_period": "HEURE PLEINE", "import_wh": idx[0] + idx[1],
                     "import_wh_by_period": {"EASF01": idx[0], "EASF02": idx[1]}, "export_wh": idx[2],
                     "power_va": 800, "export_power_va": 100, "current_a": [4], "voltage_v": [231],
                     "subscribed_kva": 9, "overload": False, "status": None}  # fmt: skip
            out.append((pdl.encode(), json.dumps(value).encode()))
    return out


def start_worker(env: dict[str, str], log: Path, memory_report: str | None = None) -> subprocess.Popen[bytes]:
    head = [str(ROOT / "bench" / "memprobe.py"), memory_report] if memory_report else ["-m", "faust"]
    cmd = [sys.executable, *head, "-A", "stream.app", "worker", "-l", "warn"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def changelog_bytes(cfg: local_stack.StackConfig, app_id: str) -> int:
    data = cfg.stack_dir / "kafka" / "data"
    total = 0
    for path in data.glob(f"{app_id}-*-changelog-*"):
        total += sum(f.stat().st_size for f in path.glob("*.log"))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdls", type=int, default=100_000)
    parser.add_argument("--readings-per-pdl", type=int, default=3)
    parser.add_argument("--age-days", type=float, default=31.0)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--restart", action="append", metavar="NAME=VALUE[,NAME=VALUE]",
                        help="one SIGKILL + restart on an empty data dir per option, each with these settings "
                             "on top of --env (same fold, same changelogs); default: one restart")
    parser.add_argument("--profile-restart", metavar="FILE.svg",
                        help="py-spy (PY_SPY or py-spy on PATH) records the restarted worker until it folds again (.txt: collapsed stacks)")
    parser.add_argument("--memory-report", metavar="FILE",
                        help="run the first worker under bench/memprobe.py and write where its memory is to FILE after the "
                             "steady-state wait, and RSS before/after malloc_trim (tracemalloc is on unless "
                             "--env LINKY_BENCH_TRACEMALLOC_FRAMES=0; with it the rates are not the bench's)")
    parser.add_argument("--no-restart", action="store_true", help="stop after the steady state (no restart)")
    args = parser.parse_args()
    cfg = local_stack.StackConfig.from_env()
    local_stack.up(cfg, quiet=True)
    data = readings(args.pdls, args.readings_per_pdl, args.age_days)
    n = len(data)
    tag = uuid.uuid4().hex[:8]
    topic, app_id = f"bench.scale.{tag}", f"bench-scale-{tag}"
    t0 = time.monotonic()
    asyncio.run(fill_topic(cfg.bootstrap_servers, topic, data))
    print(f"# {args.pdls} PDLs x {args.readings_per_pdl} readings = {n} readings dated {args.age_days} days "
          f"before the clock; topic filled in {time.monotonic() - t0:.0f} s")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="linky-scale-"))
    port = _free_port()
    env = worker_env(cfg, topic, app_id, ROOT, dict(item.split("=", 1) for item in args.env),
                     LINKY_DATADIR=str(tmp / "data"), LINKY_WEB_PORT=str(port))  # fmt: skip
    log = tmp / "worker.log"
    proc = start_worker(env, log, args.memory_report)
    samples: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 3600
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {log}")
            count = metric(port, *PROCESSED)
            now = time.monotonic()
            samples.append((now, count))
            if count >= n or now > deadline:
                break
            time.sleep(1.0)
        first = next(i for i, (_, c) in enumerate(samples) if c > 0)
        (ta, ca), (tb, cb) = samples[first], samples[-1]
        windows = [(samples[j][1] - samples[i][1]) / (samples[j][0] - samples[i][0])
                   for i in range(first, len(samples)) for j in [i + 10] if j < len(samples)]  # fmt: skip
        rss_end = rss_mb(proc.pid)
        print(f"folded {cb:.0f} readings in {tb - ta:.0f} s: {(cb - ca) / (tb - ta):.0f} readings/s, "
              f"lowest 10 s window {min(windows) if windows else float('nan'):.0f} readings/s")  # fmt: skip
        _steady(port, proc.pid, args.steady_seconds)
        checks = metric(port, "linky_battery_timer_checks_total", {})
        ticks = metric(port, "linky_battery_ticks_sent_total", {})
        applied = metric(port, "linky_battery_ticks_applied_total", {})
        late = metric(port, "linky_redis_late_round_trips_total", {})
        down = metric(port, "linky_redis_publish_failures_total", {})
        releases = metric(port, "linky_battery_tick_releases_total", {})
        print(f"timer: {checks:.0f} PDL checks, {ticks:.0f} ticks sent, {applied:.0f} handled, {releases:.0f} releases "
              f"(flush + wait before a tick); redis: {late:.0f} late round trips, {down:.0f} payloads dropped")  # fmt: skip
        flushes = re.findall(r'^linky_stream_state_flushes_total\{reason="([^"]+)"\} (\S+)$', scrape(port), re.M)
        reasons = ", ".join(f"{reason} {float(count):.0f}" for reason, count in flushes)  # every reason the worker has
        print(f"write-back flushes by reason (stream/writeback.py): {reasons}")
        print(f"RSS: {rss_end:.0f} MB when done, {rss_mb(proc.pid):.0f} MB {args.steady_seconds:.0f} s later")
        if args.memory_report:
            _memory_report(Path(args.memory_report))
        records = asyncio.run(changelog_records(cfg.bootstrap_servers, app_id))
        size = changelog_bytes(cfg, app_id)
        print(f"changelogs: {records} records written ({records / n:.2f} per reading), {size / 1e6:.1f} MB "
              f"({size / n:.0f} bytes per reading)")  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if args.no_restart:
        return 0
    # restart on an EMPTY data dir: recovery from the changelogs, once per --restart variant
    for i, variant in enumerate(args.restart or [""]):
        extra = dict(item.split("=", 1) for item in variant.split(",") if item)
        proc = _restart(proc if i else None, {**env, **extra}, log, port, topic, data, cfg, tmp,
                        args.profile_restart if i == 0 else None, variant or "the --env settings")  # fmt: skip
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    return 0


def _steady(port: int, pid: int, seconds: float, every: float = 10.0) -> None:
    """Wait ``seconds`` after the fold, printing every ``every`` s the worker's RSS, the readings
    and ticks it still folds, and where RocksDB's memory is (linky_stream_rocksdb_memory_bytes)."""
    start = time.monotonic()
    print("  after fold  RSS MB  readings  ticks handled  rocksdb MB: cache pinned memtables table_readers")
    while True:
        text = scrape(port)
        rocks = [metric_in(text, "linky_stream_rocksdb_memory_bytes", {"kind": k}) / 1e6
                 for k in ("block_cache", "pinned", "memtables", "table_readers")]  # fmt: skip
        print(f"  {time.monotonic() - start:8.0f} s {rss_mb(pid):7.0f} {metric_in(text, *PROCESSED):9.0f} "
              f"{metric_in(text, 'linky_battery_ticks_sent_total', {}):6.0f} "
              f"{metric_in(text, 'linky_battery_ticks_applied_total', {}):7.0f}   "
              + " ".join(f"{v:6.1f}" for v in rocks))  # fmt: skip
        left = seconds - (time.monotonic() - start)
        if left <= 0:
            return
        time.sleep(min(every, left))


def _memory_report(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".go").touch()
    deadline = time.monotonic() + 300
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(1.0)
    time.sleep(1.0)  # written in one go; give it a moment to close
    print(f"memory report: {path}" if path.exists() else f"memory report: none after 300 s ({path})")


def _restart(previous: subprocess.Popen[bytes] | None, env: dict[str, str], log: Path, port: int, topic: str,
             data: list[tuple[bytes, bytes]], cfg: local_stack.StackConfig, tmp: Path, profile: str | None,
             label: str) -> subprocess.Popen[bytes]:
    """SIGKILL the running worker (if any), delete its data dir, start a new one with ``env``, send
    one new reading for 100 PDLs and wait until it has folded them; returns the new worker."""
    if previous is not None:
        os.killpg(previous.pid, signal.SIGKILL)
        previous.wait()
    shutil.rmtree(tmp / "data", ignore_errors=True)
    started = time.monotonic()
    proc = start_worker(env, log)
    spy = _spy(proc.pid, profile) if profile else None
    ok = False
    try:
        new_time = clock.now().astimezone(PARIS).replace(microsecond=0).isoformat()
        more = [(k, json.dumps({**json.loads(v), "time": new_time}).encode()) for k, v in data[-100:]]
        asyncio.run(_produce(cfg.bootstrap_servers, topic, more))
        watched = [k.decode() for k, _ in more[::20]]
        while not all(_live_time(port, pdl) == new_time for pdl in watched):
            if proc.poll() is not None:
                raise RuntimeError(f"restarted worker exited; see {log}")
            if time.monotonic() - started > 1800:
                raise RuntimeError("restarted worker did not fold the new readings in 30 min")
            time.sleep(0.5)
        print(f"restart on an empty data dir ({label}): tables recovered and new readings folded "
              f"{time.monotonic() - started:.1f} s after the start; RSS {rss_mb(proc.pid):.0f} MB")  # fmt: skip
        bulk = metric(port, "linky_stream_state_bulk_restored_records_total", {})
        bulk_s = metric(port, "linky_stream_state_bulk_restore_seconds_sum", {})
        early = metric(port, "linky_stream_state_bulk_restore_failures_total", {})
        print(f"  bulk restore (stream/restore.py): {bulk:.0f} changelog records in {bulk_s:.1f} s "
              f"(summed over tables), {early:.0f} ended early")  # fmt: skip
        ok = True
        return proc
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        if not ok:
            os.killpg(proc.pid, signal.SIGKILL)


def _spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy on the worker process (the child of taskset/python -m faust: the same pid)."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    time.sleep(1.0)  # the interpreter up before py-spy attaches
    fmt = ["--format", "raw"] if out.endswith(".txt") else []  # collapsed stacks, one per line
    return subprocess.Popen([spy, "record", "-r", "50", *fmt, "-o", out, "--pid", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _live_time(port: int, pdl: str) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pdl/{pdl}/live", timeout=5) as r:
            return json.loads(r.read()).get("time")  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


async def _produce(bootstrap: str, topic: str, data: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in data:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


if __name__ == "__main__":
    sys.exit(main())
