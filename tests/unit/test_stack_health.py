"""deploy/local/stack.py ``wait_healthy``: a service seen for an instant as not ours (a JVM's
start-up chdir into /tmp/hsperfdata_$USER, the CI failure of 2026-12-02) is looked at again
before it is called dead; one that stays gone still fails at once with its log's tail."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from deploy.local import stack


def _cfg(tmp_path: Path) -> stack.StackConfig:
    return stack.StackConfig(stack_dir=tmp_path / ".stack", cache_dir=tmp_path / "cache", kafka_port=9,
                             controller_port=9, redis_port=9, kafka_heap="256m")


def _sequence(values: list[int | None]) -> Iterator[int | None]:
    yield from values
    while True:
        yield values[-1]


def test_a_service_seen_once_outside_its_directory_is_not_called_dead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pids = _sequence([None, 4242])  # the first look falls in the JVM's chdir, the second does not
    healthy = iter([False, True])
    monkeypatch.setattr(stack, "_running_pid", lambda cfg, name: next(pids) if name == "kafka" else 1)
    monkeypatch.setattr(stack, "_redis_admin_ping", lambda cfg: True)
    monkeypatch.setattr(stack, "_kafka_healthy", lambda cfg: next(healthy))
    monkeypatch.setattr(stack.time, "sleep", lambda s: None)
    stack.wait_healthy(_cfg(tmp_path), timeout=5)
    assert next(healthy, "done") == "done"  # it waited for kafka to answer


def test_a_service_that_stays_gone_fails_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path)
    log = cfg.logs / "kafka" / "server.log"
    log.parent.mkdir(parents=True)
    log.write_text("ERROR Address already in use\n")
    monkeypatch.setattr(stack, "_running_pid", lambda cfg, name: None if name == "kafka" else 1)
    monkeypatch.setattr(stack, "_redis_admin_ping", lambda cfg: True)
    monkeypatch.setattr(stack, "_kafka_healthy", lambda cfg: False)
    monkeypatch.setattr(stack.time, "sleep", lambda s: None)
    with pytest.raises(stack.StackError, match="kafka exited during start-up(?s:.*)Address already in use"):
        stack.wait_healthy(cfg, timeout=5)
