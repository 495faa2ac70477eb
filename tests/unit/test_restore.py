"""stream/restore.py: the bulk changelog restore, against a fake consumer (the real one runs in
tests/integration/test_stream_consumption.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from stream.restore import restore

A, B = ("cl", 0), ("cl", 1)


@dataclass
class Msg:
    offset: int
    key: bytes
    value: Optional[bytes]


class FakeLog:
    """A changelog per partition: ``{tp: [Msg, ...]}`` with offsets possibly gapped (compaction),
    starting at ``begin`` (retention); ``appended`` records arrive after the end offsets were read."""

    def __init__(self, logs: dict[Any, list[Msg]], begin: Optional[dict[Any, int]] = None, batch: int = 2) -> None:
        self.logs = logs
        self.begin = begin or {tp: 0 for tp in logs}
        self.batch = batch
        self.pos: dict[Any, int] = {}
        self.assigned: list[Any] = []
        self.fetches = 0
        self.appended: dict[Any, list[Msg]] = {}

    async def beginning_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: self.begin[tp] for tp in tps}

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        ends = {tp: (self.logs[tp][-1].offset + 1 if self.logs[tp] else self.begin[tp]) for tp in tps}
        for tp, extra in self.appended.items():  # written after the end offsets were measured
            self.logs[tp].extend(extra)
        return ends

    def assign(self, tps: list[Any]) -> None:
        self.assigned = list(tps)

    def seek(self, tp: Any, offset: int) -> None:
        self.pos[tp] = offset

    async def position(self, tp: Any) -> int:
        return self.pos[tp]

    async def getmany(self, *tps: Any, timeout_ms: int = 0, max_records: Optional[int] = None) -> dict[Any, list[Msg]]:
        self.fetches += 1
        out: dict[Any, list[Msg]] = {}
        for tp in tps:
            assert tp in self.assigned
            msgs = [m for m in self.logs[tp] if m.offset >= self.pos[tp]][: self.batch]
            if msgs:
                out[tp] = msgs
                self.pos[tp] = msgs[-1].offset + 1
        return out


class Store:
    def __init__(self, persisted: Optional[dict[Any, int]] = None) -> None:
        self.data: dict[Any, dict[bytes, bytes]] = {A: {}, B: {}}
        self.offsets: dict[Any, int] = dict(persisted or {})
        self.writes: list[tuple[Any, int, int]] = []

    def persisted(self, tp: Any) -> Optional[int]:
        return self.offsets.get(tp)

    def write(self, tp: Any, records: list[tuple[bytes, Optional[bytes]]], last: int) -> None:
        for key, value in records:
            if value is None:
                self.data[tp].pop(key, None)
            else:
                self.data[tp][key] = value
        self.offsets[tp] = last
        self.writes.append((tp, len(records), last))


def msgs(*items: tuple[int, bytes, Optional[bytes]]) -> list[Msg]:
    return [Msg(o, k, v) for o, k, v in items]


async def test_reads_every_partition_to_its_end_in_order_with_tombstones() -> None:
    log = FakeLog({
        A: msgs((0, b"p1", b"1"), (1, b"p2", b"2"), (2, b"p1", b"3"), (5, b"p2", None), (6, b"p3", b"4")),
        B: msgs((0, b"q1", b"a")),
    })
    store = Store()
    outcome = await restore(log, [A, B], store.persisted, store.write)
    assert store.data[A] == {b"p1": b"3", b"p3": b"4"}  # p2 deleted by its tombstone, p1 last value wins
    assert store.data[B] == {b"q1": b"a"}
    assert store.offsets == {A: 6, B: 0}
    assert outcome.complete and outcome.total == 6 and outcome.records == {A: 5, B: 1}
    assert [w for w in store.writes if w[0] == A] == [(A, 2, 1), (A, 2, 5), (A, 1, 6)]  # one write per fetch


async def test_starts_after_the_persisted_offset_and_skips_what_is_done() -> None:
    log = FakeLog({A: msgs((0, b"p1", b"1"), (1, b"p1", b"2"), (2, b"p2", b"3")), B: msgs((0, b"q", b"x"))})
    store = Store(persisted={A: 0, B: 0})
    store.data[A][b"p1"] = b"1"
    store.data[B][b"q"] = b"x"
    outcome = await restore(log, [A, B], store.persisted, store.write)
    assert outcome.records == {A: 2}  # B was complete: not even assigned
    assert log.assigned == [A]
    assert store.data[A] == {b"p1": b"2", b"p2": b"3"} and store.offsets[A] == 2


async def test_a_log_truncated_by_retention_starts_at_its_beginning() -> None:
    log = FakeLog({A: msgs((7, b"p1", b"7"), (8, b"p2", b"8")), B: []}, begin={A: 7, B: 3})
    store = Store()
    outcome = await restore(log, [A, B], store.persisted, store.write)
    assert log.assigned == [A] and store.offsets == {A: 8} and outcome.total == 2


async def test_stops_at_the_end_offsets_measured_at_the_start() -> None:
    log = FakeLog({A: msgs((0, b"p1", b"1"), (1, b"p1", b"2"))}, batch=10)
    log.appended = {A: msgs((2, b"p1", b"late"))}  # faust's recovery reads these
    store = Store()
    outcome = await restore(log, [A], store.persisted, store.write)
    assert store.data[A] == {b"p1": b"2"} and store.offsets[A] == 1 and outcome.complete


async def test_an_interrupted_restore_leaves_a_prefix_and_its_offset() -> None:
    log = FakeLog({A: msgs(*[(i, b"p%d" % (i % 3), b"%d" % i) for i in range(10)])}, batch=3)
    store = Store()
    turns = iter([True, True, False])
    outcome = await restore(log, [A], store.persisted, store.write, keep_going=lambda: next(turns))
    assert not outcome.complete and outcome.reason == "interrupted"
    assert store.offsets[A] == 5  # two fetches of 3
    # what faust's recovery would then read from offset 6 brings the same table as a full restore
    rest = FakeLog({A: [m for m in log.logs[A] if m.offset > 5]}, begin={A: 6}, batch=3)
    await restore(rest, [A], store.persisted, store.write)
    full = Store()
    await restore(FakeLog({A: log.logs[A]}), [A], full.persisted, full.write)
    assert store.data[A] == full.data[A] and store.offsets[A] == full.offsets[A] == 9


async def test_a_stalled_log_ends_the_restore_early() -> None:
    log = FakeLog({A: msgs((0, b"p", b"1"), (1, b"p", b"2"))})
    log.logs[A][1:] = []  # the end offset says 2 records, the broker serves one
    log.end_offsets = _fixed_end({A: 2})  # type: ignore[method-assign]
    now = iter(range(0, 1000, 20))
    store = Store()
    outcome = await restore(log, [A], store.persisted, store.write, stall_seconds=30, monotonic=lambda: next(now))
    assert not outcome.complete and outcome.reason == "stalled" and store.offsets[A] == 0


def _fixed_end(ends: dict[Any, int]) -> Any:
    async def end_offsets(tps: list[Any]) -> dict[Any, int]:
        return {tp: ends[tp] for tp in tps}

    return end_offsets


# --- the store side: NoWalRocksDBStore (stream/factory.py) on a real RocksDB, a fake consumer ---

import faust  # noqa: E402
from faust.types import TP  # noqa: E402

from stream.factory import NoWalRocksDBStore  # noqa: E402
from stream.restore import FAILURES, RESTORED, BulkRestore  # noqa: E402


class FakeConsumer(FakeLog):
    started = stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


class FakeBulk(BulkRestore):
    def consumer(self) -> Any:
        return self.__dict__["fake"]


def _bulk(fake: FakeConsumer) -> FakeBulk:
    bulk = FakeBulk(client={})
    object.__setattr__(bulk, "fake", fake)
    return bulk


def _table(tmp_path: Any, name: str, partitions: int = 2, options: dict[str, Any] | None = None) -> Any:
    """A faust table on the worker's RocksDB store (``linky-rocksdb://``), raw keys and values."""
    app = faust.App(f"t-{name}", datadir=str(tmp_path), store="linky-rocksdb://", key_serializer="raw",
                    value_serializer="raw")  # fmt: skip
    return app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes,
                     options=options or {"driver": "rocksdict"})  # fmt: skip


def _store(tmp_path: Any, name: str) -> tuple[NoWalRocksDBStore, str]:
    table = _table(tmp_path, name)
    assert isinstance(table.data, NoWalRocksDBStore)
    return table.data, table.changelog_topic.get_topic_name()


async def test_the_store_writes_records_and_persisted_offset_in_one_batch(tmp_path: Any) -> None:
    store, topic = _store(tmp_path, "live")
    tp = TP(topic, 1)
    store._db_for_partition(1)[b"gone"] = b"x"
    store._write_restored(tp, [(b"k", b"v1"), (b"k", b"v2"), (b"gone", None)], 41)
    db = store._db_for_partition(1)
    assert store.persisted_offset(tp) == 41  # where faust's recovery will start (+ 1)
    assert db[b"k"] == b"v2" and db.get(b"gone") is None


async def test_the_store_restores_its_newly_assigned_partitions_then_faust_reads_the_rest(tmp_path: Any) -> None:
    store, topic = _store(tmp_path, "conso")
    p0, p1 = TP(topic, 0), TP(topic, 1)
    fake = FakeConsumer({p0: msgs((0, b"a", b"1"), (1, b"b", b"2"), (2, b"a", None)), p1: msgs((4, b"c", b"3"))},
                        begin={p0: 0, p1: 4})  # fmt: skip
    for tp in (p0, p1):
        store._db_for_partition(tp.partition)
    before = RESTORED.labels("conso")._value.get()
    await store.bulk_restore(_bulk(fake), [p0, p1], generation_id=0)
    assert fake.started and fake.stopped
    assert store.persisted_offset(p0) == 2 and store.persisted_offset(p1) == 4
    assert store._db_for_partition(0).get(b"a") is None and store._db_for_partition(0)[b"b"] == b"2"
    assert store._db_for_partition(1)[b"c"] == b"3"
    assert RESTORED.labels("conso")._value.get() - before == 4


async def test_a_failing_consumer_leaves_the_recovery_to_faust(tmp_path: Any) -> None:
    store, topic = _store(tmp_path, "ledger")
    tp = TP(topic, 0)
    store._db_for_partition(0)

    class Broken(FakeConsumer):
        async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
            raise ConnectionError("broker went away")

    fake = Broken({tp: msgs((0, b"a", b"1"))})
    before = FAILURES.labels("ledger", "error")._value.get()
    await store.bulk_restore(_bulk(fake), [tp], generation_id=0)  # does not raise
    assert FAILURES.labels("ledger", "error")._value.get() - before == 1
    assert store.persisted_offset(tp) is None and fake.stopped  # faust's recovery starts from the beginning


async def test_a_new_rebalance_interrupts_the_restore(tmp_path: Any) -> None:
    store, topic = _store(tmp_path, "alerts")
    tp = TP(topic, 0)
    store._db_for_partition(0)
    fake = FakeConsumer({tp: msgs(*[(i, b"k%d" % i, b"v") for i in range(10)])}, batch=3)
    store.app.consumer_generation_id = 7  # the restore was started for generation 6
    before = FAILURES.labels("alerts", "interrupted")._value.get()
    await store.bulk_restore(_bulk(fake), [tp], generation_id=6)
    assert FAILURES.labels("alerts", "interrupted")._value.get() - before == 1
    assert store.persisted_offset(tp) is None


async def test_on_rebalance_restores_only_newly_assigned_active_changelog_partitions(tmp_path: Any, monkeypatch: Any) -> None:
    store, topic = _store(tmp_path, "battery")
    active, standby, kept = TP(topic, 0), TP(topic, 1), TP(topic, 2)
    monkeypatch.setattr(store.app.assignor, "assigned_standbys", lambda: {standby})
    seen: list[list[Any]] = []

    async def bulk_restore(bulk: Any, tps: list[Any], generation_id: int) -> None:
        seen.append(tps)

    monkeypatch.setattr(store, "bulk_restore", bulk_restore)
    store.app.bulk_restore = BulkRestore(client={})
    store._db_for_partition(2)  # assigned before this rebalance
    await store.on_rebalance({active, standby, kept, TP("readings", 0)}, set(),
                             {active, standby, TP("readings", 0)}, generation_id=0)  # fmt: skip
    assert seen == [[active]]
    store.app.bulk_restore = None  # LINKY_STATE_BULK_RESTORE=false
    await store.on_rebalance({active}, set(), {active}, generation_id=0)
    assert seen == [[active]]


async def test_the_app_table_get_reads_the_store_once(tmp_path: Any) -> None:
    """stream/factory.py ``Table.get``: one RocksDB read per get (faust's does two), same answers
    as faust's for a present key, an absent one and a given default."""
    from stream.factory import Table

    app = faust.App("t-once", datadir=str(tmp_path), store="linky-rocksdb://", key_serializer="raw",
                    value_serializer="raw", Table=Table)  # fmt: skip
    table = app.Table("contracts", default=None, partitions=1, key_type=bytes, value_type=bytes,
                      options={"driver": "rocksdict"})  # fmt: skip
    assert isinstance(table, Table)
    store = table.data
    store._db_for_partition(0)[b"pdl-1"] = b"doc"
    reads: list[bytes] = []
    real_get, real_contains = store._get, store._contains

    def counting(real: Any) -> Any:
        def read(key: bytes) -> Any:
            reads.append(key)
            return real(key)

        return read

    store._get, store._contains = counting(real_get), counting(real_contains)  # type: ignore[method-assign]
    assert table.get(b"pdl-1") == b"doc" and reads == [b"pdl-1"]
    assert table.get(b"absent") is None and table.get(b"absent", b"dflt") == b"dflt"
    assert reads == [b"pdl-1", b"absent", b"absent"]
    reads.clear()
    assert faust.Table.get(table, b"pdl-1") == b"doc" and faust.Table.get(table, b"absent") is None  # same answers
    assert len(reads) == 3  # faust's own: contains + get for the present key, contains for the absent one


# --- the store's RocksDB options (stream/factory.py SharedCacheOptions), read back from RocksDB ---

from stream.factory import table_options  # noqa: E402
from stream.settings import Settings  # noqa: E402


def _rocksdb_table_options(tmp_path: Any, name: str, cfg: Settings) -> dict[str, str]:
    """The block-based table options RocksDB itself wrote (its OPTIONS-* file) for a partition
    opened with the worker's table options."""
    table = _table(tmp_path, name, partitions=1, options=table_options(cfg))
    db = table.data._db_for_partition(0)
    db[b"k"] = b"v"
    files = sorted(tmp_path.rglob("OPTIONS-*"))
    assert files, "RocksDB wrote no OPTIONS file"
    section, found = "", {}
    for line in files[-1].read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section.startswith("[TableOptions/BlockBasedTable") and "=" in line:
            k, v = line.split("=", 1)
            found[k.strip()] = v.strip()
    return found


def test_index_and_filter_blocks_stay_outside_the_cache_by_default(tmp_path: Any) -> None:
    found = _rocksdb_table_options(tmp_path, "plain", Settings())
    assert found["cache_index_and_filter_blocks"] == "false"


def test_index_and_filter_blocks_charged_to_the_shared_cache_when_asked(tmp_path: Any) -> None:
    found = _rocksdb_table_options(tmp_path, "charged", Settings(rocksdb_cache_index_and_filter_blocks=True))
    assert found["cache_index_and_filter_blocks"] == "true"
    assert found["pin_l0_filter_and_index_blocks_in_cache"] == "true"


def test_rocksdb_memory_gauges_read_the_real_store(tmp_path: Any) -> None:
    from stream import metrics

    table = _table(tmp_path, "mem", options=table_options(Settings(rocksdb_cache_index_and_filter_blocks=True)))
    for partition in (0, 1):
        db = table.data._db_for_partition(partition)
        for i in range(2000):
            db[b"k%05d" % i] = b"v" * 100
    metrics.update_rocksdb_memory([table])
    memtables = metrics.ROCKSDB_MEMORY.labels("memtables")._value.get()
    assert memtables >= 2 * 2000 * 100  # both partitions' memtables, summed
    cache = metrics.ROCKSDB_MEMORY.labels("block_cache")._value.get()
    assert cache >= memtables * 0.5  # the memtables' memory is charged to the shared cache (the budget)
    for partition in (0, 1):
        table.data._db_for_partition(partition).flush()
    for i in range(0, 2000, 7):
        assert table.data._db_for_partition(0)[b"k%05d" % i] == b"v" * 100
    metrics.update_rocksdb_memory([table])
    assert metrics.ROCKSDB_MEMORY.labels("pinned")._value.get() > 0  # L0 index/filter blocks pinned in the cache
