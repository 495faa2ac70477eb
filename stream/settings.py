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
    alert_settings_topic: str = "linky.alert-settings"  # households' alert preferences (portal)
    topic_partitions: int = 4
    # Kafka security (stream/kafka_security.py, docs/security.md): PLAINTEXT | SASL_SSL | SSL | SASL_PLAINTEXT
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_ca_file: str = ""  # PEM CA the broker's certificate is checked against ("" = the system CAs)
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password_file: str = ""  # file holding the SASL password (preferred)
    kafka_password: str = ""  # or the password itself (env vars leak into ps/logs)
    # Gateways (stream/gateways.py, agents/gateways.py, docs/security.md)
    gateways_topic: str = "linky.gateways"  # compacted, PDL-keyed: which gateways may sign for a PDL
    edge_gateway_key_file: str = ""  # the edge's key file (`linky-stream gateway add --key-file`); "" = unsigned
    gateway_accept_unsigned: bool = True  # roll-out only: unsigned readings of PDLs without a gateway are folded (counted); false in production
    gateway_replay_window_seconds: float = 3600.0  # a signed reading older than the PDL's newest by more: replay
    trust_alert_clear_seconds: float = 3600.0  # gateway_untrusted / reading_quarantined clear after this long without a new one
    # Plausibility (tables/trust.py): quarantine physically impossible readings
    trust_power_tolerance: float = 0.5  # an index may grow by subscribed kVA x elapsed x (1 + this) + the slack
    trust_index_slack_wh: int = 20  # index resolution and rounding (Wh), added to the bound
    trust_max_future_seconds: float = 3600.0  # a reading dated later than now (stream/clock.py) + this: quarantined
    trust_check_unsigned: bool = False  # also judge unsigned roll-out readings (they are folded unchecked otherwise)
    # Faust worker
    app_id: str = "linky-stream"
    datadir: Path = Path(".stack/worker-data")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_canonical_url: str = ""  # URL other workers use to reach this one; "" = http://web_host:web_port
    processing_guarantee: str = "at_least_once"
    kafka_session_timeout_seconds: float = 15.0  # a dead worker's partitions move after this long (its restart waits as long)
    kafka_group_instance_id: str = ""  # static group membership: a stable, unique name per worker; its restart then does not wait for the session timeout ("" = dynamic)
    kafka_commit_interval_seconds: float = 2.8  # offset commit timer (faust's broker_commit_interval)
    kafka_metadata_max_age_seconds: float = 15.0  # the consumer refreshes its metadata this often: topics missing at a join are assigned that late at most (Kafka's 5 min)
    kafka_fetch_max_wait_ms: int = 100  # how long the broker may hold the worker's fetch (faust hard-codes 1500)
    kafka_fetch_batch_ms: int = 10  # a busy worker's fetches gather records this long in the broker (0 = always answered at once)
    kafka_fetch_batch_above: int = 100  # busy = more than this many records/s fetched (idle again under half)
    rocksdb_block_cache_bytes: int = 32 * 1024 * 1024  # ONE block cache shared by every table partition
    rocksdb_write_buffer_bytes: int = 2 * 1024 * 1024  # memtable per table partition (faust: 64 MiB)
    rocksdb_memtable_budget_bytes: int = 16 * 1024 * 1024  # all memtables of the worker, charged to the block cache (0 = no budget)
    rocksdb_cache_index_and_filter_blocks: bool = False  # SST index and bloom-filter blocks charged to the block cache (else held outside it, unbounded)
    malloc_arena_max: int = 2  # glibc malloc arenas at most (stream/allocator.py; 0 = glibc's default)
    malloc_trim_seconds: float = 60.0  # give freed heap back to the system this often (0 = never)
    gc_full_seconds: float = 60.0  # Python's full garbage collections on this timer, not when CPython decides (0 = CPython's)
    gc_freeze: bool = True  # the timer's first full collection freezes the start-up's objects (gc.freeze): later ones skip them
    decode_cache_entries: int = 5_000  # decoded table values kept per cache (stream/decode_cache.py)
    rocksdb_wal: bool = False  # RocksDB write-ahead log of local tables (the changelogs are the durable copy)
    producer_linger_seconds: float = 0.02  # faust's producer_linger: changelog records are batched this long
    state_flush_seconds: float = 5.0  # write-back state: dirty PDL values reach the tables this often (0 = every reading)
    state_flush_max_held: int = 20_000  # ...or as soon as this many readings wait for a flush
    state_flush_max_keys: int = 5_000  # ...or as soon as this many table keys are dirty (0 = no limit): bounds the buffer's memory
    readings_direct: bool = True  # the consumer folds each fetch of readings itself (agents/readings.py fold_messages); false = through faust's agent, one event at a time
    state_bulk_restore: bool = True  # newly assigned table partitions are read from their changelogs in bulk before faust's recovery (stream/restore.py)
    state_bulk_restore_fetch_bytes: int = 8 * 1024 * 1024  # bytes per bulk-restore fetch: its memory vs its speed
    # Redis
    redis_url: str = "redis://127.0.0.1:6379/0"  # may carry user:password (it then wins over the two below)
    redis_username: str = ""  # the worker's Redis ACL user (linky-worker on the local stack)
    redis_password_file: str = ""  # file holding its password (.stack/secrets/redis-linky-worker.password)
    redis_password: str = ""  # or the password itself (prefer the file: env vars leak into ps/logs)
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
    battery_tick_max_per_run: int = 5000  # PDLs the timer looks at per run at most (midnight spreads over runs)
    alert_overload_share: float = 1.0  # power above this share of the subscribed power...
    alert_overload_seconds: float = 30.0  # ...for this long opens "overload"
    alert_overload_clear_seconds: float = 60.0
    alert_silent_seconds: float = 300.0  # no reading for this long opens "meter_silent"
    alert_backwards_clear_seconds: float = 3600.0
    alert_daily_budget_wh: int = 0  # 0 = no daily budget alert
    alert_peak_periods: bool = True  # alert when a peak (HP) period starts
    # bill_over_installment opens when the month's projected bill > installment x (1 + share)...
    alert_bill_over_installment_share: float = 0.10
    alert_bill_min_elapsed_hours: float = 72.0  # ...once this much of the month has data
    # Bills (docs/cost.md): deduct the surplus cagnotte from the month's estimated bill
    bill_deduct_cagnotte: bool = True
    # Customer portal (portal/, docs/portal.md)
    portal_host: str = "127.0.0.1"
    portal_port: int = 6080
    portal_metrics_host: str = "127.0.0.1"
    portal_metrics_port: int = 6081  # /metrics on its own port; 0 = none
    portal_public_url: str = ""  # URL people open (printed by `portal token`); "" = http://host:port
    portal_worker_url: str = "http://127.0.0.1:6066"  # any worker: it forwards to the partition owner
    portal_worker_timeout_seconds: float = 5.0
    portal_redis_url: str = "redis://127.0.0.1:6379/0"
    portal_redis_username: str = "linky-portal"
    portal_redis_password_file: str = ""
    portal_redis_password: str = ""
    portal_jwt_secret: str = ""  # HS256 shared secret (simple set-ups); or the file below
    portal_jwt_secret_file: str = ""
    portal_jwks_url: str = ""  # RS256/ES256: the supplier identity provider's public keys
    portal_jwks_file: str = ""
    portal_jwt_audience: str = ""  # when set, tokens must carry this "aud"
    portal_jwt_issuer: str = ""  # when set, tokens must carry this "iss"
    portal_jwt_leeway_seconds: float = 0.0  # tolerated clock skew on exp/nbf
    portal_session_secret_file: str = ""  # key signing session cookies; "" = random per process
    portal_cookie_secure: bool = False  # Secure cookies: set true behind TLS (production)
    portal_page_path: str = "/"  # where /login redirects
    portal_cors_origins: str = ""  # space-separated allowed origins; "" = CORS closed
    portal_trust_forwarded_for: bool = False  # client address = last X-Forwarded-For entry (behind one proxy)
    portal_settings_writes_per_minute: int = 10  # alert-settings writes per credential and PDL
    portal_lockout_attempts: int = 3  # failed authentications from one address...
    portal_lockout_window_seconds: float = 3600.0  # ...within this window...
    portal_lockout_seconds: float = 3 * 3600.0  # ...lock the address this long (the GEG rule)
    portal_max_request_bytes: int = 4096  # request body limit (every route is a GET)
    portal_sse_heartbeat_seconds: float = 15.0
    portal_client_queue: int = 64  # events waiting for one browser before coalescing to the newest
    portal_redis_retry_seconds: float = 1.0
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
