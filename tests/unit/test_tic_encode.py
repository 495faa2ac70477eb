"""teleinfo.encode: checksum worked examples (protocol.md §1.5) and byte layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from teleinfo.encode import checksum, encode_frame, encode_group
from teleinfo.protocol import FrameDecoder

FRAMES = Path(__file__).resolve().parents[2] / ".." / "shared" / "tic" / "frames"


@pytest.mark.parametrize(("zone", "expected"), [
    (b"ADCO 021861348497", ord("L")),  # F1, historic mode 1
    (b"ADCO 021861348497 ", ord(",")),  # same group, mode 2: differs
    (b"VTIC\t02\t", ord("J")),
    (b"DATE\tH240210121413\t\t", ord("6")),
    (b"SMAXSN-1\tH200213085118\t09562\t", 0x20),  # checksum is a space (F4)
    (b"DPM1\t 200214060000\t00\t", 0x5C),  # checksum is a backslash (F4)
])
def test_checksum_worked_examples(zone: bytes, expected: int) -> None:
    assert checksum(zone) == expected


def test_checksum_range() -> None:
    assert {checksum(bytes([b])) for b in range(256)} == set(range(0x20, 0x60))


def test_standard_group_layout() -> None:
    assert encode_group("VTIC", "02") == b"\nVTIC\t02\tJ\r"
    assert encode_group("DATE", "", "H240210121413") == b"\nDATE\tH240210121413\t\t6\r"


def test_historic_group_layout_and_checksum_modes() -> None:
    assert encode_group("ADCO", "021861348497", mode="historic") == b"\nADCO 021861348497 L\r"
    assert encode_group("ADCO", "021861348497", mode="historic", historic_checksum=2) == (
        b"\nADCO 021861348497 ,\r")


def test_encoder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        encode_group("ADCO", "1", "H240210121413", mode="historic")
    with pytest.raises(ValueError):
        encode_group("ADCO", "1", mode="bogus")
    with pytest.raises(ValueError):
        encode_group("ADCO", "1", mode="historic", historic_checksum=3)


def test_encode_frame_wraps_groups() -> None:
    raw = encode_frame([("ADSC", None, "041776199277"), ("VTIC", None, "02")], "standard")
    assert raw == b"\x02\nADSC\t041776199277\tI\r\nVTIC\t02\tJ\r\x03"


@pytest.mark.parametrize("name", ["F1", "F2", "F3", "F4", "F5", "F6"])
def test_reencoding_real_frames_gives_the_captured_bytes(name: str) -> None:
    path = FRAMES / f"{name}.bin"
    if not path.is_file():
        pytest.skip(f"real frames not found at {FRAMES} (../shared/tic/frames)")
    raw = path.read_bytes()
    (frame,) = FrameDecoder().feed(raw)
    groups = [(label, frame.horodates.get(label), value) for label, value in frame.groups.items()]
    assert encode_frame(groups, frame.mode) == raw
