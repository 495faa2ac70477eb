"""The meter simulator: valid frames for every model, indexes consistent with the power it
reports, tariffs, DST-reproducible clock, injected errors, file output."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from teleinfo.protocol import FrameDecoder
from teleinfo.reading import build_reading
from teleinfo.simulator.model import PARIS, Meter, parse_meter_spec, tempo_colour

ALL_SPECS = [",".join(p) for p in itertools.product(
    ("standard", "historic"), ("mono", "tri"), ("consumer", "producer"), ("base", "hchp", "tempo"))]
COMPARED = ("time", "import_wh", "import_wh_by_period", "export_wh", "power_va", "tariff_period")


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_every_model_emits_frames_the_decoder_fully_accepts(spec: str) -> None:
    meter = Meter(parse_meter_spec(spec), datetime(2025, 6, 21, 11, 0, tzinfo=PARIS))
    decoder = FrameDecoder()
    for _ in range(30):
        out = meter.next_frame()
        (frame,) = decoder.feed(out.data)
        assert frame.invalid == []
        reading = build_reading(frame)
        assert {k: reading[k] for k in COMPARED} == {k: out.truth[k] for k in COMPARED}
        assert reading["pdl"] == meter.spec.reading_pdl
    assert decoder.stats.invalid_groups == 0


@pytest.mark.parametrize("spec", ["standard,tri,producer,tempo", "historic,mono,consumer,hchp"])
def test_indexes_grow_by_the_reported_power_times_time_to_the_wh(spec: str) -> None:
    meter = Meter(parse_meter_spec(spec), datetime(2025, 5, 10, 12, 0, tzinfo=PARIS))
    outs = [meter.next_frame() for _ in range(600)]
    # energy the frames announce: each frame's power over its own duration
    integrated = sum(o.truth["power_va"] * o.seconds / 3600 for o in outs[:-1])
    delta = outs[-1].truth["import_wh"] - outs[0].truth["import_wh"]
    tolerance = 1 + (10 * len(outs) * 2.3 / 3600 if meter.spec.mode == "historic" else 0)
    assert abs(delta - integrated) <= tolerance  # historic PAPP is rounded to 10 VA
    summary = meter.truth_summary()
    true_energy = sum(summary["energy_wh"].values())
    index_delta = sum(summary["last_index"].values()) - sum(summary["first_index"].values())
    assert abs(true_energy - index_delta) < len(summary["energy_wh"])  # floor of each register


def test_producer_injects_by_day_only() -> None:
    spec = parse_meter_spec("standard,mono,producer,base,pv=6")
    noon = Meter(spec, datetime(2025, 6, 21, 13, 30, tzinfo=PARIS))
    night = Meter(spec, datetime(2025, 6, 21, 2, 0, tzinfo=PARIS))
    assert noon.solar_w(noon.now) > 1000
    assert night.solar_w(night.now) == 0
    outs = [noon.next_frame() for _ in range(300)]
    assert outs[-1].truth["export_wh"] > outs[0].truth["export_wh"]


def test_hchp_switches_at_the_configured_hours() -> None:
    spec = parse_meter_spec("standard,mono,consumer,hchp,hc=01:00-07:00+12:30-14:30")
    m = Meter(spec, datetime(2025, 3, 3, 0, 0, tzinfo=PARIS))
    def at(h: int, mi: int) -> str:
        return m._tariff_label(None, m.period(datetime(2025, 3, 3, h, mi, tzinfo=PARIS))[2])
    assert at(0, 59) == "HEURE  PLEINE" and at(1, 0) == "HEURE  CREUSE"
    assert at(6, 59) == "HEURE  CREUSE" and at(7, 0) == "HEURE  PLEINE"
    assert at(13, 0) == "HEURE  CREUSE" and at(14, 30) == "HEURE  PLEINE"


def test_tempo_calendar_follows_the_rules() -> None:
    days = [date(2025, 9, 1) + timedelta(days=i) for i in range(365)]
    colours = {d: tempo_colour(d) for d in days}
    assert all(c == "BLEU" for d, c in colours.items() if d.weekday() == 6)
    reds = [d for d, c in colours.items() if c == "ROUGE"]
    assert reds and all(d.month in (11, 12, 1, 2, 3) and d.weekday() < 5 for d in reds)
    counts = Counter(colours.values())
    assert counts["BLEU"] > counts["BLANC"] > 0
    # Tempo day runs 06:00 -> 06:00: 05:59 still belongs to the previous day's colour
    m = Meter(parse_meter_spec("standard,mono,consumer,tempo"), datetime(2025, 1, 6, 12, tzinfo=PARIS))
    day = date(2025, 1, 7)
    assert m.period(datetime(2025, 1, 8, 5, 59, tzinfo=PARIS))[1] == tempo_colour(day)
    assert m.period(datetime(2025, 1, 7, 21, 59, tzinfo=PARIS))[2] == "HP"
    assert m.period(datetime(2025, 1, 7, 22, 0, tzinfo=PARIS))[2] == "HC"


def test_dst_end_is_reproducible_and_uses_the_season_letter() -> None:
    start = datetime(2025, 10, 26, 2, 59, 50, tzinfo=PARIS)  # summer time, fold=0
    runs = []
    for _ in range(2):
        m = Meter(parse_meter_spec("standard,mono,consumer,hchp"), start)
        runs.append([m.next_frame() for _ in range(30)])
    assert [o.data for o in runs[0]] == [o.data for o in runs[1]]
    times = [o.truth["time"] for o in runs[0]]
    assert times[0].startswith("2025-10-26T02:59:") and times[0].endswith("+02:00")
    assert any(t.startswith("2025-10-26T02:00:") and t.endswith("+01:00") for t in times)
    assert b"\tE251026025950\t" in runs[0][0].data
    decoded = [build_reading(f)["time"] for o in runs[0] for f in FrameDecoder().feed(o.data)]
    assert decoded == times
    instants = [datetime.fromisoformat(t) for t in times]
    assert instants == sorted(instants)  # the repeated hour stays in order


def test_error_rate_corrupts_values_or_cuts_frames() -> None:
    m = Meter(parse_meter_spec("standard,mono,consumer,base"), datetime(2025, 2, 1, tzinfo=PARIS),
              error_rate=0.5)
    decoder = FrameDecoder()
    outs = [m.next_frame() for _ in range(200)]
    statuses = Counter(o.truth["status"] for o in outs)
    decoded = decoder.feed(b"".join(o.data for o in outs))
    assert statuses["corrupted"] > 20 and statuses["interrupted"] > 10
    assert decoder.stats.interrupted_frames == statuses["interrupted"]
    assert sum(1 for f in decoded if f.invalid) == statuses["corrupted"]
    assert len(decoded) == 200 - statuses["interrupted"]


def test_file_output_and_truth_from_the_cli(tmp_path: Path) -> None:
    out, truth = tmp_path / "sim.bin", tmp_path / "truth.json"
    subprocess.run([sys.executable, "-m", "teleinfo", "simulate", "--file", str(out),
                    "--meter", "historic,mono,consumer,tempo", "--meter", "standard,tri,producer,hchp",
                    "--speed", "0", "--frames", "40", "--start", "2025-07-01T12:00:00",
                    "--truth", str(truth), "--truth-readings"], check=True, timeout=60,
                   capture_output=True)
    decoder = FrameDecoder()
    frames = decoder.feed(out.read_bytes())
    assert len(frames) == 80 and decoder.stats.invalid_groups == 0
    t = json.loads(truth.read_text())
    assert [m["frames"] for m in t["meters"]] == [40, 40]
    for m in t["meters"]:
        readings = [build_reading(f) for f in frames if build_reading(f)["pdl"] == m["pdl"]]
        assert [r["import_wh"] for r in readings] == [r["import_wh"] for r in m["readings"]]
        assert readings[-1]["import_wh_by_period"] == m["readings"][-1]["import_wh_by_period"]
        assert abs(sum(m["energy_wh"].values()) - (sum(m["last_index"].values()) - sum(m["first_index"].values()))) < 6
