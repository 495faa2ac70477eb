"""The readings agent: the one consumer of the readings topic, dispatching each reading to the
live, consumption and battery handlers (agents/live.py, agents/consumption.py, agents/battery.py),
in that order, inside the same stream iteration.

One agent instead of three (issue 5, docs/performance.md): faust delivers, decodes, buffers,
acks and counts each message once per agent subscribed to its topic, which cost more than the
handlers themselves. The handlers stay independent: each owns its table(s), metrics and Redis
channels, and each call is guarded here so a bug in one never stops the others nor the stream
(the failure is logged with its traceback and counted as outcome ``error``). Table writes made
by any handler go to the changelog partition of the current event, as before.
"""

from __future__ import annotations

import logging

from agents import battery, consumption, gateways, live
from stream import metrics, ops
from stream.app import app, readings_topic

log = logging.getLogger(__name__)

LIVE_ERROR = metrics.READINGS.labels(live.AGENT, "error")
CONSUMPTION_ERROR = metrics.READINGS.labels(consumption.AGENT, "error")
BATTERY_ERROR = battery.READINGS.labels("error")


@app.agent(readings_topic, name="readings")
async def readings_agent(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        verdict = gateways.admit(event)  # edge trust before any fold (agents/gateways.py, docs/security.md)
        if not verdict.accepted:
            continue
        key, value = event.key, verdict.value
        ops.note_reading(event.message.partition, value)  # lag age (stream/ops.py)
        try:
            live.handle(key, value)
        except Exception:  # a bug must not stop the other handlers: count, log, go on
            LIVE_ERROR.inc()
            log.exception("live: reading failed: %.200r", value)
        try:
            consumption.handle(key, value)
        except Exception:
            CONSUMPTION_ERROR.inc()
            log.exception("consumption: reading failed: %.200r", value)
        try:
            battery.handle(key, value, event.message.partition)
        except Exception:
            BATTERY_ERROR.inc()
            log.exception("battery: reading failed: %.200r", value)
