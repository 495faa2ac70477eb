"""Grafana dashboards (filled in below)."""

from __future__ import annotations

from typing import Any


def dashboards() -> dict[str, dict[str, Any]]:
    return {}
