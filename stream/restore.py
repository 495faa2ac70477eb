"""Bulk restore of table changelogs into RocksDB, before faust's own recovery (docs/stream.md
"Recovery", docs/performance.md "where a restart's time goes").

Why: faust recovers a table one changelog record at a time, each through its fetcher, its
conductor and ``Recovery._slurp_changelogs`` (which rebuilds the remaining-offsets dict of every
changelog partition per record): about 6,700 records/s here, 48 s for the 320,000 changelog
records of 30,000 PDLs, and the worker processes nothing meanwhile.

What: when a table partition is assigned to this worker (``NoWalRocksDBStore.on_rebalance``,
stream/factory.py), ``restore`` reads its changelog partition with a plain consumer of its own,
from the store's persisted offset + 1 (or the beginning) to the end offset measured at the start,
in large fetches (``LINKY_STATE_BULK_RESTORE_FETCH_BYTES``), and writes each fetch into the partition's RocksDB as **one write batch that
also carries the new persisted offset**. faust's recovery then starts from that offset and reads
only what was written since (normally nothing).

Why it is safe:
- the records are the same records faust's recovery would apply, in offset order, with the same
  meaning (a ``None`` value deletes the key: a tombstone);
- data and persisted offset go in one atomic write batch, so the partition's DB always holds a
  prefix of the changelog and an offset that is never ahead of it, whatever stops the restore;
- any failure, a timeout without progress, a new rebalance or a stopping worker ends the bulk
  restore early (logged, ``linky_stream_state_bulk_restore_failures_total``): faust's recovery
  then reads the rest from the persisted offset, exactly as it did before this module existed;
- standby partitions are left to faust (they are followed continuously anyway).

``LINKY_STATE_BULK_RESTORE=false`` switches it off (faust alone recovers, as before).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

RESTORED = Counter(
    "linky_stream_state_bulk_restored_records_total",
    "Changelog records written to the local tables by the bulk restore (stream/restore.py), "
    "before faust's own recovery",
    ["table"],
)
RESTORE_SECONDS = Histogram(
    "linky_stream_state_bulk_restore_seconds",
    "Bulk restores of a table's newly assigned changelog partitions, from start to the last write batch",
    ["table"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
)
FAILURES = Counter(
    "linky_stream_state_bulk_restore_failures_total",
    "Bulk restores that ended early (error, no progress, rebalance or stop); faust's recovery "
    "then reads the rest of the changelog from the persisted offset",
    ["table", "reason"],
)

#: ``(key, value)`` with ``value is None`` for a tombstone
Record = tuple[bytes, Optional[bytes]]


class ChangelogReader(Protocol):
    """What ``restore`` needs of a Kafka consumer (``AIOKafkaConsumer`` has it; unit tests fake it)."""

    async def beginning_offsets(self, partitions: Sequence[Any]) -> Mapping[Any, int]: ...
    async def end_offsets(self, partitions: Sequence[Any]) -> Mapping[Any, int]: ...
    def assign(self, partitions: Sequence[Any]) -> None: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    async def position(self, partition: Any) -> int: ...
    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: Optional[int] = None) -> Mapping[Any, list[Any]]: ...


@dataclass
class Outcome:
    """What a restore did, per partition: records written and the last offset written."""

    records: dict[Any, int] = field(default_factory=dict)
    last_offsets: dict[Any, int] = field(default_factory=dict)
    complete: bool = True
    reason: str = ""

    @property
    def total(self) -> int:
        return sum(self.records.values())


async def restore(
    reader: ChangelogReader,
    partitions: Iterable[Any],
    persisted: Callable[[Any], Optional[int]],
    write: Callable[[Any, list[Record], int], None],
    *,
    keep_going: Callable[[], bool] = lambda: True,
    max_records: int = 20_000,
    stall_seconds: float = 30.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Read each partition from ``persisted(tp) + 1`` (or its beginning) to its end offset as of now,
    calling ``write(tp, records, last_offset)`` once per fetched batch, in offset order.

    ``write`` must apply the records and persist ``last_offset`` atomically. Stops early (``complete``
    False, ``reason`` set) when ``keep_going()`` turns false or no record arrives for ``stall_seconds``;
    exceptions propagate (the caller counts them)."""
    tps = list(partitions)
    outcome = Outcome()
    if not tps:
        return outcome
    begin = await reader.beginning_offsets(tps)
    end = await reader.end_offsets(tps)
    start: dict[Any, int] = {}
    for tp in tps:
        done = persisted(tp)
        first = max(begin.get(tp, 0), done + 1 if done is not None else 0)
        if first < end.get(tp, 0):
            start[tp] = first
    if not start:
        return outcome
    reader.assign(list(start))
    for tp, offset in start.items():
        reader.seek(tp, offset)
    pending = set(start)
    last_progress = monotonic()
    while pending:
        if not keep_going():
            outcome.complete, outcome.reason = False, "interrupted"
            break
        fetched = await reader.getmany(*pending, timeout_ms=500, max_records=max_records)
        for tp, messages in fetched.items():
            if tp not in pending:
                continue
            records: list[Record] = []
            last = -1
            for message in messages:
                if message.offset >= end[tp]:
                    break
                records.append((message.key, message.value))
                last = message.offset
            if records:
                write(tp, records, last)
                outcome.records[tp] = outcome.records.get(tp, 0) + len(records)
                outcome.last_offsets[tp] = last
                last_progress = monotonic()
        for tp in list(pending):
            if await reader.position(tp) >= end[tp]:
                pending.discard(tp)
        if pending and monotonic() - last_progress > stall_seconds:
            outcome.complete, outcome.reason = False, "stalled"
            break
    return outcome


@dataclass(frozen=True)
class BulkRestore:
    """How the worker's stores reach Kafka for a bulk restore (set on the app by stream/factory.py)."""

    client: Mapping[str, Any]  # AIOKafkaConsumer kwargs: bootstrap_servers, security (stream/kafka_security.py)
    isolation_level: str = "read_uncommitted"  # read_committed under exactly_once, as faust's recovery reads
    fetch_bytes: int = 8 * 1024 * 1024  # per fetch (a quarter of it per partition): memory vs speed
    max_records: int = 10_000
    stall_seconds: float = 30.0

    def consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            enable_auto_commit=False,
            group_id=None,
            isolation_level=self.isolation_level,
            fetch_max_bytes=self.fetch_bytes,
            max_partition_fetch_bytes=max(1024 * 1024, self.fetch_bytes // 4),
            fetch_max_wait_ms=100,
            **dict(self.client),
        )
