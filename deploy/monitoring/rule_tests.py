"""promtool unit tests of every alert (``promtool test rules``), rendered into
deploy/production/prometheus/tests/. Each case drives an alert with synthetic ``input_series``
(one sample a minute, rules evaluated every minute) and checks three instants:

- ``before``: the condition already holds but for less than the alert's ``for:`` (or, for
  ``for: 0s`` alerts, before the event): no firing alert;
- ``firing``: the alert fires with exactly these labels and annotations;
- ``cleared``: after the condition stopped holding: no firing alert.

The durations are the production ones (promtool simulates time), so what is tested is what
ships. tests/unit/test_monitoring_rules.py runs promtool on the rendered files and checks that
every alert of rules.py has a case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from deploy.monitoring import rules as R

W = {"job": R.WORKER_JOB, "instance": "worker-1:6066"}
W2 = {"job": R.WORKER_JOB, "instance": "worker-2:6066"}
E = {"job": R.EDGE_JOB, "instance": "gw-1:9105"}
P = {"job": R.PORTAL_JOB, "instance": "portal-1:8080"}
TOPIC = {"topic": "linky.readings"}


@dataclass(frozen=True)
class Case:
    alert: str
    series: list[tuple[str, dict[str, str], str]]  # (metric, labels, promtool values)
    before: int  # minutes
    firing: int
    cleared: int
    labels: list[dict[str, str]]  # the firing alerts' labels (without alertname/severity)


def _s(metric: str, labels: dict[str, str], values: str) -> tuple[str, dict[str, str], str]:
    return metric, labels, values


CASES = [
    Case("LinkyWorkerDown", [_s("up", W, "1 1 0x5 1x5"), _s("up", W2, "1x13")], 3, 5, 9, [W]),
    Case("LinkyNoReadingsProcessed", [
        _s("linky_edge_published_total", {**E, "source": "direct"}, "0+60x60"),
        _s("linky_stream_readings_processed_total", {**W, "agent": "live", "outcome": "applied"},
           "0+60x10 600x29 660+60x20"),
    ], 22, 28, 45, [{}]),
    Case("LinkyConsumerLagGrowing", [
        _s("linky_stream_consumer_lag_messages", {**W, **TOPIC, "partition": "0"}, "0+100x60 0x10"),
    ], 24, 30, 64, [{}]),
    Case("LinkyConsumerLagAgeHigh", [
        _s("linky_stream_consumer_lag_seconds", {**W, **TOPIC, "partition": "1"}, "10x10 400x19 10x10"),
        _s("linky_stream_consumer_lag_messages", {**W, **TOPIC, "partition": "1"}, "5x40"),
        # partition 2: old last reading but nothing waiting (quiet meters): must not fire
        _s("linky_stream_consumer_lag_seconds", {**W, **TOPIC, "partition": "2"}, "900x40"),
        _s("linky_stream_consumer_lag_messages", {**W, **TOPIC, "partition": "2"}, "0x40"),
    ], 14, 18, 33, [{**TOPIC, "partition": "1"}]),
    Case("LinkyRecoveryStuck", [
        _s("linky_stream_recovery_in_progress", W, "1x40 0x10"),
        _s("linky_stream_recovery_remaining_records", {**W, "kind": "active"}, "5000x40 0x10"),
        # worker-2 recovers too, but makes progress: must not fire
        _s("linky_stream_recovery_in_progress", W2, "1x50"),
        _s("linky_stream_recovery_remaining_records", {**W2, "kind": "active"}, "50000-100x50"),
    ], 14, 20, 43, [W]),
    Case("LinkyRedisDown", [_s("linky_redis_up", W, "1 1 0x5 1x5")], 2, 4, 9, [W]),
    Case("LinkyRedisPublishFailures", [
        _s("linky_redis_published_total", {**W, "channel": "live"}, "0+100x60"),
        _s("linky_redis_publish_failures_total", {**W, "reason": "timeout"}, "0x10 10+10x29 300x20"),
    ], 19, 25, 48, [{"instance": W["instance"]}]),
    Case("LinkyProcessingLatencyHigh", [
        _s("linky_stream_processing_latency_seconds_bucket", {**W, "channel": "live", "le": "0.5"},
           "0+100x10 1000x19 1100+100x29"),
        _s("linky_stream_processing_latency_seconds_bucket", {**W, "channel": "live", "le": "1.0"},
           "0+100x10 1000x19 1100+100x29"),
        _s("linky_stream_processing_latency_seconds_bucket", {**W, "channel": "live", "le": "2.5"}, "0+100x60"),
        _s("linky_stream_processing_latency_seconds_bucket", {**W, "channel": "live", "le": "+Inf"}, "0+100x60"),
    ], 19, 25, 38, [{}]),
    Case("LinkyReadingHandlerErrors", [
        _s("linky_stream_readings_processed_total", {**W, "agent": "battery", "outcome": "error"}, "0x10 1x20"),
    ], 9, 12, 25, [{"instance": W["instance"], "agent": "battery"}]),
    Case("LinkyBatteryRefoldImpossible", [
        _s("linky_battery_contract_refolds_total", {**W, "outcome": "impossible"}, "0x10 1x100"),
        _s("linky_battery_contract_refolds_total", {**W, "outcome": "refolded"}, "0+1x100"),
    ], 9, 12, 75, [{"instance": W["instance"]}]),
    Case("LinkyStateFlushFailing", [
        _s("linky_stream_state_flush_failures_total", W, "0x10 1x40"),
    ], 9, 12, 25, [{"instance": W["instance"]}]),
    Case("LinkyBatteryTicksNotApplied", [
        _s("linky_battery_ticks_sent_total", W, "0x10 0+10x60"),  # from minute 10, ticks sent every minute
        _s("linky_battery_ticks_applied_total", {**W, "outcome": "changed"}, "0x40 0+10x30"),  # handled from 40
        # worker 2 sends and handles: must not fire
        _s("linky_battery_ticks_sent_total", W2, "0+5x70"),
        _s("linky_battery_ticks_applied_total", {**W2, "outcome": "unchanged"}, "0+5x70"),
    ], 20, 30, 60, [{"instance": W["instance"]}]),
    Case("LinkyUntrustedReadings", [
        _s("linky_stream_readings_rejected_total", {**W, "reason": "bad_signature"}, "0x10 3x40"),
        _s("linky_stream_readings_rejected_total", {**W, "reason": "impossible_growth"}, "0+1x50"),
    ], 9, 12, 30, [{"instance": W["instance"], "reason": "bad_signature"}]),
    Case("LinkyReadingsQuarantined", [
        _s("linky_stream_readings_rejected_total", {**W, "reason": "future_reading"}, "0x10 1x100"),
        _s("linky_stream_readings_rejected_total", {**W, "reason": "replay"}, "0+1x100"),
    ], 9, 12, 75, [{"instance": W["instance"], "reason": "future_reading"}]),
    Case("LinkyInvalidContractRecords", [
        _s("linky_contract_records_rejected_total", W, "0x10 2x100"),
    ], 9, 12, 75, [{"instance": W["instance"]}]),
    Case("LinkyEdgeGatewayDown", [_s("up", E, "1 1 0x9 1x5")], 6, 9, 13, [E]),
    Case("LinkyEdgeDeviceSilent", [
        _s("linky_edge_last_frame_age_seconds", {**E, "device": "tic1"}, "1x5 200x9 1x5"),
    ], 10, 13, 17, [{**E, "device": "tic1"}]),
    Case("LinkyEdgeSpoolGrowing", [_s("linky_edge_spool_readings", E, "0+50x40 0x20")], 16, 22, 43, [E]),
    Case("LinkyEdgeSpoolOldReadings", [
        _s("linky_edge_spool_oldest_age_seconds", E, "0x5 4000x9 0x5"),
    ], 10, 13, 17, [E]),
    Case("LinkyEdgeReadingsDropped", [
        _s("linky_edge_readings_dropped_total", {**E, "reason": "spool_full"}, "0x10 500x40"),
    ], 9, 12, 30, [{**E, "reason": "spool_full"}]),
    Case("LinkyEdgeDeviceErrors", [
        _s("linky_edge_device_errors_total", {**E, "device": "tic1", "reason": "absent"}, "0x5 1+1x40 41x20"),
    ], 20, 26, 56, [{"instance": E["instance"], "device": "tic1"}]),
    Case("LinkyDecoderInvalidGroups", [
        _s("linky_edge_groups_total", {**E, "device": "tic1"}, "0+1000x70"),
        _s("linky_edge_invalid_groups_total", {**E, "device": "tic1", "label": "PAPP"}, "0x10 50+50x29 1500x30"),
    ], 27, 33, 52, [{"instance": E["instance"], "device": "tic1"}]),
    Case("LinkyPortalDown", [_s("up", P, "1 1 0x5 1x5")], 3, 5, 9, [P]),
    Case("LinkyPortalAuthFailuresHigh", [
        _s("linky_portal_auth_failures_total", {**P, "reason": "bad_password"}, "0x5 120+120x29 3720x20"),
    ], 14, 20, 43, [{"instance": P["instance"]}]),
    Case("LinkyPortalLockoutsSpike", [_s("linky_portal_lockouts_total", P, "0x10 30x40")], 9, 12, 30,
         [{"instance": P["instance"]}]),
]


def _series(metric: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


_LABEL_REF = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")


def _expand(template: str, labels: dict[str, str]) -> str:
    return _LABEL_REF.sub(lambda m: labels.get(m.group(1), ""), template)


def render_tests(rules_file: str) -> dict[str, Any]:
    """The promtool test file for ``rules_file`` (one test group per alert)."""
    by_name = {a.name: a for a in R.alerts()}
    in_file = {r.name for g in R.GROUPS if g.file == rules_file for r in g.rules if isinstance(r, R.Alert)}
    tests = []
    for case in CASES:
        if case.alert not in in_file:
            continue
        alert = by_name[case.alert]
        expected = []
        for labels in case.labels:
            expected.append({
                "exp_labels": {"severity": alert.severity, **labels},
                "exp_annotations": {k: _expand(v, labels) for k, v in alert.annotations().items()},
            })
        tests.append({
            "name": f"{case.alert}: not before {alert.for_}, fires, clears",
            "interval": "1m",
            "input_series": [{"series": _series(m, lab), "values": v} for m, lab, v in case.series],
            "alert_rule_test": [
                {"eval_time": f"{case.before}m", "alertname": case.alert, "exp_alerts": []},
                {"eval_time": f"{case.firing}m", "alertname": case.alert, "exp_alerts": expected},
                {"eval_time": f"{case.cleared}m", "alertname": case.alert, "exp_alerts": []},
            ],
        })
    files = [f"../{rules_file}"] if rules_file == "linky.rules.yml" else ["../linky.rules.yml", f"../{rules_file}"]
    return {"rule_files": files, "evaluation_interval": "1m", "tests": tests}
