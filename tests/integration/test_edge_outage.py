"""Kafka goes away: the reader spools to disk, drains in order when the broker is back, and a
reader SIGKILLed in the middle of a drain loses nothing.

These tests stop and start a broker, so they use a second, private broker (never the shared
session broker other tests use).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import stack as local_stack
from teleinfo.simulator import spawn_simulator
from tests.conftest import free_port
from tests.integration.edge_support import (
    assert_gapless_tail,
    first_occurrences,
    metric,
    read_topic,
    scrape,
    start_reader,
    stop,
    wait_for,
)

pytestmark = pytest.mark.integration

METERS = ["standard,mono,producer,hchp", "historic,tri,consumer,tempo,kva=12"]


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory,
                   stack: local_stack.StackConfig) -> Iterator[local_stack.StackConfig]:
    cfg = local_stack.StackConfig(
        stack_dir=tmp_path_factory.mktemp("edge-broker"), cache_dir=stack.cache_dir,
        kafka_port=free_port(), controller_port=free_port(), redis_port=free_port(), tls_port=free_port(),
        kafka_heap="256m")
    local_stack.up(cfg, quiet=True, timeout=120)
    yield cfg
    local_stack.down(cfg, quiet=True)


def _seg_files(spool: Path) -> list[Path]:
    return sorted(spool.glob("seg-*.log"))


def _check_topic(bootstrap: str, topic: str, truth_path: Path) -> int:
    """Every PDL: gapless and in order once duplicates are dropped; returns duplicates."""
    truth = json.loads(truth_path.read_text())
    by_pdl = read_topic(bootstrap, topic)
    assert set(by_pdl) == {m["pdl"] for m in truth["meters"]}
    duplicates = 0
    for meter in truth["meters"]:
        unique, dups = first_occurrences(by_pdl[meter["pdl"]])
        duplicates += dups
        assert_gapless_tail(unique, meter)
    return duplicates


def test_broker_outage_spools_then_drains_everything_in_order(
        tmp_path: Path, private_broker: local_stack.StackConfig, unique_name) -> None:
    bootstrap, topic, port = private_broker.bootstrap_servers, unique_name("outage"), free_port()
    spool, truth = tmp_path / "spool", tmp_path / "truth.json"
    sim = spawn_simulator(tmp_path / "dev", METERS, speed=20, start="2025-01-14T18:30:00",
                          truth=truth, truth_readings=True)
    reader = start_reader([str(tmp_path / "dev" / f"meter-{i}#baud={b}")
                           for i, b in enumerate((9600, 1200))],
                          bootstrap, topic, spool, port, tmp_path / "reader.log")
    try:
        wait_for(lambda: metric(port, "linky_edge_published_total") >= 10, 60, "first publishes")
        local_stack.down(private_broker, quiet=True)
        wait_for(lambda: metric(port, "linky_edge_spool_readings") >= 40, 60, "spool growing")
        assert _seg_files(spool) and metric(port, "linky_edge_spool_bytes") > 0
        local_stack.up(private_broker, quiet=True, timeout=120)
        wait_for(lambda: metric(port, "linky_edge_spool_readings") == 0 and not _seg_files(spool),
                 60, "spool drained and deleted")
        assert metric(port, "linky_edge_published_total", source="spool") >= 40
        assert stop(sim) == 0
        wait_for(lambda: metric(port, "linky_edge_published_total") >=
                 metric(port, "linky_edge_readings_total"), 30, "the last readings published")
        assert metric(port, "linky_edge_readings_dropped_total") == 0
    finally:
        stop(sim)
        assert stop(reader) == 0
        local_stack.up(private_broker, quiet=True, timeout=120)
    _check_topic(bootstrap, topic, truth)


def test_reader_killed_during_a_drain_loses_nothing(
        tmp_path: Path, private_broker: local_stack.StackConfig, unique_name) -> None:
    bootstrap, topic, port = private_broker.bootstrap_servers, unique_name("kill"), free_port()
    spool, truth = tmp_path / "spool", tmp_path / "truth.json"
    local_stack.down(private_broker, quiet=True)  # Kafka is away from the start
    sim = spawn_simulator(tmp_path / "dev", METERS, speed=40, start="2025-03-30T01:40:00",
                          truth=truth, truth_readings=True)
    devices = [str(tmp_path / "dev" / "meter-0"), str(tmp_path / "dev" / "meter-1")]
    slow_drain = {"LINKY_SPOOL_DRAIN_BATCH": "3"}
    reader = start_reader(devices, bootstrap, topic, spool, port, tmp_path / "reader.log",
                          **slow_drain)
    restarted = None
    try:
        wait_for(lambda: metric(port, "linky_edge_spool_readings") >= 250, 90, "a full spool")
        assert stop(sim) == 0  # the meters stop: every reading is now in the reader
        wait_for(lambda: metric(port, "linky_edge_spooled_total") >=
                 metric(port, "linky_edge_readings_total"), 20, "everything spooled")
        spooled = metric(port, "linky_edge_spool_readings")
        local_stack.up(private_broker, quiet=True, timeout=120)

        def mid_drain() -> bool:
            state = spool / "state.json"
            try:
                acked = json.loads(state.read_text())["acked"]
            except (OSError, ValueError):
                return False
            return acked >= 15 and bool(_seg_files(spool))

        wait_for(mid_drain, 60, "the drain under way", interval=0.005)
        reader.send_signal(signal.SIGKILL)
        reader.wait(timeout=10)
        left = json.loads((spool / "state.json").read_text())["acked"]
        assert 15 <= left < spooled and _seg_files(spool), "killed in the middle of the drain"
        # restart: the devices are gone (simulator stopped): it must still drain the spool
        port2 = free_port()
        restarted = start_reader(devices, bootstrap, topic, spool, port2,
                                 tmp_path / "reader2.log", **slow_drain)
        wait_for(lambda: bool(scrape(port2)) and metric(port2, "linky_edge_spool_readings") == 0
                 and not _seg_files(spool), 90, "the rest drained after the restart")
        assert metric(port2, "linky_edge_device_errors_total", reason="absent") >= 1
    finally:
        stop(sim)
        if reader.poll() is None:
            reader.kill()
        if restarted is not None:
            assert stop(restarted) == 0
        local_stack.up(private_broker, quiet=True, timeout=120)
    duplicates = _check_topic(bootstrap, topic, truth)
    assert duplicates <= 3  # at most the batch in flight when the reader died

