"""In-process cost of each stream agent per reading (no broker): faust ``agent.test_context()``
with the real RocksDB tables (changelog records queue in the unstarted producer) and the
readings of bench/stream_throughput.py, one agent at a time, optionally under cProfile.

    .venv/bin/python bench/stream_agents.py [--readings 4000] [--pdls 200] [--profile battery]

Includes test_context's own per-put overhead (about 0.05 ms); compare agents, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LINKY_DATADIR", tempfile.mkdtemp(prefix="linky-bench-agents-"))

from bench.stream_throughput import readings  # noqa: E402


async def run(n: int, pdls: int, profile: str) -> dict[str, float]:
    from agents import battery, consumption, live

    data = readings(n, pdls)
    out: dict[str, float] = {}
    for name, agent in (("live", live.live_agent), ("consumption", consumption.consumption_agent),
                        ("battery", battery.battery_agent)):  # fmt: skip
        async with agent.test_context() as tested:
            prof = cProfile.Profile() if profile == name else None
            start = time.perf_counter()
            if prof:
                prof.enable()
            for key, value in data:
                await tested.put(value, key=key, partition=int.from_bytes(key[-2:], "big") % 4)
            if prof:
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
            out[name] = (time.perf_counter() - start) / len(data) * 1e3
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=4000)
    parser.add_argument("--pdls", type=int, default=200)
    parser.add_argument("--profile", default="", help="agent to run under cProfile (live|consumption|battery)")
    args = parser.parse_args()
    for name, ms in asyncio.run(run(args.readings, args.pdls, args.profile)).items():
        print(f"{name:<12} {ms:.3f} ms/reading")
    return 0


if __name__ == "__main__":
    sys.exit(main())
