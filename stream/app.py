"""The faust-streaming application: ``faust -A stream.app worker -l info`` (or ``linky-stream worker``).

Pitfalls handled here (../shared/stack.md section 1):
- the RocksDB store is set at app level (a per-table ``store="rocksdb://"`` silently falls back to
  memory because ``URL("rocksdb://")`` is falsy);
- RocksDB's default block cache is 2 GiB *per table partition*: tables use
  ``settings.rocksdb_block_cache_bytes`` instead (see ``table_options``);
- Prometheus sensors are mounted on the worker's web server at ``/metrics``;
- the readings topic is declared (``internal=True``) with ``topic_partitions`` partitions: the
  broker does not auto-create topics, and tables must be co-partitioned with their source;
- ``canonical_url`` is this worker's own address, so ``app.table_route`` can forward an HTTP query
  to the worker holding a PDL's partition when several run (faust's default is the host name);
- after a crash (no clean-shutdown marker) the local tables are discarded and recovered from the
  changelogs: faust's local RocksDB can be ahead of them (stream/datadir.py);
- the Kafka consumer is stream/consumer.py's (plugged in by stream/factory.py): a partition without
  a committed offset is read from its beginning, never skipped after a recovery.

Layout (docs/stream.md): stream/state.py holds the tables and the Redis publisher, agents/ the
agents (one module per concern; agents/readings.py is the readings topic's one agent), stream/web.py
the HTTP queries, tables/ the pure domain rules.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from stream import allocator, datadir, decode_cache
from stream.factory import canonical_url, create_app, table_options  # noqa: F401  (re-exported)
from stream.settings import Settings

settings = Settings.from_env()
allocator.limit_arenas(settings.malloc_arena_max)  # before RocksDB's threads start (stream/allocator.py)
allocator.defer_full_collections(settings.gc_full_seconds > 0)  # full collections on a timer (stream/ops.py)
decode_cache.DEFAULT_MAX_ENTRIES = settings.decode_cache_entries  # before any table module is imported
app = create_app(settings)
readings_topic = app.topic(
    settings.readings_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
    replicas=settings.topic_replication,
    internal=True,  # declared (created if missing) by the worker, like the edge publisher does
)



def pdl_table(name: str, *, read_mostly: bool = False) -> Any:
    """A RocksDB table keyed by PDL bytes with bytes values, co-partitioned with the readings
    topic and with the bounded block cache of ``table_options`` (every table of the app is one).
    ``read_mostly``: read for every reading, written rarely (a customer's or an operator's
    documents); its reads are kept in memory, up to ``LINKY_DECODE_CACHE_ENTRIES`` keys, and
    dropped whenever the store is written (stream/factory.py ``NoWalRocksDBStore.get_once``)."""
    table = app.Table(
        name,
        default=None,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        options=table_options(settings),
    )
    table.read_cache_entries = settings.decode_cache_entries if read_mostly else 0  # before its store exists
    return table


_stopping: dict[str, bool] = {"graceful": False}


@app.on_worker_init.connect
def _claim_datadir(sender: Any, **kwargs: Any) -> None:
    """Lock the data dir; after an unclean stop, drop local tables (stream/datadir.py says why)."""
    if "atexit" not in _stopping:
        datadir.claim(settings.datadir)
        atexit.register(lambda: datadir.mark_clean(settings.datadir) if _stopping["graceful"] else None)
        _stopping["atexit"] = True
        _refuse_unmigrated_state()


def _refuse_unmigrated_state() -> None:
    """Stop here when the tables of the version before the one-state design hold data that was
    not migrated (stream/migrate.py): starting would count every PDL from nothing."""
    from stream import kafka_security, migrate

    client = {"bootstrap_servers": settings.kafka_bootstrap, **kafka_security.client_kwargs(settings)}
    try:
        problem = migrate.check(client, settings.app_id)
    except Exception as exc:  # the broker not reachable yet: faust's own start waits for it
        logging.getLogger(__name__).warning("could not check for state to migrate (%r); starting", exc)
        return
    if problem:
        logging.getLogger(__name__).critical("not starting: %s", problem)
        raise SystemExit(2)


@app.on_before_shutdown.connect
async def _graceful_stop(sender: Any, **kwargs: Any) -> None:
    _stopping["graceful"] = True


# Agents register themselves on import (one module per agent, see agents/), then the HTTP views.
import agents  # noqa: E402,F401  (import for side effects, after `app` exists)
from stream import ops, web  # noqa: E402,F401
