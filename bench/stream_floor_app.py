"""The floor for bench/stream_throughput.py: a bare aiokafka consumer that reads the readings
topic and ``json.loads`` each value, nothing else (no faust, no tables, no Redis). What a Python
process pays just to get the readings off Kafka; exposes the same kind of counter on /metrics."""

from __future__ import annotations

import asyncio
import json
import os

from aiokafka import AIOKafkaConsumer
from prometheus_client import Counter, start_http_server

PROCESSED = Counter("linky_bench_floor_readings_total", "Readings decoded by the bare consumer")


async def main() -> None:
    start_http_server(int(os.environ["LINKY_WEB_PORT"]), addr="127.0.0.1")
    consumer = AIOKafkaConsumer(
        os.environ["LINKY_READINGS_TOPIC"],
        bootstrap_servers=os.environ["LINKY_KAFKA_BOOTSTRAP"],
        group_id=os.environ["LINKY_APP_ID"],
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                PROCESSED.inc(len(records))
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main())
