"""The faust side of the live and consumption state: tables, how folds are stored, Redis output.

Tables (RocksDB, changelogs in Kafka, co-partitioned with the readings, key = PDL bytes):

- ``live``: key ``{pdl}`` -> the latest live payload (JSON bytes, tables/live.py);
- ``consumption``: key ``{pdl}`` -> the hot state (tables/consumption.py ``state_to_bytes``) and
  keys ``{pdl}|H|2026-10-25``, ``{pdl}|D|2026-10-25``, ``{pdl}|M|2026-10`` -> closed history
  records. One table on purpose: faust writes every change made while processing an event to
  the changelog partition *of that event*, so all writes for a PDL go, in order, to one
  partition of one changelog topic, and what survives a crash is always a prefix of them. The
  history records of a reading are written before its hot value, and history records are
  written once (identical on replay), so a replayed reading finds either its records or none
  (docs/stream.md "Processing guarantee").

Also here: the process-wide ``publisher`` (stream/redis_publisher.py), its background task, the
snapshot source that rewrites every ``linky:{pdl}:live|conso`` key from the tables when Redis
comes back, and the timer refreshing table-key and recovery gauges.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping
from zoneinfo import ZoneInfo

from stream import metrics
from stream.decode_cache import DecodeCache
from stream.app import app, pdl_table, settings
from stream import redis_auth
from stream.redis_publisher import RedisPublisher, Snapshot, encode
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

consumption_config = ConsumptionConfig(
    tz=ZoneInfo(settings.timezone),  # Europe/Paris; tables/calendar.py needs whole-hour offsets
    retention=Retention(
        hours_days=settings.retention_hours_days,
        days_days=settings.retention_days_days,
        months_days=settings.retention_months_days,
    ),
)

live_table = pdl_table("live")
consumption_table = pdl_table("consumption")

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
    """The PDL's hot state, or None for a PDL never seen (in stream iteration: the event's
    partition; outside: any local partition). Decoded once per stored value (DecodeCache)."""
    key = pdl.encode()
    raw = consumption_table.get(key)
    return None if raw is None else _hot_states.get(key, raw, state_from_bytes)


def store_consumption(pdl: str, fold: Fold) -> None:
    """Write a fold's history records, then its hot value (this order matters, see above).
    Must run inside stream iteration (faust needs the current event for table writes)."""
    for (kind, period), record in fold.writes.items():
        key = history_key(pdl, kind, period)
        if record is None:
            if key in consumption_table:
                del consumption_table[key]
        else:
            consumption_table[key] = record_to_bytes(record)
    key, raw = pdl.encode(), state_to_bytes(fold.state)
    consumption_table[key] = raw
    _hot_states.put(key, raw, fold.state)


def history_loader(pdl: str) -> Any:
    """``load(kind, period)`` for ``query_buckets``."""

    def load(kind: str, period: str) -> Mapping[str, Any] | None:
        raw = consumption_table.get(history_key(pdl, kind, period))
        return None if raw is None else record_from_bytes(raw)

    return load


# --------------------------------------------------------------------------- Redis


def snapshots() -> Iterator[Snapshot]:
    """Every live and conso snapshot of the partitions this worker processes (from the tables)."""
    from agents.contracts import contract_for  # the contracts table (imported late: agents import this module)

    for key, raw in live_table.items():
        pdl = key.decode()
        yield live_channel(pdl), raw
        hot = consumption_table.get(key)
        if hot is not None:
            contract = contract_for(pdl)
            versions = contract.versions if contract is not None else ()
            payload = render_conso_payload(state_from_bytes(hot), pdl=pdl, config=consumption_config,
                                           versions=versions, load=history_loader(pdl))  # fmt: skip
            yield conso_channel(pdl), encode(payload)


publisher.add_snapshot_source(snapshots)


@app.task
async def run_redis_publisher() -> None:
    await publisher.run()


@app.timer(interval=settings.metrics_interval_seconds)
async def refresh_gauges() -> None:
    metrics.update_table_gauges([live_table, consumption_table])
    metrics.update_recovery_gauges(app)
