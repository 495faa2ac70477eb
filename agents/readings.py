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

import json
import logging
from datetime import datetime
from typing import Any

from agents import battery, consumption, gateways, live
from agents.contracts import UNRESOLVED, contract_for
from stream import clock, metrics, ops
from stream.app import app, readings_topic
from stream.state import writeback

log = logging.getLogger(__name__)

LIVE_ERROR = metrics.READINGS.labels(live.AGENT, "error")
CONSUMPTION_ERROR = metrics.READINGS.labels(consumption.AGENT, "error")
BATTERY_ERROR = battery.READINGS.labels("error")
FOLD_LATENCY = metrics.FOLD_LATENCY


@app.agent(readings_topic, name="readings")
async def readings_agent(stream):  # type: ignore[no-untyped-def]
    stream = stream.noack()  # acked by the write-back flush, once the state is in the changelog
    await gateways.wait_for_registry()  # first start: the registry before any reading is judged
    async for event in stream.events():
        key, raw = event.key, event.value
        partition = event.message.partition
        ops.note_reading(partition, raw)  # lag age (stream/ops.py)
        value, received_at = parse(raw)  # once for the trust check and every handler
        contract = contract_for(key.decode(errors="replace")) if key else UNRESOLVED  # once, handed down
        verdict = gateways.admit(event, value, contract)  # edge trust before any fold (agents/gateways.py, docs/security.md)
        if not verdict.accepted:  # refused or quarantined: nothing folded, still acked in order
            writeback.hold(stream, event)
            await _maybe_flush()
            continue
        value = verdict.value
        if battery.publishes_wait() and key:  # a tick's publishes of this PDL first (agents/battery.py)
            await battery.settle(key.decode(errors="replace"))
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
            FOLD_LATENCY.observe(max(0.0, clock.time() - received_at))
        writeback.hold(stream, event)
        await _maybe_flush()


async def _maybe_flush() -> None:
    """Start a background flush when one is due; wait only when two are already in flight
    (Kafka slower than the readings: back-pressure instead of an ever-growing buffer)."""
    if writeback.due():
        if writeback.flushing() >= 2:
            await writeback.drain()
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
