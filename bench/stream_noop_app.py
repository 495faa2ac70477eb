"""Baseline app for bench/stream_throughput.py: the same faust configuration as stream.app
(settings, RocksDB store, raw serializers, readings topic, prometheus sensors) with one agent that
only decodes the JSON of each reading and counts it. What is left of a reading's cost once
faust, aiokafka and the event loop have done their part.

Variants of faust's own per-message path, for docs/performance.md (issue 14: "measure its
options"), chosen by bench-only environment variables (``--env`` of bench/stream_throughput.py):

- ``LINKY_BENCH_NOOP_TAKE=N``: the agent takes batches of up to N events (``stream.take_events``,
  10 ms ``within``) instead of one event per iteration;
- ``LINKY_BENCH_NOOP_SENSORS=0``: faust's Prometheus monitor replaced by one whose hooks do
  nothing (what faust's sensors cost per message);
- ``LINKY_BENCH_NOOP_BUFFER=N``: faust's ``stream_buffer_maxsize`` (4096 by default) and
  ``broker_max_poll_records`` set to N;
- ``LINKY_BENCH_NOOP_DRIVER=confluent``: faust's confluent-kafka transport (``confluent://``)
  instead of aiokafka (needs ``confluent_kafka`` importable, which the project does not install:
  ``pip install --target DIR confluent-kafka`` and ``PYTHONPATH=DIR``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from prometheus_client import Counter

from stream.factory import create_app
from stream.settings import Settings

settings = Settings.from_env()
app = create_app(settings)
TAKE = int(os.environ.get("LINKY_BENCH_NOOP_TAKE", "0"))
if os.environ.get("LINKY_BENCH_NOOP_SENSORS", "1") == "0":
    from faust.sensors.monitor import Monitor

    class _Silent(Monitor):
        """A monitor whose per-message and per-event hooks do nothing."""

        def on_message_in(self, *args: Any, **kwargs: Any) -> None: ...
        def on_stream_event_in(self, *args: Any, **kwargs: Any) -> Any: return None
        def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None: ...
        def on_message_out(self, *args: Any, **kwargs: Any) -> None: ...
        def on_commit_initiated(self, *args: Any, **kwargs: Any) -> Any: return None
        def on_commit_completed(self, *args: Any, **kwargs: Any) -> None: ...
        def on_send_initiated(self, *args: Any, **kwargs: Any) -> Any: return None
        def on_send_completed(self, *args: Any, **kwargs: Any) -> None: ...

    app.monitor = _Silent()
if os.environ.get("LINKY_BENCH_NOOP_BUFFER"):
    app.conf.stream_buffer_maxsize = app.conf.broker_max_poll_records = int(os.environ["LINKY_BENCH_NOOP_BUFFER"])
if os.environ.get("LINKY_BENCH_NOOP_DRIVER", "kafka") == "confluent":
    import faust

    url = f"confluent://{settings.kafka_bootstrap}"
    app.conf.broker = app.conf.broker_consumer = app.conf.broker_producer = url
    app._new_transport = lambda: faust.App._new_transport(app)  # faust's transport by URL, not stream/consumer.py's
readings_topic = app.topic(
    settings.readings_topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions, internal=True
)
PROCESSED = Counter("linky_bench_noop_readings_total", "Readings decoded by the no-op agent")


@app.agent(readings_topic, name="noop")
async def noop(stream):  # type: ignore[no-untyped-def]
    if TAKE:
        async for events in stream.take_events(TAKE, within=0.01):
            for event in events:
                json.loads(event.value)
            PROCESSED.inc(len(events))
        return
    async for event in stream.events():
        json.loads(event.value)
        PROCESSED.inc()
