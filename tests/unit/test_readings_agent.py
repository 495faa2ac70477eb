"""The readings agent (agents/readings.py): one faust agent for the readings topic, calling the
live, consumption and battery handlers for each event, each guarded on its own.

Runs the real agent in faust's ``test_context`` (no broker) with the handlers replaced by
recorders: the tables and Redis are not touched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

_datadir = os.environ.get("LINKY_DATADIR")
_tmp = tempfile.TemporaryDirectory(prefix="linky-unit-readings-")  # removed at exit
os.environ["LINKY_DATADIR"] = _tmp.name  # never .stack/worker-data
try:
    from agents import battery, consumption, live, readings
    from stream import metrics
    from stream.app import app, readings_topic
finally:
    if _datadir is None:
        del os.environ["LINKY_DATADIR"]
    else:
        os.environ["LINKY_DATADIR"] = _datadir


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, ...]]]:
    seen: list[tuple[Any, ...]] = []
    for module, name in ((live, "live"), (consumption, "consumption"), (battery, "battery")):
        monkeypatch.setattr(module, "handle", lambda key, value, partition, received_at, name=name, **kw:
                            seen.append((name, key, value, partition, received_at, *kw.values())))  # fmt: skip
    yield seen


@pytest.fixture
def contracts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The agent's contract lookups (one per keyed reading); each returns a marker naming its PDL."""
    looked_up: list[str] = []

    def contract_for(pdl: str) -> str:
        looked_up.append(pdl)
        return f"contract of {pdl}"

    monkeypatch.setattr(readings, "contract_for", contract_for)
    return looked_up


def test_the_readings_topic_has_one_agent() -> None:
    topic = readings_topic.get_topic_name()
    on_readings = [agent.name for agent in app.agents.values() if topic in agent.channel.topics]
    assert on_readings == ["readings"]


async def test_each_reading_is_parsed_once_and_goes_to_the_three_handlers_in_order(
    calls: list[tuple[Any, ...]], contracts: list[str]
) -> None:
    received = b'{"a": 1, "received_at": "2026-10-25T01:30:00.250+00:00"}'
    async with readings.readings_agent.test_context() as agent:
        await agent.put(received, key=b"30000000000001", partition=2)
        await agent.put(b'{"a": 2}', key=None, partition=1)
        await agent.put(b'not json', key=None, partition=1)  # handed over raw: each handler counts it
    at = 1792891800.25
    one = {"a": 1, "received_at": "2026-10-25T01:30:00.250+00:00"}
    # the contract looked up once per reading and handed to the handlers that price or credit it;
    # a keyless reading's PDL is in its payload: each handler resolves it (UNRESOLVED)
    unresolved = readings.UNRESOLVED
    assert contracts == ["30000000000001"]
    assert calls == [
        ("live", b"30000000000001", one, 2, at),
        ("consumption", b"30000000000001", one, 2, at, "contract of 30000000000001"),
        ("battery", b"30000000000001", one, 2, at, "contract of 30000000000001"),
        ("live", None, {"a": 2}, 1, None),
        ("consumption", None, {"a": 2}, 1, None, unresolved),
        ("battery", None, {"a": 2}, 1, None, unresolved),
        ("live", None, b"not json", 1, None),
        ("consumption", None, b"not json", 1, None, unresolved),
        ("battery", None, b"not json", 1, None, unresolved),
    ]


async def test_a_failing_handler_stops_neither_the_others_nor_the_stream(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("bug")

    errors = (
        metrics.READINGS.labels("live", "error"),
        metrics.READINGS.labels("consumption", "error"),
        battery.READINGS.labels("error"),
    )
    for module, name in ((live, "live"), (consumption, "consumption"), (battery, "battery")):
        with monkeypatch.context() as patch:
            patch.setattr(module, "handle", broken)
            before = [child._value.get() for child in errors]
            calls.clear()
            async with readings.readings_agent.test_context() as agent:
                await agent.put(b"{}", key=b"30000000000002", partition=0)
                await agent.put(b"{}", key=b"30000000000003", partition=0)
            after = [child._value.get() for child in errors]
        others = {"live", "consumption", "battery"} - {name}
        assert sorted(c[0] for c in calls) == sorted([*others, *others])  # both readings, the others
        assert [a - b for a, b in zip(after, before)] == [2 if n == name else 0 for n in ("live", "consumption", "battery")]
