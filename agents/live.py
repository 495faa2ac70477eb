"""Live agent ("Ma Conso en Direct"): the latest reading of each PDL, published on every reading.

Table ``live`` (stream/state.py): key = PDL, value = the live payload (tables/live.py). A reading
not newer than the stored one (duplicate, replay after a crash) changes and publishes nothing.
"""

from __future__ import annotations

import json
import logging

from stream import metrics
from stream.app import app, readings_topic
from stream.state import live_channel, live_table, publisher
from tables.live import is_newer, live_payload, payload_time

log = logging.getLogger(__name__)
AGENT = "live"


@app.agent(readings_topic, name="live")
async def live_agent(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        handle(event.key, event.value)


def handle(key: bytes | None, value: bytes) -> None:
    """Store and publish one reading's live payload (inside stream iteration)."""
    try:
        reading = json.loads(value)
        pdl = key.decode() if key else str(reading["pdl"])
        payload = live_payload(reading, pdl=pdl)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        metrics.READINGS.labels(AGENT, "invalid").inc()
        log.warning("live: reading ignored (%s): %.200r", exc, value)
        return
    stored = live_table.get(pdl.encode())
    if not is_newer(payload, stored):
        metrics.READINGS.labels(AGENT, "duplicate").inc()
        return
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    live_table[pdl.encode()] = data
    metrics.READINGS.labels(AGENT, "applied").inc()
    publisher.publish(live_channel(pdl), data, event_time=payload_time(payload).timestamp())
