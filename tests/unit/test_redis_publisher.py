"""stream/redis_publisher.py with a fake Redis client: order, drops while down, snapshot rewrite."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from stream import metrics
from stream.redis_publisher import RedisPublisher


class FakeRedis:
    def __init__(self) -> None:
        self.down = False
        self.delay = 0.0
        self.published: list[tuple[str, Any]] = []
        self.keys: dict[str, Any] = {}

    async def send(self, commands: list[tuple[Any, ...]]) -> None:
        """``BatchClient.send``: the commands in order, all or (down) none."""
        if self.down:
            raise ConnectionError("redis down")
        if self.delay:
            await asyncio.sleep(self.delay)
        for name, *args in commands:
            if name == "PUBLISH":
                self.published.append((args[0], json.loads(args[1])))
            elif name in ("SET", "MSET"):
                for key, data in zip(args[::2], args[1::2]):
                    self.keys[key] = json.loads(data)
            else:
                raise AssertionError(f"unexpected command {name}")

    async def ping(self) -> bool:
        if self.down:
            raise ConnectionError("redis down")
        if self.delay:  # a slow Redis is slow for everything
            await asyncio.sleep(self.delay)
        return True

    async def aclose(self) -> None:
        pass


def failures(reason: str) -> float:
    return metrics.REDIS_FAILURES.labels(reason)._value.get()


async def drain(pub: RedisPublisher, steps: int = 20) -> None:
    for _ in range(steps):
        if not pub.queued and not pub.resync_pending and pub.up:
            return
        await asyncio.wait_for(pub.step(), 5)


async def test_payloads_are_published_in_order_with_their_snapshot_key() -> None:
    fake = FakeRedis()
    pub = RedisPublisher("redis://fake", batch_size=3, client_factory=lambda: fake)
    for i in range(10):
        assert pub.publish("linky:P:live", {"seq": i}, event_time=0.0)
    await drain(pub)
    assert [p["seq"] for _, p in fake.published] == list(range(10))
    assert fake.keys == {"linky:P:live": {"seq": 9}}


async def test_the_queue_gauge_and_published_counter_are_exact_at_scrape_time() -> None:
    from prometheus_client import REGISTRY

    def published() -> float:
        return REGISTRY.get_sample_value("linky_redis_published_total", {"channel": "live"}) or 0.0

    fake = FakeRedis()
    pub = RedisPublisher("redis://fake", batch_size=3, client_factory=lambda: fake)
    before = published()
    for i in range(7):
        pub.publish("linky:P:live", {"seq": i})
    assert REGISTRY.get_sample_value("linky_redis_publish_queue") == 7  # read at scrape, not set per publish
    await pub.step()  # one batch of 3
    assert REGISTRY.get_sample_value("linky_redis_publish_queue") == 4
    assert published() - before == 3  # counted per batch, every payload
    await drain(pub)
    assert REGISTRY.get_sample_value("linky_redis_publish_queue") == 0 and published() - before == 7


async def test_redis_down_drops_and_counts_then_rewrites_snapshots_from_the_source() -> None:
    fake = FakeRedis()
    state = {"linky:P:live": {"seq": 0}}
    pub = RedisPublisher("redis://fake", retry_seconds=0.01, client_factory=lambda: fake)
    pub.add_snapshot_source(lambda: [(k, json.dumps(v).encode()) for k, v in state.items()])
    fake.down = True
    before_error, before_down = failures("error"), failures("redis_down")
    pub.publish("linky:P:live", {"seq": 1})
    await pub.step()  # the batch fails: publisher goes down
    assert not pub.up and failures("error") == before_error + 1
    state["linky:P:live"] = {"seq": 2}
    assert pub.publish("linky:P:live", {"seq": 2}) is False  # dropped at once while down
    assert failures("redis_down") == before_down + 1 and pub.queued == 0
    await pub.step()  # ping fails, sleeps retry_seconds
    assert not pub.up
    fake.down = False
    await drain(pub)
    assert pub.up and fake.keys == {"linky:P:live": {"seq": 2}}  # rewritten from the tables' state
    assert fake.published == []  # missed live messages are not replayed


async def test_full_queue_drops_the_new_payload_and_schedules_a_rewrite() -> None:
    fake = FakeRedis()
    pub = RedisPublisher("redis://fake", queue_size=2, client_factory=lambda: fake)
    pub.add_snapshot_source(lambda: [("linky:P:conso", b'{"seq": 3}')])
    before = failures("queue_full")
    assert pub.publish("linky:P:conso", {"seq": 1}) and pub.publish("linky:P:conso", {"seq": 2})
    assert pub.publish("linky:P:conso", {"seq": 3}) is False
    assert failures("queue_full") == before + 1 and pub.resync_pending
    await drain(pub)
    assert [p["seq"] for _, p in fake.published] == [1, 2] and fake.keys["linky:P:conso"] == {"seq": 3}


async def test_a_slow_redis_times_out_instead_of_blocking() -> None:
    fake = FakeRedis()
    fake.delay = 5.0
    pub = RedisPublisher("redis://fake", timeout_seconds=0.05, client_factory=lambda: fake)
    before = failures("timeout")
    pub.publish("linky:P:live", {"seq": 1})
    loop = asyncio.get_running_loop()
    start = loop.time()
    await pub.step()
    assert loop.time() - start < 1.0
    assert not pub.up and failures("timeout") == before + 1


async def test_a_timeout_caused_by_a_busy_event_loop_is_not_taken_for_redis_down() -> None:
    fake = FakeRedis()
    pub = RedisPublisher("redis://fake", timeout_seconds=0.05, client_factory=lambda: fake)
    real_send = FakeRedis.send
    stalls = [1]

    async def send_while_the_loop_is_blocked(self: FakeRedis, commands: list[tuple[Any, ...]]) -> None:
        if stalls:  # the reply is there after 10 ms, but the loop is blocked for 300 ms meanwhile
            stalls.pop()
            asyncio.get_running_loop().call_soon(time.sleep, 0.3)
            await asyncio.sleep(0.01)
        await real_send(self, commands)

    late, timeouts = metrics.REDIS_LATE._value.get(), failures("timeout")
    FakeRedis.send = send_while_the_loop_is_blocked  # type: ignore[method-assign]
    try:
        pub.publish("linky:P:live", {"seq": 1})
        await pub.step()
    finally:
        FakeRedis.send = real_send  # type: ignore[method-assign]
    assert pub.up and not pub.resync_pending  # no outage, no rewrite of every snapshot key
    assert metrics.REDIS_LATE._value.get() == late + 1 and failures("timeout") == timeouts
    assert fake.published == [("linky:P:live", {"seq": 1})]  # sent again, not dropped


async def test_a_snapshot_rewrite_yields_and_sends_live_payloads_between_chunks() -> None:
    fake = FakeRedis()
    fake.delay = 0.001  # a round trip
    pub = RedisPublisher("redis://fake", batch_size=10, client_factory=lambda: fake)
    agent_ran: list[int] = []

    def source() -> Any:
        for i in range(100):
            if i == 15:  # an agent queues a newer live payload while the rewrite renders
                pub.publish("linky:P0:live", {"seq": "live"})
            yield f"linky:P{i}:live", json.dumps({"seq": i}).encode()

    async def agent() -> None:
        while True:
            agent_ran.append(len(fake.keys))
            await asyncio.sleep(0)

    pub.add_snapshot_source(source)
    task = asyncio.ensure_future(agent())
    try:
        assert await pub.rewrite_snapshots() == 100
    finally:
        task.cancel()
    assert len(agent_ran) >= 100 // 10  # the stream ran between the chunks
    assert fake.keys["linky:P0:live"] == {"seq": "live"}  # the newer payload wins over the snapshot
    assert fake.published == [("linky:P0:live", {"seq": "live"})]


@pytest.mark.parametrize("payload", [{"a": 1}, b'{"a":1}'])
def test_publish_never_raises_without_a_running_loop(payload: Any) -> None:
    pub = RedisPublisher("redis://fake", client_factory=FakeRedis)
    assert pub.publish("linky:P:live", payload) is True and pub.queued == 1


async def test_the_sent_barrier_waits_for_what_was_queued_before_it_only() -> None:
    """stream/writeback.py awaits ``sent_barrier`` before writing a flush's state: the payloads
    queued until then are out first (sent, or dropped because Redis is down)."""
    fake = FakeRedis()
    fake.delay = 0.05
    pub = RedisPublisher("redis://fake", batch_size=2, client_factory=lambda: fake)
    assert await pub.sent_barrier(0.01) is True  # nothing queued
    pub.publish("linky:P:live", {"seq": 0})
    started = time.monotonic()
    assert await pub.sent_barrier(5) is True  # no publisher task: nothing would send it, so no wait
    assert time.monotonic() - started < 1
    task = asyncio.ensure_future(pub.run())
    await asyncio.sleep(0)  # the task running
    try:
        for i in range(1, 5):
            pub.publish("linky:P:live", {"seq": i})
        barrier = asyncio.ensure_future(pub.sent_barrier(5))
        pub.publish("linky:P:live", {"seq": 99})  # after the barrier: not waited for
        fake.delay = 0.2
        assert await barrier is True
        seqs = [p["seq"] for _, p in fake.published]
        assert seqs[:5] == [0, 1, 2, 3, 4]  # everything queued before the barrier is out
        assert await pub.sent_barrier(5) is True and [p["seq"] for _, p in fake.published][-1] == 99
        assert await pub.sent_barrier(5) is True  # nothing queued: done at once
        fake.down = True
        pub.publish("linky:P:live", {"seq": 100})
        assert await pub.sent_barrier(5) is True and not pub.up  # dropped (Redis down) counts as out
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_slow_redis_times_the_barrier_out() -> None:
    fake = FakeRedis()
    fake.delay = 0.3
    pub = RedisPublisher("redis://fake", timeout_seconds=5, client_factory=lambda: fake)
    task = asyncio.ensure_future(pub.run())
    await asyncio.sleep(0)
    try:
        pub.publish("linky:P:live", {"seq": 0})
        assert await pub.sent_barrier(0.05) is False
        assert await pub.sent_barrier(5) is True
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_half_full_queue_asks_the_readings_to_wait_for_room(caplog: pytest.LogCaptureFixture) -> None:
    """Back-pressure (agents/readings.py ``fold`` waits when ``backlogged``): only while the
    publisher's task runs and Redis answers; the wait ends once a quarter of the queue is left,
    or after its timeout when Redis is that slow."""
    fake = FakeRedis()
    fake.delay = 0.05
    pub = RedisPublisher("redis://fake", queue_size=8, batch_size=2, timeout_seconds=5, client_factory=lambda: fake)
    for i in range(4):
        pub.publish("linky:P:live", {"seq": i})
    assert not pub.backlogged()  # no task: nothing would ever make room, so no wait
    assert await pub.wait_for_room(5) is True
    task = asyncio.ensure_future(pub.run())
    await asyncio.sleep(0)  # the task takes a first batch of two
    try:
        assert not pub.backlogged()
        pub.publish("linky:P:live", {"seq": 4})
        pub.publish("linky:P:live", {"seq": 5})
        assert pub.backlogged()  # half full
        assert await pub.wait_for_room(0.01) is False  # slower than the timeout
        assert await pub.wait_for_room(5) is True and pub.queued <= 2
        assert not pub.backlogged()
        fake.delay = 0.0
        for i in range(9):  # full: the ninth is dropped, with one warning for the episode
            pub.publish("linky:P:live", {"seq": i})
        pub.publish("linky:P:live", {"seq": 99})
        assert [r.getMessage() for r in caplog.records].count(
            "redis publish queue full (8 payloads): dropping new payloads, snapshot keys rewritten once it drains") == 1
        fake.down = True
        await pub.sent_barrier(5)
        assert not pub.up and not pub.backlogged()  # Redis down: drops are counted, nobody waits
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def coalesced() -> float:
    return metrics.REDIS_COALESCED._value.get()


async def test_a_coalescing_scope_renders_and_publishes_only_each_channel_s_latest_view() -> None:
    """``publish_latest`` inside a scope: a channel's later view replaces its earlier one, which
    is never rendered; the latest are queued when the scope ends, in the order their channels
    were first published; the superseded ones are counted. Outside a scope: at once."""
    fake = FakeRedis()
    pub = RedisPublisher("redis://fake", client_factory=lambda: fake)
    rendered: list[int] = []

    def view(seq: int) -> Any:
        return lambda: (rendered.append(seq), {"seq": seq})[1]

    before = coalesced()
    pub.begin_coalescing()
    pub.publish_latest("linky:A:conso", view(1))
    pub.publish_latest("linky:B:conso", view(2))
    pub.publish_latest("linky:A:conso", view(3), event_time=1.0)
    pub.publish_latest("linky:B:battery", {"seq": 4})  # a payload itself is kept aside too
    assert pub.queued == 0 and rendered == []  # nothing rendered nor queued inside the scope
    pub.end_coalescing()
    assert rendered == [3, 2]  # the first view of A never rendered
    assert coalesced() == before + 1
    pub.publish_latest("linky:A:conso", view(5))  # outside a scope: rendered and queued at once
    assert rendered == [3, 2, 5] and pub.queued == 4
    await drain(pub)
    assert fake.published == [("linky:A:conso", {"seq": 3}), ("linky:B:conso", {"seq": 2}),
                              ("linky:B:battery", {"seq": 4}), ("linky:A:conso", {"seq": 5})]  # fmt: skip
    assert fake.keys["linky:A:conso"] == {"seq": 5}


async def test_a_payload_published_in_a_scope_goes_after_its_channel_s_view_kept_aside() -> None:
    """``publish`` (an event, never coalesced) on a channel whose view is kept aside: the view is
    queued first, so the channel's subscribers still see its payloads in the order they were
    produced; other channels' views stay aside until the scope ends."""
    fake = FakeRedis()
    pub = RedisPublisher("redis://fake", client_factory=lambda: fake)
    pub.begin_coalescing()
    pub.publish_latest("linky:A:conso", lambda: {"seq": 1})
    pub.publish_latest("linky:A:battery", lambda: {"seq": 2})
    pub.publish("linky:A:conso", {"seq": 3, "events": ["meter_changed"]})
    pub.publish_latest("linky:A:conso", lambda: {"seq": 4})
    pub.end_coalescing()
    await drain(pub)
    assert [(c.split(":")[2], p["seq"]) for c, p in fake.published] == [
        ("conso", 1), ("conso", 3), ("battery", 2), ("conso", 4)]  # fmt: skip


async def test_a_view_that_fails_to_render_is_counted_and_the_others_still_go_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeRedis()
    pub = RedisPublisher("redis://fake", client_factory=lambda: fake)
    before = failures("render")

    def broken() -> Any:
        raise KeyError("bug")

    pub.begin_coalescing()
    pub.publish_latest("linky:A:conso", broken)
    pub.publish_latest("linky:B:conso", lambda: {"seq": 1})
    pub.end_coalescing()
    pub.publish_latest("linky:C:conso", broken)  # outside a scope: never raises either
    await drain(pub)
    assert failures("render") == before + 2
    assert fake.published == [("linky:B:conso", {"seq": 1})]
    assert "payload of linky:A:conso could not be rendered" in caplog.text
