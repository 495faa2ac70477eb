"""One Redis subscription per portal process, fanned out to the browsers in-process.

The hub SUBSCRIBEs to a PDL's channels (``linky:{pdl}:live|conso|battery|surplus|alerts``) when
its first browser joins and UNSUBSCRIBEs when its last one leaves. Each browser has its own
bounded ``ClientQueue``: when it is full (a slow browser), it is compacted to the newest payload
of each channel (live data: older payloads have no value), the dropped ones counted; the reader
never waits for a browser.

Snapshots: a joining browser first gets the snapshot key of each channel (GET), then the
updates. The GET is sent once the subscription is confirmed, so no update can fall between the
two; updates that arrived before the GET answered and that the snapshot already contains are
skipped (the worker SETs a snapshot key after PUBLISHing the same payload), so a browser sees
each channel's payloads in publish order, without going back in time.

Redis down: every browser gets a ``stale`` event and keeps its connection; the hub reconnects
every ``retry_seconds``, subscribes again to every PDL that still has browsers, and gives each
browser the snapshots again (then ``ready``), as on a new connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any, Mapping

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from portal import metrics

log = logging.getLogger(__name__)

CHANNELS = ("live", "conso", "battery", "surplus", "alerts")
POOL_SIZE = 16  # Redis connections of the hub: the pub/sub one and the snapshot GETs
Event = tuple[str, bytes]  # (SSE event name, data)


def channel_of(pdl: str, kind: str) -> str:
    return f"linky:{pdl}:{kind}"


class ClientQueue:
    """Events waiting for one browser: bounded, coalescing to the newest payload per channel."""

    def __init__(self, pdl: str, maxsize: int = 64) -> None:
        self.pdl = pdl
        self.maxsize = max(len(CHANNELS) + 4, maxsize)
        self._items: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._priming: list[Event] | None = []  # updates received before the snapshots
        self.dropped = 0

    def put(self, name: str, data: bytes) -> None:
        """An update from Redis (never blocks)."""
        if self._priming is not None:
            self._priming.append((name, data))
            if len(self._priming) > self.maxsize:
                self._priming = _newest_per_name(self._priming, self._count_drops)
            return
        self._items.append((name, data))
        if len(self._items) > self.maxsize:
            self._items = deque(_newest_per_name(list(self._items), self._count_drops))
        self._wakeup.set()

    def put_control(self, name: str, data: bytes) -> None:
        """``stale`` and such: straight to the browser, even while priming."""
        self._items.append((name, data))
        self._wakeup.set()

    def begin_priming(self) -> None:
        self._priming = []

    def prime(self, snapshots: Mapping[str, bytes | None]) -> None:
        """Queue the snapshots, ``ready``, then the updates received meanwhile that are newer."""
        buffered, self._priming = self._priming or [], None
        for kind, snap in snapshots.items():
            if snap is None:
                continue
            # skip updates up to (and including) the one the snapshot holds
            last = max((i for i, (n, d) in enumerate(buffered) if n == kind and d == snap), default=-1)
            buffered = [e for i, e in enumerate(buffered) if not (e[0] == kind and i <= last)]
        for kind in CHANNELS:
            snap = snapshots.get(kind)
            if snap is not None:
                self._items.append((kind, snap))
        ready = {"pdl": self.pdl, "snapshots": [k for k in CHANNELS if snapshots.get(k) is not None]}
        self._items.append(("ready", json.dumps(ready).encode()))
        self._items.extend(buffered)
        if len(self._items) > self.maxsize:
            self._items = deque(_newest_per_name(list(self._items), self._count_drops))
        self._wakeup.set()

    async def get(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one."""
        if not self._items:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return None
        return self._items.popleft() if self._items else None

    def _count_drops(self, n: int) -> None:
        self.dropped += n
        metrics.SSE_DROPPED.inc(n)

    def __len__(self) -> int:
        return len(self._items)


def _newest_per_name(events: list[Event], count: Any) -> list[Event]:
    """Keep the last event of each name, in the order of those last events."""
    last: dict[str, int] = {}
    for i, (name, _) in enumerate(events):
        last[name] = i
    keep = sorted(last.values())
    count(len(events) - len(keep))
    return [events[i] for i in keep]


class _Topic:
    def __init__(self, pdl: str) -> None:
        self.pdl = pdl
        self.clients: set[ClientQueue] = set()
        self.pending: set[str] = set()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Hub:
    """The portal's one pub/sub connection and its fan-out (see the module docstring)."""

    def __init__(self, url: str, credentials: Mapping[str, Any] | None = None, *, retry_seconds: float = 1.0,
                 timeout_seconds: float = 2.0, queue_size: int = 64, health_seconds: float = 2.0) -> None:
        self.url = url
        self.credentials = dict(credentials or {})
        self.retry_seconds = retry_seconds
        self.timeout = timeout_seconds
        self.queue_size = queue_size
        self.health_seconds = health_seconds
        self.up = False
        self._topics: dict[str, _Topic] = {}
        self._lock = asyncio.Lock()
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        metrics.REDIS_UP.set(0)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect once before the portal serves (so its first browsers are not told "stale"
        while it is still connecting), then keep the connection in a background task."""
        if not await self._connect():
            log.warning("portal redis unavailable at start; retrying", extra={"event": "redis_down"})
        self._task = asyncio.create_task(self._run(), name="portal-redis-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._disconnect()

    def client(self) -> aioredis.Redis:
        """The non-pub/sub connection pool (GET of snapshot keys)."""
        if self._client is None:
            # a bounded pool that makes callers wait for a free connection (redis-py's default pool
            # raises MaxConnectionsError): 1,000 browsers joining at once share POOL_SIZE connections
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=POOL_SIZE, timeout=self.timeout * 2, socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout, retry=Retry(NoBackoff(), 0), retry_on_timeout=False,
                **self.credentials)
            self._client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
        return self._client

    # ------------------------------------------------------------------ browsers

    async def join(self, pdl: str) -> ClientQueue:
        """A browser for ``pdl``: its queue gets the snapshots, ``ready``, then every update
        (or ``stale`` now, and the snapshots when Redis is back)."""
        queue = ClientQueue(pdl, self.queue_size)
        async with self._lock:
            topic = self._topics.get(pdl)
            if topic is None:
                topic = self._topics[pdl] = _Topic(pdl)
                metrics.SUBSCRIBED_PDLS.set(len(self._topics))
                if self.up:
                    await self._subscribe(topic)
            topic.clients.add(queue)
        if not self.up:
            queue.put_control("stale", _stale_payload())
            return queue
        await self._prime(topic, [queue])
        return queue

    async def leave(self, queue: ClientQueue) -> None:
        async with self._lock:
            topic = self._topics.get(queue.pdl)
            if topic is None:
                return
            topic.clients.discard(queue)
            if topic.clients:
                return
            del self._topics[queue.pdl]
            metrics.SUBSCRIBED_PDLS.set(len(self._topics))
            if self.up and self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(*(channel_of(queue.pdl, k) for k in CHANNELS))
                except Exception as exc:
                    self._lost(exc)

    async def snapshots(self, pdl: str) -> dict[str, bytes | None]:
        """The snapshot key of each channel (raises when Redis is unavailable)."""
        pipe = self.client().pipeline(transaction=False)
        for kind in CHANNELS:
            pipe.get(channel_of(pdl, kind))
        async with asyncio.timeout(self.timeout * 2):
            values = await pipe.execute()
        return dict(zip(CHANNELS, values))

    def subscribed_pdls(self) -> list[str]:
        return list(self._topics)

    # ------------------------------------------------------------------ internals

    async def _subscribe(self, topic: _Topic) -> None:
        channels = [channel_of(topic.pdl, k) for k in CHANNELS]
        topic.pending = set(channels)
        try:
            await self._pubsub.subscribe(*channels)
        except Exception as exc:
            self._lost(exc)

    async def _prime(self, topic: _Topic, queues: list[ClientQueue]) -> None:
        try:
            async with asyncio.timeout(self.timeout * 2):
                await asyncio.shield(topic.ready)
            snaps = await self.snapshots(topic.pdl)
        except Exception as exc:  # Redis went away meanwhile: the reconnect primes again
            self._lost(exc)
            return
        for q in queues:
            q.prime(snaps)

    async def _run(self) -> None:
        while True:
            if not self.up:
                if not await self._connect():
                    await asyncio.sleep(self.retry_seconds)
                    continue
            try:
                await self._read_for(self.health_seconds)
                async with asyncio.timeout(self.timeout * 2):
                    await self.client().ping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lost(exc)

    async def _read_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while self.up and loop.time() < end:
            if not self._pubsub.subscribed:
                await asyncio.sleep(min(0.05, max(0.0, end - loop.time())))
                continue
            msg = await self._pubsub.get_message(timeout=min(0.5, max(0.01, end - loop.time())))
            if msg is not None:
                self._dispatch(msg)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind_of_msg = msg["type"]
        channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else str(msg["channel"])
        _, pdl, kind = (channel.split(":", 2) + ["", ""])[:3]
        topic = self._topics.get(pdl)
        if topic is None:
            return
        if kind_of_msg == "subscribe":
            topic.pending.discard(channel)
            if not topic.pending and not topic.ready.done():
                topic.ready.set_result(None)
        elif kind_of_msg == "message":
            data = msg["data"]
            for q in topic.clients:
                q.put(kind, data)

    async def _connect(self) -> bool:
        await self._disconnect()
        try:
            client = self.client()
            async with asyncio.timeout(self.timeout * 2):
                await client.ping()
                self._pubsub = client.pubsub()
                async with self._lock:
                    topics = list(self._topics.values())
                    for topic in topics:
                        topic.ready = asyncio.get_running_loop().create_future()
                        for q in topic.clients:
                            q.begin_priming()
                    self.up = True
                    for topic in topics:
                        await self._subscribe(topic)
                        if not self.up:
                            raise ConnectionError("redis lost while subscribing")
        except Exception as exc:
            self.up = False
            log.debug("portal redis connect failed: %r", exc)
            await self._disconnect()
            return False
        metrics.REDIS_UP.set(1)
        log.info("portal redis subscription up", extra={"event": "redis_up", "pdls": len(topics)})
        for topic in topics:
            if topic.clients:
                asyncio.create_task(self._prime(topic, list(topic.clients)))
        return True

    def _lost(self, exc: BaseException) -> None:
        if not self.up:
            return
        self.up = False
        metrics.REDIS_UP.set(0)
        log.warning("portal redis unavailable (%r): browsers told their data is stale", exc,
                    extra={"event": "redis_down"})
        stale = _stale_payload()
        for topic in self._topics.values():
            for q in topic.clients:
                q.put_control("stale", stale)
        pubsub, self._pubsub = self._pubsub, None
        client, self._client = self._client, None
        asyncio.ensure_future(_quiet_close(pubsub, client))

    async def _disconnect(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        client, self._client = self._client, None
        await _quiet_close(pubsub, client)


def _stale_payload() -> bytes:
    return json.dumps({"stale": True, "reason": "live data source unavailable; reconnecting"}).encode()


async def _quiet_close(*things: Any) -> None:
    for thing in things:
        if thing is None:
            continue
        try:
            await thing.aclose()
        except Exception:
            pass
