"""CPU and memory of the edge reader (`teleinfo publish`) at real pacing, 1 and 3 dongles.

Each dongle is a simulator pty at real pacing (--speed 1: 9600 Bd standard frames about once a
second, 1200 Bd historic frames about every 2.3 s); the reader decodes and publishes every
reading to the local Kafka broker (`python -m deploy.local up` first). After a warm-up (baud
detection, topic creation), CPU time (utime+stime from /proc/PID/stat) is measured over the
window and divided by wall time; RSS is VmRSS at the end and VmHWM (peak).

    .venv/bin/python bench/edge_reader.py                 # 60 s window per case
    .venv/bin/python bench/edge_reader.py --seconds 120 --bootstrap 127.0.0.1:9092

Target (issue 4): under 1 % of one core and under 60 MB RSS for three dongles.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from teleinfo.simulator import spawn_simulator  # noqa: E402

# three different lines: standard mono (9600), standard tri producer (9600), historic (1200)
MIX = ["standard,mono,consumer,hchp", "standard,tri,producer,tempo,kva=12",
       "historic,mono,consumer,tempo"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def run_case(dongles: int, seconds: float, warmup: float, bootstrap: str) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    sim = spawn_simulator(work / "dev", MIX[:dongles], speed=1)
    cmd = [sys.executable, "-m", "teleinfo", "publish",
           *[str(work / "dev" / f"meter-{i}") for i in range(dongles)],
           "--bootstrap", bootstrap, "--topic", f"bench.edge.{os.getpid()}.{dongles}",
           "--spool-dir", str(work / "spool"), "--log-format", "json"]
    reader = subprocess.Popen(cmd, cwd=REPO, stderr=open(work / "reader.log", "wb"))
    try:
        time.sleep(warmup)
        c0, t0 = cpu_seconds(reader.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(reader.pid), time.monotonic()
        rss, hwm = status_kb(reader.pid, "VmRSS"), status_kb(reader.pid, "VmHWM")
        assert reader.poll() is None, (work / "reader.log").read_text()[-2000:]
    finally:
        reader.send_signal(signal.SIGTERM)
        reader.wait(timeout=30)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return {"cpu_pct": 100 * (c1 - c0) / (t1 - t0), "rss_mb": rss / 1024, "hwm_mb": hwm / 1024}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measurement window per case")
    p.add_argument("--warmup", type=float, default=15.0)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = p.parse_args()
    print(f"# {platform.node()} {platform.machine()} {os.cpu_count()} CPU, "
          f"Python {platform.python_version()}; window {args.seconds:.0f} s after "
          f"{args.warmup:.0f} s warm-up; command: {' '.join(sys.argv)}")
    print("| dongles | CPU % of one core | RSS MB | peak RSS MB |")
    print("|---|---|---|---|")
    for n in (1, 3):
        r = run_case(n, args.seconds, args.warmup, args.bootstrap)
        print(f"| {n} | {r['cpu_pct']:.2f} | {r['rss_mb']:.1f} | {r['hwm_mb']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
