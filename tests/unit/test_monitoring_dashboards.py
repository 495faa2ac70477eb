"""The Grafana dashboards (deploy/monitoring/dashboards.py -> deploy/production/grafana/): every
PromQL expression is valid for promtool (each becomes a recording rule of a generated file) and
names only metrics the exporters export or rules record (deploy/monitoring/names.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.monitoring import dashboards, names, promql, render


def test_every_panel_has_queries_and_boards_are_distinct() -> None:
    boards = dashboards.dashboards()
    assert set(boards) == {"pipeline", "worker", "edge", "portal"}
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        for panel in board["panels"]:
            assert panel["targets"], panel["title"]
    for name in boards:  # the shipped files are the rendered ones
        assert json.loads((render.GRAFANA_DIR / f"{name}.json").read_text()) == boards[name]


def test_promtool_accepts_every_dashboard_expression(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `python -m deploy.local deps`")
    exprs = dashboards.expressions()
    rules = [{"record": f"dashboard:check_{i}", "expr": expr} for i, (_, _, expr) in enumerate(exprs)]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(render.to_yaml({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_promtool_check_would_catch_a_broken_expression(tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or pytest.fail("promtool is not installed")
    path = tmp_path / "bad.rules.yml"
    path.write_text(render.to_yaml({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum(rate(linky_edge_published_total[5m])"}]}]}))
    assert subprocess.run([promtool, "check", "rules", str(path)], capture_output=True).returncode != 0


def test_dashboards_name_only_exported_metrics() -> None:
    known = names.exporter_metric_names()
    unknown = {(board, title): sorted(promql.metric_names(expr) - known)
               for board, title, expr in dashboards.expressions() if promql.metric_names(expr) - known}
    assert unknown == {}
    for board in dashboards.dashboards().values():  # template variables' queries too
        for var in board["templating"]["list"]:
            inner = re.fullmatch(r"label_values\((.*), \w+\)", var["query"]).group(1)
            assert promql.metric_names(inner) <= known
