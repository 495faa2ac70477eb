"""CLI wiring of the edge commands (parsing only; behaviour is in the other edge tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from teleinfo.cli import build_parser
from teleinfo.commands.publish import settings_from_args
from teleinfo.commands.read import format_row
from teleinfo.commands.simulate import options_from_args


def test_all_edge_commands_are_registered() -> None:
    parser = build_parser()
    for argv in (["read", "/dev/ttyUSB0"], ["publish", "/dev/ttyUSB0"], ["record", "/dev/x", "f"],
                 ["simulate"]):
        assert parser.parse_args(argv).func is not None


def test_publish_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKY_KAFKA_BOOTSTRAP", "env:9092")
    monkeypatch.setenv("LINKY_SPOOL_MAX_BYTES", "1000000")
    args = build_parser().parse_args(["publish", "d", "--topic", "t", "--spool-dir", "/tmp/s"])
    s = settings_from_args(args)
    assert (s.kafka_bootstrap, s.readings_topic, s.spool_dir, s.spool_max_bytes) == \
        ("env:9092", "t", Path("/tmp/s"), 1000000)


def test_simulate_options() -> None:
    args = build_parser().parse_args(["simulate", "--meter", "historic,tri,tempo", "--speed", "5",
                                      "--start", "2025-03-30T01:00:00"])
    opts = options_from_args(args)
    assert opts.specs[0].mode == "historic" and opts.specs[0].phases == 3
    assert opts.start.utcoffset().total_seconds() == 3600  # naive start = Paris time
    with pytest.raises(ValueError):
        options_from_args(build_parser().parse_args(["simulate", "--speed", "0"]))


def test_table_row_shows_missing_values_as_dashes() -> None:
    row = format_row({"received_at": "t", "device": "d", "pdl": "p", "mode": "historic",
                      "tariff_period": None, "import_wh": 5, "export_wh": None,
                      "power_va": 10, "current_a": [1, None, 2]})
    assert " - " in row and "1/-/2" in row
