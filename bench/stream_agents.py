"""In-process cost of the readings agent and of each of its handlers per reading (no broker):
faust ``agent.test_context()`` on agents/readings.py with the real RocksDB tables (the write-back
flushes write them; their changelog records are acknowledged at once, no Kafka), the Redis
publisher's task sending its batches nowhere, and the readings of bench/stream_throughput.py,
each handler (live, consumption, battery) timed inside the agent, optionally under cProfile.

    .venv/bin/python bench/stream_agents.py [--readings 4000] [--pdls 200] [--history-days 0] [--profile] [--payload-json]

``--history-days D`` first folds three readings a day per PDL over the D days up to the timed
readings (not timed; the last an hour before the first timed one): each PDL then holds up to D
closed day rows (the battery keeps this month's and the last month's), the months they span,
and the checkpoint of its day, as a worker does after weeks in service. Compare runs with and without it
to see what a reading costs as history grows.

``--payload-json`` also keeps every payload the run encoded for Redis and reports, on them,
stream/payload_json.py (orjson) against the standard library's ``json.dumps`` (the baseline, same
run): microseconds per payload and how many encodings are byte-identical.

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


def _acknowledge_at_once() -> None:
    """test_context starts no Kafka producer, so no changelog record is ever acknowledged: the
    write-back flushes (every 5 s) stayed in flight, and once two were, the readings agent waited
    for them for ever (the bench hung past about 10 s of readings). Here the records are written
    to RocksDB as in the worker and their acknowledgement is immediate (no Kafka)."""
    from stream import writeback

    async def acknowledged(table: Any, partition: int, key: bytes, raw: bytes | None) -> tuple[Any, Any]:
        ack = asyncio.get_running_loop().create_future()
        ack.set_result(None)
        return None, ack  # no table: no changelog offset to record

    writeback._changelog_send = acknowledged  # type: ignore[assignment]  # looked up at each call


class _Redis:
    """A Redis client without a server: the publisher's batching runs, nothing leaves."""

    async def send(self, commands: list[tuple[Any, ...]]) -> None:  # stream/redis_publisher.py BatchClient
        pass

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


def _publisher_without_network() -> Any:
    """Without its task, stream/state.py's publisher queued 10,000 payloads and then dropped
    every later one (no encoding, a failure counted): a run's cost depended on its length. Here
    its task runs, its batches go nowhere."""
    from stream.state import publisher

    publisher._client_factory = _Redis  # type: ignore[assignment]
    return asyncio.ensure_future(publisher.run())


async def run(n: int, pdls: int, profile: bool, history_days: int = 0) -> dict[str, float]:
    from agents import battery, consumption, live, readings as readings_agent

    _acknowledge_at_once()
    sending = _publisher_without_network()

    data = readings(n, pdls, history_days=history_days)
    warmup, data = data[: len(data) - n], data[len(data) - n :]
    handlers = {"live": live, "consumption": consumption, "battery": battery}
    spent = {name: [0.0] for name in handlers}
    originals = {name: module.handle for name, module in handlers.items()}
    for name, module in handlers.items():  # agents/readings.py looks them up at each call
        module.handle = _timed(module.handle, spent[name])  # type: ignore[method-assign]
    try:
        async with readings_agent.readings_agent.test_context() as tested:
            for key, value in warmup:
                await tested.put(value, key=key, partition=int.from_bytes(key[-2:], "big") % 4)
            for s in spent.values():
                s[0] = 0.0
            prof = cProfile.Profile() if profile else None
            start = time.perf_counter()
            if prof:
                prof.enable()
            for key, value in data:
                await tested.put(value, key=key, partition=int.from_bytes(key[-2:], "big") % 4)
            if prof:
                prof.disable()
                pstats.Stats(prof).sort_stats(os.environ.get("LINKY_BENCH_PROFILE_SORT", "cumulative")).print_stats(40)
                if os.environ.get("LINKY_BENCH_PROFILE_OUT"):  # for pstats' callers/callees views
                    prof.dump_stats(os.environ["LINKY_BENCH_PROFILE_OUT"])
            total = time.perf_counter() - start
    finally:
        sending.cancel()
        for name, module in handlers.items():
            module.handle = originals[name]  # type: ignore[method-assign]
    out = {name: s[0] / len(data) * 1e3 for name, s in spent.items()}
    out["agent (all, with test_context)"] = total / len(data) * 1e3
    return out


def payload_json_report(payloads: list[Any]) -> str:
    """orjson (stream/payload_json.py) vs the standard library on the payloads of the run."""
    import json

    from stream import payload_json

    def stdlib(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    same = sum(payload_json.dumps(p) == stdlib(p) for p in payloads)
    timings = {}
    for name, encode in (("json", stdlib), ("orjson", payload_json.dumps)):
        start = time.perf_counter()
        for _ in range(3):
            for p in payloads:
                encode(p)
        timings[name] = (time.perf_counter() - start) / 3 / max(1, len(payloads)) * 1e6
    return (f"payload JSON: {len(payloads)} payloads, {same} byte-identical; json {timings['json']:.1f} us, "
            f"orjson {timings['orjson']:.1f} us per payload ({timings['json'] / timings['orjson']:.1f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=4000)
    parser.add_argument("--pdls", type=int, default=200)
    parser.add_argument("--history-days", type=int, default=0, help="days of history per PDL folded first, untimed")
    parser.add_argument("--profile", action="store_true", help="run the readings agent under cProfile")
    parser.add_argument("--payload-json", action="store_true", help="orjson vs json.dumps on the run's payloads")
    args = parser.parse_args()
    payloads: list[Any] = []
    if args.payload_json:
        from stream import payload_json

        encode = payload_json.dumps

        def keeping(obj: Any) -> bytes:
            payloads.append(obj)
            return encode(obj)

        payload_json.dumps = keeping  # type: ignore[assignment]  # looked up at each call
    for name, ms in asyncio.run(run(args.readings, args.pdls, args.profile, args.history_days)).items():
        print(f"{name:<32} {ms:.3f} ms/reading")
    if args.payload_json:
        payload_json.dumps = encode  # type: ignore[assignment]
        print(payload_json_report(payloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
