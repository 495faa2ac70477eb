"""Readings -> Kafka, in order, losing nothing: a memory queue, the disk spool, aiokafka.

    publisher = Publisher(AiokafkaSink(bootstrap, topic), Spool(dir), metrics)
    task = asyncio.create_task(publisher.run())
    publisher.submit(reading)        # never blocks, never raises on Kafka trouble
    await publisher.close()          # flush what it can, spool the rest

One sender task publishes everything, oldest first, so the readings of a PDL reach Kafka in
the order they were decoded. A reading waits in memory while Kafka acknowledges promptly. As
soon as the oldest one has waited ``spool_after_seconds`` (Kafka unreachable or slow), the
whole memory queue moves to the disk spool and every new reading goes there too, until the
spool is drained. Draining sends spooled records in order and acknowledges them in the spool
only after Kafka did, so a crash re-sends at most a batch: downstream sees duplicates, never a
gap. The spooled value is the exact JSON that would have been sent, so a replay is
byte-identical (the stream side drops duplicates per PDL by ``time``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from stream import clock
from teleinfo.metrics import EdgeMetrics
from teleinfo.spool import Spool

__all__ = ["Publisher", "KafkaSink", "AiokafkaSink", "GatewaySigner", "encode_reading", "ensure_topic"]

log = logging.getLogger("teleinfo.publisher")


def encode_reading(reading: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """(key, value): key = the PDL (None when the meter gave none), value = compact JSON."""
    pdl = reading.get("pdl")
    value = json.dumps(reading, separators=(",", ":")).encode()
    return (str(pdl).encode() if pdl else None), value


class KafkaSink(Protocol):
    """What the publisher needs from Kafka (a fake in unit tests, aiokafka for real)."""

    async def start(self) -> None: ...

    async def send_batch(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send in order; return once Kafka acknowledged all of them, or raise."""

    async def stop(self) -> None: ...


@dataclass
class _Pending:
    key: bytes | None
    value: bytes
    decoded: float  # time.monotonic() when the reading was submitted


class Publisher:
    """See the module docstring."""

    def __init__(self, sink: KafkaSink, spool: Spool, metrics: EdgeMetrics, *,
                 spool_after_seconds: float = 2.0, send_timeout_seconds: float = 10.0,
                 batch_size: int = 100, drain_batch: int = 500, memory_max: int = 2000,
                 retry_max_seconds: float = 5.0) -> None:
        self.sink = sink
        self.spool = spool
        self.metrics = metrics
        self.spool_after_seconds = spool_after_seconds
        self.send_timeout_seconds = send_timeout_seconds
        self.batch_size = batch_size
        self.drain_batch = drain_batch
        self.memory_max = memory_max
        self.retry_max_seconds = retry_max_seconds
        self._memory: deque[_Pending] = deque()
        self._generation = 0  # bumped whenever the memory queue is moved to the spool
        self._wake = asyncio.Event()
        self._closing = False
        self._started = False
        self._failures = 0
        self._spooling_logged = False
        self._run_task: asyncio.Task[None] | None = None
        self._update_spool_gauges()

    # -- producer side -------------------------------------------------------------------

    def submit(self, reading: dict[str, Any]) -> None:
        """Queue one reading for Kafka. Synchronous, O(1) on the normal path."""
        key, value = encode_reading(reading)
        if not self.spool.empty():
            self._to_spool(key, value)
        else:
            self._memory.append(_Pending(key, value, time.monotonic()))
            self._spill_if_stale()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Readings not yet acknowledged (memory + spool)."""
        return len(self._memory) + self.spool.depth

    # -- sender --------------------------------------------------------------------------

    async def run(self) -> None:
        """Send until ``close()``; never raises on Kafka errors."""
        self._run_task = asyncio.current_task()
        ticker = asyncio.create_task(self._tick())
        try:
            while not self._closing:
                await self._step()
        finally:
            ticker.cancel()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: try to deliver what is queued for up to ``timeout``, spool the rest."""
        self._closing = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        run_task, self._run_task = self._run_task, None
        if run_task is not None and run_task is not asyncio.current_task():
            # A send cut short here may still be delivered by the producer: a duplicate at
            # most, sent before the same records go again below, so order holds.
            run_task.cancel()
            try:
                await run_task
            except asyncio.CancelledError:
                pass
        while (self._memory or not self.spool.empty()) and time.monotonic() < deadline:
            if not await self._step(deadline - time.monotonic()):
                break
        self._spill()
        self.spool.close()
        self._update_spool_gauges()
        try:
            await asyncio.wait_for(self.sink.stop(), timeout=max(1.0, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - shutting down, nothing else to do
            log.warning("kafka producer did not stop cleanly: %s", exc,
                        extra={"event": "producer_stop_failed"})

    async def _step(self, budget: float | None = None) -> bool:
        """One unit of work; returns False when there was nothing to do or it failed."""
        if not self._started:
            try:
                await asyncio.wait_for(self.sink.start(), timeout=self.send_timeout_seconds)
                self._started = True
                log.info("connected to kafka", extra={"event": "kafka_connected"})
            except Exception as exc:  # noqa: BLE001 - any failure means: retry later
                await self._failed("start", exc, budget)
                return False
        from_spool = not self.spool.empty()
        if from_spool:
            records = self.spool.peek(self.drain_batch)
            if not records:  # only unreadable records left: nothing can be sent from them
                self.spool.clear()
                self._update_spool_gauges()
                return True
            batch = [(r.key, r.value) for r in records]
        elif self._memory:
            generation = self._generation
            pending = [self._memory[i] for i in range(min(self.batch_size, len(self._memory)))]
            batch = [(p.key, p.value) for p in pending]
        else:
            if self._closing:
                return False
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            return True
        timeout = self.send_timeout_seconds if budget is None else min(budget, self.send_timeout_seconds)
        try:
            await asyncio.wait_for(self.sink.send_batch(batch), timeout=max(timeout, 0.1))
        except Exception as exc:  # noqa: BLE001
            await self._failed("send", exc, budget)
            return False
        now = time.monotonic()
        if self._failures:
            log.info("kafka is back", extra={"event": "kafka_recovered"})
        self._failures = 0
        if from_spool:
            self.spool.commit(records[-1])
            self.metrics.published.labels("spool").inc(len(records))
            wall = clock.now()
            for value in batch:
                self._observe_replay_latency(value[1], wall)
            if self.spool.empty():
                log.info("spool drained", extra={"event": "spool_drained"})
                self._spooling_logged = False
            self._update_spool_gauges()
        else:
            self.metrics.published.labels("direct").inc(len(pending))
            for p in pending:
                self.metrics.publish_latency.observe(now - p.decoded)
            if generation == self._generation:
                for _ in pending:
                    self._memory.popleft()
            # else: the queue was spooled meanwhile; those records will be sent again
            # (duplicates, in order) by the drain.
        return True

    async def _failed(self, stage: str, exc: BaseException, budget: float | None) -> None:
        self._failures += 1
        self.metrics.publish_errors.labels(stage).inc()
        if self._failures == 1 or self._failures % 20 == 0:
            log.warning("kafka %s failed (%s: %s); readings are kept, retrying", stage,
                        type(exc).__name__, exc,
                        extra={"event": "kafka_unavailable", "stage": stage,
                               "failures": self._failures})
        self._spill_if_stale()
        delay = min(self.retry_max_seconds, 0.25 * 2 ** min(self._failures, 8))
        if budget is not None:
            delay = min(delay, max(budget, 0.0))
        await asyncio.sleep(delay)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._spill_if_stale()
            self.spool.maybe_sync()
            self._update_spool_gauges()

    # -- spool handling ------------------------------------------------------------------

    def _spill_if_stale(self) -> None:
        if self._memory and (
                time.monotonic() - self._memory[0].decoded >= self.spool_after_seconds
                or len(self._memory) > self.memory_max):
            self._spill()

    def _spill(self) -> None:
        """Move the whole memory queue (oldest first) to the spool."""
        if not self._memory:
            return
        if not self._spooling_logged:
            log.warning("kafka is not acknowledging: spooling readings to %s",
                        self.spool.directory, extra={"event": "spooling",
                                                     "pending": len(self._memory)})
            self._spooling_logged = True
        self._generation += 1
        while self._memory:
            p = self._memory.popleft()
            self._to_spool(p.key, p.value)

    def _to_spool(self, key: bytes | None, value: bytes) -> None:
        self.spool.append(value, key)
        self.metrics.spooled.inc()
        self._update_spool_gauges()

    def _update_spool_gauges(self) -> None:
        self.metrics.spool_readings.set(self.spool.depth)
        self.metrics.spool_bytes.set(self.spool.size_bytes)
        # the oldest spooled reading changes only when records are acknowledged or the spool
        # fills from empty: read it (one record) only then
        key = (self.spool.acked, self.spool.empty())
        if key != self._oldest_key:
            self._oldest_key = key
            oldest = None if self.spool.empty() else self.spool.peek(1)
            self.metrics.set_spool_oldest(_received_epoch(oldest[0].value) if oldest else None)

    _oldest_key: tuple[int, bool] | None = None

    def _observe_replay_latency(self, value: bytes, now: datetime) -> None:
        try:
            received = datetime.fromisoformat(json.loads(value)["received_at"])
        except (ValueError, KeyError, TypeError):
            return
        self.metrics.publish_latency.observe(max(0.0, (now - received).total_seconds()))


class AiokafkaSink:
    """The real sink: an idempotent aiokafka producer (acks=all, compression, small linger);
    creates the topic first when it is missing (the broker has auto-creation off)."""

    def __init__(self, bootstrap: str, topic: str, *, partitions: int = 4,
                 replication: int = 1, compression: str | None = "gzip", linger_ms: int = 5,
                 request_timeout_ms: int = 15000, client_id: str = "teleinfo-edge",
                 security: Mapping[str, Any] | None = None, signer: "GatewaySigner | None" = None) -> None:
        self.security = dict(security or {})  # stream/kafka_security.client_kwargs (TLS, SASL)
        self.signer = signer  # signs each record (headers) when the edge has a gateway key file
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.replication = replication
        self.compression = None if compression in (None, "", "none") else compression
        self.linger_ms = linger_ms
        self.request_timeout_ms = request_timeout_ms
        self.client_id = client_id
        self._producer: Any = None
        self._topic_ready = False

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        if not self._topic_ready:
            await ensure_topic(self.bootstrap, self.topic, self.partitions, self.replication,
                               request_timeout_ms=self.request_timeout_ms, security=self.security)
            self._topic_ready = True
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, client_id=self.client_id,
                enable_idempotence=True, acks="all", compression_type=self.compression,
                linger_ms=self.linger_ms, request_timeout_ms=self.request_timeout_ms,
                retry_backoff_ms=200, **self.security)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer

    async def send_batch(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        producer = self._producer
        if self.signer is not None:
            self.signer.refresh()
        sign = self.signer.headers if self.signer is not None else (lambda value: None)
        futures = [await producer.send(self.topic, value=value, key=key, headers=sign(value))
                   for key, value in records]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()


async def ensure_topic(bootstrap: str, topic: str, partitions: int, replication: int = 1, *,
                       request_timeout_ms: int = 15000, security: Mapping[str, Any] | None = None) -> bool:
    """Create ``topic`` unless it exists; returns True when this call created it."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                request_timeout_ms=request_timeout_ms, **dict(security or {}))
    await admin.start()
    try:
        if topic in await admin.list_topics():
            return False
        try:
            result = await admin.create_topics(
                [NewTopic(topic, num_partitions=partitions, replication_factor=replication)])
        except TopicAlreadyExistsError:
            return False
        for _, code, message in getattr(result, "topic_errors", []) or []:
            if code == TopicAlreadyExistsError.errno:
                return False
            if code:
                raise RuntimeError(f"creating topic {topic!r} failed: {code} {message}")
        log.info("created topic %s (%d partitions, replication %d)", topic, partitions,
                 replication, extra={"event": "topic_created", "topic": topic})
        return True
    finally:
        await admin.close()


class GatewaySigner:
    """Signs record values with the gateway's key file (tables/trust.py: HMAC-SHA256, headers
    ``linky-gateway``, ``linky-key-id``, ``linky-sig``). The file is re-read when it changes (a key
    rotation: ``linky-stream gateway rotate`` writes a new file), so the edge never restarts for it.
    Records are signed when they are sent, spooled ones included. A key file that becomes
    unreadable keeps the last good key (logged once)."""

    def __init__(self, path: Path | str) -> None:
        from tables.trust import parse_key_file

        self.path = Path(path)
        self._parse = parse_key_file
        self._stamp: tuple[int, int] | None = None
        self.key = self._load()

    def _load(self) -> "Any":
        stat = self.path.stat()
        key = self._parse(self.path.read_text(), str(self.path))
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return key

    def refresh(self) -> None:
        try:
            stat = self.path.stat()
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                old = self.key.key_id
                self.key = self._load()
                if self.key.key_id != old:
                    log.info("gateway key changed: now key id %s", self.key.key_id,
                             extra={"event": "gateway_key_rotated", "key_id": self.key.key_id})
        except (OSError, ValueError) as exc:
            if self._stamp is not None:
                log.warning("gateway key file %s unreadable (%s); keeping key id %s", self.path, exc,
                            self.key.key_id, extra={"event": "gateway_key_unreadable"})
                self._stamp = None

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        from tables.trust import sign_headers

        return sign_headers(self.key, value)


def _received_epoch(value: bytes) -> float | None:
    """Epoch seconds of a spooled reading's ``received_at`` (None when absent or unreadable)."""
    try:
        return datetime.fromisoformat(json.loads(value)["received_at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None
