"""``teleinfo simulate``: simulated Linky meters on pseudo-terminals, a file, or Kafka.

    teleinfo simulate --meters 2 --link-dir .stack/sim          # prints one pty per meter
    teleinfo simulate --meter standard,tri,producer,tempo --speed 20 --truth truth.json
    teleinfo simulate --file capture.bin --meters 3 --speed 0 --duration 3600
    teleinfo simulate --kafka --bootstrap 127.0.0.1:9092 --meters 50 --speed 0 --frames 1000

Signals: SIGTERM/SIGINT stop at a frame boundary (the truth file is written); SIGUSR1 unplugs
every pty, SIGUSR2 plugs them back (the links follow). See docs/edge.md "Simulator".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from stream import clock
from teleinfo.simulator.model import PARIS, default_specs, parse_meter_spec
from teleinfo.simulator.runner import SimulationOptions, run_simulated_meters

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "simulate", help="simulated meters on ptys (or a file, or Kafka)",
        description="Simulate Linky meters: realistic load curves, tariffs and indexes, paced "
                    "at the line's baud rate. Prints one line per meter: "
                    "PATH<TAB>LINK<TAB>PDL<TAB>description.")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--pty", action="store_true", help="one pseudo-terminal per meter (default)")
    out.add_argument("--file", type=Path, metavar="PATH", help="append raw frames to PATH")
    out.add_argument("--kafka", action="store_true",
                     help="decode and publish readings straight to Kafka (load tests)")
    p.add_argument("--meters", type=int, default=1, metavar="N",
                   help="N meters from a varied default mix (default 1)")
    p.add_argument("--meter", action="append", default=[], metavar="SPEC",
                   help="a meter: comma-separated standard|historic, mono|tri, "
                        "consumer|producer, base|hchp|tempo, kva=N, pv=KWC, "
                        "hc=HH:MM-HH:MM[+...], pdl=PRM, seed=N (repeatable; replaces --meters)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="pace N times faster than the line (default 1 = real time; "
                        "0 = as fast as possible, file/kafka only)")
    p.add_argument("--start", help="simulated start, ISO 8601 (default: now, Europe/Paris)")
    p.add_argument("--seed", type=int, default=1, help="seed of loads, weather, Tempo colours")
    p.add_argument("--error-rate", type=float, default=0.0, metavar="P",
                   help="probability per frame of line noise (a corrupted value, or EOT)")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="stop after this much simulated time")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N frames per meter")
    p.add_argument("--link-dir", type=Path, metavar="DIR",
                   help="pty: keep DIR/meter-<i> symlinks to the ptys (stable across replugs)")
    p.add_argument("--truth", type=Path, metavar="PATH",
                   help="write the ground truth (energy per PDL and period) to PATH as JSON")
    p.add_argument("--truth-readings", action="store_true",
                   help="include every frame's values in the truth file (tests)")
    p.add_argument("--json", action="store_true", help="print the meter lines as JSON")
    p.add_argument("--bootstrap", help="Kafka bootstrap (with --kafka; default LINKY_KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="Kafka topic (with --kafka; default LINKY_READINGS_TOPIC)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        print(f"teleinfo simulate: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_main(opts, args.json))


def options_from_args(args: argparse.Namespace) -> SimulationOptions:
    if args.meter:
        specs = [parse_meter_spec(s, index=i, seed=args.seed) for i, s in enumerate(args.meter)]
    else:
        if args.meters < 1:
            raise ValueError("--meters must be at least 1")
        specs = default_specs(args.meters, seed=args.seed)
    if args.start:
        start = datetime.fromisoformat(args.start)
        if start.tzinfo is None:
            start = start.replace(tzinfo=PARIS)
    else:
        start = clock.now_paris()
    if not 0 <= args.error_rate <= 1:
        raise ValueError("--error-rate must be between 0 and 1")
    output = "file" if args.file else "kafka" if args.kafka else "pty"
    opts = SimulationOptions(specs=specs, start=start, speed=args.speed,
                             error_rate=args.error_rate, output=output, link_dir=args.link_dir,
                             file=args.file, duration=args.duration, frames=args.frames,
                             truth=args.truth, truth_readings=args.truth_readings)
    if output == "pty" and args.speed <= 0:
        raise ValueError("a pty needs pacing: --speed must be > 0")
    if output == "kafka":
        from stream.settings import Settings
        settings = Settings.from_env()
        opts.bootstrap = args.bootstrap or settings.kafka_bootstrap
        opts.topic = args.topic or settings.readings_topic
        opts.partitions = settings.topic_partitions
    return opts


async def _main(opts: SimulationOptions, as_json: bool) -> int:
    stop = asyncio.Event()
    lines: dict[int, Any] = {}
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: _each(lines, "unplug"))
    loop.add_signal_handler(signal.SIGUSR2, lambda: _each(lines, "replug"))

    def ready(info: list[dict[str, Any]]) -> None:
        for m in info:
            if as_json:
                print(json.dumps(m))
            else:
                print(f"{m['path'] or ''}\t{m['link'] or ''}\t{m['pdl']}\t{m['description']}")
        sys.stdout.flush()

    truth = await run_simulated_meters(opts, stop, on_ready=ready, lines=lines)
    frames = sum(m["frames"] for m in truth["meters"])
    print(f"teleinfo simulate: {frames} frames from {len(truth['meters'])} meter(s)",
          file=sys.stderr)
    return 0


def _each(lines: dict[int, Any], action: str) -> None:
    for line in lines.values():
        method = getattr(line, action, None)
        if method is not None:
            method()
    print(f"teleinfo simulate: {action}", file=sys.stderr)
