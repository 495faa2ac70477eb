"""Live ("Ma Conso en Direct"): the latest reading of each PDL, published on every reading.
``handle`` is called for each reading by the readings agent (agents/readings.py).

Table ``live`` (stream/state.py): key = PDL, value = the live payload (tables/live.py). A reading
not newer than the stored one (duplicate, replay after a crash) changes and publishes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from stream import metrics
from stream.decode_cache import DecodeCache
from stream.state import live_channel, live_table, publisher
from tables.live import live_payload, payload_time

log = logging.getLogger(__name__)
AGENT = "live"
APPLIED = metrics.READINGS.labels(AGENT, "applied")
DUPLICATE = metrics.READINGS.labels(AGENT, "duplicate")
_stored_times: DecodeCache[datetime] = DecodeCache()  # stored payload -> its time (no JSON parse)


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
    key = pdl.encode()
    stored = live_table.get(key)
    when = payload_time(payload)
    if stored is not None and when <= _stored_times.get(key, stored, _time_of):
        DUPLICATE.inc()
        return
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    live_table[key] = data
    _stored_times.put(key, data, when)
    APPLIED.inc()
    publisher.publish(live_channel(pdl), data, event_time=when.timestamp())


def _time_of(stored: bytes) -> datetime:
    return payload_time(json.loads(stored))
