"""What SREs read from a worker (docs/operations.md): consumer lag and lag age per partition
(Prometheus), ``GET /healthz``, ``GET /readyz`` and ``GET /status`` (JSON, read by
``linky-stream status``).

- ``linky_stream_consumer_lag_messages{topic,partition}``: the partition's high watermark minus
  the offset this worker committed, for the readings partitions it processes (computed at scrape
  time from faust's consumer; absent until the first fetch gave a high watermark);
- ``linky_stream_consumer_lag_seconds{topic,partition}``: now (stream/clock.py) minus the event
  time (the reading's ``time``) of the last reading processed on the partition, absent until
  one was processed since start-up;
- ``linky_stream_partitions_assigned{kind}``: active / standby partitions of this worker.

The readings agent calls ``note_reading(partition, value)`` for every event: one dict store (the
value's bytes are parsed only at scrape time).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time as _monotonic_time
from datetime import datetime
from typing import Any, Iterator

from faust.web import Request, Response, View
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream import allocator, clock, metrics
from stream.app import app, settings
from stream.state import publisher

log = logging.getLogger(__name__)

_last_value: dict[int, bytes] = {}  # readings partition -> value of the last processed reading
_event_time_cache: dict[int, tuple[bytes, float | None]] = {}


def note_reading(partition: int, value: bytes) -> None:
    """Called by the readings agent for every event (cheap: no parsing here)."""
    _last_value[partition] = value


def event_time(value: bytes) -> float | None:
    """Epoch seconds of a reading's ``time``, None when it has none (or is not JSON)."""
    try:
        raw = json.loads(value).get("time")
        return datetime.fromisoformat(raw).timestamp() if isinstance(raw, str) else None
    except (ValueError, TypeError, AttributeError):
        return None


def _last_event_time(partition: int) -> float | None:
    value = _last_value.get(partition)
    if value is None:
        return None
    cached = _event_time_cache.get(partition)
    if cached is not None and cached[0] is value:
        return cached[1]
    when = event_time(value)
    _event_time_cache[partition] = (value, when)
    return when


def _active_readings_tps() -> list[Any]:
    try:
        tps = app.assignor.assigned_actives()
    except Exception:
        return []
    return sorted((tp for tp in tps if tp.topic == settings.readings_topic), key=lambda tp: tp.partition)


def _standby_tps() -> list[Any]:
    try:
        return list(app.assignor.assigned_standbys())
    except Exception:
        return []


def partition_lags() -> list[dict[str, Any]]:
    """Per active readings partition: committed offset, high watermark, lag, lag age."""
    out = []
    consumer = getattr(app, "_consumer", None)
    now = clock.time()
    for tp in _active_readings_tps():
        committed = highwater = None
        if consumer is not None:
            try:
                committed = consumer._committed_offset.get(tp)
                highwater = consumer.highwater(tp)
            except Exception:
                pass
        lag = None
        if highwater is not None:
            lag = max(0, int(highwater) - int(committed or 0))
        last = _last_event_time(tp.partition)
        out.append({"topic": tp.topic, "partition": tp.partition, "committed": committed,
                    "highwater": highwater, "lag": lag,
                    "lag_seconds": None if last is None else max(0.0, now - last)})
    return out


class LagCollector(Collector):
    """Lag gauges computed at scrape time (a stored gauge would freeze when the worker stalls)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("linky_stream_consumer_lag_messages",
                                "Readings partition high watermark minus the offset this worker committed",
                                labels=["topic", "partition"])
        age = GaugeMetricFamily("linky_stream_consumer_lag_seconds",
                                "Now minus the event time of the last reading processed on the partition",
                                labels=["topic", "partition"])
        assigned = GaugeMetricFamily("linky_stream_partitions_assigned",
                                     "Partitions assigned to this worker (active: readings partitions it "
                                     "processes; standby: changelog partitions it keeps warm)", labels=["kind"])
        rows = partition_lags()
        for row in rows:
            labels = [row["topic"], str(row["partition"])]
            if row["lag"] is not None:
                lag.add_metric(labels, row["lag"])
            if row["lag_seconds"] is not None:
                age.add_metric(labels, row["lag_seconds"])
        assigned.add_metric(["active"], len(rows))
        assigned.add_metric(["standby"], len(_standby_tps()))
        yield lag
        yield age
        yield assigned


if not getattr(REGISTRY, "_linky_lag_collector", False):
    REGISTRY.register(LagCollector())
    REGISTRY._linky_lag_collector = True  # type: ignore[attr-defined]  (module re-import in tests)


# --------------------------------------------------------------------------- publish failure rate

_publish_samples: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=64)


def _counter_total(counter: Any) -> float:
    return sum(s.value for fam in counter.collect() for s in fam.samples if s.name.endswith("_total"))


def sample_publish_counters() -> None:
    """Remember (monotonic time, published, failed); called by the gauges timer and /status."""
    _publish_samples.append((_monotonic_time.monotonic(), _counter_total(metrics.REDIS_PUBLISHED),
                             _counter_total(metrics.REDIS_FAILURES)))


def publish_rates(window: float = 60.0) -> dict[str, float | None]:
    """Published and failed payloads per second over the last ``window`` seconds, and the failed
    share (None until two samples exist)."""
    sample_publish_counters()
    newest = _publish_samples[-1]
    oldest = next((s for s in _publish_samples if newest[0] - s[0] <= window), newest)
    span = newest[0] - oldest[0]
    if span <= 0:
        return {"published_per_second": None, "failed_per_second": None, "failed_ratio": None}
    published = (newest[1] - oldest[1]) / span
    failed = (newest[2] - oldest[2]) / span
    total = published + failed
    return {"published_per_second": published, "failed_per_second": failed,
            "failed_ratio": (failed / total) if total > 0 else 0.0}


@app.timer(interval=settings.metrics_interval_seconds)
async def _sample_publish() -> None:
    sample_publish_counters()


def trim_heap() -> None:
    """malloc_trim(0) once, timed and counted (stream/allocator.py)."""
    result = allocator.trim()
    if result is not None:
        took, released = result
        metrics.MALLOC_TRIM.observe(took)
        metrics.MALLOC_TRIM_RELEASED.inc(released)


async def _trim_heap_timer() -> None:
    trim_heap()


if settings.malloc_trim_seconds > 0:
    app.timer(interval=settings.malloc_trim_seconds, name="stream.ops.trim_heap")(_trim_heap_timer)


_gc = {"frozen": not settings.gc_freeze}


def collect_garbage() -> None:
    """One full garbage collection, timed (stream/allocator.py ``LINKY_GC_FULL_SECONDS``); the
    first one also freezes what survived it (``LINKY_GC_FREEZE``)."""
    freeze = not _gc["frozen"]
    took, _ = allocator.full_collection(freeze=freeze)
    metrics.GC_FULL.observe(took)
    if freeze:
        _gc["frozen"] = True
        log.info("gc: %d objects of the start-up frozen (no full collection scans them again)", allocator.frozen_objects())


async def _collect_garbage_timer() -> None:
    collect_garbage()


if settings.gc_full_seconds > 0:
    app.timer(interval=settings.gc_full_seconds, name="stream.ops.collect_garbage")(_collect_garbage_timer)


# --------------------------------------------------------------------------- health

_recovery_total: dict[str, int] = {"active": 0}


def recovery_state() -> dict[str, Any]:
    recovery = app.tables.recovery
    active = int(recovery.active_remaining_total())
    standby = int(recovery.standby_remaining_total())
    in_progress = bool(recovery.in_recovery)
    if in_progress:
        _recovery_total["active"] = max(_recovery_total["active"], active)
    else:
        _recovery_total["active"] = 0
    total = _recovery_total["active"]
    return {"in_progress": in_progress, "completed": recovery.completed.is_set(),
            "active_remaining": active, "standby_remaining": standby,
            "active_total": total, "progress": (1.0 - active / total) if total else (0.0 if in_progress else 1.0)}


async def _tcp_reachable(hostports: str, timeout: float = 1.0) -> tuple[bool, str]:
    errors = []
    for hostport in hostports.split(","):
        host, _, port = hostport.strip().removeprefix("kafka://").rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), timeout)
            writer.close()
            return True, f"{host}:{port} accepts connections"
        except (OSError, ValueError, asyncio.TimeoutError) as exc:
            errors.append(f"{hostport}: {exc!r}")
    return False, "; ".join(errors) or "no broker configured"


_redis_client: list[Any] = []


async def _redis_ping() -> tuple[bool, str]:
    """PING through a client of our own (the publisher only notices an outage when it sends)."""
    import redis.asyncio as aioredis

    if not _redis_client:
        _redis_client.append(aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds))
    try:
        async with asyncio.timeout(settings.redis_timeout_seconds * 2):
            await _redis_client[0].ping()
        return True, "up"
    except Exception as exc:
        return False, f"PING failed: {exc!r}"


async def readiness() -> dict[str, Any]:
    """Every readiness check with its verdict; ``ready`` when all pass."""
    checks: dict[str, dict[str, Any]] = {}
    actives, standbys = _active_readings_tps(), _standby_tps()
    rebalancing = bool(getattr(app, "rebalancing", False))
    assigned = bool(actives or standbys) and not rebalancing
    checks["partitions"] = {"ok": assigned, "active": [tp.partition for tp in actives], "standby": len(standbys),
                            "detail": "rebalancing" if rebalancing else
                            ("assigned" if assigned else "no partition assigned yet")}
    try:
        rec = recovery_state()
        ok = rec["completed"] and not rec["in_progress"]
        checks["tables"] = {"ok": ok, **rec, "detail": "recovered" if ok else
                            f"recovering, {rec['active_remaining']} changelog records to go"}
    except Exception as exc:
        checks["tables"] = {"ok": False, "detail": f"recovery state unknown: {exc!r}"}
    ok, detail = await _tcp_reachable(settings.kafka_bootstrap)
    checks["kafka"] = {"ok": ok, "detail": detail}
    pong, why = await _redis_ping()
    redis_ok = pong and bool(publisher.up)
    checks["redis"] = {"ok": redis_ok, "queue": publisher.queued, "publisher_up": bool(publisher.up),
                       "detail": "up" if redis_ok else (why if not pong else "publisher reconnecting (payloads dropped)")}
    not_ready = [name for name, check in checks.items() if not check["ok"]]
    return {"ready": not not_ready, "not_ready": not_ready, "checks": checks}


@app.page("/healthz")
class HealthView(View):
    """The process is alive and its event loop answers."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok", "app_id": settings.app_id})


@app.page("/readyz")
class ReadyView(View):
    """200 when partitions are assigned, tables recovered, Kafka and Redis reachable; else 503
    with what is not ready."""

    async def get(self, request: Request) -> Response:
        body = await readiness()
        return self.json(body, status=200 if body["ready"] else 503)


@app.page("/status")
class StatusView(View):
    """Everything ``linky-stream status`` shows about this worker."""

    async def get(self, request: Request) -> Response:
        ready = await readiness()
        redis_ok = ready["checks"]["redis"]["ok"]
        return self.json({
            "app_id": settings.app_id, "url": app.conf.canonical_url.human_repr() if hasattr(
                app.conf.canonical_url, "human_repr") else str(app.conf.canonical_url),
            "readings_topic": settings.readings_topic, "time": clock.time(),
            "ready": ready, "partitions": partition_lags(),
            "redis": {"up": redis_ok, "queue": publisher.queued, **publish_rates()},
        })
