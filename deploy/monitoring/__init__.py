"""Monitoring as code: Prometheus alerting/recording rules, their promtool unit tests and the
Grafana dashboards, generated from Python (``python -m deploy.monitoring render``) into
``deploy/production/prometheus/`` and ``deploy/production/grafana/``.

- ``rules.py``: every recording and alerting rule, with production ``for:`` durations;
  ``render_rules(for_override=...)`` renders a copy with test-sized durations (integration test);
- ``rule_tests.py``: the promtool unit tests (one case per alert: not before its ``for:``,
  fires, clears);
- ``names.py``: the metric names the exporters really export (``exporter_metric_names()``);
- ``promql.py``: the metric names an expression uses (checked against ``names.py``);
- ``dashboards.py``: the Grafana dashboards.
"""
