"""The edge daemon: several TIC dongles in one asyncio process, decoded and published.

    devices = [DeviceConfig.parse("/dev/serial/by-id/usb-...#pdl=12345678901234")]
    await run_edge(devices, publisher, metrics, stop)   # until ``stop`` is set

Per device a ``DeviceReader`` task owns the serial port: open (with back-off while the device
is absent, busy or not allowed), poll it every 0.2 s (network URLs: a blocking read in a
worker thread), feed the sans-IO ``FrameDecoder``,
auto-detect the baud rate (``serial_port.BaudDetector``), and hand every complete frame to a
callback. ``ReadingStamper`` turns a frame into the published reading (the decoder's reading
plus ``device`` and ``received_at``; docs/reading-schema.md "Fields added by the edge reader").
Nothing a device does can stop another one or the publisher: errors are logged, counted,
retried.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from stream import clock
from teleinfo.metrics import EdgeMetrics
from teleinfo.protocol import BAUD_BY_MODE, Frame, FrameDecoder
from teleinfo.reading import build_reading
from teleinfo.serial_port import (
    BAUD_RATES,
    POLL_SECONDS,
    SERIAL_ERRORS,
    BaudDetector,
    classify_error,
    open_port,
    poll_fd,
    read_available,
    read_chunk,
)

__all__ = ["DeviceConfig", "DeviceReader", "ReadingStamper", "run_edge", "replay_files",
           "parse_devices"]

log = logging.getLogger("teleinfo.edge")

_PDL = re.compile(r"[0-9A-Za-z]{1,32}")
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class DeviceConfig:
    """One dongle. ``pdl`` overrides the meter's PRM/address (historic meters only expose
    their address, ADCO); ``baud`` forces a rate instead of auto-detection."""

    url: str
    name: str
    pdl: str | None = None
    baud: int | None = None

    @classmethod
    def parse(cls, spec: str) -> "DeviceConfig":
        """``DEVICE[#pdl=NNN,name=NAME,baud=1200|9600]``; the name defaults to the device's
        last path component (``ttyUSB0``, ``usb-..._TINFO-1234-if00-port0``, ``host:port``)."""
        url, _, options = spec.partition("#")
        if not url:
            raise ValueError(f"empty device in {spec!r}")
        values: dict[str, str] = {}
        for item in filter(None, options.split(",")):
            key, sep, value = item.partition("=")
            if not sep or key not in ("pdl", "name", "baud"):
                raise ValueError(f"bad device option {item!r} in {spec!r} "
                                 "(expected pdl=..., name=..., baud=1200|9600)")
            values[key] = value
        pdl = values.get("pdl")
        if pdl is not None and not _PDL.fullmatch(pdl):
            raise ValueError(f"bad pdl {pdl!r} in {spec!r} (letters and digits only)")
        baud = int(values["baud"]) if "baud" in values else None
        if baud is not None and baud not in BAUD_RATES:
            raise ValueError(f"baud must be one of {BAUD_RATES}, not {baud}")
        name = values.get("name") or url.rstrip("/").rsplit("/", 1)[-1] or url
        return cls(url=url, name=name, pdl=pdl, baud=baud)


def parse_devices(specs: Iterable[str]) -> list[DeviceConfig]:
    """Parse specs; device names must be unique (they label metrics and readings)."""
    devices = [DeviceConfig.parse(s) for s in specs]
    names = [d.name for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"device names must be unique, got {dupes}; add #name=... to tell them apart")
    return devices


class ReadingStamper:
    """Frame -> published reading, for one device.

    ``received_at`` (UTC, millisecond precision) is the time the frame was decoded; it is made
    strictly increasing per device (+1 ms when two frames complete in the same read), because a
    historic frame has no DATE: its ``time`` *is* this receive time and the stream side drops
    duplicates per PDL by ``time``. A configured PDL replaces the meter's.
    """

    def __init__(self, device: DeviceConfig) -> None:
        self.device = device
        self._last: datetime | None = None
        self._warned_pdl = False

    def build(self, frame: Frame, now: datetime | None = None) -> dict[str, Any]:
        received = (now or clock.now()).astimezone(timezone.utc)
        received = received.replace(microsecond=received.microsecond // 1000 * 1000)
        if self._last is not None and received <= self._last:
            received = self._last + _MS
        self._last = received
        reading = build_reading(frame, received)
        stamp = received.isoformat(timespec="milliseconds")
        if reading.get("time_source") == "receiver":
            reading["time"] = stamp
        reading["received_at"] = stamp
        reading["device"] = self.device.name
        pdl = self.device.pdl
        if pdl is not None:
            meter_pdl = reading.get("pdl")
            if meter_pdl not in (None, pdl, reading.get("meter")) and not self._warned_pdl:
                log.warning("device %s: meter reports PRM %s but %s is configured; using the "
                            "configured one", self.device.name, meter_pdl, pdl,
                            extra={"event": "pdl_mismatch", "device": self.device.name})
                self._warned_pdl = True
            reading["pdl"] = pdl
        return reading


class DeviceReader:
    """Reads one device forever (until ``stop()``), reconnecting on its own.

    ``on_frame(frame, now)`` gets each complete frame; ``on_data(bytes)`` each raw chunk
    (``teleinfo record``). Back-off after a failure: 1 s doubling to ``retry_max_seconds``,
    reset once the device delivers a valid frame again, so a device that opens and dies at
    once is retried slowly, never in a tight loop.
    """

    def __init__(self, config: DeviceConfig, metrics: EdgeMetrics,
                 on_frame: Callable[[Frame, datetime], None] | None = None,
                 on_data: Callable[[bytes], None] | None = None, *,
                 retry_max_seconds: float = 30.0, retry_min_seconds: float = 1.0,
                 detector: BaudDetector | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.on_frame = on_frame
        self.on_data = on_data
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        self.detector = detector or BaudDetector(preferred=config.baud,
                                                 fixed=config.baud is not None)
        self.decoder = FrameDecoder()
        self.opens = 0
        self._stop = asyncio.Event()
        self._delay = retry_min_seconds
        self._last_reason: str | None = None
        self._locked_baud: int | None = None
        metrics.add_device(config.name)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        name = self.config.name
        while not self._stop.is_set():
            try:
                port = await asyncio.to_thread(open_port, self.config.url, self.detector.baud)
            except SERIAL_ERRORS as exc:
                self._failure("open", exc)
                await self._sleep(self._next_delay())
                continue
            self.opens += 1
            if self.opens > 1:
                self.metrics.reconnects.labels(name).inc()
            self._last_reason = None
            self.metrics.device_up.labels(name).set(1)
            self.metrics.baud.labels(name).set(self.detector.baud)
            self.decoder.reset()  # the first bytes after an open are mid-frame (§6.3)
            self.detector.reopened()
            log.info("device %s open at %d Bd%s", name, self.detector.baud,
                     "" if self.detector.locked else " (detecting)",
                     extra={"event": "device_open", "device": name, "url": self.config.url,
                            "baud": self.detector.baud})
            try:
                await self._read_loop(port)
            except SERIAL_ERRORS as exc:
                self._failure("read", exc)
            finally:
                self.metrics.device_up.labels(name).set(0)
                try:
                    await asyncio.to_thread(port.close)
                except SERIAL_ERRORS:
                    pass
            if not self._stop.is_set():
                await self._sleep(self._next_delay())

    async def _read_loop(self, port: Any) -> None:
        name = self.config.name
        decoder, detector, metrics = self.decoder, self.detector, self.metrics
        received_bytes = metrics.received_bytes.labels(name)
        fd = poll_fd(port)
        data = b""
        while not self._stop.is_set():
            if fd is not None:
                # Poll: sleep, then take what arrived. Read again at once after a big chunk
                # (a fast replay or --speed) so the kernel buffer never overflows.
                if len(data) < 2048:
                    await asyncio.sleep(POLL_SECONDS)
                data = read_available(fd)
            else:  # network URLs (socket://, rfc2217://): blocking read in a worker thread
                data = await asyncio.to_thread(read_chunk, port)
            frames: list[Frame] = []
            valid = 0
            if data:
                received_bytes.inc(len(data))
                if self.on_data is not None:
                    self.on_data(data)
                before = decoder.stats.groups
                frames = decoder.feed(data)
                valid = decoder.stats.groups - before
                metrics.sync_decoder(name, decoder.stats)
            switch = detector.observe(time.monotonic(), len(data), valid)
            if switch is not None:
                self._locked_baud = None
                log.warning("device %s: no valid group, trying %d Bd", name, switch,
                            extra={"event": "baud_switch", "device": name, "baud": switch})
                await asyncio.to_thread(setattr, port, "baudrate", switch)
                decoder.reset()
                metrics.baud_switches.labels(name).inc()
                metrics.baud.labels(name).set(switch)
            elif valid and self._locked_baud != detector.baud:
                self._locked_baud = detector.baud
                metrics.baud.labels(name).set(detector.baud)
                log.info("device %s: %s mode at %d Bd", name, decoder.mode, detector.baud,
                         extra={"event": "baud_locked", "device": name, "baud": detector.baud,
                                "mode": decoder.mode})
            if frames:
                self._delay = self.retry_min_seconds
                metrics.frame_seen(name)
                if self.on_frame is not None:
                    now = clock.now()
                    for frame in frames:
                        self.on_frame(frame, now)

    def _failure(self, stage: str, exc: BaseException) -> None:
        reason = classify_error(exc)
        name = self.config.name
        self.metrics.device_errors.labels(name, reason).inc()
        level = logging.WARNING if reason != self._last_reason else logging.DEBUG
        if stage == "read":
            level = logging.WARNING
        log.log(level, "device %s %s failed (%s): %s; retrying in %.0f s", name, stage, reason,
                exc, self._delay,
                extra={"event": f"device_{stage}_failed", "device": name, "reason": reason,
                       "retry_seconds": self._delay})
        self._last_reason = reason

    def _next_delay(self) -> float:
        delay = self._delay
        self._delay = min(self.retry_max_seconds, self._delay * 2)
        return delay

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


async def run_edge(devices: list[DeviceConfig], submit: Callable[[dict[str, Any]], None],
                   metrics: EdgeMetrics, stop: asyncio.Event, *,
                   retry_max_seconds: float = 30.0) -> None:
    """Read every device until ``stop`` is set; each frame's reading goes to ``submit``."""
    readers = []
    for device in devices:
        stamper = ReadingStamper(device)
        readings = metrics.readings.labels(device.name)

        def on_frame(frame: Frame, now: datetime, stamper: ReadingStamper = stamper,
                     readings: Any = readings) -> None:
            submit(stamper.build(frame, now))
            readings.inc()

        readers.append(DeviceReader(device, metrics, on_frame,
                                    retry_max_seconds=retry_max_seconds))
    tasks = [asyncio.create_task(r.run(), name=f"device:{r.config.name}") for r in readers]
    try:
        await stop.wait()
    finally:
        for r in readers:
            r.stop()
        await asyncio.gather(*tasks, return_exceptions=True)


async def replay_files(paths: list[Path], submit: Callable[[dict[str, Any]], None],
                       metrics: EdgeMetrics, *, pace: str = "fast",
                       pdl: str | None = None) -> int:
    """Publish recordings through the same decoder and stamping; returns frames decoded.

    ``pace="real"`` waits each frame's transmission time at the line's baud rate. Readings
    take their time from the frame's DATE when it has one, so replaying standard frames is
    deterministic; historic frames get the replay's receive time.
    """
    total = 0
    for path in paths:
        device = DeviceConfig(url=str(path), name=path.name, pdl=pdl)
        stamper = ReadingStamper(device)
        decoder = FrameDecoder()
        metrics.add_device(device.name)
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                for frame in decoder.feed(chunk):
                    if pace == "real":
                        await asyncio.sleep(frame.size * 10 / BAUD_BY_MODE[frame.mode])
                    submit(stamper.build(frame))
                    metrics.readings.labels(device.name).inc()
                    metrics.frame_seen(device.name)
                    total += 1
                metrics.sync_decoder(device.name, decoder.stats)
                await asyncio.sleep(0)
        log.info("replayed %s: %d frames", path, decoder.stats.frames,
                 extra={"event": "replay_done", "file": str(path), **decoder.stats.as_dict()})
    return total
