"""Live ("Ma Conso en Direct"): the latest reading of each PDL, published on every reading.
``handle`` is called for each reading by the readings agent (agents/readings.py).

Table ``live`` (stream/state.py): key = PDL, value = the live payload (tables/live.py). A reading
not newer than the stored one (duplicate, replay after a crash) changes and publishes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Mapping

from stream import metrics, payload_json
from stream.decode_cache import DecodeCache
from stream.state import live_channel, live_table, publisher, writeback
from stream.tally import tally
from stream.writeback import TOMBSTONE, Entry
from tables.live import live_payload, payload_time

log = logging.getLogger(__name__)
AGENT = "live"
APPLIED = metrics.READINGS.labels(AGENT, "applied")
DUPLICATE = metrics.READINGS.labels(AGENT, "duplicate")
_stored_times: DecodeCache[datetime] = DecodeCache()  # stored payload -> its time (no JSON parse)


def handle(key: bytes | None, value: bytes | Mapping[str, Any], partition: int, received_at: float | None = None) -> None:
    """Buffer and publish one reading's live payload (inside stream iteration). The payload is
    published at once (Ma Conso en Direct stays live); the table gets it at the next flush."""
    try:
        reading = json.loads(value) if isinstance(value, (bytes, str)) else value  # parsed once by the agent
        pdl = key.decode() if key else str(reading["pdl"])
        payload = live_payload(reading, pdl=pdl)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        metrics.READINGS.labels(AGENT, "invalid").inc()
        log.warning("live: reading ignored (%s): %.200r", exc, value)
        return
    key = pdl.encode()
    when = payload_time(payload)
    stored = stored_time(key)
    if stored is not None and when <= stored:
        tally.inc(DUPLICATE)
        return
    data = payload_json.dumps(payload)  # also the table value: read back by json.loads (_time_of)
    writeback.put(live_table, key, partition, Entry((data, when), _raw_of))
    tally.inc(APPLIED)
    # every reading, never coalesced (unlike the conso, battery and surplus views): a live
    # subscriber gets each reading's power, in order, even from a backlog folded per PDL
    publisher.publish(live_channel(pdl), data, event_time=when.timestamp(), received_at=received_at)


def stored_time(key: bytes) -> datetime | None:
    """Time of the PDL's live payload (buffered or stored), None if it has none."""
    entry = writeback.peek(live_table, key)
    if entry is not None:
        return None if entry is TOMBSTONE else entry.obj[1]  # type: ignore[no-any-return]
    stored = live_table.get(key)
    return None if stored is None else _stored_times.get(key, stored, _time_of)


def _raw_of(obj: tuple[bytes, datetime]) -> bytes:
    return obj[0]


def _remember_time(table: object, key: bytes, entry: Entry) -> None:  # type: ignore[type-arg]
    if table is live_table:
        _stored_times.put(key, entry.raw, entry.obj[1])


writeback.on_flushed(_remember_time)


def _time_of(stored: bytes) -> datetime:
    return payload_time(json.loads(stored))
