"""Prometheus metrics of the stream worker (served with faust's own at ``/metrics``).

Names follow ``linky_<subsystem>_<what>_<unit>``; counters end in ``_total``. faust's sensors
add ``linky_faust_*`` (messages received, commit latency, table operations...). No per-PDL
labels (unbounded cardinality): per-PDL detail lives in Redis and the HTTP API.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

READINGS = Counter(
    "linky_stream_readings_processed_total",
    "Readings handled by each agent, by outcome (applied, duplicate: not newer than the stored "
    "state, baseline: first reading of a PDL, invalid: unparsable or without a time, error: a bug, "
    "logged with its traceback)",
    ["agent", "outcome"],
)
INDEX_EVENTS = Counter(
    "linky_stream_index_events_total",
    "Index anomalies met by the consumption fold (index_backwards, index_rollover, meter_changed)",
    ["kind"],
)
LATENCY = Histogram(
    "linky_stream_processing_latency_seconds",
    "From the reading's time (meter clock) to its payload being published on Redis",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)
PUBLISH_LATENCY = Histogram(
    "linky_stream_publish_latency_seconds",
    "From the reading's received_at (the edge decoded its frame; ms precision) to its payload "
    "published on Redis: the pipeline's own latency (edge publish, Kafka, the worker, Redis)",
    ["channel"],
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
)
FOLD_LATENCY = Histogram(
    "linky_stream_fold_latency_seconds",
    "From the reading's received_at (the edge decoded its frame) to the readings agent having folded "
    "it (edge publish, Kafka, the worker's consumer and queue): the part of the publish latency "
    "before Redis",
    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
)
MALLOC_TRIM = Histogram(
    "linky_stream_malloc_trim_seconds",
    "Time of each malloc_trim(0) (stream/allocator.py): the event loop waits that long",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
GC_FULL = Histogram(
    "linky_stream_gc_full_seconds",
    "Time of each full garbage collection the worker runs on its timer (LINKY_GC_FULL_SECONDS, "
    "stream/allocator.py): the event loop waits that long",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
)
MALLOC_TRIM_RELEASED = Counter(
    "linky_stream_malloc_trim_released_bytes_total",
    "Resident bytes malloc_trim(0) gave back to the system (RSS before minus after each call)",
)
REDIS_LATE = Counter(
    "linky_redis_late_round_trips_total",
    "Redis round trips that timed out while Redis answered a PING at once: the worker's own event "
    "loop was busy (the batch is sent again; not counted as a Redis outage)",
)
REDIS_PUBLISHED = Counter("linky_redis_published_total", "Payloads published on Redis (PUBLISH + SET)", ["channel"])
REDIS_FAILURES = Counter(
    "linky_redis_publish_failures_total",
    "Payloads not published (dropped): error, timeout, redis_down (while reconnecting), queue_full, "
    "render (a payload that could not be built: a bug, logged with its traceback)",
    ["reason"],
)
REDIS_COALESCED = Counter(
    "linky_redis_payloads_coalesced_total",
    "Conso, battery and surplus payloads not published because a later reading of the same PDL, "
    "folded in the same few milliseconds, replaced them (a backlog folded per PDL, agents/readings.py)",
)
REDIS_BACKPRESSURE = Counter(
    "linky_redis_backpressure_waits_total",
    "Readings held before their fold because the Redis publish queue was half full: room (the "
    "queue drained to a quarter) or timeout (folded anyway; payloads may then be dropped as queue_full)",
    ["outcome"],
)
REDIS_BACKPRESSURE_SECONDS = Counter(
    "linky_redis_backpressure_seconds_total", "Time the readings waited for room in the Redis publish queue"
)
REDIS_UP = Gauge("linky_redis_up", "1 when the last Redis round trip succeeded")
REDIS_QUEUE = Gauge("linky_redis_publish_queue", "Payloads waiting to be published")
SNAPSHOTS_REWRITTEN = Counter(
    "linky_redis_snapshots_rewritten_total", "Snapshot keys rewritten from the tables after Redis came back"
)
TABLE_KEYS = Gauge(
    "linky_stream_table_keys", "Keys in each table on this worker (RocksDB estimate, all local partitions)", ["table"]
)
ROCKSDB_MEMORY = Gauge(
    "linky_stream_rocksdb_memory_bytes",
    "RocksDB memory of this worker's tables (all local partitions): block_cache is the one shared "
    "cache (memtables charged to it included), pinned the part of it that cannot be evicted, "
    "memtables the memtables, table_readers the index and filter blocks held outside the cache",
    ["kind"],
)
RECOVERY_REMAINING = Gauge(
    "linky_stream_recovery_remaining_records",
    "Changelog records still to replay before tables are up to date (active: partitions this worker "
    "processes; standby: warm copies)",
    ["kind"],
)
RECOVERY_IN_PROGRESS = Gauge("linky_stream_recovery_in_progress", "1 while table recovery runs (agents wait)")


def channel_kind(channel: str) -> str:
    """``linky:123:live`` -> ``live`` (the label used instead of the PDL)."""
    return channel.rsplit(":", 1)[-1]


def _partition_dbs(table: Any) -> list[Any]:
    """The open RocksDB handles of a table's local partitions (none for an in-memory table)."""
    return list(getattr(table.data, "_dbs", {}).values())


def update_table_gauges(tables: Iterable[Any]) -> None:
    """Refresh ``linky_stream_table_keys`` from RocksDB's key estimates (cheap; no iteration)."""
    for table in tables:
        total = 0
        try:
            for db in _partition_dbs(table):
                total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        except Exception:  # a partition closed by a rebalance under us: skip this round
            log.debug("table key estimate failed for %s", getattr(table, "name", table), exc_info=True)
            continue
        TABLE_KEYS.labels(table.name).set(total)


_ROCKSDB_PROPERTIES = {  # kind -> (RocksDB property, summed over partitions (or one shared value))
    "block_cache": ("rocksdb.block-cache-usage", False),
    "pinned": ("rocksdb.block-cache-pinned-usage", False),
    "memtables": ("rocksdb.cur-size-all-mem-tables", True),
    "table_readers": ("rocksdb.estimate-table-readers-mem", True),
}


def update_rocksdb_memory(tables: Iterable[Any]) -> None:
    """Refresh ``linky_stream_rocksdb_memory_bytes`` from RocksDB's memory properties. The block
    cache is shared by every partition (stream/factory.py), so each reports the same usage: the
    largest is kept, not the sum."""
    values = dict.fromkeys(_ROCKSDB_PROPERTIES, 0)
    for table in tables:
        try:
            for db in _partition_dbs(table):
                for kind, (prop, summed) in _ROCKSDB_PROPERTIES.items():
                    value = int(db.property_int_value(prop) or 0)
                    values[kind] = values[kind] + value if summed else max(values[kind], value)
        except Exception:  # a partition closed by a rebalance under us: next round
            log.debug("rocksdb memory properties failed for %s", getattr(table, "name", table), exc_info=True)
            return
    for kind, value in values.items():
        ROCKSDB_MEMORY.labels(kind).set(value)


def update_recovery_gauges(app: Any) -> None:
    """Refresh the recovery gauges from faust's Recovery service."""
    try:
        recovery = app.tables.recovery
        RECOVERY_REMAINING.labels("active").set(recovery.active_remaining_total())
        RECOVERY_REMAINING.labels("standby").set(recovery.standby_remaining_total())
        RECOVERY_IN_PROGRESS.set(1 if recovery.in_recovery else 0)
    except Exception:
        log.debug("recovery gauges failed", exc_info=True)
