"""Publisher logic with a fake Kafka sink (the real broker is in tests/integration)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from teleinfo.metrics import EdgeMetrics
from teleinfo.publisher import Publisher, encode_reading
from teleinfo.spool import Spool


class FakeSink:
    """Records what was acknowledged; ``down`` makes sends fail, ``slow`` makes them hang."""

    def __init__(self) -> None:
        self.acked: list[tuple[bytes | None, bytes]] = []
        self.down = False
        self.slow = False
        self.started = 0

    async def start(self) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.started += 1

    async def send_batch(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        if self.down:
            raise ConnectionError("broker down")
        while self.slow:
            await asyncio.sleep(0.01)
        self.acked.extend(records)

    async def stop(self) -> None:
        pass


def _reading(n: int, pdl: str = "12345678901234") -> dict:
    return {"pdl": pdl, "time": f"2025-01-01T00:00:{n:02d}.000+00:00", "import_wh": n,
            "received_at": "2025-01-01T00:00:00.000+00:00"}


def _ns(sink: FakeSink) -> list[int]:
    return [json.loads(v)["import_wh"] for _, v in sink.acked]


async def _until(cond, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


def test_encoding_is_keyed_by_pdl_and_compact() -> None:
    key, value = encode_reading({"pdl": "0123", "power_va": 5})
    assert key == b"0123" and value == b'{"pdl":"0123","power_va":5}'
    assert encode_reading({"pdl": None})[0] is None


async def test_healthy_kafka_gets_everything_directly_in_order(tmp_path: Path) -> None:
    sink, metrics = FakeSink(), EdgeMetrics()
    pub = Publisher(sink, Spool(tmp_path, 1 << 20), metrics)
    task = asyncio.create_task(pub.run())
    for n in range(30):
        pub.submit(_reading(n))
        await asyncio.sleep(0)
    await _until(lambda: len(sink.acked) == 30)
    await pub.close()
    task.cancel()
    assert _ns(sink) == list(range(30))
    assert sink.acked[0][0] == b"12345678901234"
    assert metrics.published.labels("direct")._value.get() == 30
    assert metrics.spooled._value.get() == 0
    assert list(tmp_path.glob("seg-*")) == []


async def test_outage_spools_then_drains_in_order_without_gaps(tmp_path: Path) -> None:
    sink, metrics = FakeSink(), EdgeMetrics()
    pub = Publisher(sink, Spool(tmp_path, 1 << 20), metrics, spool_after_seconds=0.2,
                    retry_max_seconds=0.05, drain_batch=7)
    task = asyncio.create_task(pub.run())
    for n in range(5):
        pub.submit(_reading(n))
    await _until(lambda: len(sink.acked) == 5)
    sink.down = True
    for n in range(5, 40):
        pub.submit(_reading(n))
        await asyncio.sleep(0.02)
    assert pub.spool.depth > 0  # the outage went to disk
    assert metrics.spool_readings._value.get() == pub.spool.depth
    sink.down = False
    for n in range(40, 50):  # new readings during the drain queue behind the spool
        pub.submit(_reading(n))
        await asyncio.sleep(0.005)
    await _until(lambda: pub.pending == 0)
    await pub.close()
    task.cancel()
    got = _ns(sink)
    first_seen = list(dict.fromkeys(got))
    assert first_seen == list(range(50))  # every reading, first occurrences in order
    assert list(tmp_path.glob("seg-*")) == []
    assert metrics.published.labels("spool")._value.get() > 0


async def test_slow_kafka_also_spools(tmp_path: Path) -> None:
    sink = FakeSink()
    pub = Publisher(sink, Spool(tmp_path, 1 << 20), EdgeMetrics(), spool_after_seconds=0.1,
                    send_timeout_seconds=0.2, retry_max_seconds=0.05)
    task = asyncio.create_task(pub.run())
    sink.slow = True
    for n in range(10):
        pub.submit(_reading(n))
        await asyncio.sleep(0.03)
    await _until(lambda: pub.spool.depth > 0)
    sink.slow = False
    await _until(lambda: pub.pending == 0)
    await pub.close()
    task.cancel()
    assert list(dict.fromkeys(_ns(sink))) == list(range(10))


async def test_close_spools_what_kafka_did_not_take(tmp_path: Path) -> None:
    sink = FakeSink()
    sink.down = True
    pub = Publisher(sink, Spool(tmp_path, 1 << 20), EdgeMetrics(), spool_after_seconds=60)
    task = asyncio.create_task(pub.run())
    for n in range(4):
        pub.submit(_reading(n))
    await pub.close(timeout=0.3)
    task.cancel()
    again = Spool(tmp_path, 1 << 20)
    assert [json.loads(r.value)["import_wh"] for r in again.peek(10)] == [0, 1, 2, 3]


async def test_spool_left_by_a_previous_run_is_sent_first(tmp_path: Path) -> None:
    old = Spool(tmp_path, 1 << 20)
    for n in range(3):
        old.append(encode_reading(_reading(n))[1], b"12345678901234")
    old.close()
    sink = FakeSink()
    pub = Publisher(sink, Spool(tmp_path, 1 << 20), EdgeMetrics())
    task = asyncio.create_task(pub.run())
    pub.submit(_reading(3))
    await _until(lambda: pub.pending == 0)
    await pub.close()
    task.cancel()
    assert _ns(sink) == [0, 1, 2, 3]


async def test_spool_oldest_age_follows_the_oldest_unacknowledged_reading(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from stream import clock

    t0 = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
    sink = FakeSink()
    sink.down = True
    metrics = EdgeMetrics()
    with clock.pinned(t0 + timedelta(minutes=10)):
        pub = Publisher(sink, Spool(tmp_path, 1 << 20), metrics, spool_after_seconds=0.05,
                        send_timeout_seconds=0.05, retry_max_seconds=0.05, drain_batch=1)
        assert metrics.spool_oldest_age() == 0.0  # empty spool
        task = asyncio.create_task(pub.run())
        for n, minutes in enumerate((0, 4, 7)):  # received 10, 6 and 3 minutes "ago"
            r = _reading(n)
            r["received_at"] = (t0 + timedelta(minutes=minutes)).isoformat()
            pub.submit(r)
        await _until(lambda: pub.spool.depth == 3)
        assert metrics.spool_oldest_age() == 600.0
        pub.spool.commit(pub.spool.peek(1)[0])  # the first one acknowledged: the oldest is the next
        pub._update_spool_gauges()
        assert metrics.spool_oldest_age() == 360.0
        sink.down = False
        await _until(lambda: pub.pending == 0)
        assert metrics.spool_oldest_age() == 0.0
        await pub.close()
        task.cancel()
    text = __import__("prometheus_client").generate_latest(metrics.registry).decode()
    assert "linky_edge_spool_oldest_age_seconds 0.0" in text
