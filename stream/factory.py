"""Building the faust app from settings, without side effects (stream/app.py builds *the* app;
bench/ and tests build their own). See stream/app.py for the pitfalls handled here."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any, Awaitable, Callable, Iterator, Set

import faust
import rocksdict
from faust import stores
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import PrometheusMonitor, setup_prometheus_sensors
from faust.stores import rocksdb as faust_rocksdb
from faust.streams import current_event

from stream import consumer as consumer_module
from stream.consumer import Transport
from stream.kafka_security import client_kwargs, faust_credentials
from stream.restore import FAILURES, RESTORE_SECONDS, RESTORED, BulkRestore, Record, restore
from stream.settings import Settings
from stream.tally import tally


class Worker(faust.Worker):
    """faust's worker without the terminal spinner.

    At the default log level (warn) faust's spinner sets the *root logger* to DEBUG (its handler
    wants every record), so every ``log.debug`` of aiokafka and faust (several per reading:
    each changelog send, each request) builds and dispatches a LogRecord that is then dropped:
    about 5 % of a worker's CPU in the throughput bench. Without the spinner the root logger
    keeps the level asked for (``-l``)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)


class App(faust.App):
    """faust's app with the worker's Kafka consumer (stream/consumer.py: partitions without a
    committed offset are read from their beginning, never skipped), and ``before_revoke`` hooks
    (the write-back state is flushed there, stream/writeback.py)."""

    _before_revoke: list[Callable[[Set[Any]], Awaitable[None]]]

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def before_revoke(self, hook: Callable[[Set[Any]], Awaitable[None]]) -> Callable[[Set[Any]], Awaitable[None]]:
        """Register ``await hook(partitions)``, run when faust is about to wait for every started
        event to be acked: in a rebalance that revokes partitions and when the worker stops
        (flow already suspended, stores still open). The write-back state flushes there."""
        self.__dict__.setdefault("_before_revoke", []).append(hook)
        return hook

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        try:
            assignment = set(consumer.assignment())
        except Exception:
            assignment = set()
        for hook in self.__dict__.get("_before_revoke", []):
            try:
                await hook(assignment)
            except Exception:  # faust would then wait for acks that never come: say so loudly
                logging.getLogger(__name__).exception("before-revoke hook %r failed", hook)
        await super()._consumer_wait_empty(consumer, logger)


class NoWalRocksDBStore(faust_rocksdb.Store):
    """faust's RocksDB table store (``store="linky-rocksdb://"``) with one shared block cache
    (``SharedCacheOptions``), writes without RocksDB's write-ahead log (unless
    ``LINKY_ROCKSDB_WAL=true``) and a bulk restore of newly assigned partitions before faust's
    recovery (stream/restore.py; ``LINKY_STATE_BULK_RESTORE``).

    The WAL costs a ``write()`` system call per table write (about 6 % of the worker's CPU in
    bench/stream_throughput.py) and protects nothing here: the durable copy of a table is its
    Kafka changelog, and after an unclean stop stream/datadir.py deletes the local tables anyway
    (they are rebuilt from the changelogs). On a clean stop faust drops its RocksDB handles and
    RocksDB flushes the memtables when a handle is closed or dropped; if that flush were ever
    missed, what is on disk is still a prefix of the writes, in which faust's persisted changelog
    offset (written after the data it covers) is never ahead of the data, so faust's recovery
    replays the changelog from there and the table ends up identical."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.use_rocksdict:  # one block cache for every table partition of the worker
            self.rocksdb_options = SharedCacheOptions(**self.options, use_rocksdict=True)
        # the read cache of a read-mostly table (``read_cache_entries`` on the table, see
        # ``get_once``): partition -> {key: stored bytes or None}. It never holds a db: a revoked
        # partition's RocksDB handle must go (its lock), as faust drops it
        self._read_limit = int(getattr(self.table, "read_cache_entries", 0) or 0)
        self._read_caches: dict[int, dict[bytes, bytes | None]] = {}

    def _open_for_partition(self, partition: int) -> Any:
        db = super()._open_for_partition(partition)
        if self.use_rocksdict and not getattr(self.app, "linky_rocksdb_wal", False):
            options = rocksdict.WriteOptions()
            options.disable_wal = True
            db.set_write_options(options)
        return db

    async def on_rebalance(self, assigned: Set[Any], revoked: Set[Any], newly_assigned: Set[Any],
                           generation_id: int = 0) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        bulk: BulkRestore | None = getattr(self.app, "bulk_restore", None)
        if bulk is None or not self.use_rocksdict:
            return
        standbys = self.app.assignor.assigned_standbys()
        mine = self.table.changelog_topic.topics
        tps = sorted(tp for tp in newly_assigned
                     if tp.topic in mine and tp not in standbys and tp.partition in self._dbs)
        if tps:
            await self.bulk_restore(bulk, tps, generation_id)

    async def bulk_restore(self, bulk: BulkRestore, tps: list[Any], generation_id: int) -> None:
        """stream/restore.py ``restore`` into this store's partitions; any failure leaves the rest
        to faust's recovery (from the persisted offset, which never runs ahead of the data)."""
        from aiokafka import TopicPartition

        name = self.table.name
        logger = logging.getLogger("stream.restore")
        started = time.monotonic()
        consumer = bulk.consumer()
        try:
            await consumer.start()
            outcome = await restore(
                consumer, [TopicPartition(tp.topic, tp.partition) for tp in tps], self.persisted_offset,
                self._write_restored,
                keep_going=lambda: not self.should_stop and self.app.consumer_generation_id == generation_id,
                max_records=bulk.max_records, stall_seconds=bulk.stall_seconds,
            )
        except Exception as exc:
            FAILURES.labels(name, "error").inc()
            logger.warning("bulk restore of table %s failed (%r): faust's recovery reads the rest", name, exc)
            return
        finally:
            try:
                await consumer.stop()
            except Exception:  # pragma: no cover - a consumer that never connected
                pass
        seconds = time.monotonic() - started
        RESTORED.labels(name).inc(outcome.total)
        RESTORE_SECONDS.labels(name).observe(seconds)
        if not outcome.complete:
            FAILURES.labels(name, outcome.reason).inc()
        logger.info("bulk restore of table %s: %d records in %.1f s over %d partitions%s", name,
                    outcome.total, seconds, len(tps),
                    "" if outcome.complete else f", ended early ({outcome.reason}): faust's recovery reads the rest")

    def _write_restored(self, tp: Any, records: list[Record], last_offset: int) -> None:
        self._read_caches.pop(tp.partition, None)
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self.offset_key, str(last_offset).encode())  # atomically with the data it covers
        self._db_for_partition(tp.partition).write(batch)

    def get_once(self, key: Any) -> Any:
        """The value of ``key`` (None when absent) in ONE RocksDB read: faust's ``Table.get``
        goes through ``Mapping.get`` -> ``__contains__`` (a read) -> ``__getitem__`` (a second
        read of the same key), with the key encoded twice (docs/performance.md, issue 14).

        A table declared read-mostly (``read_cache_entries``: contracts, alert preferences, the
        gateway registry, the trust states; read for every reading, written rarely) keeps what it read inside
        stream iteration per partition, absent keys too, so those reads cost a dict lookup
        instead of a RocksDB read (about 25 us each, three per reading). Every way a value
        reaches the store drops it: ``_set``, ``_del``, a changelog batch (recovery, standby),
        the bulk restore, a revoked partition (a rebalance), a store reset or stop. Bounded: a
        partition's cache is emptied when the table's reach the limit."""
        # faust's key serializers hand bytes keys back as they are (``dumps_key``'s ``skip``)
        encoded = key if type(key) is bytes else self._encode_key(key)
        if self._read_limit:
            event = current_event()
            if event is not None and not self.table.is_global and not self.table.use_partitioner:
                raw = self._cached_get(event.message.partition, encoded)
                return None if raw is None else self._decode_value(raw)
        raw = self._get(encoded)
        return None if raw is None else self._decode_value(raw)

    def hot_items(self) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` of the keys without ``|`` in this worker's active partitions: the PDLs'
        state values of ``pdl-state`` (stream/pdl_state.py ``Slot.items``) without visiting their
        history records. A PDL's records ``{pdl}|...`` sort together, right before ``{pdl}}``, so
        one seek skips them all: a pass over every PDL costs O(PDLs), not O(keys); a PDL keeps
        hundreds of closed records (hours, days, months, battery rows)."""
        if not self.use_rocksdict:
            for key, value in self._iteritems():
                if b"|" not in key:
                    yield key, value
            return
        for db in self._dbs_for_actives():
            it = db.iter()
            it.seek_to_first()
            while it.valid():
                key = it.key()
                if b"|" in key:
                    it.seek(key.split(b"|", 1)[0] + b"}")  # "}" is the byte after "|"
                    continue
                if key != self.offset_key:
                    yield key, it.value()
                it.next()

    def _cached_get(self, partition: int, key: bytes) -> bytes | None:
        cache = self._read_caches.get(partition)
        if cache is not None and partition in self._dbs:
            try:
                return cache[key]
            except KeyError:
                pass
        else:  # first read, or the partition's db is gone (revoked; reopened below)
            cache = self._read_caches[partition] = {}
        raw = self._db_for_partition(partition).get(key)
        if sum(len(c) for c in self._read_caches.values()) >= self._read_limit:
            cache.clear()
        cache[key] = raw
        return raw  # type: ignore[no-any-return]

    def _forget(self, key: bytes) -> None:
        for cache in self._read_caches.values():
            cache.pop(key, None)

    def revoke_partitions(self, table: Any, tps: Set[Any]) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                self._read_caches.pop(tp.partition, None)
        super().revoke_partitions(table, tps)

    def reset_state(self) -> None:
        self._read_caches.clear()
        super().reset_state()

    async def stop(self) -> None:
        self._read_caches.clear()
        await super().stop()

    def _set(self, key: bytes, value: bytes | None) -> None:
        self._forget(key)
        super()._set(key, value)

    def _del(self, key: bytes) -> None:
        self._forget(key)
        super()._del(key)

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        """faust's (recovery, standbys), with the read cache of the partitions written dropped."""
        events = list(batch)
        for partition in {event.message.partition for event in events}:
            self._read_caches.pop(partition, None)
        super().apply_changelog_batch(events, to_key, to_value)


class Table(faust.Table):  # type: ignore[misc]
    """The app's table class (faust's ``Table`` setting): ``get`` reads the store once when the
    store can (``NoWalRocksDBStore.get_once``), with faust's table-get sensor still told.
    Everything else is faust's."""

    def get(self, key: Any, default: Any = None) -> Any:
        once = getattr(self.data, "get_once", None)
        if once is None or self.default is not None:  # a default factory: faust's __missing__ semantics
            return super().get(key, default)
        self.on_key_get(key)
        value = once(key)
        return default if value is None else value


_shared_caches: dict[int, Any] = {}
_shared_write_buffers: dict[tuple[int, int], Any] = {}


class SharedCacheOptions(faust_rocksdb.RocksDBOptions):
    """faust's RocksDB options with ONE block cache shared by every table partition of the process
    (``LINKY_ROCKSDB_BLOCK_CACHE_BYTES`` in all), instead of one cache per table partition: with
    7 tables x 4 partitions that was 28 caches (and 28 memtables of 64 MiB, faust's default; see
    ``table_options`` for the write buffers). bench/stream_scale.py measures the RSS."""

    def as_options(self) -> Any:
        options = super().as_options()
        factory = rocksdict.BlockBasedOptions()
        factory.set_bloom_filter(self.bloom_filter_size, True)
        cache = _shared_caches.get(self.block_cache_size)
        if cache is None:
            cache = _shared_caches[self.block_cache_size] = rocksdict.Cache(self.block_cache_size)
        factory.set_block_cache(cache)
        budget = int(self.extra_options.get("memtable_budget_bytes") or 0)
        if budget:  # every memtable of the process under one budget, charged to the shared cache
            key = (budget, self.block_cache_size)
            manager = _shared_write_buffers.get(key)
            if manager is None:
                manager = _shared_write_buffers[key] = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
                    budget, False, cache)  # allow_stall=False: a full budget flushes, never blocks a write
            options.set_write_buffer_manager(manager)
        factory.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        if self.extra_options.get("cache_index_and_filter_blocks"):
            # index and filter blocks inside the shared cache, so its size bounds them too
            # (RocksDB keeps them outside it, one copy per open SST file, by default); the L0
            # files' blocks stay pinned there, as RocksDB's memory-usage guide recommends
            factory.set_cache_index_and_filter_blocks(True)
            factory.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(factory)
        return options


stores.STORES.aliases.setdefault("linky-rocksdb", f"{__name__}:NoWalRocksDBStore")


def create_app(cfg: Settings) -> faust.App:
    """Build the Faust app from settings (RocksDB store, raw serializers, /metrics)."""
    consumer_module.FETCH_MAX_WAIT_MS = cfg.kafka_fetch_max_wait_ms
    consumer_module.FETCH_BATCH_MS = cfg.kafka_fetch_batch_ms
    consumer_module.FETCH_BATCH_ABOVE = cfg.kafka_fetch_batch_above
    faust_app = App(
        cfg.app_id,
        broker=f"kafka://{cfg.kafka_bootstrap}",
        broker_credentials=faust_credentials(cfg),  # TLS + SASL from LINKY_KAFKA_* (docs/security.md)
        store="linky-rocksdb://",  # NoWalRocksDBStore
        datadir=str(cfg.datadir),
        topic_partitions=cfg.topic_partitions,
        topic_replication_factor=cfg.topic_replication,
        processing_guarantee=cfg.processing_guarantee,
        web_host=cfg.web_host,
        web_port=cfg.web_port,
        web_bind=cfg.web_host,
        canonical_url=canonical_url(cfg),
        broker_session_timeout=cfg.kafka_session_timeout_seconds,
        consumer_group_instance_id=cfg.kafka_group_instance_id or None,  # static membership (docs/deployment.md)
        broker_commit_interval=cfg.kafka_commit_interval_seconds,
        # a group joined before the broker's metadata had the topics just created (a fresh
        # cluster, a new deployment) gets no partitions for them, and no rebalance comes until
        # the consumer next refreshes its metadata: 5 min by default (docs/operations.md)
        consumer_metadata_max_age_ms=int(cfg.kafka_metadata_max_age_seconds * 1000),
        # changelog records (3+ per reading) in fewer, larger produce requests: ~10 % of the
        # worker's CPU in bench/stream_throughput.py (docs/performance.md); they reach Kafka at
        # most this much later, and commits still wait for them (faust flushes before committing)
        producer_linger=cfg.producer_linger_seconds,
        web_tables_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        Worker=Worker,
        Table=Table,  # one store read per get
    )
    faust_app.linky_rocksdb_wal = cfg.rocksdb_wal
    faust_app.bulk_restore = (
        BulkRestore(
            client={"bootstrap_servers": cfg.kafka_bootstrap, **client_kwargs(cfg)},
            isolation_level="read_committed" if cfg.processing_guarantee == "exactly_once" else "read_uncommitted",
            fetch_bytes=cfg.state_bulk_restore_fetch_bytes,
        )
        if cfg.state_bulk_restore
        else None
    )
    setup_prometheus_sensors(faust_app, name_prefix="linky_faust")
    cache_table_operation_children(faust_app.monitor)
    cache_partition_children(faust_app.monitor)
    return faust_app


def cache_partition_children(monitor: Any) -> None:
    """faust's Prometheus monitor sets ``linky_faust_topic_partition_end_offset{topic, partition}``
    for every partition of every fetch (``track_tp_end_offset``) and counts every message in
    (``on_message_in``: ``linky_faust_messages_received_per_topic{topic}`` and the offset in
    ``linky_faust_messages_received_per_topics_partition{topic, partition}``), looking each labelled
    child up again at each call: about 2 % of a worker folding a backlog (py-spy,
    docs/performance.md). The same metrics, each partition's children looked up once, updated
    through stream/tally.py (summed while the consumer handles a fetch)."""
    if not isinstance(monitor, PrometheusMonitor):
        return
    metrics = monitor._metrics
    end_offsets: dict[Any, Any] = {}
    received: dict[Any, tuple[Any, Any]] = {}

    def track_tp_end_offset(tp: Any, offset: int) -> None:
        Monitor.track_tp_end_offset(monitor, tp, offset)
        child = end_offsets.get(tp)
        if child is None:
            child = end_offsets[tp] = metrics.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition)
        tally.set(child, offset)

    def on_message_in(tp: Any, offset: int, message: Any) -> None:
        Monitor.on_message_in(monitor, tp, offset, message)
        tally.inc(metrics.messages_received)
        metrics.active_messages.inc()  # at once: on_message_out (at the flush) decrements it
        children = received.get(tp)
        if children is None:
            children = received[tp] = (
                metrics.messages_received_per_topics.labels(topic=tp.topic),
                metrics.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition),
            )
        tally.inc(children[0])
        tally.set(children[1], offset)

    monitor.track_tp_end_offset = track_tp_end_offset
    monitor.on_message_in = on_message_in


def cache_table_operation_children(monitor: Any) -> None:
    """faust's Prometheus monitor counts every table get, set and delete in
    ``linky_faust_table_operations{table, operation}`` and looks the labelled child up again at
    each call (``labels()``: label validation, a lock, a dict), several times per reading. The
    same counters, with each table's children looked up once."""
    if not isinstance(monitor, PrometheusMonitor):
        return
    children: dict[tuple[str, str], Any] = {}

    def hook(method: str, operation: str) -> Callable[..., None]:
        faust_s = getattr(Monitor, method)  # what PrometheusMonitor's own method calls first

        def count(table: Any, *args: Any) -> None:
            faust_s(monitor, table, *args)
            child = children.get((table.name, operation))
            if child is None:
                child = children[(table.name, operation)] = monitor._metrics.table_operations.labels(
                    table=f"table.{table.name}", operation=operation)
            child.inc()

        return count

    monitor.on_table_get = hook("on_table_get", monitor.KEYS_RETRIEVED)
    monitor.on_table_set = hook("on_table_set", monitor.KEYS_UPDATED)
    monitor.on_table_del = hook("on_table_del", monitor.KEYS_DELETED)


def canonical_url(cfg: Settings) -> str:
    """The URL other workers use to reach this worker's web server."""
    if cfg.web_canonical_url:
        return cfg.web_canonical_url
    host = socket.gethostname() if cfg.web_host in {"", "0.0.0.0", "::"} else cfg.web_host
    return f"http://{host}:{cfg.web_port}"


def table_options(cfg: Settings) -> dict[str, Any]:
    """RocksDB options for every table: a bounded block cache (shared, ``SharedCacheOptions``)
    instead of faust's 2 GiB per table partition, and small memtables instead of faust's 3 x 64 MiB
    per table partition (the tables are written once per write-back flush, stream/writeback.py),
    all of them under one budget charged to that cache (``LINKY_ROCKSDB_MEMTABLE_BUDGET_BYTES``)."""
    return {
        "driver": "rocksdict",
        "block_cache_size": cfg.rocksdb_block_cache_bytes,
        "write_buffer_size": cfg.rocksdb_write_buffer_bytes,
        "max_write_buffer_number": 2,
        "memtable_budget_bytes": cfg.rocksdb_memtable_budget_bytes,
        "cache_index_and_filter_blocks": cfg.rocksdb_cache_index_and_filter_blocks,
    }
