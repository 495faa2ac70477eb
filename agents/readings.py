"""The readings agent: the one consumer of the readings topic, dispatching each reading to the
live, consumption and battery handlers (agents/live.py, agents/consumption.py, agents/battery.py),
in that order, inside the same stream iteration.

One agent instead of three (issue 5, docs/performance.md): faust delivers, decodes, buffers,
acks and counts each message once per agent subscribed to its topic, which cost more than the
handlers themselves. The handlers stay independent: each owns its table(s), metrics and Redis
channels, and each call is guarded here so a bug in one never stops the others nor the stream
(the failure is logged with its traceback and counted as outcome ``error``). Table writes made
by any handler are buffered by the write-back state (stream/writeback.py) and the event is held,
not acked: the flush (every ``LINKY_STATE_FLUSH_SECONDS``) writes each changed key once to its
table and changelog, waits for Kafka's acknowledgement, then acks the held events, so faust
never commits an offset whose readings' state is not in the changelogs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from datetime import datetime
from typing import Any, Callable

from faust.streams import _current_event

from agents import battery, consumption, gateways, live
from agents.contracts import UNRESOLVED, contract_for
from stream import clock, metrics, ops
from stream.app import app, readings_topic, settings
from stream.state import publisher, writeback
from stream.tally import tally

log = logging.getLogger(__name__)

LIVE_ERROR = metrics.READINGS.labels(live.AGENT, "error")
CONSUMPTION_ERROR = metrics.READINGS.labels(consumption.AGENT, "error")
BATTERY_ERROR = battery.READINGS.labels("error")
FOLD_LATENCY = metrics.FOLD_LATENCY
# ``fold_messages`` yields to the event loop once it has folded this long without yielding: the
# Redis publisher, the flushes (their Kafka acknowledgements) and the fetches each need a turn of
# the loop per I/O step. Every 100 readings (about 80 ms) made each of those steps wait that long:
# at 1,000 meters, flushes took 1.9 s (p50), back-pressure stalled the fold and the live
# publishes lagged by seconds (docs/performance.md "2026-12-06"). faust's own path yields on
# every message.
YIELD_SECONDS = 0.002


@app.agent(readings_topic, name="readings")
async def readings_agent(stream):  # type: ignore[no-untyped-def]
    """faust's path: used when ``LINKY_READINGS_DIRECT=false`` and in ``test_context``. With the
    default, the consumer hands this topic's records to ``fold_messages`` instead (the agent
    stays declared: it is what subscribes the topic and makes its offsets acked ones)."""
    stream = stream.noack()  # acked by the write-back flush, once the state is in the changelog
    await gateways.wait_for_registry()  # first start: the registry before any reading is judged
    async for event in stream.events():
        await fold(event, lambda event=event: writeback.hold(stream, event))


async def fold_messages(consumer: Any, messages: list[Any]) -> None:
    """The readings of one fetch, folded straight from faust's consumer
    (stream/consumer.py ``Consumer._drain_messages``), without faust's per-event path: no
    ``Event`` through a channel queue, no stream iteration, no per-message tasks (faust wraps each
    delivery in ``wait_first``, four tasks a message).

    The readings of one PDL are folded back to back (``by_pdl``: each PDL's readings in offset
    order, the PDLs in the order of their first reading in the fetch, at most ``GROUP_MAX`` in a
    row) inside one Redis coalescing scope: the conso, battery and surplus views are rendered and
    queued once per group, for its last reading (stream/redis_publisher.py), and the battery state
    is stored once; live payloads, alerts and index events still go out for every reading. A fetch
    of a backlog holds several readings of each PDL; one at real pace holds one at most, and
    nothing changes. Each PDL's state only ever sees its own readings in order, so the states are
    those of an in-order fold; offsets are acked out of order, which faust's consumer handles (it
    commits the highest offset below which every one is acked).

    Everything else is as in the agent: the same steps per reading (``fold_one``),
    ``_current_event`` set to the reading (table reads go to its partition), flow control
    acquired before each group (suspended during a rebalance), and each message acked through the
    consumer only after the flush that holds its state (``writeback.hold_message``). The consumer
    runs this under ``wait_first(..., suspend_flow)``, so a rebalance may cancel it at an
    ``await``: only between groups, or in ``before_fold`` before the group changed anything, or
    after its readings are held (``_maybe_flush`` shields its drain); a message not yet held is
    not tracked either, so it is simply fetched again after the seek to the committed offsets
    that follows every rebalance. The consumer calls it only once the gateway registry is loaded
    (``gateways.registry_ready``)."""
    acquire = app.flow_control.acquire
    track = consumer.track_message
    hold = writeback.hold_message
    # what faust's monitor learns from each stream event (``on_stream_event_in``): without it, its
    # consumer logs "Stream has not started processing TP" errors for every lagging readings
    # partition after ``stream_processing_timeout`` (seen in a 100,000-PDL run)
    inbound = app.monitor.stream_inbound_time
    now = time.monotonic
    last_yield = now()
    tally.begin()  # the readings' metric updates, summed; applied at each yield and at the end (stream/tally.py)
    try:
        for group in by_pdl(messages):
            await acquire()
            await before_fold(group[0].key)
            begin_group()
            try:
                contract: Any = _LOOK_UP
                for i, message in enumerate(group):
                    inbound[message.tp] = now()
                    event = MessageEvent(message)
                    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
                    try:
                        if i == 0:  # the group's PDL: its contract looked up once (table reads: its partition)
                            contract = contract_for(message.key.decode(errors="replace")) if message.key else UNRESOLVED
                        fold_one(event, contract)
                    finally:
                        _current_event.reset(token)
            finally:
                end_group()  # before the holds: the flush writes their state, its publish barrier covers them
            for message in group:
                track(message)
                hold(consumer, message)
            await _maybe_flush()
            if now() - last_yield >= YIELD_SECONDS:  # the publisher, the flushes, the fetcher
                tally.apply()  # what a scrape in this turn of the loop sees: the readings folded so far
                await asyncio.sleep(0)
                last_yield = now()
    finally:
        tally.end()


# A PDL's readings folded in a row at most (``by_pdl``): its payloads wait for the group's last
# reading, about 0.2 ms of folding each (docs/performance.md), so this bounds that wait to a few ms.
GROUP_MAX = 16


def by_pdl(messages: list[Any]) -> list[list[Any]]:
    """``messages`` grouped by record key: each key's messages in their order, the groups in the
    order of their first message, a key's run cut every ``GROUP_MAX`` messages (its next group
    then comes after the groups started before it). Keyless records are groups of one."""
    groups: dict[Any, list[Any]] = {}
    ordered: list[list[Any]] = []
    for message in messages:
        key = message.key
        group = groups.get(key) if key is not None else None
        if group is None or len(group) >= GROUP_MAX:
            group = [message]
            ordered.append(group)
            if key is not None:
                groups[key] = group
        else:
            group.append(message)
    return ordered


class MessageEvent:
    """What ``fold`` and the trust check read of a faust ``Event``, made from a consumer's
    ``Message`` (raw key and value serializers: the bytes as they are)."""

    __slots__ = ("message", "key", "value", "headers", "__weakref__")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.key = message.key
        self.value = message.value
        headers = message.headers
        self.headers = (headers if isinstance(headers, dict) else dict(headers)) if headers else {}


async def fold(event: Any, hold: Callable[[], None]) -> None:
    """One reading through ``before_fold``, ``fold_one`` (in its own coalescing scope) and
    ``hold()``, which hands its ack to the write-back flush (faust's agent path above)."""
    await before_fold(event.key)
    begin_group()
    try:
        fold_one(event)
    finally:
        end_group()
    hold()
    await _maybe_flush()


def begin_group() -> None:
    """Start folding a group of readings of one PDL (or one reading): until ``end_group`` the
    battery keeps its state aside, the Redis publisher its views (coalescing scope), and the
    PDL's gateway registry and alert preferences are read once (nothing can change them before
    the group ends: their agents run between groups)."""
    publisher.begin_coalescing()
    battery.begin_group()
    gateways.registries.begin()


def end_group() -> None:
    """The group's battery states buffered for the flush, then each channel's latest view
    rendered and queued (after the states: the same order as a single reading's)."""
    gateways.registries.end()
    try:
        battery.end_group()
    finally:
        publisher.end_coalescing()


async def before_fold(key: bytes | None) -> None:
    """What a reading of ``key`` waits for before anything of it is judged or folded, so a
    rebalance cancelling the fold here leaves nothing of it behind (no trust state, no publish)
    and it is simply fetched again."""
    if publisher.backlogged():  # Redis slower than the folds: wait for room rather than drop payloads
        await _wait_for_redis()
    if battery.publishes_wait() and key:  # a tick's publishes of this PDL first (agents/battery.py)
        await battery.settle(key.decode(errors="replace"))


_LOOK_UP: Any = object()  # ``fold_one``'s contract not given: looked up (None is "no contract")


def fold_one(event: Any, contract: Any = _LOOK_UP) -> None:
    """One reading, parsed once, through the trust check and every handler, with its PDL's
    ``contract`` (looked up here when not given; ``UNRESOLVED`` for a keyless reading). Synchronous:
    between its first change of state (the trust check) and the hold of its ack nothing is awaited."""
    key, raw = event.key, event.value
    partition = event.message.partition
    ops.note_reading(partition, raw)  # lag age (stream/ops.py)
    value, received_at = parse(raw)  # once for the trust check and every handler
    if contract is _LOOK_UP:  # once, handed down
        contract = contract_for(key.decode(errors="replace")) if key else UNRESOLVED
    verdict = gateways.admit(event, value, contract)  # edge trust before any fold (agents/gateways.py, docs/security.md)
    if not verdict.accepted:  # refused or quarantined: nothing folded, still held and acked with its group
        return
    value = verdict.value
    try:
        live.handle(key, value, partition, received_at)
    except Exception:  # a bug must not stop the other handlers: count, log, go on
        LIVE_ERROR.inc()
        log.exception("live: reading failed: %.200r", value)
    try:
        consumption.handle(key, value, partition, received_at, contract=contract)
    except Exception:
        CONSUMPTION_ERROR.inc()
        log.exception("consumption: reading failed: %.200r", value)
    try:
        battery.handle(key, value, partition, received_at, contract=contract)
    except Exception:
        BATTERY_ERROR.inc()
        log.exception("battery: reading failed: %.200r", value)
    if received_at is not None:
        tally.observe(FOLD_LATENCY, max(0.0, clock.time() - received_at))


async def _wait_for_redis() -> None:
    """Back-pressure from Redis: the publish queue is half full (a fold publishes faster than
    Redis takes it, seen at 1,000 readings/s on a 2-core machine), so this reading waits until
    the queue is down to a quarter, at most 4x the Redis timeout; then it is folded anyway (a
    Redis that slow is counted and handled by the publisher: timeouts, queue_full drops and the
    snapshot rewrite). Nothing of the reading is changed before: a rebalance may cancel here."""
    started = time.monotonic()
    room = await publisher.wait_for_room()
    metrics.REDIS_BACKPRESSURE_SECONDS.inc(time.monotonic() - started)
    metrics.REDIS_BACKPRESSURE.labels("room" if room else "timeout").inc()
    if not room:
        log.warning("redis publish queue still %d payloads after waiting for room: folding anyway", publisher.queued)


async def _maybe_flush() -> None:
    """Start a background flush when one is due; wait only when two are already in flight
    (Kafka slower than the readings: back-pressure instead of an ever-growing buffer)."""
    if writeback.due():
        if writeback.flushing() >= 2:
            # shielded: a rebalance cancelling ``fold_messages`` here must not stop a flush
            # halfway (its buffers taken, neither written nor given back)
            await asyncio.shield(writeback.drain())
        else:
            writeback.flush_soon()


def parse(raw: bytes) -> tuple[Any, float | None]:
    """``(reading, received_at epoch)``: the JSON object parsed once for the three handlers, or
    ``raw`` itself when it is not a JSON object (each handler then counts it invalid, as before);
    ``received_at`` is the edge's decode time (None when absent or malformed)."""
    try:
        reading = json.loads(raw)
    except ValueError:
        return raw, None
    if not isinstance(reading, dict):
        return raw, None
    stamp = reading.get("received_at")
    try:
        received = datetime.fromisoformat(stamp).timestamp() if isinstance(stamp, str) else None
    except ValueError:
        received = None
    return reading, received

# The consumer folds this topic's records with ``fold_messages`` (stream/consumer.py) unless
# ``LINKY_READINGS_DIRECT=false``: then they go through faust's agent above.
if settings.readings_direct:
    app.linky_direct_topics = {readings_topic.get_topic_name(): fold_messages}  # type: ignore[attr-defined]
    # no fetch of readings is folded before the gateway registry is loaded (the agent waits for
    # it in its own task; here the wait would hold back the consumer, the registry's records too)
    app.linky_direct_ready = gateways.registry_ready  # type: ignore[attr-defined]
