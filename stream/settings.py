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
    processing_guarantee: str = "at_least_once"
    rocksdb_block_cache_bytes: int = 64 * 1024 * 1024
    # Redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = 0.5
    # Calendar
    timezone: str = "Europe/Paris"
    # Retention of closed consumption buckets
    retention_hours_days: int = 7
    retention_days_days: int = 400
    retention_months_days: int = 5 * 366
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
