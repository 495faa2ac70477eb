"""Grafana dashboards as code, rendered to deploy/production/grafana/*.json and provisioned from
files (deploy/production/grafana/provisioning/). Every PromQL expression is checked by promtool
and against the exported metric names (tests/unit/test_monitoring_dashboards.py).

- ``linky-pipeline``: readings in (edge) and out (workers), lag, lag age, latency, Redis, errors;
- ``linky-worker``: one worker (``$instance``): partitions, recovery, tables, faust internals;
- ``linky-edge``: the gateway fleet: devices, frames, spool, decoder quality, publish errors;
- ``linky-portal``: the customer portal (names expected from the portal branch).
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def _panel(title: str, targets: list[tuple[str, str]], *, unit: str = "short", kind: str = "timeseries",
           width: int = 12, height: int = 8, description: str = "") -> dict[str, Any]:
    return {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "gridPos": {"w": width, "h": height},
            "targets": [{"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
                        for i, (expr, legend) in enumerate(targets)]}


def _var(name: str, query: str) -> dict[str, Any]:
    return {"name": name, "type": "query", "datasource": DATASOURCE, "query": query, "refresh": 2,
            "includeAll": True, "multi": True, "allValue": ".*", "current": {}}


def _board(uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]] = ()) -> dict[str, Any]:
    x = y = 0
    row_height = 0
    for i, panel in enumerate(panels):
        w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        panel["gridPos"].update(x=x, y=y)
        panel["id"] = i + 1
        x += w
        row_height = max(row_height, h)
    return {"uid": uid, "title": title, "tags": ["linky-stream"], "timezone": "browser", "schemaVersion": 39,
            "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": list(variables)}, "panels": panels,
            "links": [{"title": "Runbook", "type": "link", "url": "docs/operations.md"}]}


def pipeline() -> dict[str, Any]:
    return _board("linky-pipeline", "linky-stream: pipeline overview", [
        _panel("Readings in (edge, acknowledged by Kafka) and out (processed)", [
            ("linky:edge_published:rate5m", "in: edge published"),
            ("linky:stream_readings_processed:rate5m", "out: processed (live handler)")], unit="reqps"),
        _panel("Outcomes per handler", [("linky:stream_readings_processed:rate5m_by_outcome", "{{agent}} {{outcome}}")],
               unit="reqps"),
        _panel("Consumer lag (messages) per partition", [
            ("linky:consumer_lag_messages_partition:max", "p{{partition}}")]),
        _panel("Lag age per partition (now - last processed reading's time)", [
            ("linky:consumer_lag_seconds_partition:max", "p{{partition}}")], unit="s"),
        _panel("Processing latency (reading time -> Redis)", [
            ("linky:processing_latency_seconds:p99_5m", "p99"), ("linky:processing_latency_seconds:p50_5m", "p50")],
               unit="s"),
        _panel("Redis", [("min(linky_redis_up)", "up (min over workers)"),
                         ("sum(linky:redis_publish_failures:rate5m)", "failures/s"),
                         ("sum(linky:redis_published:rate5m)", "published/s")]),
        _panel("Errors", [
            ('sum by (agent) (rate(linky_stream_readings_processed_total{outcome="error"}[5m]))', "handler {{agent}}"),
            ("sum by (reason) (rate(linky_edge_readings_dropped_total[5m]))", "edge dropped {{reason}}"),
            ("sum by (stage) (linky:edge_publish_errors:rate5m)", "edge publish {{stage}}"),
            ('sum(increase(linky_battery_contract_refolds_total{outcome="impossible"}[1h]))', "refold impossible (1h)"),
            ("sum(increase(linky_contract_records_rejected_total[1h]))", "invalid contracts (1h)")]),
        _panel("Workers and gateways up", [
            ('sum(up{job="linky-stream-worker"})', "workers"), ('sum(up{job="linky-teleinfo"})', "gateways")],
               kind="stat", width=6),
        _panel("Firing alerts", [('sum by (severity) (ALERTS{alertstate="firing"})', "{{severity}}")],
               kind="stat", width=6),
    ])


def worker() -> dict[str, Any]:
    sel = 'instance=~"$instance"'
    return _board("linky-worker", "linky-stream: worker detail", [
        _panel("Partitions assigned", [(f"linky_stream_partitions_assigned{{{sel}}}", "{{instance}} {{kind}}")]),
        _panel("Lag per partition", [(f"linky_stream_consumer_lag_messages{{{sel}}}", "{{instance}} p{{partition}}")]),
        _panel("Lag age per partition", [(f"linky_stream_consumer_lag_seconds{{{sel}}}", "{{instance}} p{{partition}}")],
               unit="s"),
        _panel("Table recovery", [
            (f"linky_stream_recovery_remaining_records{{{sel}}}", "{{instance}} {{kind}} remaining"),
            (f"linky_stream_recovery_in_progress{{{sel}}}", "{{instance}} in progress")]),
        _panel("Keys per table", [(f"linky_stream_table_keys{{{sel}}}", "{{instance}} {{table}}")]),
        _panel("Readings processed", [
            (f"sum by (instance, agent, outcome) (rate(linky_stream_readings_processed_total{{{sel}}}[5m]))",
             "{{instance}} {{agent}} {{outcome}}"),
            (f"sum by (instance, outcome) (rate(linky_battery_readings_total{{{sel}}}[5m]))",
             "{{instance}} battery {{outcome}}")], unit="reqps"),
        _panel("Index events", [(f"sum by (kind) (rate(linky_stream_index_events_total{{{sel}}}[5m]))", "{{kind}}")]),
        _panel("Redis publisher", [
            (f"linky_redis_up{{{sel}}}", "{{instance}} up"), (f"linky_redis_publish_queue{{{sel}}}", "{{instance}} queue"),
            (f"sum by (instance, reason) (rate(linky_redis_publish_failures_total{{{sel}}}[5m]))",
             "{{instance}} failed {{reason}}")]),
        _panel("Latency p99 by channel", [
            (f"histogram_quantile(0.99, sum by (le, channel) "
             f"(rate(linky_stream_processing_latency_seconds_bucket{{{sel}}}[5m])))", "{{channel}}")], unit="s"),
        _panel("faust: messages received, commit latency", [
            (f"sum by (instance) (rate(linky_faust_messages_received_total{{{sel}}}[5m]))", "{{instance}} received/s"),
            (f"histogram_quantile(0.99, sum by (le, instance) "
             f"(rate(linky_faust_consumer_commit_latency_bucket{{{sel}}}[5m])))", "{{instance}} commit p99")]),
        _panel("Alerts: battery and contracts", [
            (f"sum by (kind, action) (rate(linky_alert_events_total{{{sel}}}[1h]))", "{{kind}} {{action}}"),
            (f"sum by (outcome) (increase(linky_battery_contract_refolds_total{{{sel}}}[1h]))", "refold {{outcome}}")]),
    ], [_var("instance", 'label_values(up{job="linky-stream-worker"}, instance)')])


def edge() -> dict[str, Any]:
    sel = 'instance=~"$instance"'
    return _board("linky-edge", "linky-stream: edge fleet", [
        _panel("Gateways up", [('up{job="linky-teleinfo"}', "{{instance}}")]),
        _panel("Devices open", [(f"linky_edge_device_up{{{sel}}}", "{{instance}} {{device}}")]),
        _panel("Seconds since the last frame", [(f"linky_edge_last_frame_age_seconds{{{sel}}}", "{{instance}} {{device}}")],
               unit="s"),
        _panel("Readings built and published", [
            (f"linky:edge_readings:rate5m{{{sel}}}", "{{instance}} {{device}} built"),
            (f"sum by (instance, source) (rate(linky_edge_published_total{{{sel}}}[5m]))", "{{instance}} {{source}}")],
               unit="reqps"),
        _panel("Spool depth", [(f"linky_edge_spool_readings{{{sel}}}", "{{instance}}")]),
        _panel("Oldest spooled reading", [(f"linky_edge_spool_oldest_age_seconds{{{sel}}}", "{{instance}}")], unit="s"),
        _panel("Invalid group share (decoder)", [(f"linky:edge_invalid_groups:ratio_rate10m{{{sel}}}",
                                                  "{{instance}} {{device}}")], unit="percentunit"),
        _panel("Device errors", [(f"sum by (instance, device, reason) (rate(linky_edge_device_errors_total{{{sel}}}[5m]))",
                                  "{{instance}} {{device}} {{reason}}")]),
        _panel("Publish latency p99", [
            (f"histogram_quantile(0.99, sum by (le, instance) (rate(linky_edge_publish_latency_seconds_bucket{{{sel}}}[5m])))",
             "{{instance}}")], unit="s"),
        _panel("Dropped readings", [(f"sum by (instance, reason) (increase(linky_edge_readings_dropped_total{{{sel}}}[1h]))",
                                     "{{instance}} {{reason}}")]),
    ], [_var("instance", 'label_values(up{job="linky-teleinfo"}, instance)')])


def portal() -> dict[str, Any]:
    return _board("linky-portal", "linky-stream: customer portal", [
        _panel("Portals up", [('up{job="linky-portal"}', "{{instance}}")]),
        _panel("Live (SSE) connections", [("sum by (instance) (linky_portal_sse_clients)", "{{instance}}")]),
        _panel("Authentication failures", [("sum by (reason) (rate(linky_portal_auth_failures_total[5m]))", "{{reason}}")],
               unit="reqps"),
        _panel("Lockouts", [("sum by (instance) (increase(linky_portal_lockouts_total[15m]))", "{{instance}}")]),
    ])


def dashboards() -> dict[str, dict[str, Any]]:
    """File stem -> dashboard JSON (portal separate: its metric names are the portal branch's)."""
    return {"pipeline": pipeline(), "worker": worker(), "edge": edge(), "portal": portal()}


def expressions() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every query."""
    return [(name, panel["title"], t["expr"]) for name, board in dashboards().items()
            for panel in board["panels"] for t in panel["targets"]]
