"""A real Prometheus scrapes a real worker, a real edge reader (simulated meter on a pty) and a real
customer portal, with
the shipped rules (test-sized ``for:``): every target is up, every rule evaluates without error,
the worker's lag and the edge's spool series are there; the worker is killed and
``LinkyWorkerDown`` fires in Prometheus's own alerts API; restarted, the alert resolves.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from deploy.monitoring import rules
from stream import clock
from teleinfo.simulator import spawn_simulator
from tests.conftest import free_port
from tests.integration import edge_support
from tests.integration.portal_world import PortalProcess
from tests.integration.prometheus_support import TEST_FOR, Prometheus
from tests.integration.stream_support import Worker, create_topic, wait_for, worker_env

pytestmark = pytest.mark.integration


async def test_prometheus_scrapes_worker_and_edge_and_sees_the_worker_go_down_and_back(
        tmp_path: Path, kafka_bootstrap: str, redis_url: str, stack, unique_name) -> None:
    topic, app_id = unique_name("prom"), unique_name("prom-app")
    await create_topic(kafka_bootstrap, topic, 2)
    env = worker_env(kafka_bootstrap, redis_url, topic, app_id, LINKY_TOPIC_PARTITIONS="2",
                     LINKY_CLOCK_OFFSET_SECONDS=repr(clock.offset_seconds()))
    worker = Worker("worker", env, tmp_path / "data", tmp_path).start()
    sim = spawn_simulator(tmp_path / "dev", ["standard,tri,producer,tempo,kva=12"], speed=20)
    edge_port = free_port()
    reader = edge_support.start_reader([str(tmp_path / "dev" / "meter-0")], kafka_bootstrap, topic,
                                       tmp_path / "spool", edge_port, tmp_path / "reader.log")
    portal = PortalProcess(tmp_path, stack.redis_url, "linky-portal", stack.redis_password_file("linky-portal"),
                           worker_url=f"http://127.0.0.1:{worker.port}").start()  # fmt: skip
    jobs = {rules.WORKER_JOB: [f"127.0.0.1:{worker.port}"], rules.EDGE_JOB: [f"127.0.0.1:{edge_port}"],
            rules.PORTAL_JOB: [f"127.0.0.1:{portal.metrics_port}"]}  # fmt: skip
    prom = Prometheus(tmp_path / "prometheus", jobs).start()
    try:
        wait_for(lambda: len(prom.targets()) == 3 and all(t["health"] == "up" for t in prom.targets()),
                 120, "every target up in Prometheus", [worker])
        assert {t["labels"]["job"] for t in prom.targets()} == {rules.WORKER_JOB, rules.EDGE_JOB, rules.PORTAL_JOB}
        assert prom.alerts("LinkyPortalDown") == []
        # readings flow edge -> Kafka -> worker, as Prometheus sees it
        wait_for(lambda: bool(prom.query('linky_stream_readings_processed_total{agent="live"} > 0')), 120,
                 "the worker processed readings (Prometheus)", [worker])
        wait_for(lambda: len(prom.query("linky_stream_consumer_lag_messages")) == 2, 60,
                 "lag of both partitions", [worker])
        assert prom.query("linky_edge_spool_oldest_age_seconds")[0]["value"][1] == "0"
        # the edge is scraped on its own schedule: its first publish may be one scrape behind
        wait_for(lambda: bool(prom.query("linky_edge_published_total")), 30, "the edge's publishes (Prometheus)",
                 [worker])  # fmt: skip
        # every rule of the shipped files loads and evaluates on a real Prometheus
        groups = prom.api("rules")["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        assert len(loaded) == len(rules.alerts()) + len(rules.records())
        assert [r["name"] for r in loaded if r["health"] == "err"] == []
        assert prom.alerts("LinkyWorkerDown") == []

        worker.stop(signal.SIGKILL)
        wait_for(lambda: any(a["state"] == "firing" for a in prom.alerts("LinkyWorkerDown")), 60,
                 f"LinkyWorkerDown firing (for: {TEST_FOR})")
        alert = prom.alerts("LinkyWorkerDown")[0]
        assert alert["labels"]["instance"] == f"127.0.0.1:{worker.port}"
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["runbook_url"].endswith("#linkyworkerdown")

        worker.start()  # same port and data dir
        wait_for(lambda: prom.alerts("LinkyWorkerDown") == [], 120, "LinkyWorkerDown resolved", [worker])
        assert prom.alerts("LinkyEdgeGatewayDown") == []
    finally:
        prom.stop()
        portal.stop()
        edge_support.stop(sim)
        edge_support.stop(reader)
        worker.stop()
