"""stream/redis_publisher.py ``BatchClient`` against the stack's real redis-server, as the
worker's ACL user: a batch's PUBLISHes arrive in order with their MSET, a refused command fails
the batch without leaving its unread replies to the next one, and the publisher built on it
delivers payloads and snapshot keys."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from stream.redis_publisher import BatchClient, RedisPublisher

pytestmark = pytest.mark.integration


async def _subscribed(admin: aioredis.Redis, channel: str) -> aioredis.client.PubSub:
    pubsub = admin.pubsub()
    await pubsub.subscribe(channel)
    while (await pubsub.get_message(timeout=1.0)) is None:  # the subscribe confirmation
        pass
    return pubsub


async def _messages(pubsub: aioredis.client.PubSub, n: int) -> list[bytes]:
    out: list[bytes] = []
    async with asyncio.timeout(10):
        while len(out) < n:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                out.append(message["data"])
    return out


async def test_a_batch_publishes_in_order_then_sets_the_keys(redis_worker_url: str, redis_admin: aioredis.Redis) -> None:
    channel = f"linky:batch-{uuid.uuid4().hex[:10]}:live"
    other = f"linky:batch-{uuid.uuid4().hex[:10]}:conso"
    pubsub = await _subscribed(redis_admin, channel)
    client = BatchClient(aioredis.from_url(redis_worker_url))
    try:
        payloads = [json.dumps({"seq": i, "text": "dégât\r\n$*"}).encode() for i in range(300)]
        commands: list[tuple[str | bytes, ...]] = [("PUBLISH", channel, p) for p in payloads]
        commands.append(("MSET", channel, payloads[-1], other, b"{}"))
        await client.send(commands)
        assert await _messages(pubsub, 300) == payloads  # in order, bytes intact (CR LF, $, * inside)
        assert await redis_admin.mget(channel, other) == [payloads[-1], b"{}"]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_a_refused_command_fails_its_batch_and_the_next_batch_gets_its_own_replies(
    redis_worker_url: str, redis_admin: aioredis.Redis
) -> None:
    """The worker's ACL refuses keys outside ``linky:*``: the refusal is raised, the connection
    holding the batch's other replies is dropped, and the next batch on the same client reads
    its own replies (a GET through redis-py afterwards sees the value the batch set)."""
    key = f"linky:batch-{uuid.uuid4().hex[:10]}:live"
    client = BatchClient(aioredis.from_url(redis_worker_url))
    try:
        with pytest.raises(NoPermissionError):
            await client.send([("SET", "not-linky:" + key, b"1"), ("SET", key, b"first"), ("SET", key, b"second")])
        assert await redis_admin.get(key) == b"second"  # Redis ran what it was allowed to: a batch is not a transaction
        await client.send([("SET", key, b"third")])
        assert await redis_admin.get(key) == b"third"
        assert await client.ping()
        assert await client.client.get(key) == b"third"  # redis-py's own reads are not off by a reply
    finally:
        await client.aclose()


async def test_the_publisher_on_real_redis_delivers_payloads_and_snapshot_keys(
    redis_worker_url: str, redis_admin: aioredis.Redis
) -> None:
    pdl = uuid.uuid4().hex[:14]
    channel = f"linky:{pdl}:live"
    pubsub = await _subscribed(redis_admin, channel)
    publisher = RedisPublisher(redis_worker_url, batch_size=7, timeout_seconds=2.0)
    task = asyncio.ensure_future(publisher.run())
    try:
        for seq in range(20):
            publisher.publish(channel, {"seq": seq})
        received = [json.loads(m)["seq"] for m in await _messages(pubsub, 20)]
        assert received == list(range(20))
        assert json.loads(await redis_admin.get(channel) or b"null") == {"seq": 19}
        assert publisher.up
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()
