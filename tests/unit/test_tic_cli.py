"""``python -m teleinfo decode [FILE]``: the CLI contract of issue 3."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from teleinfo.commands import decode as decode_command
from teleinfo.encode import encode_frame

ROOT = Path(__file__).resolve().parents[2]
FRAMES = ROOT / ".." / "shared" / "tic" / "frames"

STD = encode_frame([("ADSC", None, "041776199277"), ("DATE", "H200214230804", ""),
                    ("EAST", None, "021849106"), ("SINSTS", None, "02700")], "standard")
HIST = encode_frame([("ADCO", None, "021861348497"), ("PAPP", None, "02830")], "historic")
BAD = b"\x02\nADSC\t041776199277\tI\r\nEAST\t021849106\t!\r\x03"


def run_cli(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "teleinfo", "decode", *args], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=60, check=False)


def test_decode_file(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(b"noise" + STD + STD[:30] + b"\x04" + HIST + BAD)
    proc = run_cli([str(capture)])
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [line["mode"] for line in lines] == ["standard", "historic", "standard"]
    first = lines[0]
    assert set(first) >= {"mode", "groups", "horodates", "invalid", "reading"}
    assert first["groups"] == {"ADSC": "041776199277", "DATE": "", "EAST": "021849106",
                               "SINSTS": "02700"}
    assert first["horodates"] == {"DATE": "H200214230804"}
    assert first["invalid"] == []
    assert first["reading"]["time"] == "2020-02-14T23:08:04+01:00"
    assert first["reading"]["import_wh"] == 21849106
    assert lines[1]["reading"]["time"] is None  # file without DATE: null
    assert lines[2]["invalid"] == ["EAST"] and lines[2]["reading"]["import_wh"] is None
    summary = proc.stderr.decode().strip().splitlines()
    assert len(summary) == 1
    for part in ("frames=3", "groups=7", "invalid_groups=1", "interrupted_frames=1",
                 "skipped_bytes=5"):
        assert part in summary[0]


def test_decode_stdin() -> None:
    proc = run_cli([], stdin=HIST * 3)
    assert proc.returncode == 0
    assert len(proc.stdout.decode().splitlines()) == 3
    assert "frames=3" in proc.stderr.decode()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    proc = run_cli([str(tmp_path / "nope.bin")])
    assert proc.returncode == 2 and proc.stdout == b""


def test_register_and_run_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    decode_command.register(parser.add_subparsers(dest="command"))
    capture = tmp_path / "c.bin"
    capture.write_bytes(STD + STD)
    args = parser.parse_args(["decode", str(capture)])
    assert args.func is decode_command.run
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and "frames=2" in err


def test_receive_time_option() -> None:
    out = io.StringIO()
    stats = decode_command.decode_stream(io.BytesIO(HIST), out, receive_time=True)
    assert stats.frames == 1
    assert json.loads(out.getvalue())["reading"]["time"].endswith("+00:00")


def test_real_frames_through_the_cli() -> None:
    names = ["F1.bin", "F2.bin", "F3.bin", "F4.bin", "F5.bin", "F6.bin"]
    if not all((FRAMES / n).is_file() for n in names):
        pytest.skip(f"real frames not found at {FRAMES} (../shared/tic/frames)")
    proc = run_cli([], stdin=b"".join((FRAMES / n).read_bytes() for n in names))
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [len(line["groups"]) for line in lines] == [16, 15, 38, 55, 46, 63]
    assert all(line["invalid"] == [] for line in lines)
    assert "invalid_groups=0" in proc.stderr.decode()
