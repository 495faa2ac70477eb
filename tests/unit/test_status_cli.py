"""``linky-stream status``'s verdicts from Kafka offsets and worker documents (pure function;
the real stack is in tests/integration/test_operations.py)."""

from __future__ import annotations

from typing import Any

from stream.status_cli import build_report

TOPIC = "linky.readings"


def worker(url: str, partitions: dict[int, float | None], *, ready: bool = True, redis_up: bool = True,
           failed_ratio: float | None = 0.0, recovering: bool = False) -> dict[str, Any]:
    checks = {"partitions": {"ok": True, "detail": "assigned"},
              "tables": {"ok": not recovering, "in_progress": recovering, "completed": not recovering,
                         "active_remaining": 40 if recovering else 0, "active_total": 100 if recovering else 0,
                         "detail": "recovering" if recovering else "recovered"},
              "kafka": {"ok": True, "detail": "ok"}, "redis": {"ok": redis_up, "detail": "up" if redis_up else "PING failed"}}
    not_ready = [n for n, c in checks.items() if not c["ok"]]
    return {"url": url, "ready": {"ready": ready and not not_ready, "not_ready": not_ready, "checks": checks},
            "partitions": [{"topic": TOPIC, "partition": p, "lag_seconds": age} for p, age in partitions.items()],
            "redis": {"up": redis_up, "failed_ratio": failed_ratio, "failed_per_second": 0.0}}


def kafka(**lags: int) -> dict[str, Any]:
    return {"partitions": {int(k[1:]): {"end": 100 + v, "committed": 100} for k, v in lags.items()}}


def report(k: dict[str, Any], ws: list[dict[str, Any]]) -> dict[str, Any]:
    return build_report(k, ws, topic=TOPIC, group="g", max_lag_seconds=300, max_failure_ratio=0.01)


def test_all_well() -> None:
    r = report(kafka(p0=0, p1=3), [worker("http://a", {0: 1.0}), worker("http://b", {1: 2.5})])
    assert r["ok"] and r["problems"] == []
    assert [(p["partition"], p["owner"], p["lag"], p["lag_seconds"]) for p in r["partitions"]] == [
        (0, "http://a", 0, 1.0), (1, "http://b", 3, 2.5)]


def test_each_problem_is_reported() -> None:
    r = report(kafka(p0=5, p1=0, p2=0), [
        worker("http://a", {0: 900.0}, failed_ratio=0.2),
        worker("http://b", {1: 1.0}, redis_up=False, recovering=True),
        {"url": "http://c", "error": "connection refused"},
    ])
    assert not r["ok"]
    text = "\n".join(r["problems"])
    assert "partition 0 is 900 s behind (5 messages waiting)" in text
    assert "partition 2 has no owner" in text
    assert "http://a: 20.0% of Redis publishes fail" in text
    assert "worker http://b: Redis down" in text and "worker http://b not ready" in text
    assert "worker http://c unreachable" in text
    assert len(r["problems"]) == 6


def test_old_last_reading_without_waiting_messages_is_fine() -> None:
    """Quiet meters: nothing waits, so an old last reading is not lag."""
    assert report(kafka(p0=0), [worker("http://a", {0: 5000.0})])["ok"]


def test_kafka_unreachable_is_a_problem_and_workers_still_shown() -> None:
    r = report({"error": "KafkaConnectionError"}, [worker("http://a", {0: 1.0})])
    assert not r["ok"] and r["problems"] == ["kafka: KafkaConnectionError"]
    assert r["partitions"][0]["owner"] == "http://a"
