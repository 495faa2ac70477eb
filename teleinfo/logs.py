"""Logging for the edge commands: stdlib ``logging``, one JSON object per line when
``LINKY_LOG_FORMAT=json`` (the default of the daemon), readable text otherwise.

Structured fields are passed with ``extra={"event": ..., ...}`` and end up as JSON keys.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

__all__ = ["configure_logging", "JsonFormatter"]

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", **extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Send logs to stderr as JSON lines (``fmt="json"``) or text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs an ERROR on every reconnect attempt while the broker is down; the publisher
    # already logs the outage once (and the metrics count it), so keep aiokafka quiet.
    logging.getLogger("aiokafka").setLevel(
        logging.DEBUG if root.level <= logging.DEBUG else logging.CRITICAL)
