"""Edge reader pieces: device specs, baud detection, reading stamping, error classes, and a
DeviceReader on a real pseudo-terminal (no mock serial port)."""

from __future__ import annotations

import asyncio
import errno
from datetime import datetime, timezone
from pathlib import Path

import pytest
import serial

from teleinfo.edge import DeviceConfig, DeviceReader, ReadingStamper, parse_devices
from teleinfo.encode import encode_frame
from teleinfo.metrics import EdgeMetrics
from teleinfo.protocol import Frame, FrameDecoder
from teleinfo.serial_port import BaudDetector, classify_error
from teleinfo.simulator.line import PtyLine

HISTORIC = encode_frame([("ADCO", None, "021861348497"), ("OPTARIF", None, "BASE"),
                         ("ISOUSC", None, "30"), ("BASE", None, "001181243"),
                         ("PTEC", None, "TH.."), ("IINST", None, "002"),
                         ("PAPP", None, "00540")], "historic")


# -- device specs ----------------------------------------------------------------------------

def test_device_spec_options() -> None:
    d = DeviceConfig.parse("/dev/serial/by-id/usb-FTDI_TINFO-1631-if00-port0#pdl=12345678901234,baud=1200")
    assert d.url == "/dev/serial/by-id/usb-FTDI_TINFO-1631-if00-port0"
    assert (d.name, d.pdl, d.baud) == ("usb-FTDI_TINFO-1631-if00-port0", "12345678901234", 1200)
    assert DeviceConfig.parse("socket://pi:2001#name=garage").name == "garage"
    assert DeviceConfig.parse("socket://pi:2001").url == "socket://pi:2001"


@pytest.mark.parametrize("spec", ["/dev/x#baud=4800", "/dev/x#pdl=12 34", "/dev/x#colour=red",
                                  "#pdl=1"])
def test_bad_device_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        DeviceConfig.parse(spec)


def test_device_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        parse_devices(["/a/ttyUSB0", "/b/ttyUSB0"])
    assert len(parse_devices(["/a/ttyUSB0", "/b/ttyUSB0#name=b"])) == 2


# -- baud detection --------------------------------------------------------------------------

def test_detector_switches_after_the_probe_window_without_valid_groups() -> None:
    d = BaudDetector(probe_seconds={1200: 5.0, 9600: 3.0})
    assert d.baud == 1200 and not d.locked
    assert d.observe(0.0, 100, 0) is None
    assert d.observe(4.9, 100, 0) is None
    assert d.observe(5.1, 100, 0) == 9600
    assert d.observe(5.2, 100, 0) is None
    assert d.observe(6.0, 100, 12) is None and d.locked and d.preferred == 9600


def test_silence_never_switches_the_rate() -> None:
    d = BaudDetector()
    for t in range(100):
        assert d.observe(float(t), 0, 0) is None
    assert d.baud == 1200


def test_locked_rate_is_redetected_when_the_meter_changes_mode() -> None:
    d = BaudDetector(relock_seconds=10.0)
    d.observe(0.0, 200, 10)
    assert d.locked and d.baud == 1200
    assert d.observe(1.0, 200, 0) is None
    assert d.observe(9.0, 200, 0) is None  # a few bad frames are not a mode switch
    assert d.observe(11.5, 200, 0) == 9600
    assert not d.locked


def test_remembered_rate_is_tried_first_after_a_reconnect() -> None:
    d = BaudDetector()
    d.baud = 9600
    d.observe(0.0, 50, 5)
    d.reopened()
    assert d.baud == 9600 and not d.locked


def test_forced_rate_never_changes() -> None:
    d = BaudDetector(preferred=9600, fixed=True)
    assert d.locked
    assert all(d.observe(float(t), 500, 0) is None for t in range(0, 100, 5))


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "reason"), [
    (serial.SerialException(errno.ENOENT, "could not open port /dev/ttyUSB0: No such file"), "absent"),
    (serial.SerialException(errno.EACCES, "could not open port: Permission denied"), "permission"),
    (serial.SerialException("Could not exclusively lock port /dev/ttyUSB0"), "busy"),
    (serial.SerialException("device reports readiness to read but returned no data "
                            "(device disconnected or multiple access on port?)"), "disconnected"),
    (OSError(errno.EIO, "Input/output error"), "disconnected"),
    (serial.SerialException("something else"), "io"),
])
def test_errors_are_classified(exc: BaseException, reason: str) -> None:
    assert classify_error(exc) == reason


# -- stamping ----------------------------------------------------------------------------------

def _historic_frame() -> Frame:
    return FrameDecoder().feed(HISTORIC)[0]


def test_historic_time_is_the_receive_time_in_milliseconds_and_strictly_increasing() -> None:
    stamper = ReadingStamper(DeviceConfig("/dev/ttyUSB0", "ttyUSB0"))
    now = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    a = stamper.build(_historic_frame(), now)
    b = stamper.build(_historic_frame(), now)  # decoded from the same read
    assert a["time"] == "2025-03-01T10:00:00.123+00:00" == a["received_at"]
    assert b["time"] == "2025-03-01T10:00:00.124+00:00"
    assert a["device"] == "ttyUSB0" and a["pdl"] == "021861348497"


def test_configured_pdl_replaces_the_meter_address() -> None:
    stamper = ReadingStamper(DeviceConfig("/dev/ttyUSB0", "ttyUSB0", pdl="09876543210987"))
    r = stamper.build(_historic_frame())
    assert r["pdl"] == "09876543210987" and r["meter"] == "021861348497"


def test_standard_time_comes_from_date(frames_dir: Path) -> None:
    frame = FrameDecoder().feed((frames_dir / "F3.bin").read_bytes())[0]
    r = ReadingStamper(DeviceConfig("x", "x")).build(
        frame, datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert r["time"] == "2024-02-10T12:14:13+01:00"
    assert r["received_at"] == "2030-01-01T00:00:00.000+00:00"


# -- DeviceReader on a real pty ------------------------------------------------------------------

async def _feed(line: PtyLine, frame: bytes, stop: asyncio.Event, period: float) -> None:
    while not stop.is_set():
        line.write(frame)
        await asyncio.sleep(period)


async def test_reader_detects_the_rate_on_a_pty_and_survives_unplug(tmp_path: Path) -> None:
    link = tmp_path / "dongle"
    line = PtyLine(9600, link)  # a standard-mode meter: the reader starts at 1200
    frame = encode_frame([("ADSC", None, "041776199277"), ("VTIC", None, "02"),
                          ("EAST", None, "000001234"), ("SINSTS", None, "00420")], "standard")
    metrics = EdgeMetrics()
    frames: list[Frame] = []
    reader = DeviceReader(DeviceConfig(str(link), "dongle"), metrics,
                          lambda f, now: frames.append(f), retry_min_seconds=0.1,
                          retry_max_seconds=0.2,
                          detector=BaudDetector(probe_seconds={1200: 0.5, 9600: 0.5}))
    stop = asyncio.Event()
    feeder = asyncio.create_task(_feed(line, frame, stop, 0.05))
    task = asyncio.create_task(reader.run())
    try:
        for _ in range(200):
            if frames:
                break
            await asyncio.sleep(0.05)
        assert frames and frames[-1].groups["EAST"] == "000001234"
        assert reader.detector.baud == 9600 and reader.detector.locked
        assert metrics.baud_switches.labels("dongle")._value.get() == 1
        line.unplug()
        await asyncio.sleep(0.5)
        assert metrics.device_up.labels("dongle")._value.get() == 0
        count = len(frames)
        line.replug()
        for _ in range(200):
            if len(frames) > count + 2:
                break
            await asyncio.sleep(0.05)
        assert len(frames) > count + 2
        assert metrics.reconnects.labels("dongle")._value.get() >= 1
        reasons = {s.labels["reason"] for m in metrics.device_errors.collect() for s in m.samples
                   if s.name.endswith("_total") and s.value > 0}
        assert "disconnected" in reasons or "absent" in reasons
        assert reader.detector.baud == 9600  # remembered across the replug
    finally:
        stop.set()
        reader.stop()
        await task
        feeder.cancel()
        line.close()
