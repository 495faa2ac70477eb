"""Households' alert preferences: the compacted ``linky.alert-settings`` topic into a table.

Table ``alert-preferences``: key = PDL, value = the preferences document (JSON bytes,
stream/alert_settings.py). Co-partitioned with the readings, like the contracts, so the battery
agent (which folds the alerts) finds a PDL's preferences in its reading's partition. A record
applies from the moment the worker reads it: later readings use the new budget, and events and
open lists of switched-off kinds are no longer published; nothing already published is changed.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter

from stream.alert_settings import decode_preferences
from stream.app import app, pdl_table, settings
from stream.decode_cache import DecodeCache
from tables.alerts import AlertPreferences

log = logging.getLogger(__name__)

alert_settings_topic = app.topic(
    settings.alert_settings_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
    replicas=settings.topic_replication,
    compacting=True,
    internal=True,  # faust declares (creates) it if missing
)
preferences = pdl_table("alert-preferences", read_mostly=True)

PREFERENCES = Counter("linky_alert_preferences_records_total", "Alert preference records read", ["outcome"])
_parsed: DecodeCache[AlertPreferences] = DecodeCache()


def preferences_for(pdl: str) -> AlertPreferences | None:
    """The PDL's preferences (inside stream iteration: the event's partition), None if never set."""
    key = pdl.encode()
    raw = preferences.get(key)
    if raw is None:
        return None
    try:
        return _parsed.get(key, raw, decode_preferences)
    except ValueError:
        log.exception("stored alert preferences of %s are invalid", pdl)
        return None


@app.agent(alert_settings_topic)
async def preferences_agent(stream):  # type: ignore[no-untyped-def]
    """Store each valid document (a tombstone deletes)."""
    async for event in stream.events():
        if event.key is None:
            PREFERENCES.labels("rejected").inc()
            continue
        pdl = event.key.decode()
        if event.value is None:
            preferences.pop(event.key, None)
            PREFERENCES.labels("deleted").inc()
            continue
        try:
            prefs = decode_preferences(event.value)
        except ValueError as exc:
            PREFERENCES.labels("rejected").inc()
            log.warning("alert preferences for %s ignored: %s", pdl, exc)
            continue
        preferences[event.key] = event.value
        _parsed.put(event.key, event.value, prefs)
        PREFERENCES.labels("applied").inc()
