"""What a table read costs besides RocksDB.

The read cache of read-mostly tables (stream/factory.py ``NoWalRocksDBStore.get_once``), on a
real RocksDB store: what is read inside stream iteration is kept, absent keys too, and every way a
value reaches the store (a write, a deletion, a changelog batch, the bulk restore, a reopened
partition) drops it. A write made behind the store's back (straight into RocksDB) is how these
tests see whether a get was served from the cache. Then faust's table-operation counters, with
their Prometheus children looked up once."""

from __future__ import annotations

import weakref
from types import SimpleNamespace
from typing import Any, Iterator

import faust
import pytest
from faust.streams import _current_event
from faust.types import TP

from stream.factory import NoWalRocksDBStore, Table


def _table(tmp_path: Any, name: str, entries: int) -> Any:
    app = faust.App(f"t-{name}", datadir=str(tmp_path), store="linky-rocksdb://", key_serializer="raw",
                    value_serializer="raw", Table=Table)  # fmt: skip
    table = app.Table(name, default=None, partitions=2, key_type=bytes, value_type=bytes,
                      options={"driver": "rocksdict"})  # fmt: skip
    table.read_cache_entries = entries  # as stream/app.py ``pdl_table(..., read_mostly=True)`` does
    assert isinstance(table.data, NoWalRocksDBStore)
    return table


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


@pytest.fixture
def in_partition() -> Iterator[Any]:
    """``in_partition(p)``: make ``p`` the current event's partition (stream iteration)."""
    tokens: list[Any] = []
    kept: list[Any] = []

    def enter(partition: int) -> None:
        event = _Event(partition)
        kept.append(event)
        tokens.append(_current_event.set(weakref.ref(event)))  # type: ignore[arg-type]

    yield enter
    for token in reversed(tokens):
        _current_event.reset(token)


def _behind_the_back(table: Any, partition: int, key: bytes, value: bytes | None) -> None:
    db = table.data._db_for_partition(partition)
    if value is None:
        del db[key]
    else:
        db[key] = value


def test_a_read_mostly_table_serves_repeated_reads_and_absent_keys_from_memory(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "contracts", entries=100)
    in_partition(1)
    table.data[b"pdl-a"] = b"v1"
    assert table.get(b"pdl-a") == b"v1" and table.get(b"pdl-none") is None
    _behind_the_back(table, 1, b"pdl-a", b"v2")
    _behind_the_back(table, 1, b"pdl-none", b"x")
    assert table.get(b"pdl-a") == b"v1"  # served from memory, not RocksDB
    assert table.get(b"pdl-none") is None  # the absence too
    assert table.get(b"pdl-none", b"default") == b"default"


def _reads_rocksdb_each_time(table: Any, partition: int) -> None:
    assert table.get(b"pdl-a") == b"v1"
    _behind_the_back(table, partition, b"pdl-a", b"v2")
    assert table.get(b"pdl-a") == b"v2"


def test_a_table_not_read_mostly_reads_rocksdb_every_time(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "live", entries=0)
    in_partition(1)
    table.data[b"pdl-a"] = b"v1"
    _reads_rocksdb_each_time(table, 1)


def test_reads_outside_stream_iteration_are_not_cached(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "prefs", entries=100)
    in_partition(0)
    table.data[b"pdl-a"] = b"v1"
    _current_event.set(None)  # e.g. an HTTP handler: no event, faust looks the key up in every partition
    _reads_rocksdb_each_time(table, 0)


def test_writes_and_deletions_through_the_store_drop_what_was_cached(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "gateways", entries=100)
    in_partition(0)
    assert table.get(b"pdl-a") is None
    table.data[b"pdl-a"] = b"v1"  # what the write-back flush does (stream/writeback.py ``_set``)
    assert table.get(b"pdl-a") == b"v1"
    table.data[b"pdl-a"] = b"v2"
    assert table.get(b"pdl-a") == b"v2"
    del table.data[b"pdl-a"]
    assert table.get(b"pdl-a") is None


def test_a_changelog_batch_drops_the_cache_of_its_partitions(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "contracts2", entries=100)
    topic = table.changelog_topic.get_topic_name()
    in_partition(1)
    assert table.get(b"pdl-a") is None and table.get(b"pdl-b") is None
    message = SimpleNamespace(tp=TP(topic, 1), offset=7, partition=1, key=b"pdl-a", value=b"restored")
    table.data.apply_changelog_batch([SimpleNamespace(message=message)], to_key=lambda k: k, to_value=lambda v: v)
    _behind_the_back(table, 1, b"pdl-b", b"behind")  # the whole partition's cache is gone
    assert table.get(b"pdl-a") == b"restored" and table.get(b"pdl-b") == b"behind"


def test_the_bulk_restore_drops_the_cache_of_its_partition(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "contracts3", entries=100)
    topic = table.changelog_topic.get_topic_name()
    in_partition(0)
    assert table.get(b"pdl-a") is None
    table.data._write_restored(TP(topic, 0), [(b"pdl-a", b"restored")], 3)
    assert table.get(b"pdl-a") == b"restored"


def test_a_reopened_partition_starts_with_an_empty_cache(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "contracts4", entries=100)
    in_partition(0)
    table.data[b"pdl-a"] = b"v1"
    assert table.get(b"pdl-a") == b"v1"
    topic = table.changelog_topic.get_topic_name()
    table.data.revoke_partitions(table, {TP(topic, 0)})  # a rebalance closes the partition's db...
    reopened = table.data._db_for_partition(0)  # ...and the next read opens it again
    reopened[b"pdl-a"] = b"written while another worker had it"
    assert table.get(b"pdl-a") == b"written while another worker had it"


def test_the_cache_is_bounded(tmp_path: Any, in_partition: Any) -> None:
    table = _table(tmp_path, "contracts5", entries=2)
    in_partition(0)
    for key in (b"a", b"b"):
        table.data[key] = b"1"
        assert table.get(key) == b"1"
    _behind_the_back(table, 0, b"a", b"2")
    assert table.get(b"c") is None  # the limit is reached: the cache is emptied first
    assert sum(len(cache) for cache in table.data._read_caches.values()) == 1
    assert table.get(b"a") == b"2"


def test_table_operation_counters_are_faust_s_with_their_children_looked_up_once() -> None:
    """stream/factory.py ``cache_table_operation_children``: the same counts as faust's
    PrometheusMonitor (its Prometheus counter and its own per-table state), without a
    ``labels()`` lookup per operation."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from prometheus_client import CollectorRegistry

    from stream.factory import cache_table_operation_children

    faust_s = PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "a"))
    ours = PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "b"))
    cache_table_operation_children(ours)
    lookups: list[dict[str, str]] = []
    real_labels = ours._metrics.table_operations.labels

    def labels(**names: str) -> Any:
        lookups.append(names)
        return real_labels(**names)

    ours._metrics.table_operations.labels = labels
    table = SimpleNamespace(name="contracts")
    for monitor in (faust_s, ours):
        for _ in range(3):
            monitor.on_table_get(table, b"k")
        monitor.on_table_set(table, b"k", b"v")
        monitor.on_table_del(table, b"k")
        monitor.on_table_del(table, b"k")

    def counts(monitor: Any) -> dict[tuple[str, str], float]:
        return {(s.labels["table"], s.labels["operation"]): s.value
                for metric in monitor._metrics.table_operations.collect() for s in metric.samples
                if s.name.endswith("_total")}  # fmt: skip

    assert counts(ours) == counts(faust_s) == {("table.contracts", "keys_retrieved"): 3.0,
                                               ("table.contracts", "keys_updated"): 1.0,
                                               ("table.contracts", "keys_deleted"): 2.0}  # fmt: skip
    assert len(lookups) == 3  # one per operation kind, not one per operation (6)
    state, expected = ours.tables["contracts"], faust_s.tables["contracts"]
    assert (state.keys_retrieved, state.keys_updated, state.keys_deleted) == (3, 1, 2)
    assert (expected.keys_retrieved, expected.keys_updated, expected.keys_deleted) == (3, 1, 2)


def test_fetch_and_message_metrics_are_faust_s_with_their_children_looked_up_once() -> None:
    """stream/factory.py ``cache_partition_children``: ``track_tp_end_offset`` and
    ``on_message_in`` give the same samples and the same monitor state as faust's
    PrometheusMonitor, with one ``labels()`` lookup per partition, not per call."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    from stream.factory import cache_partition_children

    registries = CollectorRegistry(), CollectorRegistry()
    faust_s = PrometheusMonitor(metrics=FaustMetrics.create(registries[0], "linky_faust"))
    ours = PrometheusMonitor(metrics=FaustMetrics.create(registries[1], "linky_faust"))
    cache_partition_children(ours)
    lookups: list[dict[str, Any]] = []
    for name in ("topic_partition_end_offset", "messages_received_per_topics", "messages_received_per_topics_partition"):
        metric = getattr(ours._metrics, name)
        real = metric.labels

        def labels(real: Any = real, **names: Any) -> Any:
            lookups.append(names)
            return real(**names)

        metric.labels = labels
    tps = [TP("readings", 0), TP("readings", 1)]
    for monitor in (faust_s, ours):
        for offset in range(5):
            for tp in tps:
                monitor.track_tp_end_offset(tp, 100 + offset)
                monitor.on_message_in(tp, offset, SimpleNamespace(tp=tp, offset=offset))

    def samples(registry: Any) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
        return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                      for metric in registry.collect() for s in metric.samples if "created" not in s.name)  # fmt: skip

    assert samples(registries[1]) == samples(registries[0])
    assert ("linky_faust_topic_partition_end_offset", (("partition", "1"), ("topic", "readings")), 104.0) in samples(registries[1])
    assert ("linky_faust_messages_received_per_topic_total", (("topic", "readings"),), 10.0) in samples(registries[1])
    assert len(lookups) == 6  # three metrics x two partitions, not one per call (30)
    assert ours.tp_end_offsets == faust_s.tp_end_offsets and ours.messages_received_total == faust_s.messages_received_total == 10
    assert ours.messages_active == faust_s.messages_active == 10

    # inside a fetch the consumer handles (stream/tally.py), the samples move once it ends
    from stream.tally import tally

    def more(monitor: Any) -> None:
        for offset in range(5, 8):
            for tp in tps:
                monitor.track_tp_end_offset(tp, 100 + offset)
                monitor.on_message_in(tp, offset, SimpleNamespace(tp=tp, offset=offset))

    more(faust_s)
    tally.begin()
    try:
        more(ours)
        end_offset = ("linky_faust_topic_partition_end_offset", (("partition", "1"), ("topic", "readings")), 104.0)
        assert end_offset in samples(registries[1])  # not moved yet
    finally:
        tally.end()
    assert samples(registries[1]) == samples(registries[0])
    assert ours.tp_end_offsets == faust_s.tp_end_offsets  # faust's own state at once, as before
