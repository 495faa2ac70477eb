"""The battery timer (agents/battery.py ``battery_timer``) holds its ticks back while Redis is
behind: a tick's publishes are emitted all at once by the flush that makes its state durable,
so ticks sent into a half-full publish queue overflow it (payloads dropped as ``queue_full``,
seen at 100,000 PDLs, docs/performance.md). The PDLs not ticked stay due for the next run.

Runs the timer's body (no faust timer loop) with the state reads, the tick sends and the
publisher replaced: no broker, no tables."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.unit.datadir import private_datadir

with private_datadir("linky-unit-timer-") as _datadir:  # never .stack/worker-data; removed at exit
    from agents import battery
    from stream import clock
    from stream.due_index import DueIndex

NOW = datetime(2026, 11, 1, 0, 0, 5, tzinfo=timezone.utc)


class State:
    def __init__(self, pdl: str) -> None:
        self.pdl, self.partition = pdl, 0


async def test_the_timer_sends_no_new_tick_while_the_redis_queue_is_half_full(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    backlog = {"after": 2}  # the queue is half full once two ticks are sent

    class Publisher:
        def backlogged(self) -> bool:
            return len(sent) >= backlog["after"]

    async def send_tick(pdl: str, partition: int, now: datetime) -> None:
        sent.append(pdl)

    due: DueIndex[str] = DueIndex()
    for i in range(5):
        due.schedule(f"pdl-{i}", NOW.timestamp() - 60 + i)
    monkeypatch.setattr(battery, "_due", due)
    monkeypatch.setattr(battery, "_scanned", {0})
    monkeypatch.setattr(battery, "_active_partitions", lambda: {0})
    monkeypatch.setattr(battery, "load", State)
    monkeypatch.setattr(battery, "tick_is_due", lambda state, now, settings: True)
    monkeypatch.setattr(battery, "send_tick", send_tick)
    monkeypatch.setattr(battery, "publisher", Publisher())
    monkeypatch.setattr(clock, "now", lambda: NOW)
    deferred = battery.TICKS_DEFERRED._value.get()
    timer: Any = inspect.unwrap(battery.battery_timer)  # the body, not faust's timer loop around it

    await timer()
    assert sent == ["pdl-0", "pdl-1"]  # then Redis was behind: the other three wait
    assert battery.TICKS_DEFERRED._value.get() == deferred + 3
    assert due.pop_due(NOW.timestamp()) == ["pdl-2", "pdl-3", "pdl-4"]  # still due, not lost
    for i in (2, 3, 4):
        due.schedule(f"pdl-{i}", NOW.timestamp())
    backlog["after"] = 99  # the queue has room again
    await timer()
    assert sent == ["pdl-0", "pdl-1", "pdl-2", "pdl-3", "pdl-4"]


async def test_the_ticks_agent_counts_every_tick_it_handles(monkeypatch: pytest.MonkeyPatch) -> None:
    """``linky_battery_ticks_applied_total{outcome}``: what alert LinkyBatteryTicksNotApplied
    compares with the ticks sent (a worker once sent ticks its ticks agent never handled)."""

    class Fold:
        def __init__(self, changed: bool) -> None:
            self.changed, self.state = changed, None

    class Message:
        partition = 0

    class Event:
        def __init__(self, pdl: str) -> None:
            self.key, self.value, self.message = pdl.encode(), b'{"now": "2026-11-01T00:00:05+00:00"}', Message()

    class Stream:
        async def events(self) -> Any:
            for pdl in ("changed", "unchanged", "unknown", "changed"):
                yield Event(pdl)

    stored: list[str] = []
    monkeypatch.setattr(battery, "load", lambda pdl: None if pdl == "unknown" else State(pdl))
    monkeypatch.setattr(battery, "tick", lambda state, now, settings: (Fold(state.pdl == "changed"), []))
    monkeypatch.setattr(battery, "_store", lambda before, after, partition, ticked_at=None: stored.append(before.pdl))
    monkeypatch.setattr(battery._order, "after_flush", lambda pdl, partition, emit: None)
    counts = {k: child._value.get() for k, child in battery.TICK_OUTCOMES.items()}

    await battery.battery_ticks.fun(Stream())
    assert {k: child._value.get() - counts[k] for k, child in battery.TICK_OUTCOMES.items()} == {
        "changed": 2, "unchanged": 1, "unknown_pdl": 1}
    assert stored == ["changed", "changed"]


async def test_the_ticks_agent_releases_waiting_publishes_before_they_could_overflow_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tick's publishes wait for the flush that makes its state durable, and a flush releases
    all those it holds at once: thousands of ticks between two flushes (midnight at 100,000
    PDLs) overflowed the Redis queue (2,410 payloads dropped as ``queue_full`` in one run). The
    ticks agent flushes and waits for room before the waiting publishes reach a quarter of the
    queue: every payload goes out, each PDL's in order. Real write-back and publish order over a
    plain table; the publisher is a bounded queue that Redis empties when waited on."""
    from stream.writeback import PublishOrder, WriteBack

    class Publisher:
        queue_size = 40

        def __init__(self) -> None:
            self.queue: list[str] = []
            self.sent: list[str] = []
            self.dropped = 0

        @property
        def queued(self) -> int:
            return len(self.queue)

        def publish(self, payload: str) -> None:
            if len(self.queue) >= self.queue_size:
                self.dropped += 1
            else:
                self.queue.append(payload)

        async def wait_for_room(self) -> bool:
            self.sent += self.queue  # Redis takes what is queued
            self.queue.clear()
            return True

    class Fold:
        changed, state = True, None

    class Message:
        partition = 0

    class Event:
        def __init__(self, pdl: str) -> None:
            self.key, self.value, self.message = pdl.encode(), b'{"now": "2026-11-01T00:00:05+00:00"}', Message()

    pdls = [f"{n:014d}" for n in range(200)]

    class Stream:
        async def events(self) -> Any:
            for pdl in pdls:
                yield Event(pdl)

    publisher = Publisher()
    writeback = WriteBack(source_topic="readings", interval_seconds=5.0, monotonic=lambda: 0.0)
    class Table(dict):  # type: ignore[type-arg]
        name = "battery-ledger"

    table = Table()
    writeback.register(table)

    def emit(before: State, fold: Any, events: Any) -> Any:
        return lambda: [publisher.publish(f"{before.pdl} {kind}") for kind in ("battery", "surplus", "alerts")]

    releases = {k: battery.TICK_RELEASES.labels(k)._value.get() for k in ("ok", "failed")}
    monkeypatch.setattr(battery, "publisher", publisher)
    monkeypatch.setattr(battery, "_order", PublishOrder(writeback))
    monkeypatch.setattr(battery, "load", State)
    monkeypatch.setattr(battery, "tick", lambda state, now, settings: (Fold(), []))
    monkeypatch.setattr(
        battery, "_store", lambda before, after, p, ticked_at=None: writeback.put(table, before.pdl.encode(), p, b"s")
    )
    monkeypatch.setattr(battery, "_tick_emit", emit)

    await battery.battery_ticks.fun(Stream())
    await writeback.flush()  # the next regular flush releases what the last ticks hold
    await publisher.wait_for_room()
    assert publisher.dropped == 0
    assert publisher.sent == [f"{pdl} {kind}" for pdl in pdls for kind in ("battery", "surplus", "alerts")]
    assert set(table) == {pdl.encode() for pdl in pdls} and battery._order.waiting() == 0
    assert battery.TICK_RELEASES.labels("ok")._value.get() - releases["ok"] >= len(pdls) * 3 // 10 // 2
    assert battery.TICK_RELEASES.labels("failed")._value.get() == releases["failed"]


def test_a_pdl_ticked_is_looked_at_next_when_its_state_can_change_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """After its tick is applied, a PDL is scheduled from the tick's instant: not at the end of
    the day the tick just closed (already past: the timer would load and check it again for
    nothing) nor at the timer's retry for lost ticks. At 100,000 PDLs that was 65,000 checks for
    nothing per 100,000 ticks (docs/performance.md "2026-12-07, night")."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from tables.ledger import LedgerState, fold_alerts, fold_reading, next_tick_due, tick, tick_is_due

    settings = battery.alerts.alert_settings
    pdl = "40000000000001"
    start = NOW.astimezone(ZoneInfo("Europe/Paris")) - timedelta(days=31)  # a backlog a month old
    state = LedgerState(pdl=pdl, partition=0)
    for step in range(3):
        reading = {"pdl": pdl, "mode": "standard", "time": (start + timedelta(minutes=30 * step)).isoformat(),
                   "import_wh_by_period": {"EASF01": 1000 + 200 * step, "EASF02": 1000}, "export_wh": 100 * step,
                   "power_va": 800, "subscribed_kva": 9}  # fmt: skip
        state = fold_reading(state, reading, None).state
        state = fold_alerts(state, reading, None, settings, now=NOW)[0]
    due: DueIndex[str] = DueIndex()
    monkeypatch.setattr(battery, "_due", due)
    battery._schedule(state)
    assert due.pop_due(NOW.timestamp()) == [pdl] and tick_is_due(state, NOW, settings)  # the month to close
    due.schedule(pdl, NOW.timestamp() + battery.TICK_RETRY_SECONDS)  # as the timer does once the tick is sent

    after = tick(state, NOW, settings)[0].state
    battery._schedule(after, NOW, replace=True)  # as the ticks agent's store does
    bound = next_tick_due(after, settings, NOW)
    assert bound is not None and bound > NOW and not tick_is_due(after, NOW, settings)
    assert due.next_at() == bound.timestamp()  # neither the closed day's end nor the retry
    assert due.pop_due(bound.timestamp() - 1) == [] and due.pop_due(bound.timestamp()) == [pdl]
    battery._schedule(after)  # what a reading's store did instead: the past end of the closed day
    assert due.pop_due(NOW.timestamp()) == [pdl] and not tick_is_due(after, NOW, settings)  # a check for nothing
