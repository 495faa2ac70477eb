"""Run simulated meters: pace their frames on ptys (or a file, or straight to Kafka) and keep
the ground truth.

    opts = SimulationOptions(specs=default_specs(2), link_dir=Path(".stack/sim"), speed=1)
    truth = await run_simulated_meters(opts, stop_event, on_ready=print)

Pacing: a meter's bytes leave at its line's rate (1200 or 9600 Bd, 10 bits per character),
``speed`` times faster when asked, in ~50 ms slices; the simulated clock advances by the
frame's own duration whatever the speed, so DATE horodates depend only on ``start``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from teleinfo.simulator.line import FileLine, PtyLine
from teleinfo.simulator.model import PARIS, Meter, MeterSpec

__all__ = ["SimulationOptions", "run_simulated_meters", "spawn_simulator"]

log = logging.getLogger("teleinfo.simulator")

_SLICE_SECONDS = 0.05


@dataclass
class SimulationOptions:
    specs: list[MeterSpec]
    start: datetime
    speed: float = 1.0  # 0 = as fast as possible (file and kafka outputs only)
    error_rate: float = 0.0
    output: str = "pty"  # pty | file | kafka
    link_dir: Path | None = None  # pty: stable symlinks DIR/meter-<i> (like /dev/serial/by-id)
    file: Path | None = None
    bootstrap: str | None = None
    topic: str = "linky.readings"
    partitions: int = 4
    duration: float | None = None  # simulated seconds
    frames: int | None = None  # per meter
    truth: Path | None = None
    truth_readings: bool = False  # also list every frame's values in the truth file
    linger_seconds: float = 1.0  # keep ptys open after the last frame so readers drain them
    meters: list[dict[str, Any]] = field(default_factory=list)


async def run_simulated_meters(opts: SimulationOptions, stop: asyncio.Event | None = None,
                               on_ready: Callable[[list[dict[str, Any]]], None] | None = None,
                               lines: dict[int, Any] | None = None) -> dict[str, Any]:
    """Run until ``stop`` is set or the duration/frame limit is reached; return the truth.

    ``on_ready`` gets one dict per meter (``index, path, link, pdl, meter, description``)
    once the lines exist. ``lines`` (optional) is filled with the line objects, so a caller
    can ``unplug()``/``replug()`` them.
    """
    stop = stop or asyncio.Event()
    meters = [Meter(spec, opts.start, error_rate=opts.error_rate) for spec in opts.specs]
    outs: list[Any] = []
    publisher = None
    if opts.output == "pty":
        if opts.speed <= 0:
            raise ValueError("a pty needs pacing: --speed must be > 0")
        for i, m in enumerate(meters):
            link = opts.link_dir / f"meter-{i}" if opts.link_dir is not None else None
            outs.append(PtyLine(m.spec.baud, link, seed=i))
    elif opts.output == "file":
        if opts.file is None:
            raise ValueError("file output needs a path")
        shared = FileLine(opts.file)
        outs = [shared] * len(meters)
    elif opts.output == "kafka":
        publisher, publisher_task = await _kafka_publisher(opts)
    else:
        raise ValueError(f"unknown output {opts.output!r}")
    if lines is not None:
        lines.update(enumerate(outs))
    info = []
    for i, m in enumerate(meters):
        line = outs[i] if outs else None
        info.append({"index": i, "path": getattr(line, "path", None),
                     "link": str(line.link) if isinstance(line, PtyLine) and line.link else None,
                     "pdl": m.spec.reading_pdl, "meter": m.spec.adsc,
                     "description": m.spec.describe(), "baud": m.spec.baud})
    if on_ready is not None:
        on_ready(info)
    records: list[list[dict[str, Any]]] = [[] for _ in meters]
    counts: list[dict[str, int]] = [{} for _ in meters]
    truth_writer = asyncio.create_task(_write_truth_periodically(opts, meters, records, counts))
    try:
        tasks = [asyncio.create_task(_run_meter(m, outs[i] if outs else None, opts, stop,
                                                records[i], counts[i], publisher))
                 for i, m in enumerate(meters)]
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, asyncio.gather(*tasks)],  # type: ignore[list-item]
                           return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await asyncio.gather(*tasks)
        waiter.cancel()
    finally:
        truth_writer.cancel()
        if opts.output == "pty" and opts.linger_seconds:
            await asyncio.sleep(opts.linger_seconds)
        for line in {id(o): o for o in outs}.values():
            line.close()
        if publisher is not None:
            await publisher.close(timeout=30)
            publisher_task.cancel()
    truth = _truth(opts, meters, records, counts)
    if opts.truth is not None:
        _write_json(opts.truth, truth)
    return truth


async def _run_meter(meter: Meter, line: Any, opts: SimulationOptions, stop: asyncio.Event,
                     record: list[dict[str, Any]], counts: dict[str, int],
                     publisher: Any) -> None:
    loop = asyncio.get_running_loop()
    speed = opts.speed
    bps = meter.spec.baud / 10
    chunk = max(1, int(bps * _SLICE_SECONDS * speed)) if speed > 0 else 0
    wall0 = loop.time()
    sim = 0.0
    decoder = stamper = None
    if publisher is not None:
        from teleinfo.edge import DeviceConfig, ReadingStamper
        from teleinfo.protocol import FrameDecoder
        decoder = FrameDecoder()
        stamper = ReadingStamper(DeviceConfig(url="simulator", name=f"sim-{meter.spec.index}"))
    while not stop.is_set():
        if opts.frames is not None and meter.frames >= opts.frames:
            break
        if opts.duration is not None and sim >= opts.duration:
            break
        out = meter.next_frame()
        data = out.data
        delivered = len(data)
        if publisher is not None:
            for frame in decoder.feed(data):  # type: ignore[union-attr]
                publisher.submit(stamper.build(frame))  # type: ignore[union-attr]
        elif speed <= 0:
            delivered = line.write(data)
        else:
            delivered = 0
            for pos in range(0, len(data), chunk):
                part = data[pos:pos + chunk]
                delivered += line.write(part)
                delay = wall0 + (sim + (pos + len(part)) / bps) / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
        if delivered < len(data) and out.truth["status"] != "interrupted":
            out.truth["status"] = "lost"
        counts[out.truth["status"]] = counts.get(out.truth["status"], 0) + 1
        if opts.truth_readings:  # otherwise memory would grow for as long as it runs
            record.append(out.truth)
        sim += out.seconds
        if speed > 0:
            delay = wall0 + sim / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)


async def _kafka_publisher(opts: SimulationOptions) -> tuple[Any, asyncio.Task[None]]:
    from teleinfo.metrics import EdgeMetrics
    from teleinfo.publisher import AiokafkaSink, Publisher
    from teleinfo.spool import Spool

    if not opts.bootstrap:
        raise ValueError("kafka output needs --bootstrap")
    spool_dir = Path(tempfile.mkdtemp(prefix="teleinfo-sim-spool-"))
    publisher = Publisher(AiokafkaSink(opts.bootstrap, opts.topic, partitions=opts.partitions),
                          Spool(spool_dir), EdgeMetrics(), spool_after_seconds=30.0,
                          memory_max=100_000, batch_size=1000)
    return publisher, asyncio.create_task(publisher.run())


def _truth(opts: SimulationOptions, meters: list[Meter], records: list[list[dict[str, Any]]],
           counts: list[dict[str, int]]) -> dict[str, Any]:
    out = {"generated_by": "teleinfo simulate", "start": opts.start.isoformat(),
           "speed": opts.speed, "error_rate": opts.error_rate, "meters": []}
    for m, rec, by_status in zip(meters, records, counts):
        summary = m.truth_summary()
        summary["end"] = m.now.astimezone(PARIS).isoformat()
        summary["frames_by_status"] = dict(by_status)
        if opts.truth_readings:
            summary["readings"] = rec
        out["meters"].append(summary)  # type: ignore[attr-defined]
    return out


async def _write_truth_periodically(opts: SimulationOptions, meters: list[Meter],
                                    records: list[list[dict[str, Any]]],
                                    counts: list[dict[str, int]]) -> None:
    if opts.truth is None:
        return
    while True:
        await asyncio.sleep(30)
        _write_json(opts.truth, _truth(opts, meters, records, counts))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def spawn_simulator(link_dir: Path, meters: int | list[str] = 1, *, speed: float = 1.0,
                    start: str | None = None, error_rate: float = 0.0,
                    truth: Path | None = None, truth_readings: bool = False,
                    seed: int = 1, timeout: float = 20.0,
                    extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``teleinfo simulate --pty`` in a subprocess; return once every
    ``link_dir/meter-<i>`` link exists. SIGTERM stops it (truth written), SIGUSR1 unplugs
    every pty, SIGUSR2 plugs them back. For ``make run``, benches and tests."""
    cmd = [sys.executable, "-m", "teleinfo", "simulate", "--pty", "--link-dir", str(link_dir),
           "--speed", str(speed), "--error-rate", str(error_rate), "--seed", str(seed)]
    if isinstance(meters, int):
        cmd += ["--meters", str(meters)]
        count = meters
    else:
        for spec in meters:
            cmd += ["--meter", spec]
        count = len(meters)
    if start:
        cmd += ["--start", start]
    if truth is not None:
        cmd += ["--truth", str(truth)]
    if truth_readings:
        cmd.append("--truth-readings")
    cmd += extra or []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    links = [Path(link_dir) / f"meter-{i}" for i in range(count)]
    while not all(p.is_symlink() for p in links):
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}: {' '.join(cmd)}")
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            raise RuntimeError(f"simulator links not ready after {timeout}s in {link_dir}")
        time.sleep(0.05)
    return proc
