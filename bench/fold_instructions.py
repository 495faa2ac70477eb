"""Instructions per reading of the readings agent, counted by valgrind (callgrind), for one or
more checkouts in the same run: a measure of small CPU changes that this VM's timing noise
(+-15 % between identical runs of bench/stream_agents.py) hides.

    .venv/bin/python bench/fold_instructions.py [--readings 2500] [--pdls 200] [--history-days 10] \\
        [--before /tmp/wt-before] [--repeat 1]

Each checkout's bench/stream_agents.py runs twice under ``valgrind --tool=callgrind`` (Debian's
``valgrind`` package; a bench tool, so ``make test`` does not install it): with ``--small`` readings and with
``--readings``; the difference of the two totals divided by the difference of readings is the
cost of a reading without the start-up (imports, faust's test context, the history folded
first). Deterministic inputs: ``PYTHONHASHSEED=0``, the same readings, the write-back flush
pushed past the run (``LINKY_STATE_FLUSH_SECONDS``: its 5 s are wall-clock time, which valgrind
stretches about 50x, so the number of flushes would depend on the machine's speed). So this
counts the fold (trust check, live, consumption, battery, their renders and publishes into the
publisher's queue) and not the flushes, the Redis client nor Kafka: compare it with
bench/stream_throughput.py for those. Instructions are not time (cache misses, allocation
patterns), so a change is confirmed by the throughput bench when it is large enough to show
there. Leave the checkouts alone while it runs: each run imports the code as it is then, and
two sizes that ran different code give a meaningless difference. Two runs of the same checkout
agreed within 0.25 % (docs/performance.md "2026-12-06, late night").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions(root: Path, readings: int, pdls: int, history_days: int) -> int:
    """Total instructions of one run of ``root``'s bench/stream_agents.py under callgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind not found (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="linky-cg-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINKY_")}
        env.update(PYTHONHASHSEED="0", LINKY_STATE_FLUSH_SECONDS="1000000", LINKY_DATADIR=tmp)
        command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable,
                   str(root / "bench" / "stream_agents.py"), "--readings", str(readings), "--pdls", str(pdls)]  # fmt: skip
        if history_days:
            command += ["--history-days", str(history_days)]
        done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            sys.exit(f"{root}: the run failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=2500)
    parser.add_argument("--small", type=int, default=500, help="readings of the start-up run subtracted")
    parser.add_argument("--pdls", type=int, default=200)
    parser.add_argument("--history-days", type=int, default=10)
    parser.add_argument("--before", type=Path, action="append", default=[], help="another checkout to count first")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each checkout (they should agree)")
    args = parser.parse_args()
    if args.readings <= args.small:
        parser.error("--readings must be larger than --small")
    roots = [*args.before, ROOT]
    print(f"# instructions per reading: ({args.readings} - {args.small} readings), {args.pdls} PDLs, "
          f"{args.history_days} days of history; callgrind, PYTHONHASHSEED=0")  # fmt: skip
    first: float | None = None
    for root in roots:
        for _ in range(args.repeat):
            small = instructions(root, args.small, args.pdls, args.history_days)
            large = instructions(root, args.readings, args.pdls, args.history_days)
            per = (large - small) / (args.readings - args.small)
            first = per if first is None else first
            print(f"{str(root):40s} {per / 1e6:8.3f} M instructions/reading  {per / first:5.3f}x the first", flush=True)


if __name__ == "__main__":
    main()
