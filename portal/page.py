"""The dashboard page on the portal (docs/dashboard.md) and its one write route.

- ``GET /``: the page (``portal/page/index.html``); ``GET /static/{file}``: its bundle, built by
  ``make page`` into ``portal/page/dist/`` (503 with the command to run when it is missing);
  ``GET /favicon.ico``: 204 (no icon, no console error).
- ``GET /api/pdl/{pdl}/alert-settings``: the household's alert preferences (forwarded to the
  worker, like the other views).
- ``PUT /api/pdl/{pdl}/alert-settings``: the same auth as every ``/api`` route (401/403/429), and:
  CSRF-safe (JSON body only, the ``X-Requested-With: linky-portal`` header that a cross-site form
  or a simple cross-origin request cannot send, and an ``Origin``, when present, equal to the
  portal's own), validated (tables/alerts.py ``preferences_from_dict``; 400 with the reason),
  rate-limited per credential and PDL (``LINKY_PORTAL_SETTINGS_WRITES_PER_MINUTE``, 429), logged
  without the token. Accepted preferences are stamped on the product's clock and written to the
  ``linky.alert-settings`` topic (stream/alert_settings.py); the worker applies them from then on.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer

from portal import metrics
from stream import clock
from stream.alert_settings import write_preferences
from stream.contracts import ensure_pdl_document_topic
from stream.kafka_security import client_kwargs
from tables.alerts import PreferencesError

log = logging.getLogger("portal")

PAGE_DIR = Path(__file__).resolve().parent / "page"
DIST_DIR = PAGE_DIR / "dist"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".map": "application/json", ".svg": "image/svg+xml"}
CSRF_HEADER, CSRF_VALUE = "X-Requested-With", "linky-portal"

SETTINGS: web.AppKey[Any] = web.AppKey("page_settings")
PRODUCER: web.AppKey[Any] = web.AppKey("page_producer")
WRITES: web.AppKey[Any] = web.AppKey("page_writes")

LOGIN_FAILED_HTML = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Session expirée</title><link rel="stylesheet" href="/static/app.css"></head>
<body><section id="login-message" class="notice" role="alert"><h2>Session expirée ou invalide</h2>
<p>Pour consulter votre consommation, reconnectez-vous depuis votre espace client.</p></section></body></html>
"""


def install(app: web.Application, settings: Any | None) -> None:
    """Add the page's routes to the portal app. ``settings``: the ``Settings`` (Kafka for the
    write route); None leaves the write route answering 503."""
    app[SETTINGS] = settings
    app[WRITES] = defaultdict(deque)
    app.router.add_get("/static/{name}", static, name="static")
    app.router.add_get("/favicon.ico", favicon, name="favicon")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_put("/api/pdl/{pdl}/alert-settings", put_alert_settings, name="alert_settings_put")
    app.cleanup_ctx.append(_producer)


async def _producer(app: web.Application) -> Any:
    app[PRODUCER] = None
    yield
    producer = app[PRODUCER]
    if producer is not None:
        await producer.stop()


async def page(request: web.Request) -> web.StreamResponse:
    index = PAGE_DIR / "index.html"
    if not (DIST_DIR / "app.js").exists():
        return web.Response(status=503, text="the page is not built: run `make page` (npm ci + esbuild)\n")
    return web.FileResponse(index, headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = DIST_DIR / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return web.json_response({"error": "not found"}, status=404)
    return web.FileResponse(path, headers={"Content-Type": f"{STATIC_TYPES[path.suffix]}; charset=utf-8",
                                           "Cache-Control": "no-cache"})  # fmt: skip


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.StreamResponse:
    """The process answers (systemd, load balancers)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready to serve households: the shared Redis subscription is up, a worker answers its
    ``/healthz``, and the page is built. 503 with what is not ready otherwise."""
    from portal.app import CONFIG, HTTP, HUB

    checks: dict[str, Any] = {"redis": bool(getattr(request.app[HUB], "up", False)), "page": (DIST_DIR / "app.js").exists()}
    try:
        async with request.app[HTTP].get(f"{request.app[CONFIG].worker_url}/healthz") as r:
            checks["worker"] = r.status == 200
    except Exception:
        checks["worker"] = False
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks,
                              "not_ready": sorted(k for k, ok in checks.items() if not ok)},
                             status=200 if ready else 503)  # fmt: skip


def login_failed(refused: web.Response, request: web.Request) -> web.Response:
    """A refused ``/login`` as a browser sees it: the same status, the login message in French."""
    if "text/html" not in request.headers.get("Accept", ""):
        return refused
    headers = {k: v for k, v in refused.headers.items() if k in ("Retry-After", "WWW-Authenticate")}
    return web.Response(status=refused.status, text=LOGIN_FAILED_HTML, content_type="text/html", headers=headers)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    from portal.app import CONFIG

    return origin == f"{request.scheme}://{request.host}" or origin in request.app[CONFIG].cors_origins


async def put_alert_settings(request: web.Request) -> web.StreamResponse:
    from portal.app import _authorized, _error, client_address

    auth = await _authorized(request)
    if isinstance(auth, web.Response):
        return auth
    identity, pdl = auth
    if request.headers.get(CSRF_HEADER) != CSRF_VALUE or not _same_origin(request):
        metrics.SETTINGS_WRITES.labels("csrf").inc()
        return _error(403, f"a settings write needs the {CSRF_HEADER}: {CSRF_VALUE} header from the portal's own page")
    if request.content_type != "application/json":
        metrics.SETTINGS_WRITES.labels("invalid").inc()
        return _error(415, "the body must be application/json")
    settings = request.app[SETTINGS]
    limit = getattr(settings, "portal_settings_writes_per_minute", 10) if settings is not None else 10
    window = request.app[WRITES][(identity.sub or ",".join(identity.pdls), pdl)]
    now = clock.time()
    while window and window[0] <= now - 60:
        window.popleft()
    if len(window) >= limit:
        metrics.SETTINGS_WRITES.labels("rate_limited").inc()
        return _error(429, "too many settings changes; try again in a minute", **{"Retry-After": str(int(60 - (now - window[0])) + 1)})
    try:
        body = json.loads(await request.read())
    except ValueError:
        metrics.SETTINGS_WRITES.labels("invalid").inc()
        return _error(400, "the body is not JSON")
    if settings is None:
        return _error(503, "settings writes are not configured on this portal")
    try:
        producer = await _started_producer(request.app)
        prefs = await write_preferences(settings, pdl, body, producer=producer)
    except PreferencesError as exc:
        metrics.SETTINGS_WRITES.labels("invalid").inc()
        return _error(400, str(exc))
    except Exception as exc:  # Kafka down: say so, nothing was written
        metrics.SETTINGS_WRITES.labels("error").inc()
        log.warning("alert settings of %s not written: %r", pdl, exc, extra={"event": "settings_error", "pdl": pdl})
        return _error(503, "the settings could not be saved now; try again later")
    window.append(now)
    metrics.SETTINGS_WRITES.labels("written").inc()
    log.info("alert settings written", extra={"event": "alert_settings", "pdl": pdl, "sub": identity.sub,
                                              "client": client_address(request)})
    from tables.alerts import preferences_to_dict

    return web.json_response({"pdl": pdl, **preferences_to_dict(prefs)})


async def _started_producer(app: web.Application) -> AIOKafkaProducer:
    if app[PRODUCER] is None:
        settings = app[SETTINGS]
        await ensure_pdl_document_topic(settings, settings.alert_settings_topic)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=True, client_id="linky-portal-settings",
                                    **client_kwargs(settings))  # fmt: skip
        await producer.start()
        app[PRODUCER] = producer
    return app[PRODUCER]
