"""The shipped Prometheus rules: promtool accepts them, every alert has a promtool unit test
that passes with the production durations and fails when ``for:`` is dropped (so each case
really checks "not before its for:"), the rendered files match deploy/monitoring/, and every
metric an expression names is exported by our code (deploy/monitoring/names.py).

promtool comes from Debian's ``prometheus`` package, installed by ``python -m deploy.local deps``
(``make test`` runs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.monitoring import names, promql, render, rule_tests, rules

PROMTOOL = shutil.which("promtool")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.fail("promtool is not installed: run `python -m deploy.local deps` (Debian package prometheus)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_rendered_files_match_their_python_source() -> None:
    assert render.stale_files() == [], "run: python -m deploy.monitoring render"


def test_promtool_check_rules_accepts_the_shipped_files() -> None:
    files = [str(render.PROMETHEUS_DIR / f) for f in rules.rule_files()]
    proc = promtool("check", "rules", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(files)


def test_promtool_unit_tests_pass_with_production_durations() -> None:
    tests = sorted(str(p) for p in (render.PROMETHEUS_DIR / "tests").glob("*.test.yml"))
    assert len(tests) == len(rules.rule_files())
    proc = promtool("test", "rules", *tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_case_and_cases_name_real_alerts() -> None:
    alert_names = [a.name for a in rules.alerts()]
    assert len(alert_names) == len(set(alert_names))
    assert sorted(c.alert for c in rule_tests.CASES) == sorted(alert_names)
    for case in rule_tests.CASES:
        assert case.before < case.firing < case.cleared, case.alert


def test_each_case_fails_when_the_alert_ignores_its_for(tmp_path: Path) -> None:
    """With every ``for:`` set to 0 the 'before' instant of each case must see the alert firing
    (the condition already holds there): proves the cases check the durations."""
    (tmp_path / "tests").mkdir()
    for file in rules.rule_files():
        (tmp_path / file).write_text(render.to_yaml(rules.render_rules(file, for_override="0s")))
        (tmp_path / "tests" / file).write_text(render.to_yaml(rule_tests.render_tests(file)))
    proc = promtool("test", "rules", *sorted(str(p) for p in (tmp_path / "tests").iterdir()))
    assert proc.returncode != 0
    for alert in rules.alerts():
        case = next(c for c in rule_tests.CASES if c.alert == alert.name)
        marker = f"alertname: {alert.name}, time: {case.before}m,"
        if alert.for_ == "0s":
            assert marker not in proc.stderr, f"{alert.name} fails without any change"
        else:
            assert marker in proc.stderr, f"{alert.name}: 'before' at {case.before}m does not test for: {alert.for_}"


def test_rules_name_only_exported_metrics() -> None:
    known = names.exporter_metric_names()
    unknown = {}
    for rule in rules.alerts() + rules.records():
        missing = promql.metric_names(rule.expr) - known
        if missing:
            unknown[getattr(rule, "name", None) or rule.record] = sorted(missing)
    assert unknown == {}


def test_names_check_catches_an_unknown_metric() -> None:
    known = names.exporter_metric_names()
    assert promql.metric_names('sum(rate(linky_stream_readings_processd_total[5m]))') - known == {
        "linky_stream_readings_processd_total"}


def test_exporter_names_come_from_the_registries() -> None:
    known = names.exporter_metric_names()
    for name in ("linky_stream_readings_processed_total", "linky_stream_processing_latency_seconds_bucket",
                 "linky_stream_consumer_lag_messages", "linky_stream_consumer_lag_seconds", "linky_redis_up",
                 "linky_faust_messages_received_total", "linky_edge_spool_oldest_age_seconds",
                 "linky_edge_last_frame_age_seconds", "linky_battery_contract_refolds_total"):
        assert name in known, name
    assert "linky_stream_readings_processed" not in known  # counters only with _total


@pytest.mark.parametrize("expr, expected", [
    ('sum by (instance) (rate(a_total{job="x", le="+Inf"}[5m])) / on(instance) b', {"a_total", "b"}),
    ("linky:edge_published:rate5m > 0 and on() ((x or on() vector(0)) == 0)", {"linky:edge_published:rate5m", "x"}),
    ('histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m] offset 1h)))', {"h_bucket"}),
    ('up{job="w"} == 0', {"up"}),
    ('deriv(g[10m]) > 1e3 and g > -Inf', {"g"}),
])
def test_promql_metric_names(expr: str, expected: set[str]) -> None:
    assert promql.metric_names(expr) == expected


def test_production_prometheus_config_loads_the_rule_files() -> None:
    config = render.PROMETHEUS_DIR.parent / "prometheus.yml"
    proc = promtool("check", "config", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for file in rules.rule_files():
        assert f"prometheus/{file}" in config.read_text()
    for job in (rules.WORKER_JOB, rules.EDGE_JOB, rules.PORTAL_JOB):
        assert f"job_name: {job}" in config.read_text()
