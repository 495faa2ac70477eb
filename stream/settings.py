"""The one settings object of linky-stream, read from ``LINKY_*`` environment variables.

Every variable is documented in docs/configuration.md. No Faust import here: the edge reader
(teleinfo) reads the same object for its Kafka settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

PREFIX = "LINKY_"


@dataclass(frozen=True)
class Settings:
    """All tunables. Field ``x`` is read from env var ``LINKY_X`` (upper case)."""

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    readings_topic: str = "linky.readings"
    contracts_topic: str = "linky.contracts"
    topic_partitions: int = 4
    # Faust worker
    app_id: str = "linky-stream"
    datadir: Path = Path(".stack/worker-data")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_canonical_url: str = ""  # URL other workers use to reach this one; "" = http://web_host:web_port
    processing_guarantee: str = "at_least_once"
    kafka_session_timeout_seconds: float = 60.0  # a dead worker's partitions move after this long
    kafka_commit_interval_seconds: float = 2.8  # offset commit timer (faust's broker_commit_interval)
    rocksdb_block_cache_bytes: int = 64 * 1024 * 1024
    rocksdb_wal: bool = False  # RocksDB write-ahead log of local tables (the changelogs are the durable copy)
    producer_linger_seconds: float = 0.02  # faust's producer_linger: changelog records are batched this long
    # Redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = 0.5
    redis_queue_size: int = 10_000  # payloads waiting for Redis before new ones are dropped
    redis_retry_seconds: float = 1.0  # ping interval while Redis is down
    redis_linger_seconds: float = 0.02  # a batch that is not full waits this long for more payloads
    status_workers: str = ""  # space-separated worker URLs `linky-stream status` asks ("" = this host's)
    metrics_interval_seconds: float = 10.0  # refresh of table-key and recovery gauges
    # Calendar
    timezone: str = "Europe/Paris"
    # Retention of closed consumption buckets
    retention_hours_days: int = 7
    retention_days_days: int = 400
    retention_months_days: int = 5 * 366
    # Edge reader (teleinfo publish; docs/edge.md)
    topic_replication: int = 1
    edge_devices: str = ""  # space-separated DEVICE[#pdl=...,name=...,baud=...] specs
    spool_dir: Path = Path(".stack/edge-spool")
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_fsync_seconds: float = 1.0
    spool_after_seconds: float = 2.0
    spool_drain_batch: int = 500
    edge_metrics_host: str = "127.0.0.1"
    edge_metrics_port: int = 0  # 0 = no /metrics endpoint
    edge_compression: str = "gzip"  # gzip | none (lz4/zstd/snappy need extra packages)
    edge_linger_ms: int = 5
    # Battery, surplus and alerts (docs/configuration.md "battery/alerts")
    battery_tick_seconds: float = 10.0  # timer: month-end close and meter-silent checks
    alert_overload_share: float = 1.0  # power above this share of the subscribed power...
    alert_overload_seconds: float = 30.0  # ...for this long opens "overload"
    alert_overload_clear_seconds: float = 60.0
    alert_silent_seconds: float = 300.0  # no reading for this long opens "meter_silent"
    alert_backwards_clear_seconds: float = 3600.0
    alert_daily_budget_wh: int = 0  # 0 = no daily budget alert
    alert_peak_periods: bool = True  # alert when a peak (HP) period starts
    # Clock (stream/clock.py): seconds added to the system clock, for tests and rehearsals only
    clock_offset_seconds: float = 0.0
    # Logging
    log_level: str = "INFO"
    log_format: str = "json"  # json | text
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from ``LINKY_*`` variables; ``overrides`` win (used by tests and CLIs)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f.type, raw, PREFIX + f.name.upper())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _convert(type_name: Any, raw: str, var: str) -> Any:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a valid {kind}") from None
    return raw
