"""portal/app.py with in-process fakes (a hub serving fixed snapshots, a fake worker app): every
route against every kind of bad credential, the cookie login, headers, lockout, metrics, logs.
The real processes are tested in tests/integration/test_portal*.py."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from portal import app as portal_app
from portal.auth import Authenticator, SessionSigner
from portal.hub import ClientQueue
from portal.lockout import Lockout
from stream import clock
from tests.portal_support import PDL_A, PDL_B, PDL_C, SECRET, hs_token, resigned_claims, tampered

ROUTES = ["/api/me", f"/api/pdl/{PDL_A}/live", f"/api/pdl/{PDL_A}/consumption", f"/api/pdl/{PDL_A}/battery",
          f"/api/pdl/{PDL_A}/alerts", f"/api/pdl/{PDL_A}/events"]
PDL_ROUTES = ROUTES[1:]


class FakeHub:
    """Snapshots from a dict; join() primes the queue like the real hub."""

    def __init__(self) -> None:
        self.snaps: dict[str, dict[str, bytes | None]] = {
            PDL_A: {"live": b'{"pdl":"%s","power_va":1}' % PDL_A.encode(), "conso": None,
                    "battery": b'{"offer":"virtual_battery"}', "surplus": b'{"offer":"virtual_battery"}', "alerts": None},
            PDL_B: {"live": None, "conso": None, "battery": b'{"offer":"none"}', "surplus": b'{"offer":"none"}',
                    "alerts": None},
        }
        self.joined: list[ClientQueue] = []
        self.left: list[ClientQueue] = []

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def snapshots(self, pdl: str) -> dict[str, bytes | None]:
        return self.snaps.get(pdl, {})

    async def join(self, pdl: str) -> ClientQueue:
        q = ClientQueue(pdl)
        q.prime(self.snaps.get(pdl, {}))
        self.joined.append(q)
        return q

    async def leave(self, q: ClientQueue) -> None:
        self.left.append(q)


def fake_worker() -> web.Application:
    async def view(request: web.Request) -> web.Response:
        body = {"pdl": request.match_info["pdl"], "view": request.match_info["view"], "query": dict(request.query)}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/pdl/{pdl}/{view}", view)
    return app


@pytest.fixture
async def worker() -> AsyncIterator[TestServer]:
    server = TestServer(fake_worker())
    await server.start_server()
    yield server
    await server.close()


def make_client(worker: TestServer, lockout: Lockout | None = None, **config: Any) -> TestClient:
    app = portal_app.build_app(
        Authenticator(secret=SECRET), FakeHub(),  # type: ignore[arg-type]
        config=portal_app.PortalConfig(worker_url=str(worker.make_url("")), heartbeat_seconds=0.2, **config),
        sessions=SessionSigner(), lockout=lockout or Lockout(attempts=1000))
    return TestClient(TestServer(app))


@pytest.fixture
async def client(worker: TestServer) -> AsyncIterator[TestClient]:
    c = make_client(worker)
    await c.start_server()
    yield c
    await c.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_every_route_refuses_bad_credentials_with_401(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    good = hs_token([PDL_A])
    bad = {"malformed": "not.a.token", "wrong signature": tampered(good),
           "other secret": hs_token([PDL_A], secret=b"x" * 40), "expired": hs_token([PDL_A], ttl=-10),
           "forged claims": resigned_claims(hs_token([PDL_B]), pdls=[PDL_A])}
    for route in ROUTES:
        resp = await client.get(route)
        assert resp.status == 401, route
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        for what, token in bad.items():
            before = metric("linky_portal_auth_failures_total", reason="bad_signature")
            resp = await client.get(route, headers=bearer(token))
            body = await resp.text()
            assert resp.status == 401, (route, what)
            assert token not in body and token.split(".")[2] not in body
            if what == "wrong signature":
                assert metric("linky_portal_auth_failures_total", reason="bad_signature") == before + 1
            resp = await client.get(route, cookies={portal_app.COOKIE: token})  # a token is no session
            assert resp.status == 401, (route, what, "cookie")
        resp = await client.get(route, headers={"Authorization": f"Basic {good}"})
        assert resp.status == 401
    logged = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    for token in bad.values():
        assert token not in logged and token.split(".")[-1] not in logged
    assert "auth_refused" in logged


async def test_a_pdl_the_token_does_not_name_is_403(client: TestClient) -> None:
    for route in PDL_ROUTES:
        before = metric("linky_portal_forbidden_total")
        resp = await client.get(route.replace(PDL_A, PDL_C), headers=bearer(hs_token([PDL_A, PDL_B])))
        assert resp.status == 403, route
        assert metric("linky_portal_forbidden_total") == before + 1


async def test_a_two_pdl_token_reaches_both_and_forwarding_keeps_the_query(client: TestClient) -> None:
    token = hs_token([PDL_A, PDL_B], sub="cust-1")
    for pdl in (PDL_A, PDL_B):
        resp = await client.get(f"/api/pdl/{pdl}/consumption?granularity=hour&from=2026-10-01", headers=bearer(token))
        assert resp.status == 200
        assert await resp.json() == {"pdl": pdl, "view": "consumption",
                                     "query": {"granularity": "hour", "from": "2026-10-01"}}
        assert resp.headers["Cache-Control"] == "no-store"
    resp = await client.get(f"/api/pdl/{PDL_A}/not-a-view", headers=bearer(token))
    assert resp.status == 404
    me = await (await client.get("/api/me", headers=bearer(token))).json()
    assert me["sub"] == "cust-1" and me["stale"] is False
    assert me["pdls"] == [
        {"pdl": PDL_A, "offers": ["virtual_battery"], "tabs": ["live", "consumption", "alerts", "battery"]},
        {"pdl": PDL_B, "offers": [], "tabs": ["live", "consumption", "alerts"]},
    ]


async def test_login_sets_a_strict_httponly_cookie_bound_to_the_token(client: TestClient) -> None:
    token = hs_token([PDL_A], ttl=1800)
    resp = await client.get(f"/login?token={token}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/"
    assert token not in resp.headers["Location"]
    cookie = resp.cookies[portal_app.COOKIE]
    assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert 1790 <= int(cookie["max-age"]) <= 1800
    assert cookie.value != token and token not in cookie.value
    session = {portal_app.COOKIE: cookie.value}
    assert (await client.get(f"/api/pdl/{PDL_A}/live", cookies=session)).status == 200
    assert (await client.get(f"/api/pdl/{PDL_B}/live", cookies=session)).status == 403
    assert (await client.get(f"/api/pdl/{PDL_A}/live", cookies={portal_app.COOKIE: tampered(cookie.value)})).status == 401
    for bad in ("", "garbage", tampered(token), hs_token([PDL_A], ttl=-1)):
        resp = await client.get(f"/login?token={bad}", allow_redirects=False)
        assert resp.status == 401 and portal_app.COOKIE not in resp.cookies
    resp = await client.get("/logout", allow_redirects=False)
    assert resp.status == 303 and resp.cookies[portal_app.COOKIE].value == ""


async def test_security_headers_on_every_response_and_cors_closed(client: TestClient) -> None:
    token = hs_token([PDL_A])
    for path, headers in (("/", {}), ("/api/me", {}), ("/api/me", bearer(token)), ("/nowhere", {})):
        resp = await client.get(path, headers={**headers, "Origin": "https://evil.example"})
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "Access-Control-Allow-Origin" not in resp.headers
        if path.startswith("/api"):
            assert resp.headers["Cache-Control"] == "no-store"
    resp = await client.get("/api/me", headers={"Content-Length": "100000"}, data=b"x" * 100000)
    assert resp.status == 413


async def test_cors_only_for_a_configured_origin(worker: TestServer) -> None:
    c = make_client(worker, cors_origins=("https://espace-client.example",))
    await c.start_server()
    try:
        ok = await c.get("/api/me", headers={**bearer(hs_token([PDL_A])), "Origin": "https://espace-client.example"})
        assert ok.headers["Access-Control-Allow-Origin"] == "https://espace-client.example"
        other = await c.get("/api/me", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
    finally:
        await c.close()


async def test_lockout_after_n_failures_with_retry_after_and_per_address(worker: TestServer) -> None:
    t0 = datetime(2031, 5, 6, 7, 0, tzinfo=timezone.utc)
    c = make_client(worker, lockout=Lockout(attempts=3, window_seconds=3600, lock_seconds=3 * 3600),
                    trust_forwarded_for=True)
    await c.start_server()
    try:
        with clock.shifted_to(t0):
            good = hs_token([PDL_A])
            locked_before = metric("linky_portal_lockouts_total")
            for _ in range(3):
                resp = await c.get("/api/me", headers={**bearer(tampered(good)), "X-Forwarded-For": "198.51.100.7"})
                assert resp.status == 401
            assert metric("linky_portal_lockouts_total") == locked_before + 1
            resp = await c.get("/api/me", headers={**bearer(good), "X-Forwarded-For": "198.51.100.7"})
            assert resp.status == 429 and 3 * 3600 - 5 <= int(resp.headers["Retry-After"]) <= 3 * 3600 + 1
            assert (await c.get(f"/login?token={good}", headers={"X-Forwarded-For": "198.51.100.7"},
                                allow_redirects=False)).status == 429
            # another address is not affected, and its success does not unlock the first
            assert (await c.get("/api/me", headers={**bearer(good), "X-Forwarded-For": "203.0.113.9"})).status == 200
            assert (await c.get("/api/me", headers={**bearer(good), "X-Forwarded-For": "198.51.100.7"})).status == 429
        with clock.shifted_to(t0 + timedelta(hours=3, seconds=1)):
            good = hs_token([PDL_A])
            assert (await c.get("/api/me", headers={**bearer(good), "X-Forwarded-For": "198.51.100.7"})).status == 200
    finally:
        await c.close()


async def test_sse_sends_snapshots_ready_then_heartbeats_and_leaves(client: TestClient) -> None:
    resp = await client.get(f"/api/pdl/{PDL_A}/events", headers=bearer(hs_token([PDL_A])))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["Cache-Control"] == "no-store"
    text = b""
    async with asyncio.timeout(5):
        while b": heartbeat" not in text:
            text += await resp.content.readany()
    events = [block for block in text.decode().split("\n\n") if block.startswith("event:")]
    assert events[0] == f'event: live\ndata: {{"pdl":"{PDL_A}","power_va":1}}'
    assert [e.split("\n")[0] for e in events] == ["event: live", "event: battery", "event: surplus", "event: ready"]
    resp.close()


def test_sse_framing_of_multiline_payloads() -> None:
    assert portal_app.sse("live", b'{"a":1}') == b'event: live\ndata: {"a":1}\n\n'
    assert portal_app.sse("x", b"a\nb") == b"event: x\ndata: a\ndata: b\n\n"


async def test_health_and_readiness_say_what_is_not_ready(client: TestClient) -> None:
    """/healthz answers while the process lives; /readyz names what is missing (here the fake
    worker URL does not serve /healthz, or the hub's Redis is a fake)."""
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json()) == {"status": "ok"}
    resp = await client.get("/readyz")
    body = await resp.json()
    assert set(body["checks"]) == {"redis", "worker", "page"}
    assert body["ready"] is all(body["checks"].values())
    assert resp.status == (200 if body["ready"] else 503)
    assert body["not_ready"] == sorted(k for k, ok in body["checks"].items() if not ok)
