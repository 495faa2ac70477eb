"""Prometheus metrics of the edge reader (``teleinfo publish --metrics-port``).

One ``EdgeMetrics`` object per process owns its own registry, so tests can build as many as
they like. Names follow the project rule: ``linky_edge_*_total`` counters, ``_seconds`` and
``_bytes`` units. The ``device`` label is the device name (one to three per Raspberry Pi, so
cardinality stays tiny). The list, with meanings, is in docs/edge.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream import clock
from teleinfo.protocol import DecoderStats

__all__ = ["EdgeMetrics", "PUBLISH_LATENCY_BUCKETS"]

# Publish latency = frame decoded -> Kafka acknowledged. Normal path is milliseconds; readings
# replayed from the spool after an outage land in the long buckets.
PUBLISH_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                           60.0, 300.0, 3600.0, 86400.0)


class EdgeMetrics:
    """Every metric the edge reader exports, plus helpers that keep them in step."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.frames = Counter("linky_edge_frames_total", "Complete frames decoded", ["device"],
                              registry=r)
        self.groups = Counter("linky_edge_groups_total", "Valid information groups decoded",
                              ["device"], registry=r)
        self.invalid_groups = Counter(
            "linky_edge_invalid_groups_total",
            "Groups dropped (checksum or format), by label ('?' = unreadable label)",
            ["device", "label"], registry=r)
        self.interrupted_frames = Counter(
            "linky_edge_interrupted_frames_total", "Frames cut by EOT or a new STX", ["device"],
            registry=r)
        self.skipped_bytes = Counter(
            "linky_edge_skipped_bytes_total", "Bytes received outside any frame", ["device"],
            registry=r)
        self.parity_stripped_bytes = Counter(
            "linky_edge_parity_stripped_bytes_total",
            "Bytes received with bit 7 set (8N1 adapter or wrong baud) and stripped", ["device"],
            registry=r)
        self.oversized_frames = Counter(
            "linky_edge_oversized_frames_total", "Frames discarded for exceeding the size limit",
            ["device"], registry=r)
        self.received_bytes = Counter(
            "linky_edge_received_bytes_total", "Bytes read from the device", ["device"], registry=r)
        self.reconnects = Counter(
            "linky_edge_reconnects_total", "Successful (re)opens of a device after the first",
            ["device"], registry=r)
        self.device_errors = Counter(
            "linky_edge_device_errors_total",
            "Failed opens and read errors, by reason (absent, permission, busy, io, other)",
            ["device", "reason"], registry=r)
        self.baud_switches = Counter(
            "linky_edge_baud_switches_total",
            "Baud-rate changes by auto-detection (first detection and mode switches)", ["device"],
            registry=r)
        self.device_up = Gauge("linky_edge_device_up", "1 while the device is open", ["device"],
                               registry=r)
        self.baud = Gauge("linky_edge_baud", "Baud rate in use (0 while unknown)", ["device"],
                          registry=r)
        self.readings = Counter("linky_edge_readings_total", "Readings built from frames",
                                ["device"], registry=r)
        self.published = Counter("linky_edge_published_total",
                                 "Readings acknowledged by Kafka (spool replays included)",
                                 ["source"], registry=r)
        self.publish_errors = Counter("linky_edge_publish_errors_total",
                                      "Failed or timed-out Kafka sends, by stage", ["stage"],
                                      registry=r)
        self.publish_latency = Histogram(
            "linky_edge_publish_latency_seconds",
            "Time from frame decoded to Kafka acknowledgement", registry=r,
            buckets=PUBLISH_LATENCY_BUCKETS)
        self.spooled = Counter("linky_edge_spooled_total", "Readings written to the disk spool",
                               registry=r)
        self.spool_readings = Gauge("linky_edge_spool_readings",
                                    "Readings in the disk spool not yet acknowledged by Kafka",
                                    registry=r)
        self.spool_bytes = Gauge("linky_edge_spool_bytes", "Size of the spool files on disk",
                                 registry=r)
        self.dropped = Counter(
            "linky_edge_readings_dropped_total",
            "Readings lost on purpose, by reason (spool_full = oldest dropped past the size "
            "limit, spool_corrupt = unreadable record found at start-up)", ["reason"],
            registry=r)
        self._last_frame = _LastFrameAge()
        r.register(self._last_frame)
        self._spool_oldest = _SpoolOldestAge()
        r.register(self._spool_oldest)
        self._snapshots: dict[str, DecoderStats] = {}

    # -- helpers -------------------------------------------------------------------------

    def add_device(self, device: str) -> None:
        """Make a device's series exist at 0 before its first event (dashboards, alerts)."""
        for metric in (self.frames, self.groups, self.interrupted_frames, self.skipped_bytes,
                       self.parity_stripped_bytes, self.oversized_frames, self.received_bytes,
                       self.reconnects, self.baud_switches, self.readings):
            metric.labels(device)
        self.device_up.labels(device).set(0)
        self.baud.labels(device).set(0)
        self._last_frame.add(device)

    def set_spool_oldest(self, received_epoch: float | None) -> None:
        """The reception time (epoch seconds, stream/clock.py) of the oldest spooled reading;
        None when the spool is empty."""
        self._spool_oldest.oldest = received_epoch

    def spool_oldest_age(self) -> float:
        """``linky_edge_spool_oldest_age_seconds`` now (0 when the spool is empty)."""
        return self._spool_oldest.age()

    def frame_seen(self, device: str) -> None:
        """Record that ``device`` just produced a complete frame."""
        self._last_frame.touch(device)

    def sync_decoder(self, device: str, stats: DecoderStats) -> None:
        """Add what ``stats`` counted since the previous call (decoder counters are cumulative)."""
        prev = self._snapshots.get(device)
        if prev is None:
            prev = self._snapshots[device] = DecoderStats()
        for name, metric in (("frames", self.frames), ("groups", self.groups),
                             ("interrupted_frames", self.interrupted_frames),
                             ("skipped_bytes", self.skipped_bytes),
                             ("parity_stripped_bytes", self.parity_stripped_bytes),
                             ("oversized_discarded", self.oversized_frames)):
            delta = getattr(stats, name) - getattr(prev, name)
            if delta > 0:
                metric.labels(device).inc(delta)
                setattr(prev, name, getattr(stats, name))
        for label, count in stats.invalid_by_label.items():
            delta = count - prev.invalid_by_label.get(label, 0)
            if delta > 0:
                self.invalid_groups.labels(device, label).inc(delta)
                prev.invalid_by_label[label] = count

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``host:port`` (a daemon thread; bind to localhost by default)."""
        start_http_server(port, addr=host, registry=self.registry)


class _LastFrameAge(Collector):
    """``linky_edge_last_frame_age_seconds{device}``: computed at scrape time, so it keeps
    growing while a device is silent (a stored gauge would freeze at the last update)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float | None] = {}
        self._started = time.monotonic()

    def add(self, device: str) -> None:
        with self._lock:
            self._last.setdefault(device, None)

    def touch(self, device: str) -> None:
        self._last[device] = time.monotonic()  # a dict store is atomic under the GIL

    def age(self, device: str) -> float | None:
        last = self._last.get(device)
        return None if last is None else time.monotonic() - last

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "linky_edge_last_frame_age_seconds",
            "Seconds since the device's last complete frame (since start-up if none yet)",
            labels=["device"])
        now = time.monotonic()
        with self._lock:
            items = list(self._last.items())
        for device, last in items:
            family.add_metric([device], now - (last if last is not None else self._started))
        yield family


class _SpoolOldestAge(Collector):
    """``linky_edge_spool_oldest_age_seconds``: now (the product clock) minus the reception time
    of the oldest reading waiting in the spool, computed at scrape time; 0 when the spool is empty."""

    def __init__(self) -> None:
        self.oldest: float | None = None

    def age(self) -> float:
        oldest = self.oldest
        return 0.0 if oldest is None else max(0.0, clock.time() - oldest)

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "linky_edge_spool_oldest_age_seconds",
            "Age of the oldest reading waiting in the disk spool (0 when empty)", value=self.age())
