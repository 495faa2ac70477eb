"""The readings agent (agents/readings.py): one faust agent for the readings topic, calling the
live, consumption and battery handlers for each event, each guarded on its own.

Runs the real agent in faust's ``test_context`` (no broker) with the handlers replaced by
recorders: the tables and Redis are not touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.datadir import private_datadir

with private_datadir("linky-unit-readings-") as _datadir:  # never .stack/worker-data; removed at exit
    from agents import battery, consumption, live, readings
    from stream import metrics
    from stream.app import app, readings_topic


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


def _handler_calls() -> list[tuple[Any, ...]]:
    """The handler calls both paths make for the same three readings: a keyed one received at
    2026-10-25T01:30:00.250Z (partition 2), a keyless one and one that is not JSON (partition 1).
    The contract is looked up once per keyed reading and handed to the handlers that price or
    credit it; a keyless reading's PDL is in its payload: each handler resolves it (UNRESOLVED)."""
    one = {"a": 1, "received_at": "2026-10-25T01:30:00.250+00:00"}
    at, unresolved = 1792891800.25, readings.UNRESOLVED
    return [
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
    assert contracts == ["30000000000001"]
    assert calls == _handler_calls()


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


class _Message:
    """What faust's consumer hands ``fold_messages``: a record of the readings topic."""

    def __init__(self, offset: int, key: bytes | None, value: bytes, partition: int = 0, headers: Any = None) -> None:
        self.topic = readings_topic.get_topic_name()
        self.partition, self.offset, self.key, self.value, self.headers = partition, offset, key, value, headers
        self.tp = (self.topic, partition)


class _Consumer:
    """faust's consumer as ``fold_messages`` uses it: tracking, acking, the sensors told."""

    def __init__(self) -> None:
        self.tracked: list[int] = []
        self.acked: list[int] = []
        self.out: list[int] = []
        self.app = self
        self.sensors = self

    def track_message(self, message: _Message) -> None:
        self.tracked.append(message.offset)

    def ack(self, message: _Message) -> bool:
        self.acked.append(message.offset)
        return True

    def on_message_out(self, tp: Any, offset: int, message: _Message) -> None:
        self.out.append(offset)


async def test_a_fetch_folded_by_the_consumer_goes_through_the_same_fold_and_is_acked_only_by_the_flush(
    calls: list[tuple[Any, ...]], contracts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from faust.streams import current_event
    from stream.state import writeback

    seen_partitions: list[int] = []
    original = live.handle
    monkeypatch.setattr(live, "handle", lambda *args, **kw: (seen_partitions.append(current_event().message.partition),
                                                             original(*args, **kw)))  # fmt: skip
    monkeypatch.setattr(writeback, "_barrier", None)  # no Redis publisher in a unit test
    await writeback.drain()
    consumer = _Consumer()
    batch = [
        _Message(7, b"30000000000001", b'{"a": 1, "received_at": "2026-10-25T01:30:00.250+00:00"}', partition=2),
        _Message(8, None, b'{"a": 2}', partition=1),
        _Message(9, None, b"not json", partition=1),
    ]
    await readings.fold_messages(consumer, batch)
    assert contracts == ["30000000000001"]
    assert calls == _handler_calls()  # the agent's order and arguments (test above)
    assert seen_partitions == [2, 1, 1]  # faust's current event: table reads go to the reading's partition
    assert current_event() is None  # not left set after the fetch
    assert consumer.tracked == [7, 8, 9] and writeback.held() == 3
    assert consumer.acked == []  # folded, not acked: the state is not in the changelog yet
    await writeback.flush()
    assert sorted(consumer.acked) == [7, 8, 9] and sorted(consumer.out) == [7, 8, 9]
    assert writeback.held() == 0


def test_the_consumer_folds_the_readings_topic_itself_by_default() -> None:
    assert readings.settings.readings_direct
    assert app.linky_direct_topics == {readings_topic.get_topic_name(): readings.fold_messages}


async def test_a_rebalance_cancelling_the_fetch_at_its_await_leaves_nothing_of_the_reading_behind(
    calls: list[tuple[Any, ...]], contracts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer runs ``fold_messages`` under ``wait_first(..., suspend_flow)``: a rebalance
    cancels it at an await. The one await before a reading is held (waiting for a tick's
    publishes of its PDL) comes before the trust check changes anything, so the cancelled
    reading is neither judged, folded, tracked nor held: it is fetched again after the seek."""
    import asyncio

    from stream.state import writeback

    admitted: list[Any] = []
    real_admit = readings.gateways.admit
    monkeypatch.setattr(readings.gateways, "admit", lambda event, *a, **kw: (admitted.append(event.message.offset),
                                                                            real_admit(event, *a, **kw))[1])  # fmt: skip
    settling = asyncio.Event()

    async def settle(pdl: str) -> None:  # a tick's flush that does not finish before the rebalance
        settling.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(readings.battery, "publishes_wait", lambda: True)
    monkeypatch.setattr(readings.battery, "settle", settle)
    monkeypatch.setattr(writeback, "_barrier", None)
    await writeback.drain()
    held_before = writeback.held()
    consumer = _Consumer()
    task = asyncio.ensure_future(readings.fold_messages(consumer, [_Message(11, b"30000000000004", b'{"a": 4}')]))
    await asyncio.wait_for(settling.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert admitted == [] and calls == [] and contracts == []
    assert consumer.tracked == [] and consumer.acked == [] and writeback.held() == held_before


async def test_faust_s_monitor_sees_the_readings_folded_by_the_consumer(
    calls: list[tuple[Any, ...]], contracts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust's consumer reports a partition whose stream never starts processing (an error log
    after ``stream_processing_timeout``) from its monitor's ``stream_inbound_time``."""
    from stream.state import writeback

    monkeypatch.setattr(writeback, "_barrier", None)
    message = _Message(21, b"30000000000005", b'{"a": 5}', partition=3)
    app.monitor.stream_inbound_time.pop(message.tp, None)
    await readings.fold_messages(_Consumer(), [message])
    assert message.tp in app.monitor.stream_inbound_time
    await writeback.drain()


async def test_a_reading_waits_for_room_in_the_redis_queue_before_anything_is_folded(
    calls: list[tuple[Any, ...]], contracts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back-pressure from Redis: with the publish queue half full, a reading waits (before the
    trust check, like ``settle``) until the publisher made room, instead of publishing into a
    full queue that drops payloads; the wait is counted."""
    import asyncio

    from stream.state import writeback

    class Publisher:
        def __init__(self) -> None:
            self.room = asyncio.Event()

        def backlogged(self) -> bool:
            return not self.room.is_set()

        async def wait_for_room(self) -> bool:
            await self.room.wait()
            return True

        def begin_coalescing(self) -> None:
            pass

        def end_coalescing(self) -> None:
            pass

    publisher = Publisher()
    monkeypatch.setattr(readings, "publisher", publisher)
    monkeypatch.setattr(writeback, "_barrier", None)
    room = metrics.REDIS_BACKPRESSURE.labels("room")
    waits = room._value.get()
    task = asyncio.ensure_future(readings.fold_messages(_Consumer(), [_Message(31, b"30000000000006", b'{"a": 6}')]))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done() and calls == [] and contracts == []  # waiting, nothing judged or folded
    publisher.room.set()
    await asyncio.wait_for(task, 5)
    assert [call[0] for call in calls] == ["live", "consumption", "battery"] and contracts == ["30000000000006"]
    assert room._value.get() == waits + 1
    await writeback.drain()


def test_a_fetch_is_folded_per_pdl_each_in_its_order_the_pdls_in_order_of_their_first_reading() -> None:
    """``by_pdl``: a PDL's readings of one fetch in a row, in offset order; the groups in the order
    of their first reading; a run cut at ``GROUP_MAX``; keyless records alone."""
    a, b, c = b"30000000000001", b"30000000000002", b"30000000000003"
    keys = [a, b, a, None, c, b, a, None, c]
    batch = [_Message(offset, key, b"{}") for offset, key in enumerate(keys)]
    groups = [[m.offset for m in group] for group in readings.by_pdl(batch)]
    assert groups == [[0, 2, 6], [1, 5], [3], [4, 8], [7]]
    many = [_Message(offset, a if offset % 2 else b, b"{}") for offset in range(4 * readings.GROUP_MAX)]
    groups = [[m.offset for m in group] for group in readings.by_pdl(many)]
    assert [len(g) for g in groups] == [readings.GROUP_MAX] * 4
    assert sorted(o for g in groups for o in g) == list(range(4 * readings.GROUP_MAX))  # none lost, none twice
    # a full run of b is followed by a's (started before), then b's next run starts where it was cut
    assert groups[0][0] == 0 and groups[1][0] == 1 and groups[2][0] == 2 * readings.GROUP_MAX


async def test_the_readings_of_a_pdl_in_a_fetch_are_folded_in_a_row_and_all_acked_by_the_flush(
    calls: list[tuple[Any, ...]], contracts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream.state import writeback

    monkeypatch.setattr(writeback, "_barrier", None)
    await writeback.drain()
    consumer = _Consumer()
    a, b = b"30000000000011", b"30000000000012"
    keys = enumerate([a, b, a, b, a], 40)
    batch = [_Message(offset, key, b'{"n": %d}' % offset, partition=3) for offset, key in keys]
    await readings.fold_messages(consumer, batch)
    folded = [(call[1], call[2]["n"]) for call in calls if call[0] == "battery"]
    assert folded == [(a, 40), (a, 42), (a, 44), (b, 41), (b, 43)]
    assert [call[0] for call in calls[:3]] == ["live", "consumption", "battery"]  # each reading: every handler
    assert sorted(consumer.tracked) == [40, 41, 42, 43, 44] and consumer.acked == []
    await writeback.flush()
    assert sorted(consumer.acked) == [40, 41, 42, 43, 44]
