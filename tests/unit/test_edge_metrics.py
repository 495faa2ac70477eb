"""Edge metrics: decoder counters become Prometheus counters without double counting."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import generate_latest

from teleinfo.metrics import EdgeMetrics
from teleinfo.protocol import FrameDecoder


def test_decoder_stats_are_added_as_deltas(frames_dir: Path) -> None:
    metrics, decoder = EdgeMetrics(), FrameDecoder()
    metrics.add_device("d")
    good = (frames_dir / "F3.bin").read_bytes()
    bad = (frames_dir / "bad_standard_groups.bin").read_bytes()
    decoder.feed(b"noise" + good)
    metrics.sync_decoder("d", decoder.stats)
    metrics.sync_decoder("d", decoder.stats)  # no new data: nothing added
    decoder.feed(b"\x02" + bad + b"\x03" + good)
    metrics.sync_decoder("d", decoder.stats)
    assert metrics.frames.labels("d")._value.get() == decoder.stats.frames
    assert metrics.skipped_bytes.labels("d")._value.get() == decoder.stats.skipped_bytes
    total_invalid = sum(s.value for m in metrics.invalid_groups.collect() for s in m.samples
                        if s.name.endswith("_total"))
    assert total_invalid == decoder.stats.invalid_groups > 0


def test_last_frame_age_grows_until_the_next_frame() -> None:
    metrics = EdgeMetrics()
    metrics.add_device("d")
    metrics.frame_seen("d")
    time.sleep(0.05)
    text = generate_latest(metrics.registry).decode()
    line = next(l for l in text.splitlines() if l.startswith("linky_edge_last_frame_age_seconds{"))
    assert 0.04 < float(line.split()[-1]) < 5


def test_metric_names_follow_the_project_rules() -> None:
    names = {m.name for m in EdgeMetrics().registry.collect()}
    assert "linky_edge_frames" in names  # counter family name; exposed as _total
    text = generate_latest(EdgeMetrics().registry).decode()
    for needed in ("linky_edge_spool_bytes", "linky_edge_publish_latency_seconds_bucket",
                   "linky_edge_readings_dropped_total", "linky_edge_reconnects_total",
                   "linky_edge_parity_stripped_bytes_total"):
        assert needed in text or needed.replace("_total", "") in names
