"""Prometheus recording and alerting rules of linky-stream (one Python source; the YAML files in
deploy/production/prometheus/ are rendered from it by ``python -m deploy.monitoring render``, and
tests/unit/test_monitoring_rules.py fails when they drift).

Jobs (deploy/production/prometheus.yml): ``linky-stream-worker`` (workers' ``/metrics``),
``linky-teleinfo`` (edge gateways, ``teleinfo publish --metrics-port``), ``linky-portal`` (the
customer portal; its rules live in ``portal.rules.yml``, written against the names the portal is
expected to export).

Every alert has ``severity`` (``critical``: pages; ``warning``: ticket) and a ``runbook_url``
pointing at its section of docs/operations.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUNBOOK = "https://git.example.org/linky-stream/blob/main/docs/operations.md"
WORKER_JOB = "linky-stream-worker"
EDGE_JOB = "linky-teleinfo"
PORTAL_JOB = "linky-portal"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str  # production duration ("0s" = fires at once)
    severity: str
    summary: str  # may use {{ $labels.x }}; never $value (promtool tests compare annotations)
    description: str

    @property
    def anchor(self) -> str:
        return self.name.lower()

    def annotations(self) -> dict[str, str]:
        return {"summary": self.summary, "description": self.description,
                "runbook_url": f"{RUNBOOK}#{self.anchor}"}


@dataclass(frozen=True)
class Record:
    record: str
    expr: str


@dataclass(frozen=True)
class Group:
    name: str
    file: str  # rules file (without directory)
    rules: list[Alert | Record] = field(default_factory=list)


# --------------------------------------------------------------------------- recording rules

RECORDS = Group("linky-recording", "linky.rules.yml", [
    Record("linky:edge_published:rate5m", "sum(rate(linky_edge_published_total[5m]))"),
    Record("linky:edge_readings:rate5m", "sum by (instance, device) (rate(linky_edge_readings_total[5m]))"),
    Record("linky:stream_readings_processed:rate5m",
           'sum(rate(linky_stream_readings_processed_total{agent="live"}[5m]))'),
    Record("linky:stream_readings_processed:rate5m_by_outcome",
           "sum by (agent, outcome) (rate(linky_stream_readings_processed_total[5m]))"),
    Record("linky:stream_readings_processed_instance:rate5m",
           'sum by (instance) (rate(linky_stream_readings_processed_total{agent="live"}[5m]))'),
    Record("linky:consumer_lag_messages:sum", "sum(linky_stream_consumer_lag_messages)"),
    Record("linky:consumer_lag_messages_partition:max",
           "max by (topic, partition) (linky_stream_consumer_lag_messages)"),
    Record("linky:consumer_lag_seconds_partition:max",
           "max by (topic, partition) (linky_stream_consumer_lag_seconds)"),
    Record("linky:processing_latency_seconds:p99_5m",
           "histogram_quantile(0.99, sum by (le) (rate(linky_stream_processing_latency_seconds_bucket[5m])))"),
    Record("linky:processing_latency_seconds:p50_5m",
           "histogram_quantile(0.5, sum by (le) (rate(linky_stream_processing_latency_seconds_bucket[5m])))"),
    Record("linky:redis_published:rate5m", "sum by (instance) (rate(linky_redis_published_total[5m]))"),
    Record("linky:redis_publish_failures:rate5m",
           "sum by (instance) (rate(linky_redis_publish_failures_total[5m]))"),
    Record("linky:redis_publish_failures:ratio_rate5m",
           "linky:redis_publish_failures:rate5m / (linky:redis_published:rate5m + linky:redis_publish_failures:rate5m)"),
    Record("linky:edge_invalid_groups:ratio_rate10m",
           "sum by (instance, device) (rate(linky_edge_invalid_groups_total[10m]))"
           " / (sum by (instance, device) (rate(linky_edge_groups_total[10m]))"
           " + sum by (instance, device) (rate(linky_edge_invalid_groups_total[10m])))"),
    Record("linky:edge_publish_errors:rate5m", "sum by (instance, stage) (rate(linky_edge_publish_errors_total[5m]))"),
])

# --------------------------------------------------------------------------- worker alerts

WORKER = Group("linky-worker", "linky.rules.yml", [
    Alert("LinkyWorkerDown", f'up{{job="{WORKER_JOB}"}} == 0', "2m", "critical",
          "Stream worker {{ $labels.instance }} is down",
          "Prometheus cannot scrape the worker: its partitions move to the other workers after the "
          "Kafka session timeout; with no other worker, readings are not processed."),
    Alert("LinkyNoReadingsProcessed",
          "linky:edge_published:rate5m > 0 and on() ((linky:stream_readings_processed:rate5m or on() vector(0)) == 0)",
          "10m", "critical",
          "No readings processed while the edge publishes",
          "Edge gateways publish readings to Kafka but no worker has processed one for 10 minutes."),
    Alert("LinkyConsumerLagGrowing",
          "linky:consumer_lag_messages:sum > 1000 and deriv(linky:consumer_lag_messages:sum[10m]) > 0",
          "15m", "warning",
          "Consumer lag is growing",
          "The readings topic's lag (high watermark minus committed offset, all partitions) is above "
          "1000 and has grown for 15 minutes: workers do not keep up."),
    Alert("LinkyConsumerLagAgeHigh",
          "linky:consumer_lag_seconds_partition:max > 300"
          " and on(topic, partition) linky:consumer_lag_messages_partition:max > 0",
          "5m", "critical",
          "Partition {{ $labels.partition }} of {{ $labels.topic }} is more than 5 minutes behind",
          "The last reading processed on this partition is more than 5 minutes old while messages wait: "
          "dashboards show stale data."),
    Alert("LinkyRecoveryStuck",
          'linky_stream_recovery_in_progress == 1 and on(instance) '
          '(delta(linky_stream_recovery_remaining_records{kind="active"}[10m]) >= 0)',
          "15m", "critical",
          "Table recovery on {{ $labels.instance }} makes no progress",
          "The worker has been recovering its tables from the changelogs for 15 minutes without the "
          "remaining record count going down; its partitions are not processed meanwhile."),
    Alert("LinkyRedisDown", "linky_redis_up == 0", "1m", "critical",
          "Worker {{ $labels.instance }} cannot reach Redis",
          "Live payloads are dropped (linky_redis_publish_failures_total{reason=\"redis_down\"}); "
          "snapshots are rewritten when Redis answers again."),
    Alert("LinkyRedisPublishFailures", "linky:redis_publish_failures:ratio_rate5m > 0.01", "10m", "warning",
          "More than 1% of Redis publishes fail on {{ $labels.instance }}",
          "Payloads are dropped (timeout, error or queue_full) though Redis is up: Redis is slow or "
          "overloaded."),
    Alert("LinkyProcessingLatencyHigh", "linky:processing_latency_seconds:p99_5m > 1", "10m", "warning",
          "Processing latency p99 above 1 s",
          "From the reading's time to its Redis publish, 99% of readings take more than a second."),
    Alert("LinkyReadingHandlerErrors",
          'sum by (instance, agent) (increase(linky_stream_readings_processed_total{outcome="error"}[10m])) > 0',
          "0s", "warning",
          "Handler {{ $labels.agent }} raised on {{ $labels.instance }}",
          "A reading handler failed (a bug, logged with its traceback); the other handlers went on."),
    Alert("LinkyBatteryRefoldImpossible",
          'sum by (instance) (increase(linky_battery_contract_refolds_total{outcome="impossible"}[1h])) > 0',
          "0s", "warning",
          "A contract version could not be re-folded on {{ $labels.instance }}",
          "A contract change reached the worker for a day that can no longer be re-folded: the "
          "battery of that PDL needs a re-anchor."),
    Alert("LinkyStateFlushFailing",
          "sum by (instance) (increase(linky_stream_state_flush_failures_total[10m])) > 0",
          "0s", "critical",
          "Write-back state flushes fail on {{ $labels.instance }}",
          "The worker could not write its buffered state to the tables or Kafka did not acknowledge "
          "the changelog records: its readings stay uncommitted (nothing is lost, but its offsets "
          "stop moving and a restart replays them)."),
    Alert("LinkyBatteryTicksNotApplied",
          "(sum by (instance) (increase(linky_battery_ticks_sent_total[15m])) > 0)"
          " unless on(instance) (sum by (instance) (increase(linky_battery_ticks_applied_total[15m])) > 0)",
          "15m", "critical",
          "Battery timer ticks are sent but not handled on {{ $labels.instance }}",
          "The timer sends ticks to its own partitions of the ticks topic and no tick has been handled "
          "for 15 minutes: days and months do not close (battery, cagnotte, bills) and, with the fetch "
          "loop waiting on the ticks agent, readings may stop too."),
    Alert("LinkyUntrustedReadings",
          'sum by (instance, reason) (increase(linky_stream_readings_rejected_total{reason!~"'
          'impossible_growth|injection_on_consumer|future_reading"}[15m])) > 0',
          "0s", "warning",
          "Readings refused ({{ $labels.reason }}) on {{ $labels.instance }}",
          "Signed readings failed the gateway checks (unprovisioned or revoked gateway, bad signature, "
          "replay...): forged, or a gateway misconfigured. They were not folded."),
    Alert("LinkyReadingsQuarantined",
          'sum by (instance, reason) (increase(linky_stream_readings_rejected_total{reason=~"'
          'impossible_growth|injection_on_consumer|future_reading"}[1h])) > 0',
          "0s", "warning",
          "Physically impossible readings quarantined ({{ $labels.reason }}) on {{ $labels.instance }}",
          "Readings that no meter can produce were kept out of energy and money: review them."),
    Alert("LinkyInvalidContractRecords",
          "sum by (instance) (increase(linky_contract_records_rejected_total[1h])) > 0",
          "0s", "warning",
          "Invalid contract records on {{ $labels.instance }}",
          "Records of the contracts topic were ignored because they are invalid."),
])

# --------------------------------------------------------------------------- edge alerts

EDGE = Group("linky-edge", "linky.rules.yml", [
    Alert("LinkyEdgeGatewayDown", f'up{{job="{EDGE_JOB}"}} == 0', "5m", "warning",
          "Edge gateway {{ $labels.instance }} is silent",
          "Prometheus cannot scrape the gateway's reader: the gateway is off, offline or its reader "
          "is not running. Its meters' readings wait on the meter side (lost after the spool)."),
    Alert("LinkyEdgeDeviceSilent", "linky_edge_last_frame_age_seconds > 120", "5m", "warning",
          "Dongle {{ $labels.device }} on {{ $labels.instance }} sends no frames",
          "No complete TIC frame for more than 2 minutes: unplugged dongle, wrong baud or meter TIC "
          "disabled."),
    Alert("LinkyEdgeSpoolGrowing",
          "linky_edge_spool_readings > 100 and deriv(linky_edge_spool_readings[15m]) > 0",
          "15m", "warning",
          "Spool of {{ $labels.instance }} keeps growing",
          "The gateway cannot deliver to Kafka and spools readings to disk."),
    Alert("LinkyEdgeSpoolOldReadings", "linky_edge_spool_oldest_age_seconds > 3600", "5m", "warning",
          "Spool of {{ $labels.instance }} holds readings older than an hour",
          "The oldest reading waiting in the gateway's spool is more than an hour old."),
    Alert("LinkyEdgeReadingsDropped", "increase(linky_edge_readings_dropped_total[15m]) > 0", "0s", "critical",
          "Gateway {{ $labels.instance }} dropped readings ({{ $labels.reason }})",
          "Readings were lost on purpose: spool full (oldest dropped) or corrupt spool records."),
    Alert("LinkyEdgeDeviceErrors",
          "sum by (instance, device) (increase(linky_edge_device_errors_total[10m])) > 5",
          "10m", "warning",
          "Dongle {{ $labels.device }} on {{ $labels.instance }} keeps failing",
          "Opens or reads of the serial device fail repeatedly (absent, permission, busy, io)."),
    Alert("LinkyDecoderInvalidGroups", "linky:edge_invalid_groups:ratio_rate10m > 0.02", "15m", "warning",
          "More than 2% invalid TIC groups on {{ $labels.device }} ({{ $labels.instance }})",
          "Checksum or format errors: electrical noise, a bad dongle, or a wrong mode/baud."),
])

# --------------------------------------------------------------------------- portal (expected names)

PORTAL = Group("linky-portal", "portal.rules.yml", [
    Alert("LinkyPortalDown", f'up{{job="{PORTAL_JOB}"}} == 0', "2m", "critical",
          "Portal {{ $labels.instance }} is down",
          "Prometheus cannot scrape the customer portal."),
    Alert("LinkyPortalAuthFailuresHigh",
          "sum by (instance) (rate(linky_portal_auth_failures_total[5m])) > 1", "10m", "warning",
          "Many authentication failures on {{ $labels.instance }}",
          "More than one failed login per second for 10 minutes: credential stuffing or a broken client."),
    Alert("LinkyPortalLockoutsSpike",
          "sum by (instance) (increase(linky_portal_lockouts_total[15m])) > 20", "0s", "warning",
          "Many account lockouts on {{ $labels.instance }}",
          "More than 20 accounts locked out in 15 minutes."),
])

GROUPS = [RECORDS, WORKER, EDGE, PORTAL]


def alerts() -> list[Alert]:
    return [r for g in GROUPS for r in g.rules if isinstance(r, Alert)]


def records() -> list[Record]:
    return [r for g in GROUPS for r in g.rules if isinstance(r, Record)]


def rule_files() -> list[str]:
    return sorted({g.file for g in GROUPS})


def render_rules(file: str, *, for_override: str | None = None, interval: str | None = None) -> dict[str, Any]:
    """The rules file ``file`` as a dict (YAML-ready). ``for_override`` replaces every non-zero
    ``for:`` (test-sized copies); production files are rendered without it."""
    groups = []
    for g in GROUPS:
        if g.file != file:
            continue
        rules: list[dict[str, Any]] = []
        for r in g.rules:
            if isinstance(r, Record):
                rules.append({"record": r.record, "expr": r.expr})
                continue
            rule: dict[str, Any] = {"alert": r.name, "expr": r.expr}
            duration = for_override if for_override and r.for_ != "0s" else r.for_
            if duration != "0s":
                rule["for"] = duration
            rule["labels"] = {"severity": r.severity}
            rule["annotations"] = r.annotations()
            rules.append(rule)
        group: dict[str, Any] = {"name": g.name}
        if interval:
            group["interval"] = interval
        group["rules"] = rules
        groups.append(group)
    return {"groups": groups}
