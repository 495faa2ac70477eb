"""A minimal faust-streaming app used by tests/integration/test_stack.py to prove the stack:
an agent reads a topic, adds each value into a RocksDB-backed table, and forwards the new total.
Configured entirely by env vars so a test can start it as a worker subprocess.

Folding is idempotent: faust's at-least-once delivery replays events after a crash or a
rebalance, so each table value carries the source offset it already includes and a replayed
event is skipped. (Total and offset live in one value, so they are written atomically.)
"""

import json
import os

import faust

app = faust.App(
    os.environ["T_APP_ID"],
    broker=f"kafka://{os.environ['T_BOOTSTRAP']}",
    store="rocksdb://",
    datadir=os.environ["T_DATADIR"],
    topic_partitions=2,
    topic_replication_factor=1,
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    web_port=int(os.environ["T_WEB_PORT"]),
    key_serializer="raw",
    value_serializer="raw",
    processing_guarantee=os.environ.get("T_GUARANTEE", "at_least_once"),
)
source = app.topic(os.environ["T_SOURCE"], partitions=2)
totals_out = app.topic(os.environ["T_OUT"], partitions=1)
totals = app.Table("totals", default=lambda: {"total": 0, "offset": -1}, partitions=2, value_type=None,
                   options={"driver": "rocksdict", "block_cache_size": 8 * 1024 * 1024})


@app.agent(source)
async def add(stream):
    async for event in stream.events():
        key = event.key.decode()
        current = totals[key]
        if event.message.offset > current["offset"]:
            current = {"total": current["total"] + int(event.value), "offset": event.message.offset}
            totals[key] = current
        await totals_out.send(key=event.key, value=json.dumps({"key": key, "total": current["total"]}).encode())
