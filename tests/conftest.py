"""Shared fixtures. The real local stack (Kafka KRaft + redis-server, deploy/local) is brought up
once per session by the ``stack`` fixture, or reused if it is already running; whatever the
session started it stops at the end (set LINKY_TEST_KEEP_STACK=1 to keep it).

``--clock-at=ISO`` (or ``LINKY_TEST_CLOCK_AT``) shifts the product's clock (stream/clock.py) for the
whole session: the offset is exported as ``LINKY_CLOCK_OFFSET_SECONDS`` before any test runs, so the
worker, CLI and edge subprocesses the tests start read the same shifted clock as the tests do.
A naive ISO time is Europe/Paris. ``make test`` runs the date-sensitive tests once more this way.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from pathlib import Path

from datetime import datetime

import pytest

from deploy.local import stack as local_stack
from stream import clock

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
FRAMES_DIR = SHARED_DIR / "tic" / "frames"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-at", default=os.environ.get("LINKY_TEST_CLOCK_AT") or None, metavar="ISO",
        help="shift the product's clock so that it reads this instant when the session starts "
             "(naive = Europe/Paris); subprocesses inherit it through LINKY_CLOCK_OFFSET_SECONDS",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clock: date-sensitive, run again with a shifted clock by make test")
    at = config.getoption("--clock-at")
    if at:
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            when = when.replace(tzinfo=clock.PARIS)
        os.environ[clock.OFFSET_ENV] = repr(clock.offset_for(when))
        clock.reset()


# Unit modules whose subject is calendars, contracts, battery, surplus, alerts or the clock; with
# every integration test but test_stack (the bare Kafka/Redis/faust plumbing, no product clock)
# they carry the ``clock`` marker (``make test`` runs them again with a shifted clock).
DATE_SENSITIVE_UNIT = {
    "test_alert_preferences", "test_alerts", "test_battery", "test_bill", "test_calendar", "test_clock", "test_consumption", "test_cost",
    "test_consumption_properties", "test_contract_cli", "test_contracts", "test_deltas", "test_edge_reader",
    "test_ledger", "test_ledger_refold", "test_ledger_storage", "test_live", "test_readings_agent", "test_surplus",
    "test_tariff_contract",
}  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if (path.parent.name == "integration" and path.stem != "test_stack") or path.stem in DATE_SENSITIVE_UNIT:
            item.add_marker(pytest.mark.clock)


def pytest_report_header(config: pytest.Config) -> str:
    shift = clock.offset_seconds()
    if not shift:
        return "product clock: the system clock"
    return f"product clock: shifted by {shift:+.0f} s, now {clock.now_paris().isoformat(timespec='seconds')}"


async def _warm_up(bootstrap: str) -> None:
    """A broker that has just started takes about a second to acknowledge the first records of its
    first new topic: a test run alone on it (the edge's "nothing spooled on a healthy broker")
    saw that as an outage. One topic created and one record acknowledged here, once per session."""
    from aiokafka import AIOKafkaProducer

    from tests.integration.stream_support import create_topic  # imports this module: here, not at the top

    topic = f"t.warm-up.{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"warm-up"), 60)
    finally:
        await producer.stop()


@pytest.fixture(scope="session")
def stack() -> Iterator[local_stack.StackConfig]:
    cfg = local_stack.StackConfig.from_env()
    try:
        started = local_stack.up(cfg, timeout=180, quiet=True)
    except local_stack.StackError as exc:
        pytest.fail(f"the local stack could not be started: {exc}")
    if started.get("kafka"):
        asyncio.run(_warm_up(cfg.bootstrap_servers))
    yield cfg
    if any(started.values()) and not os.environ.get("LINKY_TEST_KEEP_STACK"):
        local_stack.down(cfg, quiet=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: local_stack.StackConfig) -> str:
    return stack.bootstrap_servers


@pytest.fixture(scope="session")
def redis_url(stack: local_stack.StackConfig) -> str:
    """The tests' own Redis client: the stack's admin user (every command; the stack has ACLs)."""
    return stack.redis_admin_url


@pytest.fixture(scope="session")
def redis_admin_url(stack: local_stack.StackConfig) -> str:
    return stack.redis_admin_url


@pytest.fixture
async def redis_admin(redis_admin_url: str) -> AsyncIterator[Any]:
    """A Redis client as the stack's admin user (every command), closed after the test."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_admin_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_worker_url(stack: local_stack.StackConfig) -> str:
    """What a worker subprocess gets as LINKY_REDIS_URL: the ``linky-worker`` ACL user."""
    return stack.redis_worker_url


@pytest.fixture(scope="session")
def redis_portal_url(stack: local_stack.StackConfig) -> str:
    """The ``linky-portal`` ACL user (SUBSCRIBE/GET on ``linky:*``, PING)."""
    return stack.redis_portal_url


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("readings")`` -> a topic/group/key name no other test run uses."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]

    def make(prefix: str) -> str:
        return f"t.{prefix}.{test}.{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def frames_dir() -> Path:
    if not FRAMES_DIR.is_dir():
        pytest.skip(f"real TIC frames not found at {FRAMES_DIR} (the shared/ folder beside the checkout)")
    return FRAMES_DIR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
