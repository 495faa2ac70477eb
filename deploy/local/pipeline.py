"""The main job (``make run``): the whole pipeline on one machine, on the local stack.

    python -m deploy.local.pipeline                       # simulated meters on pseudo-terminals
    python -m deploy.local.pipeline --device /dev/serial/by-id/usb-...   # a real dongle

It brings the stack up, then starts, each as its own process with its log under ``.stack/logs/``:

1. ``teleinfo simulate --pty`` — simulated Linky meters (unless ``--device`` is given);
2. ``teleinfo publish DEVICE...`` — the edge reader: decode, validate, spool, publish to Kafka;
3. ``linky-stream worker`` — the Faust worker: tables in RocksDB, Redis channels, HTTP, /metrics;
4. contracts for the simulated producer PDLs (virtual battery), when the contract CLI exists;

and prints what arrives on Redis (``linky:*``) until Ctrl-C or ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from deploy.local import stack as local_stack

PARIS = ZoneInfo("Europe/Paris")
EDGE_METRICS_PORT = 9105


@dataclass
class Pipeline:
    cfg: local_stack.StackConfig
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, args: list[str], *, capture_stdout: bool = False) -> subprocess.Popen[bytes]:
        log = open(self.cfg.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], env=self.env, cwd=local_stack.REPO_ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture_stdout else log, stderr=log,
            start_new_session=True,
        )
        self.procs[name] = proc
        _say(f"{name}: started (pid {proc.pid}), log {self.cfg.logs / f'{name}.log'}")
        return proc

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, proc in reversed(list(self.procs.items())):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _say(f"{name}: stopped (exit {proc.returncode})")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; see {self.cfg.logs / f'{name}.log'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", action="append", default=[], help="read this dongle instead of simulated meters")
    parser.add_argument("--meters", type=int, default=3, help="simulated meters (default 3, a producer among them)")
    parser.add_argument("--speed", type=float, default=20.0,
                        help="simulated meters run N times faster than real time (default 20)")
    parser.add_argument("--start", help="simulated start (default: today 10:00 Europe/Paris, sunny hours)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--quiet", action="store_true", help="do not print Redis messages")
    args = parser.parse_args(argv)

    cfg = local_stack.StackConfig.from_env()
    local_stack.up(cfg)
    env = dict(os.environ, LINKY_KAFKA_BOOTSTRAP=cfg.bootstrap_servers, LINKY_REDIS_URL=cfg.redis_url,
               LINKY_DATADIR=str(cfg.stack_dir / "worker-data"), PYTHONUNBUFFERED="1")
    pipeline = Pipeline(cfg, env)
    try:
        devices = list(args.device)
        pdls: list[str] = []
        if not devices:
            start = args.start or datetime.now(PARIS).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
            sim = pipeline.spawn("simulator", [
                "teleinfo", "simulate", "--pty", "--meters", str(args.meters), "--speed", str(args.speed),
                "--start", start, "--link-dir", str(cfg.stack_dir / "meters"), "--json",
                "--truth", str(cfg.stack_dir / "truth.json"),
            ], capture_stdout=True)
            meters = _read_meter_lines(sim, args.meters)
            devices = [m.get("link") or m["path"] for m in meters]
            pdls = [m["pdl"] for m in meters]
            for m in meters:
                _say(f"simulated meter {m['pdl']}: {m.get('description', '')} on {m.get('link') or m['path']}")
        pipeline.spawn("worker", ["stream", "worker", "-l", "info"])
        pipeline.spawn("edge", ["teleinfo", "publish", *devices, "--metrics-port", str(EDGE_METRICS_PORT),
                                "--spool-dir", str(cfg.stack_dir / "spool")])
        _set_demo_contracts(pipeline, [m for m in (meters if not args.device else []) if "producer" in m.get("description", "")])
        _print_help(cfg, pdls)
        asyncio.run(_watch_redis(cfg.redis_url, pipeline, args.duration, args.quiet))
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        _say(f"ERROR: {exc}")
        return 1
    finally:
        pipeline.stop_all()
    return 0


def _read_meter_lines(sim: subprocess.Popen[bytes], count: int) -> list[dict]:
    assert sim.stdout is not None
    meters = []
    deadline = time.monotonic() + 30
    while len(meters) < count and time.monotonic() < deadline:
        line = sim.stdout.readline()
        if not line:
            raise RuntimeError("the simulator exited before announcing its meters; see .stack/logs/simulator.log")
        with contextlib.suppress(json.JSONDecodeError):
            meters.append(json.loads(line))
    return meters


def _set_demo_contracts(pipeline: Pipeline, producers: list[dict]) -> None:
    """Give simulated producers a virtual-battery contract so the battery moves in the demo."""
    try:
        import stream.contract_cli  # noqa: F401
    except ImportError:
        return
    for m in producers:
        since = (datetime.now(PARIS) - timedelta(days=31)).date().isoformat()
        subprocess.run([sys.executable, "-m", "stream", "contract", "set", m["pdl"], "--offer", "virtual_battery",
                        "--effective", since], env=pipeline.env, cwd=local_stack.REPO_ROOT, check=False)


def _print_help(cfg: local_stack.StackConfig, pdls: list[str]) -> None:
    pdl = pdls[0] if pdls else "<pdl>"
    _say("pipeline running; Ctrl-C stops it (the stack stays up: `make stack-down` stops it)")
    _say(f"watch one PDL:   redis-cli -p {cfg.redis_port} SUBSCRIBE linky:{pdl}:live linky:{pdl}:conso linky:{pdl}:battery")
    _say(f"latest snapshot: redis-cli -p {cfg.redis_port} GET linky:{pdl}:conso")
    _say(f"query:           curl 'http://127.0.0.1:6066/pdl/{pdl}/consumption?granularity=hour'")
    _say(f"metrics:         curl http://127.0.0.1:6066/metrics ; curl http://127.0.0.1:{EDGE_METRICS_PORT}/metrics")


async def _watch_redis(url: str, pipeline: Pipeline, duration: float | None, quiet: bool) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("linky:*")
    deadline = time.monotonic() + duration if duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            pipeline.check_alive()
            msg = await pubsub.get_message(timeout=1.0)
            if msg is None or quiet:
                continue
            print(_summarise(msg["channel"].decode(), msg["data"]), flush=True)
    finally:
        await pubsub.aclose()
        await client.aclose()


def _summarise(channel: str, data: bytes) -> str:
    try:
        payload = json.loads(data)
    except ValueError:
        return f"{channel}: {data[:200]!r}"
    keep = {k: v for k, v in payload.items() if not isinstance(v, (dict, list))}
    return f"{channel:38} " + " ".join(f"{k}={v}" for k, v in list(keep.items())[:9])


def _say(msg: str) -> None:
    print(f"[run] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
