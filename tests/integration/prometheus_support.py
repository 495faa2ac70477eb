"""A real Prometheus (Debian's ``prometheus`` binary, installed by ``python -m deploy.local deps``)
for integration tests: loopback, a free port, a temp data dir, 1 s scrape and evaluation
intervals, and the shipped rules rendered with test-sized ``for:`` durations
(deploy/monitoring/rules.py ``render_rules(for_override=...)``).

Scrape jobs are given as ``{job: [host:port, ...]}``; the job names are the production ones
(deploy/monitoring/rules.py ``WORKER_JOB``, ``EDGE_JOB``, ``PORTAL_JOB``) so the rules match.
To scrape the customer portal too, add ``PORTAL_JOB: ["127.0.0.1:<port>"]`` to the jobs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from deploy.monitoring import rules
from deploy.monitoring.render import to_yaml
from tests.conftest import free_port

TEST_FOR = "5s"


class Prometheus:
    def __init__(self, workdir: Path, jobs: dict[str, list[str]], *, for_override: str = TEST_FOR) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        workdir.mkdir(parents=True, exist_ok=True)
        rule_files = []
        for name in rules.rule_files():
            path = workdir / name
            path.write_text(to_yaml(rules.render_rules(name, for_override=for_override)))
            rule_files.append(str(path))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": rule_files,
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }
        (workdir / "prometheus.yml").write_text(to_yaml(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> "Prometheus":
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run `python -m deploy.local deps`"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={self.workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        end = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"prometheus did not start:\n{self.tail()}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def alerts(self, name: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if name is None or a["labels"]["alertname"] == name]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]
