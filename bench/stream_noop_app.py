"""Baseline app for bench/stream_throughput.py: the same faust configuration as stream.app
(settings, RocksDB store, raw serializers, readings topic, prometheus sensors) with one agent that
only decodes the JSON of each reading and counts it. What is left of a reading's cost once
faust, aiokafka and the event loop have done their part."""

from __future__ import annotations

import json

from prometheus_client import Counter

from stream.factory import create_app
from stream.settings import Settings

settings = Settings.from_env()
app = create_app(settings)
readings_topic = app.topic(
    settings.readings_topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions, internal=True
)
PROCESSED = Counter("linky_bench_noop_readings_total", "Readings decoded by the no-op agent")


@app.agent(readings_topic, name="noop")
async def noop(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        json.loads(event.value)
        PROCESSED.inc()
