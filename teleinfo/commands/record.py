"""``teleinfo record DEVICE FILE``: save the raw bytes a dongle sends (for bug reports).

    teleinfo record /dev/ttyUSB0 capture.bin --duration 60

The file holds exactly what was read at the detected (or forced, ``DEVICE#baud=1200``) baud
rate; ``teleinfo decode capture.bin`` or ``teleinfo publish --replay capture.bin`` read it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from stream.settings import Settings
from teleinfo.edge import DeviceConfig, DeviceReader
from teleinfo.logs import configure_logging
from teleinfo.metrics import EdgeMetrics

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "record", help="save a dongle's raw bytes to a file",
        description="Append the raw bytes read from DEVICE to FILE until stopped (Ctrl-C), "
                    "for --duration seconds, or for --frames complete frames.")
    p.add_argument("device", metavar="DEVICE", help="device path or pyserial URL")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--duration", type=float, metavar="SECONDS")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N complete frames")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        device = DeviceConfig.parse(args.device)
    except ValueError as exc:
        print(f"teleinfo record: {exc}", file=sys.stderr)
        return 2
    configure_logging("text", Settings.from_env().log_level)
    return asyncio.run(_main(device, args.file, args.duration, args.frames))


async def _main(device: DeviceConfig, path: Path, duration: float | None,
                frames: int | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    written = seen = 0
    with open(path, "ab") as out:
        def on_data(data: bytes) -> None:
            nonlocal written
            out.write(data)
            out.flush()
            written += len(data)

        def on_frame(frame: object, now: object) -> None:
            nonlocal seen
            seen += 1
            if frames is not None and seen >= frames:
                stop.set()

        reader = DeviceReader(device, EdgeMetrics(), on_frame, on_data)
        task = asyncio.create_task(reader.run())
        await stop.wait()
        reader.stop()
        await task
    print(f"teleinfo record: {written} bytes, {seen} frames -> {path}", file=sys.stderr)
    return 0
