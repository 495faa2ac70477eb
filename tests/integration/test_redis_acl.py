"""Redis ACLs of the local stack, against its real redis-server (deploy/local/stack.py
``REDIS_USERS``): the default user is disabled, ``linky-portal`` may only SUBSCRIBE to
``linky:*``, GET ``linky:*`` and PING, ``linky-worker`` may only PUBLISH/SET/GET/MSET ``linky:*``
and PING. Every refusal is paired with the allowed neighbour, so a test cannot pass because the
connection itself is broken."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from deploy.local import stack as local_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def portal(redis_portal_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_portal_url)
    yield client
    await client.aclose()


@pytest.fixture
async def worker(redis_worker_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_worker_url)
    yield client
    await client.aclose()


def key() -> str:
    return f"linky:acl-test-{uuid.uuid4().hex[:10]}:live"


async def test_an_unauthenticated_connection_is_refused(stack: local_stack.StackConfig) -> None:
    anonymous = aioredis.from_url(stack.redis_url)
    try:
        with pytest.raises(AuthenticationError):  # NOAUTH: the default user is off
            await anonymous.ping()
        with pytest.raises(AuthenticationError):
            await anonymous.get("linky:x:live")
    finally:
        await anonymous.aclose()
    wrong = aioredis.from_url(stack.redis_url, username="linky-portal", password="not-the-password")
    try:
        with pytest.raises(AuthenticationError):
            await wrong.ping()
    finally:
        await wrong.aclose()
    default = aioredis.from_url(stack.redis_url, username="default", password="")
    try:
        with pytest.raises((AuthenticationError, ResponseError)):
            await default.ping()
    finally:
        await default.aclose()


async def test_the_portal_user_reads_and_subscribes_to_linky_only(portal: aioredis.Redis, redis_url: str) -> None:
    admin = aioredis.from_url(redis_url)
    k = key()
    try:
        await admin.set(k, b'{"v": 1}')
        assert await portal.ping() is True
        assert await portal.get(k) == b'{"v": 1}'
        for command in (("PUBLISH", k, "x"), ("SET", k, "x"), ("MSET", k, "x"), ("DEL", k), ("KEYS", "*"),
                        ("SCAN", "0"), ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("ACL", "LIST"),
                        ("PSUBSCRIBE", "linky:*"), ("GET", "other:key"), ("EVAL", "return 1", "0")):
            with pytest.raises(NoPermissionError):
                await portal.execute_command(*command)
        assert await admin.get(k) == b'{"v": 1}'  # the refused SET/DEL changed nothing
        # SUBSCRIBE: allowed on linky:*, refused elsewhere (the refusal arrives as the reply)
        pubsub = portal.pubsub()
        await pubsub.subscribe(k)
        reply = await pubsub.get_message(timeout=2.0)
        assert reply is not None and reply["type"] == "subscribe"
        assert await admin.publish(k, b"hello") == 1
        async with asyncio.timeout(5):
            while (msg := await pubsub.get_message(timeout=1.0)) is None:
                pass
        assert msg["data"] == b"hello"
        await pubsub.aclose()
        refused = portal.pubsub()
        with pytest.raises(NoPermissionError):
            await refused.subscribe("other:channel")
            async with asyncio.timeout(5):
                while await refused.get_message(timeout=1.0) is None:
                    pass
        await refused.aclose()
        numsub = dict(await admin.pubsub_numsub("other:channel"))
        assert numsub[b"other:channel"] == 0
    finally:
        await admin.delete(k)
        await admin.aclose()


async def test_the_worker_user_publishes_and_sets_linky_keys_only(worker: aioredis.Redis, redis_url: str) -> None:
    admin = aioredis.from_url(redis_url)
    k = key()
    try:
        assert await worker.ping() is True
        pipe = worker.pipeline(transaction=False)  # what stream/redis_publisher.py sends
        pipe.publish(k, b"1")
        pipe.mset({k: b"1"})
        pipe.set(k, b"2")
        pipe.get(k)
        assert (await pipe.execute())[1:] == [True, True, b"2"]
        for command in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "save", ""),
                        ("ACL", "LIST"), ("ACL", "SETUSER", "x"), ("KEYS", "*"), ("DEL", k),
                        ("SET", "other:key", "x"), ("PUBLISH", "other:channel", "x"), ("SUBSCRIBE", k),
                        ("CLIENT", "LIST"), ("SWAPDB", "0", "1"), ("MONITOR",)):
            with pytest.raises(NoPermissionError):
                await worker.execute_command(*command)
        assert await admin.get(k) == b"2" and await admin.exists("other:key") == 0
    finally:
        await admin.delete(k)
        await admin.aclose()


def test_the_acl_file_keeps_no_clear_password(stack: local_stack.StackConfig) -> None:
    text = (stack.stack_dir / "redis" / "users.acl").read_text()
    assert "user default off" in text
    for user in ("linky-admin", "linky-worker", "linky-portal"):
        password = stack.redis_password(user)
        assert len(password) >= 24 and password not in text
        assert (stack.redis_password_file(user).stat().st_mode & 0o077) == 0


def test_an_older_redis_without_acls_is_restarted_with_them(stack: local_stack.StackConfig, tmp_path: Path) -> None:
    """A ``.stack/`` from before the ACLs: our redis-server runs with the default user open.
    ``up`` (its Redis part, ``ensure_redis``) restarts it with the ACL file."""
    from tests.conftest import free_port

    cfg = local_stack.StackConfig(stack_dir=tmp_path / "old", cache_dir=stack.cache_dir, kafka_port=free_port(),
                                  controller_port=free_port(), redis_port=free_port(), kafka_heap="64m")
    for d in (cfg.logs, cfg.run, cfg.stack_dir / "redis"):
        d.mkdir(parents=True, exist_ok=True)
    exe = local_stack.ensure_redis_server(quiet=True)
    local_stack._spawn(cfg, "redis", [exe, "--bind", "127.0.0.1", "--port", str(cfg.redis_port), "--save", "",
                                      "--appendonly", "no", "--logfile", str(cfg.logs / "redis.log")],
                       cfg.logs / "redis.out")  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not local_stack._redis_ping(cfg.redis_port, None, None):
            assert time.monotonic() < deadline, "the old-style redis did not start"
            time.sleep(0.1)
        old_pid = local_stack._running_pid(cfg, "redis")
        assert local_stack.ensure_redis(cfg) is True
        deadline = time.monotonic() + 20
        while not local_stack._redis_admin_ping(cfg):
            assert time.monotonic() < deadline, "redis did not come back with ACLs"
            time.sleep(0.1)
        assert local_stack._running_pid(cfg, "redis") not in (None, old_pid)
        assert local_stack._redis_ping(cfg.redis_port, None, None) is False  # default user off now
        assert local_stack.ensure_redis(cfg) is False  # idempotent: same ACL file, not restarted
    finally:
        local_stack.down(cfg, quiet=True)
