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
  to the worker holding a PDL's partition when several run (faust's default is the host name).

Layout (docs/stream.md): stream/state.py holds the tables and the Redis publisher, agents/ the
agents (one module each), stream/web.py the HTTP queries, tables/ the pure domain rules.
"""

from __future__ import annotations

import socket
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors

from stream.settings import Settings

settings = Settings.from_env()


def create_app(cfg: Settings) -> faust.App:
    """Build the Faust app from settings (tests build their own with other topic names)."""
    faust_app = faust.App(
        cfg.app_id,
        broker=f"kafka://{cfg.kafka_bootstrap}",
        store="rocksdb://",
        datadir=str(cfg.datadir),
        topic_partitions=cfg.topic_partitions,
        topic_replication_factor=cfg.topic_replication,
        processing_guarantee=cfg.processing_guarantee,
        web_host=cfg.web_host,
        web_port=cfg.web_port,
        web_bind=cfg.web_host,
        canonical_url=canonical_url(cfg),
        web_tables_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
    )
    setup_prometheus_sensors(faust_app, name_prefix="linky_faust")
    return faust_app


def canonical_url(cfg: Settings) -> str:
    """The URL other workers use to reach this worker's web server."""
    if cfg.web_canonical_url:
        return cfg.web_canonical_url
    host = socket.gethostname() if cfg.web_host in {"", "0.0.0.0", "::"} else cfg.web_host
    return f"http://{host}:{cfg.web_port}"


def table_options(cfg: Settings) -> dict[str, Any]:
    """RocksDB options for every table (bounded cache instead of faust's 2 GiB default)."""
    return {"driver": "rocksdict", "block_cache_size": cfg.rocksdb_block_cache_bytes}


app = create_app(settings)
readings_topic = app.topic(
    settings.readings_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
    replicas=settings.topic_replication,
    internal=True,  # declared (created if missing) by the worker, like the edge publisher does
)

# Agents register themselves on import (one module per agent, see agents/), then the HTTP views.
import agents  # noqa: E402,F401  (import for side effects, after `app` exists)
from stream import web  # noqa: E402,F401
