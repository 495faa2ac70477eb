"""Kafka side of the households' alert preferences (topic ``linky.alert-settings``).

The portal's ``PUT /api/pdl/{pdl}/alert-settings`` validates the body
(``tables.alerts.preferences_from_dict``), stamps ``updated_at`` on the product's clock and writes
one record, key = PDL, value = the whole preferences document as JSON. The topic is compacted and
co-partitioned with the readings, as the contracts topic is (stream/contracts.py), so the worker
finds a PDL's preferences in the table partition of its readings (agents/alert_settings.py) and
applies them to what it folds from then on.
"""

from __future__ import annotations

import json

from aiokafka import AIOKafkaProducer

from stream import clock
from stream.contracts import ensure_pdl_document_topic
from stream.settings import Settings
from tables.alerts import AlertPreferences, preferences_from_dict, preferences_to_dict


def encode_preferences(prefs: AlertPreferences) -> bytes:
    return json.dumps(preferences_to_dict(prefs), separators=(",", ":"), sort_keys=True).encode()


def decode_preferences(value: bytes) -> AlertPreferences:
    """Parse a record value; ``PreferencesError`` (a ValueError) if it is not a valid document."""
    try:
        data = json.loads(value)
    except ValueError as exc:
        from tables.alerts import PreferencesError

        raise PreferencesError(f"not JSON: {exc}") from None
    return preferences_from_dict(data)


async def write_preferences(cfg: Settings, pdl: str, body: object, *, producer: AIOKafkaProducer | None = None) -> AlertPreferences:
    """Validate ``body``, stamp it now and publish it as the PDL's preferences; returns what was
    written. ``producer``: a started producer to reuse (the portal keeps one)."""
    prefs = preferences_from_dict(body)
    data = preferences_to_dict(prefs)
    data["updated_at"] = clock.now().isoformat()
    stamped = preferences_from_dict(data)
    own = producer is None
    if own:
        await ensure_pdl_document_topic(cfg, cfg.alert_settings_topic)
        producer = AIOKafkaProducer(bootstrap_servers=cfg.kafka_bootstrap, acks="all", enable_idempotence=True,
                                    client_id="linky-alert-settings-writer")  # fmt: skip
        await producer.start()
    try:
        await producer.send_and_wait(cfg.alert_settings_topic, encode_preferences(stamped), key=pdl.encode())
    finally:
        if own:
            await producer.stop()
    return stamped
