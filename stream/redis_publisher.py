"""Redis output of the stream: PUBLISH on ``linky:{pdl}:<kind>`` and SET the same-name snapshot key.

Agents never wait for Redis. ``RedisPublisher.publish`` is synchronous and O(1): it appends the
payload to a bounded in-memory queue that one background task (``run``) drains in pipelined
batches: one PUBLISH per payload, in order (a channel's subscribers see its payloads in the order
they were produced), then one MSET of each channel's latest payload (the snapshot keys).
``linger_seconds`` makes the task wait before a batch that is not full, so that one round trip
carries many payloads (the worker uses ``LINKY_REDIS_LINGER_SECONDS``, 20 ms: about 7 % of its CPU
in bench/stream_throughput.py, docs/performance.md; a payload reaches Redis at most that much
later). Redis down or slow:

- every round trip is bounded by ``timeout_seconds`` (socket timeouts, no client retries, plus a
  hard ``asyncio.timeout``), so a slow Redis costs at most that per batch, never per reading;
- a failed batch is dropped and counted (``linky_redis_publish_failures_total{reason}``), and the
  publisher goes *down*: new payloads are dropped at once (``reason="redis_down"``, nothing piles
  up in memory, Kafka consumption is unaffected) while a ping is retried every ``retry_seconds``;
- when Redis answers again, every snapshot key is rewritten from the registered snapshot sources
  (the tables: the current state, not a replay of what was missed). Live data is ephemeral: the
  missed PUBLISH messages are not replayed.

A full queue (Redis much slower than the stream) drops the new payload (``reason="queue_full"``)
and schedules the same snapshot rewrite, so snapshot keys converge to the tables.

**Coalescing** (``publish_latest``, ``begin_coalescing``/``end_coalescing``): the readings agent
folds the readings of one PDL that came in the same fetch back to back (agents/readings.py) inside
one coalescing scope. A payload published with ``publish_latest`` (conso, battery, surplus: each
is the channel's whole current view) is then kept aside, replaced by a later one of the same
channel, and only the channel's last one is rendered and queued when the scope ends, a few
milliseconds later at most. A payload published with ``publish`` (live: every reading's power;
alerts and conso payloads carrying index events: things that happened) is queued at once, after the channel's kept-aside
payload if it has one, so each channel's subscribers still see its payloads in order. Outside a
scope ``publish_latest`` is ``publish``. Superseded payloads are counted in
``linky_redis_payloads_coalesced_total``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Union

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from stream import clock
from stream import metrics
from stream import payload_json
from stream.tally import observe_all

log = logging.getLogger(__name__)

Snapshot = tuple[str, bytes]  # (channel = key, payload)
Payload = Union[Mapping[str, Any], bytes]
Render = Callable[[], Payload]
SnapshotSource = Callable[[], Union[Iterable[Snapshot], AsyncIterator[Snapshot]]]

__all__ = ["BatchClient", "RedisPublisher", "Snapshot", "SnapshotSource", "encode"]

Command = tuple[Union[str, bytes], ...]


def encode(payload: Mapping[str, Any] | bytes) -> bytes:
    """Compact JSON bytes of a payload (bytes pass through; stream/payload_json.py)."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return payload_json.dumps(payload)


PACE_ITEMS = 50  # snapshot rewrite: yield to the agents every this many snapshots rendered


class BatchClient:
    """The publisher's Redis client: a batch of commands packed by hiredis (C) into one buffer,
    written on one of redis-py's pooled connections, then one reply read per command.

    redis-py's pipeline did the same in Python: each command packed by ``pack_command``, each
    reply read under its own ``asyncio`` timeout and passed through a response callback, about
    14 us of CPU per payload against 2.3 here (256 PUBLISHes and their MSET, real redis-server,
    docs/performance.md), which was about 12 % of a worker folding a backlog. The caller bounds
    the whole batch with one timeout; a connection interrupted mid-batch is disconnected (its
    unread replies would answer the next batch), and so is one that got an error reply (a
    refused command), which is raised."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def send(self, commands: list[Command]) -> None:
        """Send ``commands`` in order in one write and wait for all their replies."""
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(b"".join(map(hiredis.pack_command, commands)), check_health=False)
            for _ in commands:  # the caller's timeout bounds them all: none per reply
                await connection.read_response(disable_decoding=True, timeout=math.inf)
        except BaseException:  # an error reply (raised by redis-py), a timeout, a lost connection
            await connection.disconnect()  # its unread replies must not answer the next batch
            raise
        finally:
            await pool.release(connection)

    async def ping(self) -> Any:
        return await self.client.ping()

    async def aclose(self) -> None:
        await self.client.aclose()


class RedisPublisher:
    """Bounded, ordered, non-blocking publisher (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 0.5,
        queue_size: int = 10_000,
        retry_seconds: float = 1.0,
        batch_size: int = 256,
        linger_seconds: float = 0.0,
        client_factory: Callable[[], Any] | None = None,
        credentials: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self._credentials = dict(credentials or {})  # username/password (stream/redis_auth.py)
        self.timeout = timeout_seconds
        self.queue_size = queue_size
        self.retry_seconds = retry_seconds
        self.batch_size = batch_size
        self.linger = linger_seconds
        self._kind_metrics: dict[str, tuple[Any, Any]] = {}
        self._client_factory = client_factory or self._default_client
        self._client: Any = None
        self._queue: deque[tuple[str, bytes, float | None, float | None]] = deque()
        # read at each scrape, not set at each publish (a lock and a call per payload); the
        # worker has one publisher: the latest one created is the one shown
        metrics.REDIS_QUEUE.set_function(lambda: len(self._queue))
        self._wakeup: asyncio.Event | None = None
        self._sources: list[SnapshotSource] = []
        self.up = True  # optimistic until the first failure
        self.resync_pending = False
        metrics.REDIS_UP.set(1)
        # publishes queued / sent or dropped so far (FIFO: handled >= n means the first n are done)
        self._enqueued = 0
        self._handled = 0
        self._running = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        # inside a coalescing scope: channel -> (payload or its render, event_time, received_at)
        self._latest: dict[str, tuple[Payload | Render, float | None, float | None]] | None = None
        self._superseded = 0  # payloads of the current scope replaced by a later one of their channel

    # ------------------------------------------------------------------ called by agents

    def publish(
        self,
        channel: str,
        payload: Mapping[str, Any] | bytes,
        *,
        event_time: float | None = None,
        received_at: float | None = None,
    ) -> bool:
        """Queue ``payload`` for ``channel`` (and its snapshot key); never blocks, never raises.

        ``event_time`` (epoch seconds of the reading) feeds the processing-latency histogram,
        ``received_at`` (epoch seconds the edge decoded the frame) the publish-latency one.
        Returns False when the payload was dropped (Redis down, queue full).
        """
        if not self.up:
            metrics.REDIS_FAILURES.labels("redis_down").inc()
            self.resync_pending = True
            return False
        if len(self._queue) >= self.queue_size:
            metrics.REDIS_FAILURES.labels("queue_full").inc()
            if not self.resync_pending:  # once per episode: the snapshot rewrite ends it
                log.warning("redis publish queue full (%d payloads): dropping new payloads, "
                            "snapshot keys rewritten once it drains", self.queue_size)  # fmt: skip
            self.resync_pending = True
            return False
        latest = self._latest
        if latest is not None and channel in latest:  # the channel's kept-aside view goes first
            self._publish_rendered(channel, *latest.pop(channel))
        self._queue.append((channel, encode(payload), event_time, received_at))
        self._enqueued += 1
        if self._wakeup is not None:
            self._wakeup.set()
        return True

    def publish_latest(
        self,
        channel: str,
        payload: Payload | Render,
        *,
        event_time: float | None = None,
        received_at: float | None = None,
    ) -> None:
        """Publish the channel's current view: ``payload``, or ``payload()`` when it is a
        callable (rendered only if still the channel's latest when the scope ends). Outside a
        coalescing scope it is rendered and queued at once (``publish``); inside, it replaces the
        channel's earlier one of the scope. Never raises: a render that fails is logged and
        counted (``linky_redis_publish_failures_total{reason="render"}``)."""
        latest = self._latest
        if latest is None:
            self._publish_rendered(channel, payload, event_time, received_at)
            return
        if channel in latest:
            self._superseded += 1
        latest[channel] = (payload, event_time, received_at)  # keeps the channel's first place

    def begin_coalescing(self) -> None:
        """Start a coalescing scope (the module docstring); ``end_coalescing`` ends it. Nothing
        may be awaited in between: the scope is the caller's synchronous step."""
        if self._latest is None:
            self._latest = {}

    def end_coalescing(self) -> None:
        """Render and queue each channel's latest payload of the scope, in the order the channels
        were first published in it."""
        latest, self._latest = self._latest, None
        if latest:
            for channel, item in latest.items():
                self._publish_rendered(channel, *item)
        if self._superseded:
            metrics.REDIS_COALESCED.inc(self._superseded)
            self._superseded = 0

    def _publish_rendered(
        self, channel: str, payload: Payload | Render, event_time: float | None, received_at: float | None
    ) -> None:
        if callable(payload):
            try:
                payload = payload()
            except Exception:  # a bug in one payload must not stop the others: count, log, go on
                metrics.REDIS_FAILURES.labels("render").inc()
                log.exception("payload of %s could not be rendered", channel)
                return
        self.publish(channel, payload, event_time=event_time, received_at=received_at)

    def backlogged(self) -> bool:
        """Whether the queue is half full while the publisher's task runs and Redis answers: the
        readings should wait for room (``wait_for_room``) rather than fill it, which drops
        payloads (``queue_full``). O(1)."""
        return self._running and self.up and len(self._queue) * 2 >= self.queue_size

    def wait_for_room(self, timeout: float | None = None) -> Awaitable[bool]:
        """An awaitable done once the queue is down to a quarter of its size (sent, or dropped
        because Redis went down): True then; False after ``timeout`` (default 4x the Redis
        timeout); True at once when the publisher's task does not run."""
        mark = self._enqueued - self.queue_size // 4
        return self._wait_handled(mark, self.timeout * 4 if timeout is None else timeout)

    def add_snapshot_source(self, source: SnapshotSource) -> None:
        """Register a callable yielding ``(channel, payload)`` for every snapshot this worker owns."""
        self._sources.append(source)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def sent_barrier(self, timeout: float | None = None) -> Awaitable[bool]:
        """An awaitable done once every payload queued *until now* was sent to Redis or dropped
        (Redis down: counted, and the snapshot keys are rewritten when it answers again).

        The write-back flush awaits it before writing the changelog (stream/writeback.py): a
        reading's state never becomes durable while its publishes still wait in this process,
        where a crash would lose them for good (the replay would find the state already folded
        and publish nothing). True when done, and at once when the publisher task is not
        running (tests without Redis: nothing would ever send them); False after ``timeout``
        (default 4x the Redis timeout)."""
        mark = self._enqueued  # now, not when awaited
        return self._wait_handled(mark, self.timeout * 4 if timeout is None else timeout)

    async def _wait_handled(self, mark: int, timeout: float) -> bool:
        if self._handled >= mark or not self._running:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((mark, future))
        try:
            await asyncio.wait_for(future, timeout)  # cancels the future on timeout
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self._waiters = [(m, f) for m, f in self._waiters if f is not future]

    def _done(self, n: int) -> None:
        """``n`` more payloads left the queue (sent or dropped): wake the barriers they pass."""
        self._handled += n
        if self._waiters:
            for mark, future in self._waiters:
                if mark <= self._handled and not future.done():
                    future.set_result(None)

    # ------------------------------------------------------------------ background task

    async def run(self) -> None:
        """Drain the queue forever (a faust ``app.task``); cancel to stop."""
        self._wakeup = asyncio.Event()
        self._running = True
        try:
            while True:
                await self.step()
        finally:
            self._running = False
            for _, future in self._waiters:  # nobody will send them now
                if not future.done():
                    future.set_result(None)
            await self.close()

    async def step(self) -> None:
        """One iteration of ``run``: wait for work, reconnect if down, send one batch."""
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if self.up and not self._queue and not self.resync_pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        if not self.up:
            if not await self._ping():
                await asyncio.sleep(self.retry_seconds)
                return
            self._set_up(True)
            log.warning("redis is back: rewriting snapshot keys")
        if self._queue:
            if self.linger > 0 and len(self._queue) < self.batch_size:
                # let the agents queue more: one round trip carries many payloads
                await asyncio.sleep(self.linger)
            await self._send_next_batch()
        elif self.resync_pending:
            await self.rewrite_snapshots()

    async def rewrite_snapshots(self) -> int:
        """SET every snapshot of the registered sources; returns how many were written.

        Paced so that it never stalls the stream (100,000 PDLs are about 500,000 keys): it yields
        to the agents every ``PACE_ITEMS`` snapshots rendered, and between two chunks it sends the
        live payloads queued meanwhile first (a chunk rendered before them is sent before them,
        so a snapshot key never ends older than the last message)."""
        self.resync_pending = False
        written = 0
        chunk: list[Snapshot] = []

        async def add(item: Snapshot, n: int) -> int:
            chunk.append(item)
            sent = 0
            if len(chunk) >= self.batch_size:
                sent = await self._set_all(chunk)
                chunk.clear()
                await self._send_queued()
            elif n % PACE_ITEMS == 0:
                await asyncio.sleep(0)
            return sent

        try:
            n = 0
            for source in self._sources:
                items = source()
                if hasattr(items, "__aiter__"):
                    async for item in items:  # type: ignore[union-attr]
                        n += 1
                        written += await add(item, n)
                else:
                    for item in items:  # type: ignore[union-attr]
                        n += 1
                        written += await add(item, n)
            written += await self._set_all(chunk)
        except _Down:
            self.resync_pending = True
        except Exception:  # a table closed by a rebalance under the scan: try again later
            log.warning("snapshot rewrite interrupted; will retry", exc_info=True)
            self.resync_pending = True
        metrics.SNAPSHOTS_REWRITTEN.inc(written)
        return written

    async def _send_queued(self) -> None:
        """Send what the agents queued during a snapshot rewrite (no linger)."""
        while self._queue and self.up:
            await self._send_next_batch()
        if not self.up:
            raise _Down()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:
                pass

    # ------------------------------------------------------------------ internals

    def _default_client(self) -> Any:
        return BatchClient(aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            **self._credentials,
        ))  # fmt: skip

    def _connection(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def _send_next_batch(self) -> None:
        """Pop up to ``batch_size`` queued payloads and send them; they count as handled
        (``sent_barrier``) whether sent or dropped."""
        batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
        try:
            await self._send(batch)
        finally:
            self._done(len(batch))

    async def _send(self, batch: list[tuple[str, bytes, float | None, float | None]], *, retry: bool = True) -> None:
        try:
            async with asyncio.timeout(self.timeout * 2):
                commands: list[Command] = []
                latest: dict[str, bytes] = {}
                for channel, data, _, _ in batch:
                    commands.append(("PUBLISH", channel, data))
                    latest[channel] = data  # the snapshot key only needs the last one
                # after the PUBLISHes: a snapshot key is never older than a message
                commands.append(("MSET", *[item for pair in latest.items() for item in pair]))
                await self._connection().send(commands)
        except Exception as exc:  # redis, OS and timeout errors alike: drop, count, go down
            timed_out = isinstance(exc, (TimeoutError, asyncio.TimeoutError)) or "Timeout" in type(exc).__name__
            if timed_out and retry and await self._answers_now():
                # Redis answers at once: the round trip was late because this process was busy
                # (its event loop blocked past the timeout), not because Redis is down. Going
                # down would drop publishes and rewrite every snapshot key: send the batch again
                # on a fresh connection instead (subscribers deduplicate a repeated message).
                metrics.REDIS_LATE.inc()
                log.warning("redis round trip timed out but redis answers: a busy worker, not a redis outage")
                await self._send(batch, retry=False)
                return
            reason = "timeout" if timed_out else "error"
            metrics.REDIS_FAILURES.labels(reason).inc(len(batch))
            self._go_down(exc)
            return
        now = clock.time()
        # per kind: its payloads' count and latencies, applied to the metrics once per batch
        sent: dict[str, list[Any]] = {}  # kind -> [payloads, latencies from event_time, from received_at]
        for channel, _, event_time, received_at in batch:
            kind = metrics.channel_kind(channel)
            gathered = sent.get(kind)
            if gathered is None:
                gathered = sent[kind] = [0, [], []]
            gathered[0] += 1
            if event_time is not None:
                gathered[1].append(max(0.0, now - event_time))
            if received_at is not None:
                gathered[2].append(max(0.0, now - received_at))
        for kind, (payloads, since_event, since_received) in sent.items():
            children = self._kind_metrics.get(kind)
            if children is None:
                children = self._kind_metrics[kind] = (metrics.REDIS_PUBLISHED.labels(kind), metrics.LATENCY.labels(kind),
                                                       metrics.PUBLISH_LATENCY.labels(kind))  # fmt: skip
            children[0].inc(payloads)
            observe_all(children[1], since_event)
            observe_all(children[2], since_received)

    async def _set_all(self, items: list[Snapshot]) -> int:
        if not items:
            return 0
        try:
            async with asyncio.timeout(self.timeout * 2):
                await self._connection().send([("SET", channel, data) for channel, data in items])
        except Exception as exc:
            self._go_down(exc)
            raise _Down from exc
        return len(items)

    async def _answers_now(self) -> bool:
        """After a timeout: does Redis answer a PING on a fresh connection (the timed-out one may
        hold a half-read reply)?"""
        client, self._client = self._client, None
        if client is not None:
            asyncio.ensure_future(_quiet_close(client))
        return await self._ping()

    async def _ping(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout * 2):
                await self._connection().ping()
            return True
        except Exception:
            await self.close()
            return False

    def _go_down(self, exc: BaseException) -> None:
        if self.up:
            log.warning("redis unavailable (%r): dropping publishes until it answers again", exc)
        dropped = len(self._queue)
        if dropped:
            metrics.REDIS_FAILURES.labels("redis_down").inc(dropped)
            self._queue.clear()
            self._done(dropped)
        self._set_up(False)
        self.resync_pending = True
        # a fresh connection next time (the old one may be half-broken)
        client, self._client = self._client, None
        if client is not None:
            asyncio.ensure_future(_quiet_close(client))

    def _set_up(self, up: bool) -> None:
        self.up = up
        metrics.REDIS_UP.set(1 if up else 0)


class _Down(Exception):
    """Redis failed during a snapshot rewrite."""


async def _quiet_close(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:
        pass
