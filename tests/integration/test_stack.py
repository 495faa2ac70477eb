"""The real local stack works end to end: Kafka (produce/consume in a group, topics,
transactions), a faust-streaming worker with a RocksDB table that survives restarts, Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local import stack as local_stack
from tests.conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.integration


def test_stack_is_idempotent_and_reports_its_processes(stack: local_stack.StackConfig) -> None:
    again = local_stack.up(stack, quiet=True)
    assert again == {"kafka": False, "redis": False}
    st = local_stack.status(stack)
    for name in ("kafka", "redis"):
        pid = st[name]["pid"]
        assert isinstance(pid, int) and Path(f"/proc/{pid}").exists()
        assert st[name]["healthy"] is True


def test_stack_refuses_a_port_taken_by_something_else(tmp_path: Path, stack: local_stack.StackConfig) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cfg = local_stack.StackConfig(stack_dir=tmp_path / "s", cache_dir=stack.cache_dir, kafka_port=free_port(),
                                      controller_port=free_port(), redis_port=port, kafka_heap="256m")
        with pytest.raises(local_stack.StackError, match=f"port {port}.*did not start.*LINKY_REDIS_PORT"):
            local_stack.up(cfg, quiet=True)
    assert local_stack.status(cfg)["redis"]["pid"] is None


async def test_kafka_round_trip_keyed_in_a_consumer_group(kafka_bootstrap: str, unique_name) -> None:
    topic, group = unique_name("roundtrip"), unique_name("group")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        for _ in range(50):  # a new topic reaches the metadata a moment after CreateTopics returns
            if topic in await admin.list_topics():
                break
            await asyncio.sleep(0.2)
        assert topic in await admin.list_topics()
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all",
                                compression_type="gzip")
    await producer.start()
    sent = [(f"pdl{i % 3}".encode(), f"{i}".encode()) for i in range(30)]
    try:
        for key, value in sent:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    received: list[tuple[bytes, bytes, int]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received += [(r.key, r.value, r.partition) for r in records]
        await consumer.commit()
        assert consumer.assignment()
    finally:
        await consumer.stop()
    assert len(received) == len(sent)
    # Same key -> same partition, and per-key order is kept.
    for key in {k for k, _ in sent}:
        got = [(v, p) for k, v, p in received if k == key]
        assert [v for v, _ in got] == [v for k, v in sent if k == key]
        assert len({p for _, p in got}) == 1


async def test_kafka_transactions_commit_and_abort(kafka_bootstrap: str, unique_name) -> None:
    topic = unique_name("tx")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("txid"))
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed", key=b"k")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"end", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=unique_name("g"),
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while b"end" not in values:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    values += [r.value for r in records]
    finally:
        await consumer.stop()
    assert values == [b"committed", b"end"]


async def test_redis_pubsub_round_trip(redis_url: str, unique_name) -> None:
    channel = unique_name("linky") + ":live"
    sub_client, pub_client = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    pubsub = sub_client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel)
        payloads = [json.dumps({"seq": i}).encode() for i in range(5)]
        for p in payloads:
            assert await pub_client.publish(channel, p) == 1
        got: list[bytes] = []
        async with asyncio.timeout(10):
            while len(got) < len(payloads):
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None:
                    got.append(msg["data"])
        assert got == payloads
    finally:
        await pubsub.aclose()
        await sub_client.aclose()
        await pub_client.aclose()


# --------------------------------------------------------------------------- faust worker


class CounterWorker:
    """tests/integration/apps/counter_app.py run as a real `faust worker` subprocess."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", "tests.integration.apps.counter_app", "worker", "-l", "info"],
                env=self.env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _totals_after(bootstrap: str, out_topic: str, group: str, expected: dict[str, int], log: Path) -> dict[str, int]:
    consumer = AIOKafkaConsumer(out_topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest")
    await consumer.start()
    latest: dict[str, int] = {}
    try:
        async with asyncio.timeout(120):
            while any(latest.get(k) != v for k, v in expected.items()):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for r in records:
                        msg = json.loads(r.value)
                        latest[msg["key"]] = msg["total"]
    except TimeoutError:
        pytest.fail(f"worker did not produce {expected}, got {latest}; worker log: {log}\n"
                    + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
    finally:
        await consumer.stop()
    return latest


async def test_faust_rocksdb_table_survives_worker_restarts(kafka_bootstrap: str, unique_name, tmp_path: Path) -> None:
    source, out = unique_name("src"), unique_name("out")
    env = dict(os.environ, T_APP_ID=unique_name("app"), T_BOOTSTRAP=kafka_bootstrap, T_SOURCE=source, T_OUT=out,
               T_DATADIR=str(tmp_path / "data1"), T_WEB_PORT=str(free_port()), PYTHONPATH=str(REPO_ROOT))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # the source must have as many partitions as the table (faust checks co-partitioning)
        await admin.create_topics([NewTopic(source, num_partitions=2, replication_factor=1),
                                   NewTopic(out, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()

    async def send(key: str, value: int) -> None:
        await producer.send_and_wait(source, str(value).encode(), key=key.encode())

    worker = CounterWorker(env, tmp_path / "worker.log")
    try:
        worker.start()
        for i in range(1, 11):
            await send("a" if i % 2 else "b", i)  # a: 1+3+5+7+9 = 25, b: 2+4+6+8+10 = 30
        await _totals_after(kafka_bootstrap, out, unique_name("g1"), {"a": 25, "b": 30}, worker.log)
        worker.stop()
        assert worker.proc is not None and worker.proc.returncode == 0
        dbs = list((tmp_path / "data1").rglob("totals-*.db"))
        assert dbs, "the table was not stored in RocksDB"

        # 1. restart on the same data dir: RocksDB state (and its persisted changelog offset) is reused.
        worker.start()
        await send("a", 100)
        await _totals_after(kafka_bootstrap, out, unique_name("g2"), {"a": 125}, worker.log)
        worker.stop(signal.SIGKILL)

        # 2. a new worker with an empty data dir (another machine): the table is recovered from
        #    its Kafka changelog, including what the SIGKILLed worker had committed.
        env["T_DATADIR"] = str(tmp_path / "data2")
        worker.env = env
        worker.start()
        await send("b", 1000)
        await _totals_after(kafka_bootstrap, out, unique_name("g3"), {"b": 1030}, worker.log)
        await send("a", 1)
        await _totals_after(kafka_bootstrap, out, unique_name("g4"), {"a": 126}, worker.log)
        worker.stop()
    finally:
        await producer.stop()
        if worker.proc and worker.proc.poll() is None:
            worker.proc.kill()
