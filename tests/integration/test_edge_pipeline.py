"""Simulator on real ptys -> `teleinfo publish` -> the real Kafka topic (session broker).

Tests: every reading arrives in order per PDL with nothing missing (checked against the
simulator's ground truth); pulling the dongle out and back in is recovered by the reader on
its own.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from stream import clock
from teleinfo.simulator import spawn_simulator
from tests.conftest import free_port
from tests.integration.edge_support import (
    assert_gapless_tail,
    first_occurrences,
    metric,
    read_topic,
    start_reader,
    stop,
    wait_for,
)

pytestmark = pytest.mark.integration

METERS = ["standard,tri,producer,tempo,kva=12", "historic,mono,consumer,hchp"]


def test_pty_to_kafka_every_reading_in_order(tmp_path: Path, kafka_bootstrap: str,
                                             unique_name) -> None:
    topic, port = unique_name("edge"), free_port()
    truth_path = tmp_path / "truth.json"
    sim = spawn_simulator(tmp_path / "dev", METERS, speed=20, start="2025-06-21T11:00:00",
                          truth=truth_path, truth_readings=True)
    reader = start_reader([str(tmp_path / "dev" / "meter-0"), str(tmp_path / "dev" / "meter-1")],
                          kafka_bootstrap, topic, tmp_path / "spool", port, tmp_path / "reader.log")
    try:
        wait_for(lambda: min(metric(port, "linky_edge_frames_total", device="meter-0"),
                             metric(port, "linky_edge_frames_total", device="meter-1")) >= 25,
                 60, "25 frames from each meter")
        assert stop(sim) == 0
        readings = lambda: metric(port, "linky_edge_readings_total")  # noqa: E731
        wait_for(lambda: metric(port, "linky_edge_published_total") >= readings() > 0, 20,
                 "every reading acknowledged by Kafka")
        # auto-detection: the historic meter at 1200 Bd, the standard one at 9600 Bd
        assert metric(port, "linky_edge_baud", device="meter-0") == 9600
        assert metric(port, "linky_edge_baud", device="meter-1") == 1200
        assert metric(port, "linky_edge_spooled_total") == 0
    finally:
        stop(sim)
        assert stop(reader) == 0
    truth = json.loads(truth_path.read_text())
    topic_readings = read_topic(kafka_bootstrap, topic)
    assert set(topic_readings) == {m["pdl"] for m in truth["meters"]}
    for meter in truth["meters"]:
        got = topic_readings[meter["pdl"]]
        unique, duplicates = first_occurrences(got)
        assert duplicates == 0  # nothing was retried on a healthy broker
        start = assert_gapless_tail(unique, meter)
        assert len(unique) >= 25 and start < meter["frames"]
        # totals to the Wh: the last published indexes are those of the last frame the simulator
        # sent (its ``last_index`` is the meter's index once that frame's period is integrated,
        # which no frame showed: this compared with it failed whenever that period crossed a Wh)
        last_sent = [r for r in meter["readings"] if r["status"] == "intact"][-1]["import_wh_by_period"]
        published = got[-1]["import_wh_by_period"]
        assert {k: published.get(k) for k in meter["last_index"]} == {k: last_sent[k] for k in meter["last_index"]}
        assert {r["device"] for r in got} <= {"meter-0", "meter-1"}
        assert all(r["received_at"].endswith("+00:00") for r in got)


def test_unplug_and_replug_is_recovered_without_help(tmp_path: Path, kafka_bootstrap: str,
                                                     unique_name) -> None:
    topic, port = unique_name("edge-unplug"), free_port()
    sim = spawn_simulator(tmp_path / "dev", ["historic,mono,consumer,base"], speed=20)
    link = tmp_path / "dev" / "meter-0"
    reader = start_reader([f"{link}#pdl=09876543210987"], kafka_bootstrap, topic,
                          tmp_path / "spool", port, tmp_path / "reader.log")
    try:
        frames = lambda: metric(port, "linky_edge_frames_total")  # noqa: E731
        wait_for(lambda: frames() >= 5, 30, "first frames")
        sim.send_signal(signal.SIGUSR1)  # pull the dongle out
        wait_for(lambda: metric(port, "linky_edge_device_up") == 0, 10, "device seen as gone")
        time.sleep(2.5)  # a few failed re-opens with back-off
        assert metric(port, "linky_edge_device_errors_total", reason="absent") >= 1
        before, unplugged_at = frames(), clock.time()  # received_at is stamped on the product's clock
        assert reader.poll() is None
        sim.send_signal(signal.SIGUSR2)  # and back in
        wait_for(lambda: frames() >= before + 5, 40, "frames after the replug")
        assert metric(port, "linky_edge_device_up") == 1
        assert metric(port, "linky_edge_reconnects_total") >= 1
        wait_for(lambda: metric(port, "linky_edge_published_total") >=
                 metric(port, "linky_edge_readings_total"), 20, "published")
    finally:
        stop(sim)
        assert stop(reader) == 0
    readings = read_topic(kafka_bootstrap, topic)["09876543210987"]
    after = [r for r in readings if r["received_at"] > time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.gmtime(unplugged_at))]
    assert len(after) >= 5
    log = (tmp_path / "reader.log").read_text()
    events = [json.loads(line).get("event") for line in log.splitlines() if line.startswith("{")]
    assert "device_read_failed" in events and events.count("device_open") >= 2
