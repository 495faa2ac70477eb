"""``teleinfo read DEVICE...``: print live decoded readings (a table, or JSON lines).

    teleinfo read /dev/ttyUSB0
    teleinfo read /dev/serial/by-id/usb-...-port0 socket://pi2:2001 --json

Same serial handling as the daemon (auto-detected baud rate, reconnects), no Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from stream.settings import Settings
from teleinfo.edge import parse_devices, run_edge
from teleinfo.logs import configure_logging
from teleinfo.metrics import EdgeMetrics

__all__ = ["register", "run", "format_row", "HEADER"]

HEADER = (f"{'received_at':<29} {'device':<12} {'pdl':<14} {'mode':<8} {'tariff':<14} "
          f"{'import_wh':>10} {'export_wh':>10} {'power_va':>8} {'current_a':<12}")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "read", help="print live readings from dongles",
        description="Read TIC dongles and print each reading (auto-detects 1200/9600 Bd). "
                    "DEVICE may end with #pdl=PRM,name=NAME,baud=1200|9600.")
    p.add_argument("devices", nargs="+", metavar="DEVICE", help="device path or pyserial URL")
    p.add_argument("--json", action="store_true", help="one JSON reading per line")
    p.add_argument("--count", type=int, metavar="N", help="stop after N readings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        devices = parse_devices(args.devices)
    except ValueError as exc:
        print(f"teleinfo read: {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    configure_logging("text", settings.log_level)
    return asyncio.run(_main(devices, args.json, args.count))


def format_row(r: dict[str, Any]) -> str:
    """One reading as a table row (None shown as '-')."""
    def v(x: Any) -> str:
        return "-" if x is None else str(x)
    current = "/".join(v(a) for a in r["current_a"]) if r.get("current_a") else "-"
    return (f"{v(r.get('received_at')):<29} {v(r.get('device')):<12} {v(r.get('pdl')):<14} "
            f"{v(r.get('mode')):<8} {v(r.get('tariff_period')):<14} {v(r.get('import_wh')):>10} "
            f"{v(r.get('export_wh')):>10} {v(r.get('power_va')):>8} {current:<12}")


async def _main(devices: list, as_json: bool, count: int | None) -> int:  # type: ignore[type-arg]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    seen = 0
    if not as_json:
        print(HEADER, flush=True)

    def show(reading: dict[str, Any]) -> None:
        nonlocal seen
        print(json.dumps(reading) if as_json else format_row(reading), flush=True)
        seen += 1
        if count is not None and seen >= count:
            stop.set()

    await run_edge(devices, show, EdgeMetrics(), stop)
    return 0
