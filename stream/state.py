"""The faust side of the live and consumption state: tables, how folds are stored, Redis output.

The table (RocksDB, changelog in Kafka, co-partitioned with the readings, key = PDL bytes) is
``pdl-state`` (stream/pdl_state.py): one value per PDL with a part per concern (slot), and the
closed history records under their own keys. Slots of this module:

- ``live``: the latest live payload (JSON bytes, tables/live.py);
- ``consumption``: the hot state (tables/consumption.py ``state_to_bytes``), with the closed
  history records ``{pdl}|H|2026-10-25``, ``{pdl}|D|2026-10-25``, ``{pdl}|M|2026-10``.

One table on purpose: all writes for a PDL go, in order, to one partition of one changelog topic,
and what survives a crash is always a prefix of them. The history records of a reading are
written before its hot value, and history records are written once (identical on replay), so a
replayed reading finds either its records or none (docs/stream.md "Processing guarantee").

Also here: the process-wide ``publisher`` (stream/redis_publisher.py), its background task, the
snapshot source that rewrites every ``linky:{pdl}:live|conso`` key from the tables when Redis
comes back, and the timer refreshing table-key and recovery gauges.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterator, Mapping
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from stream import metrics
from stream.decode_cache import DecodeCache
from stream.pdl_state import Slot
from stream.app import app, pdl_table, settings
from stream import redis_auth
from stream.redis_publisher import RedisPublisher, Snapshot, encode
from stream.writeback import TOMBSTONE, Entry, WriteBack
from tables.consumption import (
    ConsumptionConfig,
    ConsumptionState,
    Fold,
    Retention,
    record_from_bytes,
    record_to_bytes,
    render_conso_payload,
    state_from_bytes,
    state_to_bytes,
)

log = logging.getLogger(__name__)

consumption_config = ConsumptionConfig(
    tz=ZoneInfo(settings.timezone),  # Europe/Paris; tables/calendar.py needs whole-hour offsets
    retention=Retention(
        hours_days=settings.retention_hours_days,
        days_days=settings.retention_days_days,
        months_days=settings.retention_months_days,
    ),
)

# One table, one value per PDL (stream/pdl_state.py): each concern reads and writes its slot of it.
state_table = pdl_table("pdl-state")
live_table = Slot(state_table, "live")
consumption_table = Slot(state_table, "consumption")

# Write-back state (stream/writeback.py): the readings agent's table writes are buffered and
# flushed once per ``LINKY_STATE_FLUSH_SECONDS``; every read of a PDL table goes through it.
FLUSH_SECONDS = Histogram(
    "linky_stream_state_flush_seconds",
    "Write-back flushes: from the table writes to Kafka's acknowledgement of their changelog records",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FLUSH_KEYS = Counter("linky_stream_state_flushed_keys_total", "Table keys written by write-back flushes")
writeback = WriteBack(
    source_topic=settings.readings_topic,
    interval_seconds=settings.state_flush_seconds,
    max_held=settings.state_flush_max_held,
    max_keys=settings.state_flush_max_keys,
    observe=lambda seconds, keys: (FLUSH_SECONDS.observe(seconds), FLUSH_KEYS.inc(keys)),
    barrier=lambda: publisher.sent_barrier(),  # a flush writes only after its readings' publishes are out
)


class _WriteBackCollector:
    """Held readings and flush failures, read off ``writeback`` at each scrape."""

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("linky_stream_state_held_readings",
                                "Readings folded but not yet acked: their state waits for the next flush",
                                value=writeback.held())  # fmt: skip
        yield GaugeMetricFamily("linky_stream_state_dirty_keys",
                                "Table keys changed since the last flush took the buffer (a flush is due at LINKY_STATE_FLUSH_MAX_KEYS)",
                                value=writeback.dirty_keys())  # fmt: skip
        reasons = CounterMetricFamily("linky_stream_state_flushes",
                                      "Write-back flushes started, by what made them due: interval, held (readings), "
                                      "keys (dirty keys), partitions (some partitions only: a tick's publishes), drain (before a revoke or a stop, or the fold waiting for two flushes in flight)",
                                      labels=["reason"])  # fmt: skip
        for reason, count in writeback.flush_reasons.items():
            reasons.add_metric([reason], count)
        yield reasons
        yield CounterMetricFamily("linky_stream_state_flush_failures",
                                  "Write-back flushes that failed (their readings stay uncommitted)",
                                  value=writeback.failures)  # fmt: skip
        yield CounterMetricFamily("linky_stream_state_flush_publish_wait_timeouts",
                                  "Flushes that wrote before the Redis publishes queued ahead of them were out",
                                  value=writeback.barrier_timeouts)  # fmt: skip


REGISTRY.register(_WriteBackCollector())
writeback.register(live_table)
writeback.register(consumption_table)

publisher = RedisPublisher(
    settings.redis_url,
    timeout_seconds=settings.redis_timeout_seconds,
    queue_size=settings.redis_queue_size,
    retry_seconds=settings.redis_retry_seconds,
    linger_seconds=settings.redis_linger_seconds,
    credentials=redis_auth.credentials(settings.redis_username, settings.redis_password_file, settings.redis_password),
)


def live_channel(pdl: str) -> str:
    return f"linky:{pdl}:live"


def conso_channel(pdl: str) -> str:
    return f"linky:{pdl}:conso"


# --------------------------------------------------------------------------- consumption storage


def history_key(pdl: str, kind: str, period: str) -> bytes:
    return f"{pdl}|{kind}|{period}".encode()


_hot_states: DecodeCache[ConsumptionState] = DecodeCache()


def load_consumption(pdl: str) -> ConsumptionState | None:
    """The PDL's hot state, or None for a PDL never seen: the write-back buffer's, else the
    table's (in stream iteration: the event's partition; outside: any local partition), decoded
    once per stored value (DecodeCache)."""
    key = pdl.encode()
    entry = writeback.peek(consumption_table, key)
    if entry is not None:
        return None if entry is TOMBSTONE else entry.obj  # type: ignore[no-any-return]
    raw = consumption_table.get(key)
    return None if raw is None else _hot_states.get(key, raw, state_from_bytes)


def store_consumption(pdl: str, fold: Fold, partition: int) -> None:
    """Buffer a fold's history records and its hot value (the flush writes records before hot
    values, stream/writeback.py)."""
    for (kind, period), record in fold.writes.items():
        key = history_key(pdl, kind, period)
        if record is None:
            writeback.delete(consumption_table, key, partition)
        else:
            writeback.put(consumption_table, key, partition, record_to_bytes(record))
    writeback.put(consumption_table, pdl.encode(), partition, Entry(fold.state, state_to_bytes))


def _remember_hot_state(table: Any, key: bytes, entry: Entry[Any]) -> None:
    """After a flush wrote a hot value: its decoded state stays memoized (no parse on next read)."""
    if table is consumption_table and b"|" not in key:
        _hot_states.put(key, entry.raw, entry.obj)


writeback.on_flushed(_remember_hot_state)


def history_loader(pdl: str) -> Any:
    """``load(kind, period)`` for ``query_buckets`` (buffered records included)."""

    def load(kind: str, period: str) -> Mapping[str, Any] | None:
        raw = writeback.read(consumption_table, history_key(pdl, kind, period))
        return None if raw is None else record_from_bytes(raw)

    return load


# --------------------------------------------------------------------------- Redis


def snapshots() -> Iterator[Snapshot]:
    """Every live and conso snapshot of the partitions this worker processes (from the tables)."""
    from agents.contracts import contract_for  # the contracts table (imported late: agents import this module)

    for key, raw in writeback.items(live_table, live_table.items()):
        pdl = key.decode()
        yield live_channel(pdl), raw
        hot = load_consumption(pdl)
        if hot is not None:
            contract = contract_for(pdl)
            versions = contract.versions if contract is not None else ()
            payload = render_conso_payload(hot, pdl=pdl, config=consumption_config,
                                           versions=versions, load=history_loader(pdl))  # fmt: skip
            yield conso_channel(pdl), encode(payload)


publisher.add_snapshot_source(snapshots)


@app.task
async def run_redis_publisher() -> None:
    await publisher.run()


@app.timer(interval=max(0.1, min(1.0, settings.state_flush_seconds / 2)))
async def flush_state() -> None:
    """Flush the write-back buffer when due (the readings agent also flushes between events)."""
    if writeback.enabled and writeback.due() and not writeback.flushing():
        writeback.flush_soon()


@app.before_revoke
async def _flush_before_revoke(partitions: Any) -> None:
    """Before faust waits for every started event to be acked (a rebalance revoking partitions, a
    stop): flush until nothing is held, so the held readings are acked and the next owner of a
    partition finds their state. The flow is suspended there; an event a handler was still on is
    held after the first flush and written by the next one."""
    if not writeback.enabled:
        return
    for _ in range(100):
        await writeback.drain()
        if not writeback.held() and not writeback.pending() and not writeback.flushing():
            return
        await asyncio.sleep(0.01)
    log.error("write-back: %d readings still held after 100 flushes before a revoke", writeback.held())


@app.timer(interval=settings.metrics_interval_seconds)
async def refresh_gauges() -> None:
    metrics.update_table_gauges([state_table])
    metrics.update_rocksdb_memory(list(app.tables.values()))
    metrics.update_recovery_gauges(app)
