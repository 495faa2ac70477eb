"""The write-back buffer (stream/writeback.py) over plain mappings: read-your-writes, the write
order of a flush, acks only after the changelog acknowledged, failures keep everything."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.streams import current_event

from stream.writeback import TOMBSTONE, Entry, PublishOrder, WriteBack, partition_context


class Table(dict):  # type: ignore[type-arg]
    """A mapping with a name that records the order of its writes (and their partition)."""

    def __init__(self, name: str, log: list[tuple[Any, ...]]) -> None:
        super().__init__()
        self.name = name
        self.log = log

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = current_event()
        self.log.append(("set", self.name, key, event.message.partition if event else None))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.log.append(("del", self.name, key))
        super().__delitem__(key)


class ChangelogTable(Table):
    """A table whose changelog sends return futures the test resolves (faust's ``send_changelog``)."""

    def __init__(self, name: str, log: list[tuple[Any, ...]]) -> None:
        super().__init__(name, log)
        self.futures: list[asyncio.Future[None]] = []
        self.data = self

    def send_changelog(self, partition: int, key: bytes, value: bytes | None, **kw: Any) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


class Message:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset, self.tp = partition, offset, ("t", partition)


class Event:
    def __init__(self, partition: int, offset: int, acked: list[int]) -> None:
        self.message = Message(partition, offset)
        self._acked = acked

    def ack(self) -> bool:
        self._acked.append(self.message.offset)
        return True


class Stream:
    def _on_stream_event_out(self, *args: Any) -> None:
        pass

    def _on_message_out(self, *args: Any) -> None:
        pass


def make(interval: float = 5.0) -> tuple[WriteBack, list[float]]:
    now = [0.0]
    return WriteBack(source_topic="readings", interval_seconds=interval, monotonic=lambda: now[0]), now


async def test_reads_see_buffered_writes_and_tables_see_nothing_before_the_flush() -> None:
    log: list[tuple[Any, ...]] = []
    wb, _ = make()
    table = Table("consumption", log)
    table[b"old"] = b"stored"
    log.clear()
    wb.register(table)
    wb.put(table, b"pdl1", 2, Entry({"n": 1}, lambda obj: repr(obj).encode()))
    wb.delete(table, b"old", 2)
    assert wb.peek(table, b"pdl1").obj == {"n": 1}
    assert wb.peek(table, b"old") is TOMBSTONE
    assert wb.read(table, b"old") is None and wb.read(table, b"pdl1") == b"{'n': 1}"
    assert wb.peek(table, b"other") is None and wb.read(table, b"other") is None
    assert log == [] and table == {b"old": b"stored"}
    assert dict(wb.items(table, table.items())) == {b"pdl1": b"{'n': 1}"}
    await wb.flush()
    assert table == {b"pdl1": b"{'n': 1}"}
    assert wb.peek(table, b"pdl1") is None  # now read from the table


async def test_a_flush_writes_each_key_once_records_then_hot_values_then_deletions() -> None:
    log: list[tuple[Any, ...]] = []
    wb, _ = make()
    table = Table("ledger", log)
    table[b"P|bd|2026-10-01"] = b"old row"
    log.clear()
    wb.register(table)
    for n in range(3):  # three readings of the same PDL: one write of its hot value
        wb.put(table, b"P", 1, f"hot {n}".encode())
    wb.delete(table, b"P|bd|2026-10-01", 1)
    wb.put(table, b"P|bd|2026-10-25", 1, b"new row")  # written after the hot value by the handler
    wb.put(table, b"Q", 3, b"hot q")
    await wb.flush()
    assert log == [
        ("set", "ledger", b"P|bd|2026-10-25", 1),  # records first...
        ("set", "ledger", b"P", 1),  # ...then the hot value that lists them...
        ("del", "ledger", b"P|bd|2026-10-01"),  # ...then the deletions
        ("set", "ledger", b"Q", 3),  # every write in the context of its own partition
    ]
    assert table[b"P"] == b"hot 2"
    assert wb.keys_written == 4  # three puts of P coalesced into one


async def test_held_events_are_acked_only_once_kafka_acknowledged_the_changelog() -> None:
    log: list[tuple[Any, ...]] = []
    acked: list[int] = []
    wb, now = make(interval=5.0)
    table = ChangelogTable("live", log)
    wb.register(table)
    stream = Stream()
    for offset in range(3):
        wb.put(table, b"P", 0, f"v{offset}".encode())
        wb.hold(stream, Event(0, offset, acked))
    assert wb.held() == 3 and not wb.due()
    now[0] = 5.0
    assert wb.due()
    flush = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    assert table[b"P"] == b"v2" and len(table.futures) == 1  # written, one changelog record...
    assert acked == []  # ...but not acknowledged yet: nothing may be committed
    wb.put(table, b"P", 0, b"v3")  # readings go on meanwhile, into a new buffer
    wb.hold(stream, Event(0, 3, acked))
    table.futures[0].set_result(None)
    assert await flush == 1
    assert acked == [0, 1, 2]
    assert wb.held() == 1 and wb.peek(table, b"P").obj == b"v3"


async def test_a_changelog_failure_acks_nothing() -> None:
    acked: list[int] = []
    wb, _ = make()
    table = ChangelogTable("live", [])
    wb.register(table)
    wb.put(table, b"P", 0, b"v")
    wb.hold(Stream(), Event(0, 7, acked))
    flush = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    table.futures[0].set_exception(RuntimeError("broker down"))
    with pytest.raises(RuntimeError):
        await flush
    assert acked == [] and wb.failures == 1


async def test_a_failed_write_keeps_the_buffer_and_the_held_events() -> None:
    acked: list[int] = []
    wb, _ = make()

    class Broken(Table):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            raise OSError("store closed")

    table = Broken("live", [])
    wb.register(table)
    wb.put(table, b"P", 0, b"v")
    wb.hold(Stream(), Event(0, 1, acked))
    with pytest.raises(OSError):
        await wb.flush()
    assert acked == [] and wb.held() == 1 and wb.peek(table, b"P").obj == b"v"


async def test_max_held_makes_a_flush_due_before_the_interval() -> None:
    wb = WriteBack(source_topic="readings", interval_seconds=60, max_held=2, monotonic=lambda: 0.0)
    wb.hold(Stream(), Event(0, 1, []))
    assert not wb.due()
    wb.hold(Stream(), Event(0, 2, []))
    assert wb.due()


async def test_max_keys_makes_a_flush_due_before_the_interval_and_counts_keys_not_writes() -> None:
    wb = WriteBack(source_topic="readings", interval_seconds=60, max_keys=2, monotonic=lambda: 0.0)
    table = Table("live", [])
    wb.register(table)
    wb.put(table, b"P", 0, b"v1")
    wb.put(table, b"P", 0, b"v2")  # the same key again: still one dirty key
    assert not wb.due()
    wb.put(table, b"Q", 1, b"v")
    assert wb.due()
    assert wb.dirty_keys() == 2
    await wb.flush()  # the flush takes the buffer: nothing dirty, nothing due
    assert not wb.due() and wb.dirty_keys() == 0
    assert wb.flush_reasons["keys"] == 1 and wb.flush_reasons["interval"] == 0


async def test_flushes_are_counted_by_what_made_them_due() -> None:
    clock = [0.0]
    wb = WriteBack(source_topic="readings", interval_seconds=5, max_held=2, max_keys=3, monotonic=lambda: clock[0])
    table = Table("live", [])
    wb.register(table)
    wb.put(table, b"P", 0, b"v")
    clock[0] = 6.0
    assert wb.due()
    await wb.flush()
    wb.put(table, b"P", 0, b"v")
    wb.hold(Stream(), Event(0, 1, []))
    wb.hold(Stream(), Event(0, 2, []))
    await wb.flush()
    wb.put(table, b"Q", 1, b"v")
    await wb.flush([1])
    wb.put(table, b"R", 2, b"v")
    await wb.drain()
    await wb.flush()  # nothing buffered: not a flush
    assert wb.flush_reasons == {"interval": 1, "held": 1, "keys": 0, "partitions": 1, "drain": 1}


async def test_max_keys_zero_is_no_limit() -> None:
    wb = WriteBack(source_topic="readings", interval_seconds=60, max_keys=0, monotonic=lambda: 0.0)
    table = Table("live", [])
    wb.register(table)
    for n in range(100):
        wb.put(table, b"P%d" % n, 0, b"v")
    assert not wb.due()


async def test_interval_zero_writes_through_and_acks_at_once() -> None:
    log: list[tuple[Any, ...]] = []
    acked: list[int] = []
    wb, _ = make(interval=0)
    table = Table("live", log)
    wb.register(table)
    with partition_context(3, "readings"):
        wb.put(table, b"P", 3, b"v")
        wb.hold(Stream(), Event(3, 9, acked))
    assert log == [("set", "live", b"P", 3)] and acked == [9] and wb.peek(table, b"P") is None


def test_a_key_buffered_for_two_partitions_is_a_bug() -> None:
    wb, _ = make()
    table = Table("live", [])
    wb.register(table)
    wb.put(table, b"P", 0, b"v")
    with pytest.raises(ValueError):
        wb.put(table, b"P", 1, b"w")


def test_partition_context_is_what_faust_table_writes_read() -> None:
    assert current_event() is None
    with partition_context(5, "linky.readings"):
        event = current_event()
        assert event is not None and event.message.partition == 5 and event.message.topic == "linky.readings"
    assert current_event() is None


async def test_a_flush_in_flight_stays_readable_and_the_newest_value_wins() -> None:
    acked: list[int] = []
    wb, now = make()
    table = ChangelogTable("consumption", [])
    wb.register(table)
    stream = Stream()
    for i in range(250):  # more than YIELD_EVERY: the flush yields while writing
        wb.put(table, f"P{i}".encode(), 0, f"a{i}".encode())
    wb.hold(stream, Event(0, 1, acked))
    first = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    assert b"P249" not in table  # not written yet...
    assert wb.peek(table, b"P249").obj == b"a249" and wb.read(table, b"P249") == b"a249"  # ...but read
    wb.put(table, b"P249", 0, b"b249")  # a newer value while the first flush writes
    wb.hold(stream, Event(0, 2, acked))
    assert wb.read(table, b"P249") == b"b249"
    second = asyncio.ensure_future(wb.flush())
    for _ in range(10):
        await asyncio.sleep(0)
    assert table[b"P249"] == b"b249"  # the second flush wrote after the first one
    for fut in table.futures:
        fut.set_result(None)
    assert await first == 250 and await second == 1
    assert acked == [1, 2] and wb.peek(table, b"P249") is None and not wb.pending()


async def test_after_flush_runs_once_the_changelog_acknowledged_and_survives_a_failed_flush() -> None:
    wb, _ = make()
    table = ChangelogTable("ledger", [])
    wb.register(table)
    ran: list[str] = []
    wb.put(table, b"P", 0, b"v")
    wb.after_flush(0, lambda: ran.append("tick"))
    flush = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    assert ran == []  # written, not acknowledged
    table.futures[0].set_exception(RuntimeError("broker down"))
    with pytest.raises(RuntimeError):
        await flush
    assert ran == [] and wb.pending()  # given back with the buffer
    flush = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    table.futures[1].set_result(None)
    await flush
    assert ran == ["tick"]


async def test_publish_order_holds_a_pdls_later_publishes_behind_one_waiting_for_its_flush() -> None:
    wb, _ = make()
    table = ChangelogTable("ledger", [])
    wb.register(table)
    order = PublishOrder(wb)
    out: list[str] = []
    order.now("Q", lambda: out.append("Q reading"))  # nothing waits for Q: at once
    wb.put(table, b"P", 0, b"silent open")
    order.after_flush("P", 0, lambda: out.append("P open (tick)"))
    order.now("P", lambda: out.append("P clear (reading)"))  # the meter speaks during the flush wait
    assert out == ["Q reading"] and order.waiting() == 2
    first = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    wb.put(table, b"P", 0, b"month closed")  # a second tick after that flush took the buffer
    order.after_flush("P", 0, lambda: out.append("P month (tick)"))
    order.now("P", lambda: out.append("P reading 2"))
    table.futures[0].set_result(None)
    await first
    # the first tick and the reading behind it go out; the second tick waits for its own flush
    assert out == ["Q reading", "P open (tick)", "P clear (reading)"]
    second = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    table.futures[1].set_result(None)
    await second
    assert out[3:] == ["P month (tick)", "P reading 2"] and order.waiting() == 0
    order.now("P", lambda: out.append("P reading 3"))
    assert out[-1] == "P reading 3"


async def test_settle_writes_a_waiting_tick_first_so_a_readings_publishes_precede_its_own_flush() -> None:
    """A reading of a PDL whose tick publish waits for a flush: without ``settle`` the reading's
    state joins the tick's in one flush while its publishes wait behind the tick's, i.e. it is
    written before they are queued, and a crash right after loses them for good. With ``settle``
    (what the readings agent does first) the tick's flush is done before the reading is folded,
    and every publish of the reading is queued before the flush that writes its state starts."""
    events: list[str] = []
    table = ChangelogTable("ledger", [])

    def barrier() -> Any:  # what the flush of the reading's state waits for
        events.append("flush takes its buffer")
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return done

    wb = WriteBack(source_topic="readings", interval_seconds=5, monotonic=lambda: 0.0, barrier=barrier)
    wb.register(table)
    order = PublishOrder(wb)
    wb.put(table, b"P", 0, b"silent open")
    order.after_flush("P", 0, lambda: events.append("tick open published"))
    assert order.waits("P") and order.waits() and not order.waits("Q")
    settle = asyncio.ensure_future(order.settle("P"))
    await asyncio.sleep(0.01)
    assert events == ["flush takes its buffer"] and not settle.done()  # waiting for Kafka's ack
    table.futures[0].set_result(None)
    assert await settle is True and events[-1] == "tick open published" and not order.waits()
    wb.put(table, b"P", 0, b"silent cleared")  # the reading, folded after settle
    order.now("P", lambda: events.append("reading clear published"))
    flush = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0.01)
    table.futures[1].set_result(None)
    await flush
    assert events == ["flush takes its buffer", "tick open published",
                      "reading clear published", "flush takes its buffer"]  # fmt: skip
    assert table[b"P"] == b"silent cleared"


async def test_settle_waits_for_a_flush_already_writing_the_tick_and_reports_a_failed_one() -> None:
    table = ChangelogTable("ledger", [])
    wb, _ = make()
    wb.register(table)
    order = PublishOrder(wb)
    out: list[str] = []
    wb.put(table, b"P", 0, b"month closed")
    order.after_flush("P", 0, lambda: out.append("tick"))
    in_flight = asyncio.ensure_future(wb.flush())  # took the tick's buffer, waits for its ack
    await asyncio.sleep(0)
    settle = asyncio.ensure_future(order.settle("P"))
    await asyncio.sleep(0.05)
    assert not settle.done() and out == []
    table.futures[0].set_result(None)
    await in_flight
    assert await asyncio.wait_for(settle, 1) is True and out == ["tick"]
    assert await order.settle("P") is True  # nothing waits: at once

    wb.put(table, b"P", 0, b"silent open")
    order.after_flush("P", 0, lambda: out.append("tick 2"))
    settle = asyncio.ensure_future(order.settle("P"))
    await asyncio.sleep(0.01)
    table.futures[1].set_exception(RuntimeError("broker gone"))  # the flush fails: buffer given back
    assert await settle is False and order.waits("P") and out == ["tick"]
    assert await order.settle("P", timeout=0.05) is False  # still failing: bounded, never stuck
    table.futures[2].set_result(None)  # that flush goes on in the background and completes late
    await wb.drain()
    assert out == ["tick", "tick 2"] and not order.waits()


def test_publish_order_without_write_back_publishes_at_once() -> None:
    wb, _ = make(interval=0)
    order = PublishOrder(wb)
    out: list[int] = []
    order.after_flush("P", 0, lambda: out.append(1))
    order.now("P", lambda: out.append(2))
    assert out == [1, 2] and order.waiting() == 0


class _Producer:
    """faust's producer as the flush uses it: ``await send(...)`` returns the future of the ack."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int]] = []
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, *, partition: int, **kw: Any) -> Any:
        self.sent.append((topic, key, value, partition))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


class FaustLikeTable(Table):
    """A table with faust's ``app.producer``, ``changelog_topic`` and ``data.set_persisted_offset``."""

    def __init__(self, name: str, producer: _Producer) -> None:
        super().__init__(name, [])
        self.app = type("App", (), {"producer": producer})()
        self.changelog_topic = type("Topic", (), {"get_topic_name": lambda _self: f"app-{name}-changelog"})()
        self.data = self
        self.persisted: dict[Any, int] = {}

    def send_changelog(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("through faust's producer buffer: its conductor stalls the readings")

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


async def test_faust_tables_send_straight_to_the_producer_and_keep_the_highest_acked_offset() -> None:
    from aiokafka.structs import RecordMetadata, TopicPartition

    acked: list[int] = []
    producer = _Producer()
    wb, _ = make()
    live = FaustLikeTable("live", producer)
    wb.register(live)
    wb.put(live, b"P", 1, b"hot")
    wb.put(live, b"P|2026-12", 1, b"record")
    wb.put(live, b"Q", 1, b"q")
    wb.delete(live, b"Q", 1)
    wb.hold(Stream(), Event(1, 9, acked))
    live[b"Q"] = b"old"
    flush = asyncio.ensure_future(wb.flush())
    for _ in range(5):
        await asyncio.sleep(0)
    topic = "app-live-changelog"
    # the record before the hot value, the deletion last, each on the PDL's partition
    assert producer.sent == [(topic, b"P|2026-12", b"record", 1), (topic, b"P", b"hot", 1), (topic, b"Q", None, 1)]
    assert live[b"P"] == b"hot" and b"Q" not in live and acked == []  # stored, not acknowledged
    tp = TopicPartition(topic, 1)
    for offset, fut in zip((41, 42, 40), producer.futures):  # acks in any order
        fut.set_result(RecordMetadata(topic, 1, tp, offset, -1, 0, -1))
    assert await flush == 3
    assert acked == [9] and live.persisted == {tp: 42}


async def test_a_flush_writes_nothing_before_the_publishes_queued_ahead_of_it_are_out() -> None:
    """The barrier (stream/redis_publisher.py ``sent_barrier``) is taken when the flush takes its
    buffers and awaited before the first table write: after a crash the restored state is never
    ahead of what subscribers were sent. A barrier that times out is counted, and the flush
    writes anyway."""
    log: list[tuple[Any, ...]] = []
    release: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    taken: list[str] = []

    def barrier() -> Any:
        taken.append("taken")
        return release

    wb = WriteBack(source_topic="readings", interval_seconds=5, monotonic=lambda: 0.0, barrier=barrier)
    table = Table("live", log)
    wb.register(table)
    wb.put(table, b"P", 0, b"v1")
    flush = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0.01)
    assert taken == ["taken"] and log == [] and not flush.done()  # waiting for the publisher
    wb.put(table, b"P", 0, b"v2")  # a reading folded meanwhile: its own, later flush
    release.set_result(True)
    assert await flush == 1 and table == {b"P": b"v1"} and wb.barrier_timeouts == 0

    late: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    late.set_result(False)  # the publisher did not get them out in time
    wb._barrier = lambda: late
    assert await wb.flush() == 1 and table == {b"P": b"v2"} and wb.barrier_timeouts == 1


async def test_release_flushes_every_waiting_publish_and_reports_a_failed_flush() -> None:
    """``PublishOrder.release`` (the ticks agent's back-pressure, agents/battery.py): flushes the
    partitions whose state holds publishes back and returns once they went out; a failed flush
    is reported (False) and keeps them waiting, never lost."""
    table = ChangelogTable("ledger", [])
    wb, _ = make()
    wb.register(table)
    order = PublishOrder(wb)
    out: list[str] = []
    for partition, key in ((0, "P"), (1, "Q")):
        wb.put(table, key.encode(), partition, b"day closed")
        order.after_flush(key, partition, lambda key=key: out.append(key))
    order.now("P", lambda: out.append("P reading"))
    assert order.waiting() == 3
    release = asyncio.ensure_future(order.release())
    await asyncio.sleep(0.01)
    assert not release.done() and out == []  # waiting for Kafka's acknowledgement
    table.futures[0].set_result(None)
    table.futures[1].set_result(None)
    assert await asyncio.wait_for(release, 1) is True
    assert out == ["P", "P reading", "Q"] and order.waiting() == 0 and not order.waits()

    wb.put(table, b"P", 0, b"month closed")
    order.after_flush("P", 0, lambda: out.append("P month"))
    release = asyncio.ensure_future(order.release())
    await asyncio.sleep(0.01)
    table.futures[2].set_exception(RuntimeError("broker gone"))
    assert await asyncio.wait_for(release, 1) is False and order.waiting() == 1 and out[-1] == "Q"
    release = asyncio.ensure_future(order.release())
    await asyncio.sleep(0.01)
    table.futures[3].set_result(None)
    assert await asyncio.wait_for(release, 1) is True and out[-1] == "P month" and order.waiting() == 0


async def test_a_scheduled_flush_is_no_longer_due_before_its_task_runs() -> None:
    """``flush_soon`` makes ``due`` false at once. It used to stay true until the flush's task
    first ran, so each reading folded meanwhile scheduled one more flush; with two in flight the
    next reading waited for both (agents/readings.py ``_maybe_flush``): the readings stopped
    for a whole flush, about 500 ms every 5 s at 1,000 meters (the latency p99)."""
    wb, now = make()
    table = ChangelogTable("consumption", [])
    wb.register(table)
    wb.put(table, b"P", 0, b"v1")
    now[0] = 6.0
    assert wb.due()
    first = wb.flush_soon()
    assert not wb.due() and wb.flushing() == 1  # the next readings of the same fetch: no second flush
    wb.put(table, b"Q", 0, b"v1")  # folded before the task's first turn: in the same flush
    assert not wb.due()
    await asyncio.sleep(0)  # its task runs: the interval starts again from there
    wb.put(table, b"R", 0, b"v1")
    assert not wb.due()
    for fut in table.futures:
        fut.set_result(None)
    assert await first == 2 and set(table) == {b"P", b"Q"}
    now[0] = 12.0
    assert wb.due()  # R, buffered after the flush took its buffer, is due at the next interval

    cancelled = wb.flush_soon()
    assert not wb.due()
    cancelled.cancel()  # cancelled before its first turn (a stop): due again, never stuck
    await asyncio.wait([cancelled])
    await asyncio.sleep(0)  # its done callbacks
    assert wb.due() and wb.flushing() == 0
