"""The portal's aiohttp application (docs/portal.md).

Routes (every ``/api`` route: ``Authorization: Bearer JWT`` or the session cookie; 401 for a
missing, malformed, expired or tampered credential, 403 for a PDL the credential does not name,
429 with ``Retry-After`` from a locked address):

- ``GET /login?token=JWT``: sets the HttpOnly, SameSite=Strict session cookie, 303 to the page;
- ``GET /logout``: clears it;
- ``GET /api/me``: the credential's PDLs and their offers (which tabs the page shows);
- ``GET /api/pdl/{pdl}/events``: Server-Sent Events (snapshots, then updates; portal/hub.py);
- ``GET /api/pdl/{pdl}/{view}``: the worker's ``/pdl/{pdl}/{view}`` (``FORWARDED_VIEWS``),
  forwarded as is (the worker forwards on to the partition owner).

Tokens are never logged nor echoed: aiohttp's access log (which prints query strings) is off,
the portal logs its own lines with the path only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portal import metrics
from portal.auth import AuthError, Authenticator, Identity, SessionSigner
from portal.hub import CHANNELS, Hub
from portal.lockout import Lockout
from stream import clock

log = logging.getLogger("portal")

COOKIE = "linky_portal_session"
# the worker's per-PDL views (stream/web.py, stream/web_battery.py)
FORWARDED_VIEWS = ("consumption", "battery", "alerts", "live", "index", "bill", "alert-settings")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
MAX_LINE = 8190  # request line (a token in /login's query string fits)
MAX_FIELD = 8190  # one header (a Bearer token fits)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)
SESSIONS: web.AppKey[SessionSigner] = web.AppKey("sessions", SessionSigner)
LOCKOUT: web.AppKey[Lockout] = web.AppKey("lockout", Lockout)
HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
CONFIG: web.AppKey["PortalConfig"] = web.AppKey("config")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)


class PortalConfig:
    """The subset of ``Settings`` the application reads (built by ``from_settings``)."""

    def __init__(self, *, worker_url: str = "http://127.0.0.1:6066", worker_timeout: float = 5.0,
                 page_path: str = "/", cookie_secure: bool = False, cors_origins: tuple[str, ...] = (),
                 heartbeat_seconds: float = 15.0, max_request_bytes: int = 4096,
                 trust_forwarded_for: bool = False) -> None:
        self.worker_url = worker_url.rstrip("/")
        self.worker_timeout = worker_timeout
        self.page_path = page_path
        self.cookie_secure = cookie_secure
        self.cors_origins = cors_origins
        self.heartbeat_seconds = heartbeat_seconds
        self.max_request_bytes = max_request_bytes
        self.trust_forwarded_for = trust_forwarded_for

    @classmethod
    def from_settings(cls, cfg: Any) -> "PortalConfig":
        return cls(worker_url=cfg.portal_worker_url, worker_timeout=cfg.portal_worker_timeout_seconds,
                   page_path=cfg.portal_page_path, cookie_secure=cfg.portal_cookie_secure,
                   cors_origins=tuple(cfg.portal_cors_origins.split()),
                   heartbeat_seconds=cfg.portal_sse_heartbeat_seconds,
                   max_request_bytes=cfg.portal_max_request_bytes,
                   trust_forwarded_for=cfg.portal_trust_forwarded_for)


def build_app(authenticator: Authenticator, hub: Hub, *, config: PortalConfig | None = None,
              sessions: SessionSigner | None = None, lockout: Lockout | None = None,
              settings: Any | None = None) -> web.Application:
    """The portal application (the hub is started and closed with it). ``settings``: the
    ``Settings`` the page's write route needs (Kafka); None answers it with 503."""
    from portal import page as dashboard

    config = config or PortalConfig()
    app = web.Application(middlewares=[_guard], client_max_size=config.max_request_bytes)
    app[AUTHENTICATOR] = authenticator
    app[SESSIONS] = sessions or SessionSigner()
    app[LOCKOUT] = lockout or Lockout()
    app[HUB] = hub
    app[CONFIG] = config
    app.router.add_get("/login", login, name="login")
    app.router.add_get("/logout", logout, name="logout")
    app.router.add_get("/", dashboard.page, name="page")
    app.router.add_get("/api/me", me, name="me")
    app.router.add_get("/api/pdl/{pdl}/events", events, name="events")
    app.router.add_get("/api/pdl/{pdl}/{view}", forward, name="forward")
    dashboard.install(app, settings)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> Any:
    app[HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=app[CONFIG].worker_timeout),
                                      auto_decompress=False)
    await app[HUB].start()
    yield
    await app[HUB].close()
    await app[HTTP].close()


# --------------------------------------------------------------------------- middleware


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers, CORS, size limit, one structured log line and metric per request."""
    started = time.monotonic()
    config = request.app[CONFIG]
    route = request.match_info.route.name or "unknown"
    if request.content_length is not None and request.content_length > config.max_request_bytes:
        response: web.StreamResponse = _error(413, "request too large")
    elif request.method == "OPTIONS":
        response = web.Response(status=204)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason)
    if not response.prepared:
        _secure(request, response)
    metrics.REQUESTS.labels(route, str(response.status)).inc()
    log.info("%s %s %d", request.method, request.path, response.status, extra={
        "event": "http", "method": request.method, "path": request.path, "status": response.status,
        "route": route, "ms": round((time.monotonic() - started) * 1000, 1)})
    return response


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"
    h["X-Frame-Options"] = "DENY"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    if request.path.startswith("/api") or request.path.startswith("/log"):
        h["Cache-Control"] = "no-store"
    origin = request.headers.get("Origin")
    if origin and origin in request.app[CONFIG].cors_origins:
        h["Access-Control-Allow-Origin"] = origin
        h["Access-Control-Allow-Credentials"] = "true"
        h["Access-Control-Allow-Headers"] = "Authorization"
        h["Access-Control-Allow-Methods"] = "GET"
        h["Vary"] = "Origin"


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


# --------------------------------------------------------------------------- authentication


def client_address(request: web.Request) -> str:
    """The client's address; with ``LINKY_PORTAL_TRUST_FORWARDED_FOR`` the rightmost
    X-Forwarded-For entry (the one our reverse proxy added)."""
    if request.app[CONFIG].trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.remote or "unknown"


class Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _locked_response(retry_after: float) -> web.Response:
    metrics.LOCKED_REQUESTS.inc()
    return _error(429, "too many failed authentications; try again later", **{"Retry-After": str(int(retry_after) + 1)})


async def _check(request: web.Request, token: str | None, source: str) -> Identity:
    """Verify a credential, counting failures per client address (lockout)."""
    lockout = request.app[LOCKOUT]
    address = client_address(request)
    left = lockout.retry_after(address)
    if left is not None:
        raise Refused(_locked_response(left))
    if not token:
        metrics.AUTH_FAILURES.labels("missing").inc()
        raise Refused(_error(401, "authentication required", **{"WWW-Authenticate": 'Bearer realm="linky-portal"'}))
    try:
        if source == "cookie":
            identity = request.app[SESSIONS].verify(token)
        else:
            identity = await request.app[AUTHENTICATOR].verify(token)
    except AuthError as exc:
        metrics.AUTH_FAILURES.labels(exc.reason).inc()
        locked = lockout.failure(address)
        log.warning("authentication refused (%s, %s) from %s", exc.reason, source, address, extra={
            "event": "auth_refused", "reason": exc.reason, "source": source, "client": address,
            "path": request.path, "locked": locked})
        if locked:
            log.warning("client %s locked for %.0f s", address, lockout.lock,
                        extra={"event": "lockout", "client": address, "seconds": lockout.lock})
        raise Refused(_error(401, "invalid or expired credentials",
                             **{"WWW-Authenticate": 'Bearer realm="linky-portal", error="invalid_token"'})) from None
    lockout.success(address)
    return identity


async def authenticate(request: web.Request) -> Identity:
    """``Authorization: Bearer`` first, else the session cookie."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return await _check(request, token.strip() if scheme.lower() == "bearer" else "x", "bearer")
    return await _check(request, request.cookies.get(COOKIE), "cookie")


async def _authorized(request: web.Request) -> tuple[Identity, str] | web.Response:
    try:
        identity = await authenticate(request)
    except Refused as refused:
        return refused.response
    pdl = request.match_info["pdl"]
    if not identity.allows(pdl):
        metrics.FORBIDDEN.inc()
        log.warning("PDL not in the credential", extra={"event": "forbidden", "client": client_address(request),
                                                         "path": request.path, "sub": identity.sub})
        return _error(403, "this PDL is not yours")
    return identity, pdl


# --------------------------------------------------------------------------- routes


async def login(request: web.Request) -> web.StreamResponse:
    try:
        identity = await _check(request, request.query.get("token"), "login")
    except Refused as refused:
        from portal.page import login_failed

        return login_failed(refused.response, request)  # a browser gets the login message
    metrics.LOGINS.inc()
    config = request.app[CONFIG]
    response = web.Response(status=303, headers={"Location": config.page_path})
    max_age = max(1, int(identity.exp - clock.time()))
    response.set_cookie(COOKIE, request.app[SESSIONS].issue(identity), max_age=max_age, path="/",
                        httponly=True, samesite="Strict", secure=config.cookie_secure)
    log.info("session opened", extra={"event": "login", "sub": identity.sub, "pdls": len(identity.pdls),
                                      "client": client_address(request)})
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=303, headers={"Location": request.app[CONFIG].page_path})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.StreamResponse:
    try:
        identity = await authenticate(request)
    except Refused as refused:
        return refused.response
    hub = request.app[HUB]
    pdls: list[dict[str, Any]] = []
    stale = False
    for pdl in identity.pdls:
        entry: dict[str, Any] = {"pdl": pdl, "offers": None, "tabs": ["live", "consumption", "alerts"]}
        try:
            snaps = await hub.snapshots(pdl)
        except Exception:
            stale = True
            pdls.append(entry)
            continue
        offers = []
        for kind in ("battery", "surplus"):
            offer = _json(snaps.get(kind)).get("offer")
            if offer and offer != "none":
                offers.append(offer)
        entry["offers"] = sorted(set(offers))
        if "virtual_battery" in offers:
            entry["tabs"].append("battery")
        if "surplus_resale" in offers:
            entry["tabs"].append("surplus")
        pdls.append(entry)
    expires = datetime.fromtimestamp(identity.exp, timezone.utc).isoformat()
    return web.json_response({"sub": identity.sub, "expires_at": expires, "pdls": pdls, "stale": stale,
                              "now": clock.now().isoformat()})  # the page's ages use the portal's clock


async def forward(request: web.Request) -> web.StreamResponse:
    auth = await _authorized(request)
    if isinstance(auth, web.Response):
        return auth
    _, pdl = auth
    view = request.match_info["view"]
    if view not in FORWARDED_VIEWS:
        return _error(404, "no such view")
    config = request.app[CONFIG]
    url = f"{config.worker_url}/pdl/{pdl}/{view}"
    try:
        async with request.app[HTTP].get(url, params=request.query, allow_redirects=False) as upstream:
            body = await upstream.read()
            return web.Response(body=body, status=upstream.status,
                                content_type=upstream.content_type or "application/json")
    except asyncio.TimeoutError:
        metrics.WORKER_ERRORS.labels("timeout").inc()
        return _error(504, "the stream worker did not answer in time")
    except aiohttp.ClientError as exc:
        metrics.WORKER_ERRORS.labels("unreachable").inc()
        log.warning("worker unreachable: %r", exc, extra={"event": "worker_error", "path": request.path})
        return _error(502, "the stream worker is not reachable")


async def events(request: web.Request) -> web.StreamResponse:
    auth = await _authorized(request)
    if isinstance(auth, web.Response):
        return auth
    _, pdl = auth
    config = request.app[CONFIG]
    hub = request.app[HUB]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    _secure(request, response)
    await response.prepare(request)
    metrics.SSE_CLIENTS.inc()
    queue = None
    try:
        await response.write(b"retry: 3000\n\n")
        queue = await hub.join(pdl)
        while True:
            event = await queue.get(config.heartbeat_seconds)
            if event is None:
                await response.write(b": heartbeat\n\n")
                continue
            name, data = event
            await response.write(sse(name, data))
            metrics.SSE_EVENTS.labels(name if name in CHANNELS else "control").inc()
    except ConnectionResetError:  # the browser left (or, with handler cancellation, CancelledError)
        pass
    finally:
        metrics.SSE_CLIENTS.dec()
        if queue is not None:
            await asyncio.shield(hub.leave(queue))
    return response


def sse(name: str, data: bytes) -> bytes:
    """One SSE event; a payload with newlines becomes several ``data:`` lines."""
    lines = b"".join(b"data: " + line + b"\n" for line in (data.splitlines() or [b""]))
    return b"event: " + name.encode() + b"\n" + lines + b"\n"


def _json(raw: bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- metrics


def metrics_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app
