"""In-process cost of the readings agent and of each of its handlers per reading (no broker):
faust ``agent.test_context()`` on agents/readings.py with the real RocksDB tables (changelog
records queue in the unstarted producer) and the readings of bench/stream_throughput.py, each
handler (live, consumption, battery) timed inside the agent, optionally under cProfile.

    .venv/bin/python bench/stream_agents.py [--readings 4000] [--pdls 200] [--profile]

Includes test_context's own per-put overhead (about 0.05 ms, in "agent" only); compare
handlers, not absolutes.
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
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_tmp = tempfile.TemporaryDirectory(prefix="linky-bench-agents-")  # removed at exit
os.environ.setdefault("LINKY_DATADIR", _tmp.name)

from bench.stream_throughput import readings  # noqa: E402


def _timed(fn: Callable[..., None], spent: list[float]) -> Callable[..., None]:
    def timed(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            fn(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    return timed


async def run(n: int, pdls: int, profile: bool) -> dict[str, float]:
    from agents import battery, consumption, live, readings as readings_agent

    data = readings(n, pdls)
    handlers = {"live": live, "consumption": consumption, "battery": battery}
    spent = {name: [0.0] for name in handlers}
    originals = {name: module.handle for name, module in handlers.items()}
    for name, module in handlers.items():  # agents/readings.py looks them up at each call
        module.handle = _timed(module.handle, spent[name])  # type: ignore[method-assign]
    try:
        async with readings_agent.readings_agent.test_context() as tested:
            prof = cProfile.Profile() if profile else None
            start = time.perf_counter()
            if prof:
                prof.enable()
            for key, value in data:
                await tested.put(value, key=key, partition=int.from_bytes(key[-2:], "big") % 4)
            if prof:
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
            total = time.perf_counter() - start
    finally:
        for name, module in handlers.items():
            module.handle = originals[name]  # type: ignore[method-assign]
    out = {name: s[0] / len(data) * 1e3 for name, s in spent.items()}
    out["agent (all, with test_context)"] = total / len(data) * 1e3
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=4000)
    parser.add_argument("--pdls", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="run the readings agent under cProfile")
    args = parser.parse_args()
    for name, ms in asyncio.run(run(args.readings, args.pdls, args.profile)).items():
        print(f"{name:<32} {ms:.3f} ms/reading")
    return 0


if __name__ == "__main__":
    sys.exit(main())
