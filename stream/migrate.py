"""``linky-stream migrate-state``: convert the three per-concern tables to the one per-PDL state.

Versions before issue 14's one-state design kept a PDL's hot state in three tables (``live``,
``consumption``, ``battery-ledger``), each with its changelog topic
``{LINKY_APP_ID}-{table}-changelog``. The worker now reads one table, ``pdl-state``
(stream/pdl_state.py). This command builds its changelog from the old ones, partition by
partition:

- it reads each old changelog partition from its beginning to its end (the latest value of each
  key; a tombstone deletes it: what a compacted topic means);
- it writes to ``{LINKY_APP_ID}-pdl-state-changelog``, same partition: the closed history records
  first (their keys do not change: ``{pdl}|D|2026-10-25``, ``{pdl}|bd|2026-10-25``, ...), then one
  state value per PDL holding its old hot values as parts. Waiting for every record to be
  acknowledged before going on.

The readings' committed offsets do not change: workers started afterwards recover the new table
from its changelog (stream/restore.py) and go on from where the old workers stopped, with the
same totals. Run it with every worker stopped (docs/stream.md "Migrating to one state"). The old
topics are left as they were (delete them once the new workers run).

A worker refuses to start when old changelogs hold data and the new one is empty (``check``):
it would otherwise start from nothing and count every PDL's index again from zero.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.pdl_state import encode_parts

log = logging.getLogger(__name__)

LEGACY_TABLES = ("live", "consumption", "battery-ledger")  # their names are the slots' names
STATE_TABLE = "pdl-state"

__all__ = ["LEGACY_TABLES", "STATE_TABLE", "Report", "check", "changelog_topic", "convert", "main", "migrate"]


def changelog_topic(app_id: str, table: str) -> str:
    """faust's name for a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


def convert(tables: Mapping[str, Mapping[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """One partition's old tables (table name -> {key: value}) as the records of the new
    changelog, in the order they must be written: closed history records (key order), then one
    state value per PDL (key order) whose parts are the PDL's old hot values."""
    records: list[tuple[bytes, bytes]] = []
    hot: dict[bytes, dict[str, bytes]] = {}
    for table in LEGACY_TABLES:
        for key, value in tables.get(table, {}).items():
            if b"|" in key:
                records.append((key, value))
            else:
                hot.setdefault(key, {})[table] = value
    records.sort()
    return records + [(key, encode_parts(parts)) for key, parts in sorted(hot.items())]


@dataclass
class Report:
    """What a migration found and wrote."""

    partitions: int = 0
    read: dict[str, int] = field(default_factory=dict)  # old table -> changelog records read
    pdls: int = 0  # state values written
    history: int = 0  # history records written
    skipped: str = ""  # why nothing was done ("" when it migrated)


async def _offsets(consumer: Any, topic: str, partitions: int) -> tuple[int, int]:
    """(partitions, records still in the topic: end - beginning, summed) of ``topic`` (0, 0 if absent)."""
    from aiokafka import TopicPartition

    if not partitions:
        return 0, 0
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    return len(tps), sum(end[tp] - begin[tp] for tp in tps)


async def _partition_counts(client: Mapping[str, Any], topics: list[str]) -> dict[str, int]:
    """Partitions of each topic that exists."""
    from aiokafka.admin import AIOKafkaAdminClient

    from stream.contracts import topic_partitions

    admin = AIOKafkaAdminClient(**dict(client))
    await admin.start()
    try:
        return await topic_partitions(admin, topics)
    finally:
        await admin.close()


async def _read_partition(
    consumer: Any, topic: str, partition: int, stall_seconds: float = 60.0
) -> tuple[dict[bytes, bytes], int]:
    """The latest value of each key of one changelog partition (tombstones delete), and the
    number of records read. Raises TimeoutError when nothing comes for ``stall_seconds``."""
    from aiokafka import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    end = (await consumer.end_offsets([tp]))[tp]
    data: dict[bytes, bytes] = {}
    count = 0
    loop = asyncio.get_running_loop()
    last_progress = loop.time()
    while (position := await consumer.position(tp)) < end:
        if loop.time() - last_progress > stall_seconds:
            raise TimeoutError(f"{topic}[{partition}]: no record for {stall_seconds:.0f} s at offset {position} of {end}")
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
        if batch.get(tp):
            last_progress = loop.time()
        for message in batch.get(tp, []):
            if message.offset >= end:
                break
            count += 1
            if message.key is None:
                continue
            if message.value is None:
                data.pop(message.key, None)
            else:
                data[message.key] = message.value
    return data, count


async def _state(client: Mapping[str, Any], app_id: str) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    """(old table -> (partitions, records)), (partitions, records) of the new changelog."""
    from aiokafka import AIOKafkaConsumer

    names = [changelog_topic(app_id, t) for t in (*LEGACY_TABLES, STATE_TABLE)]
    counts = await _partition_counts(client, names)
    if not counts:  # a new deployment
        return dict.fromkeys(LEGACY_TABLES, (0, 0)), (0, 0)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, **dict(client))
    await consumer.start()
    try:
        legacy = {t: await _offsets(consumer, n, counts.get(n, 0)) for t, n in zip(LEGACY_TABLES, names)}
        state = await _offsets(consumer, names[-1], counts.get(names[-1], 0))
    finally:
        await consumer.stop()
    return legacy, state


async def check_async(client: Mapping[str, Any], app_id: str) -> str | None:
    """An error message when old changelogs hold records and the new one holds none (the
    migration was not run), else None."""
    legacy, state = await _state(client, app_id)
    old = {t: n for t, (_, n) in legacy.items() if n}
    if old and not state[1]:
        return (f"the changelogs of the tables before the one-state design hold records ({old}) and "
                f"{changelog_topic(app_id, STATE_TABLE)} holds none: stop every worker and run "
                "`linky-stream migrate-state` (docs/stream.md \"Migrating to one state\")")  # fmt: skip
    return None


def check(client: Mapping[str, Any], app_id: str, timeout: float = 30.0) -> str | None:
    """``check_async`` from synchronous code, whether or not an event loop runs in this thread
    (faust's ``on_worker_init``): it runs in a thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, check_async(client, app_id)).result(timeout)


async def migrate(client: Mapping[str, Any], app_id: str, *, replication: int = 1, force: bool = False) -> Report:
    """Build the new changelog from the old ones (the module docstring says how)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    legacy, state = await _state(client, app_id)
    report = Report()
    partitions = {n for n, _ in legacy.values() if n}
    if not partitions:
        report.skipped = "no changelog of the old tables: nothing to migrate"
        return report
    if len(partitions) > 1:
        raise ValueError(f"the old changelogs disagree on their partition count: {legacy}")
    count = partitions.pop()
    target = changelog_topic(app_id, STATE_TABLE)
    if state[1] and not force:
        report.skipped = f"{target} already holds {state[1]} records (migrated already?); --force writes anyway"
        return report
    if state[0] and state[0] != count:
        raise ValueError(f"{target} has {state[0]} partitions, the old changelogs {count}")
    if not state[0]:
        admin = AIOKafkaAdminClient(**dict(client))
        await admin.start()
        try:  # what faust would create: a compacted topic with the table's partitions
            await admin.create_topics([NewTopic(target, num_partitions=count, replication_factor=replication,
                                                topic_configs={"cleanup.policy": "compact"})])  # fmt: skip
        finally:
            await admin.close()
    consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, **dict(client))
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **dict(client))
    await consumer.start()
    await producer.start()
    try:
        for partition in range(count):
            tables: dict[str, dict[bytes, bytes]] = {}
            for table in LEGACY_TABLES:
                if legacy[table][0]:
                    tables[table], read = await _read_partition(consumer, changelog_topic(app_id, table), partition)
                    report.read[table] = report.read.get(table, 0) + read
            records = convert(tables)
            for key, value in records:
                if b"|" in key:
                    report.history += 1
                else:
                    report.pdls += 1
                await producer.send(target, value=value, key=key, partition=partition)
            await producer.flush()  # every record of this partition acknowledged
            report.partitions += 1
            log.info("migrate-state: partition %d: %d records written", partition, len(records))
    finally:
        await producer.stop()
        await consumer.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="linky-stream migrate-state",
        description="Convert the live, consumption and battery-ledger changelogs to the pdl-state "
        "changelog (one value per PDL). Run with every worker stopped.",
    )
    parser.add_argument("--check", action="store_true", help="only say whether a migration is needed (exit 1 if so)")
    parser.add_argument("--force", action="store_true", help="write even if the new changelog holds records")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from stream import kafka_security
    from stream.settings import Settings

    cfg = Settings.from_env()
    client = {"bootstrap_servers": cfg.kafka_bootstrap, **kafka_security.client_kwargs(cfg)}
    if args.check:
        problem = check(client, cfg.app_id)
        print(problem or "no migration needed")
        return 1 if problem else 0
    report = asyncio.run(migrate(client, cfg.app_id, replication=cfg.topic_replication, force=args.force))
    if report.skipped:
        print(f"migrate-state: {report.skipped}")
        return 0
    print(f"migrate-state: {report.partitions} partitions; read {report.read}; "
          f"wrote {report.history} history records and {report.pdls} PDL state values "
          f"to {changelog_topic(cfg.app_id, STATE_TABLE)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
