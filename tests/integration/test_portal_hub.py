"""The real portal process against the real redis-server (ACL user linky-portal): one shared
subscription per process, snapshots then updates over SSE, Redis restarted under browsers, the
auth matrix and the lockout on the real process (HS256 and JWKS modes).

Payloads are PUBLISHed/SET here with the admin user, as the worker would (the worker-to-browser
path is tests/integration/test_portal_stream.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from deploy.local import stack as local_stack
from tests.integration.portal_world import AclRedis, PortalProcess, SSEClient
from tests.portal_support import KeyPair, hs_token, jwks, resigned_claims, tampered

pytestmark = pytest.mark.integration

KINDS = ("live", "conso", "battery", "surplus", "alerts")


def new_pdl() -> str:
    return f"{uuid.uuid4().int % 10**14:014d}"


@pytest.fixture
def portal(stack: local_stack.StackConfig, tmp_path: Path) -> AsyncIterator[PortalProcess]:
    p = PortalProcess(tmp_path, stack.redis_url, "linky-portal", stack.redis_password_file("linky-portal"),
                      LINKY_PORTAL_LOCKOUT_ATTEMPTS="3", LINKY_PORTAL_LOCKOUT_SECONDS="3").start()
    yield p
    p.stop()


async def numsub(admin: aioredis.Redis, pdl: str) -> list[int]:
    counts = dict(await admin.pubsub_numsub(*(f"linky:{pdl}:{k}" for k in KINDS)))
    return [counts[f"linky:{pdl}:{k}".encode()] for k in KINDS]


async def until(cond, timeout: float, what: str, portal: PortalProcess) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}\n{portal.tail()}")
        await asyncio.sleep(0.1)


async def test_snapshot_then_updates_in_order_and_one_shared_subscription(portal: PortalProcess,
                                                                          redis_admin: aioredis.Redis) -> None:
    admin = redis_admin
    pdl, other = new_pdl(), new_pdl()
    await admin.set(f"linky:{pdl}:live", json.dumps({"pdl": pdl, "seq": 0}))
    await admin.set(f"linky:{pdl}:conso", json.dumps({"pdl": pdl, "day": 1}))
    url = f"{portal.url}/api/pdl/{pdl}/events"
    first = await SSEClient(url, headers={"Authorization": f"Bearer {hs_token([pdl, other])}"}).open()
    second = await SSEClient(url, headers={"Authorization": f"Bearer {hs_token([pdl])}"}).open()
    stranger = await SSEClient(f"{portal.url}/api/pdl/{other}/events",
                               headers={"Authorization": f"Bearer {hs_token([other])}"}).open()
    try:
        assert first.status == second.status == stranger.status == 200
        for c in (first, second, stranger):
            await c.wait_for(lambda c=c: bool(c.named("ready")), 10, "ready")
        assert first.events[:3] == [("live", {"pdl": pdl, "seq": 0}), ("conso", {"pdl": pdl, "day": 1}),
                                    ("ready", {"pdl": pdl, "snapshots": ["live", "conso"]})]
        assert second.events[:3] == first.events[:3]
        assert stranger.events == [("ready", {"pdl": other, "snapshots": []})]
        # two browsers of one PDL: ONE subscription of the portal per channel
        assert await numsub(admin, pdl) == [1] * 5 and await numsub(admin, other) == [1] * 5
        for seq in range(1, 21):
            await admin.publish(f"linky:{pdl}:live", json.dumps({"pdl": pdl, "seq": seq}))
            if seq % 5 == 0:
                await admin.publish(f"linky:{pdl}:conso", json.dumps({"pdl": pdl, "day": seq}))
        for c in (first, second):
            await c.wait_for(lambda c=c: len(c.named("live")) == 21 and len(c.named("conso")) == 5, 10, "updates")
            assert [e["seq"] for e in c.named("live")] == list(range(21))  # snapshot, then each update in order
            assert [e["day"] for e in c.named("conso")] == [1, 5, 10, 15, 20]
        assert not stranger.named("live", "conso")  # none of another PDL's
        await asyncio.sleep(1.5)
        assert first.comments >= 1  # heartbeat comments (1 s in this test, 15 s by default)
        # the last browser of a PDL leaving unsubscribes the portal
        await first.close()
        await asyncio.sleep(0.5)
        assert await numsub(admin, pdl) == [1] * 5
        await second.close()
        await until(lambda: _eq(numsub(admin, pdl), [0] * 5), 10, "UNSUBSCRIBE after the last browser", portal)
        assert await numsub(admin, other) == [1] * 5
        assert await portal.metric("linky_portal_redis_subscribed_pdls") == 1
    finally:
        for c in (first, second, stranger):
            await c.close()
        await admin.delete(f"linky:{pdl}:live", f"linky:{pdl}:conso")


async def _eq(coro, expected) -> bool:  # type: ignore[no-untyped-def]
    return await coro == expected


async def test_auth_matrix_and_lockout_on_the_real_process(portal: PortalProcess) -> None:
    pdl, other = new_pdl(), new_pdl()
    good = hs_token([pdl])
    routes = ["/api/me", f"/api/pdl/{pdl}/live", f"/api/pdl/{pdl}/consumption", f"/api/pdl/{pdl}/battery",
              f"/api/pdl/{pdl}/alerts", f"/api/pdl/{pdl}/events"]
    async with aiohttp.ClientSession() as s:
        async def status(path: str, token: str | None, forwarded: str) -> int:
            headers = {"X-Forwarded-For": forwarded}  # not trusted by default: the address is 127.0.0.1
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            async with s.get(portal.url + path, headers=headers) as r:
                assert "Content-Security-Policy" in r.headers and r.headers.get("Cache-Control") == "no-store"
                return r.status

        for route in routes:
            assert await status(route, None, "a") == 401
        assert await status(f"/api/pdl/{other}/live", good, "a") == 403
        assert await status(f"/api/pdl/{other}/events", good, "a") == 403
        # no worker behind this portal: forwarded routes answer 502 once authorised
        assert await status(f"/api/pdl/{pdl}/live", hs_token([other, pdl]), "a") == 502
        for bad in ("garbage", tampered(good)):
            assert await status("/api/me", bad, "a") == 401
        assert await status("/api/me", good, "a") == 200  # a success clears this address's count
        for bad in ("garbage", hs_token([pdl], ttl=-5), resigned_claims(good, pdls=[other])):
            assert await status("/api/me", bad, "a") == 401
        async with s.get(portal.url + "/api/me", headers={"Authorization": f"Bearer {good}"}) as r:
            assert r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 4
        assert await portal.metric("linky_portal_lockouts_total") == 1
        assert await portal.metric("linky_portal_auth_failures_total", reason="bad_signature") >= 2
        assert await portal.metric("linky_portal_auth_failures_total", reason="expired") == 1
        await asyncio.sleep(3.2)  # LINKY_PORTAL_LOCKOUT_SECONDS=3
        assert await status("/api/me", good, "a") == 200
    log = portal.log.read_text()
    assert '"event": "auth_refused"' in log
    for token in (good, tampered(good)):
        assert token not in log and token.split(".")[2] not in log


async def test_jwks_mode_on_the_real_process(stack: local_stack.StackConfig, tmp_path: Path) -> None:
    rsa_key, ec_key = KeyPair("RS256", "rsa-2031"), KeyPair("ES256", "ec-2031")
    keys = tmp_path / "jwks.json"
    keys.write_text(jwks(rsa_key, ec_key))
    portal = PortalProcess(tmp_path, stack.redis_url, "linky-portal", stack.redis_password_file("linky-portal"),
                           name="portal-jwks", LINKY_PORTAL_JWKS_FILE=str(keys),
                           LINKY_PORTAL_LOCKOUT_ATTEMPTS="10").start()
    pdl = new_pdl()
    try:
        async with aiohttp.ClientSession() as s:
            async def me(token: str) -> int:
                async with s.get(f"{portal.url}/api/me", headers={"Authorization": f"Bearer {token}"}) as r:
                    return r.status

            assert await me(rsa_key.token([pdl])) == 200
            assert await me(ec_key.token([pdl])) == 200
            assert await me(KeyPair("RS256", "rsa-2031").token([pdl])) == 401  # same kid, another key
            assert await me(rsa_key.token([pdl], ttl=-1)) == 401
            assert await me(hs_token([pdl])) == 401  # the shared-secret mode is off
            async with s.get(f"{portal.url}/login?token={ec_key.token([pdl], ttl=120)}", allow_redirects=False) as r:
                assert r.status == 303
                cookie = r.cookies["linky_portal_session"].value
            async with s.get(f"{portal.url}/api/me", cookies={"linky_portal_session": cookie}) as r:
                assert r.status == 200 and [p["pdl"] for p in (await r.json())["pdls"]] == [pdl]
    finally:
        portal.stop()


async def test_redis_restarted_under_browsers_stale_then_snapshots(stack: local_stack.StackConfig,
                                                                   tmp_path: Path) -> None:
    redis_server = AclRedis(tmp_path, stack.cache_dir)
    redis_server.start()
    cfg = redis_server.cfg
    portal = PortalProcess(tmp_path, cfg.redis_url, "linky-portal", cfg.redis_password_file("linky-portal"),
                           name="portal-restart").start()
    pdl = new_pdl()
    client = None
    try:
        admin = aioredis.from_url(cfg.redis_admin_url)
        await admin.set(f"linky:{pdl}:live", json.dumps({"seq": 1}))
        await admin.aclose()
        client = await SSEClient(f"{portal.url}/api/pdl/{pdl}/events",
                                 headers={"Authorization": f"Bearer {hs_token([pdl], ttl=3600)}"}).open()
        await client.wait_for(lambda: bool(client.named("ready")), 10, "ready")
        assert client.named("live") == [{"seq": 1}]
        redis_server.stop()
        await client.wait_for(lambda: bool(client.named("stale")), 15, "the stale event")
        assert client.named("stale")[0]["stale"] is True
        assert await portal.metric("linky_portal_redis_up") == 0
        redis_server.start()  # empty (no persistence): the worker would rewrite the snapshot keys
        admin = aioredis.from_url(cfg.redis_admin_url)
        await admin.set(f"linky:{pdl}:live", json.dumps({"seq": 2}))
        await client.wait_for(lambda: len(client.named("ready")) == 2, 15, "the snapshots again")
        assert client.named("live") == [{"seq": 1}, {"seq": 2}]
        await admin.publish(f"linky:{pdl}:live", json.dumps({"seq": 3}))
        await client.wait_for(lambda: len(client.named("live")) == 3, 10, "data after the restart")
        assert client.named("live")[-1] == {"seq": 3}
        assert [n for n, _ in client.events] == ["live", "ready", "stale", "live", "ready", "live"]
        assert await portal.metric("linky_portal_redis_up") == 1
        await admin.aclose()
        assert portal.proc is not None and portal.proc.poll() is None
    finally:
        if client is not None:
            await client.close()
        portal.stop()
        redis_server.stop()


async def test_a_browser_that_stops_reading_does_not_slow_the_others(portal: PortalProcess,
                                                                     redis_admin: aioredis.Redis) -> None:
    """A client that never reads its socket: its queue is compacted (drops counted), while a
    client of the same PDL still gets every update at once."""
    admin = redis_admin
    import socket

    pdl = new_pdl()
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", portal.port))
    stuck.sendall(f"GET /api/pdl/{pdl}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hs_token([pdl])}\r\n\r\n"
                  .encode())  # fmt: skip
    fast = await SSEClient(f"{portal.url}/api/pdl/{pdl}/events",
                           headers={"Authorization": f"Bearer {hs_token([pdl])}"}).open()
    try:
        await fast.wait_for(lambda: bool(fast.named("ready")), 10, "ready")
        await until(lambda: _eq(numsub(admin, pdl), [1] * 5), 10, "both clients joined", portal)
        dropped_before = await portal.metric("linky_portal_sse_dropped_total")
        filler = "x" * 200_000  # 300 x 200 kB = 60 MB: far more than the stuck socket's buffers
        started = time.monotonic()
        for seq in range(300):
            await admin.publish(f"linky:{pdl}:live", json.dumps({"seq": seq, "filler": filler}))
        await fast.wait_for(lambda: len(fast.named("live")) == 300, 60, "every update for the reading client")
        assert [e["seq"] for e in fast.named("live")] == list(range(300))
        assert time.monotonic() - started < 30
        assert await portal.metric("linky_portal_sse_dropped_total") > dropped_before
    finally:
        stuck.close()
        await fast.close()
