"""Running the portal: ``linky-stream portal`` (the HTTP app on LINKY_PORTAL_HOST:PORT, /metrics
on LINKY_PORTAL_METRICS_PORT) until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from portal import app as portal_app
from portal.auth import authenticator_from_settings, session_signer_from_settings
from portal.hub import Hub
from portal.lockout import Lockout
from stream import redis_auth
from stream.settings import Settings

log = logging.getLogger("portal")


def build_from_settings(cfg: Settings) -> web.Application:
    """The portal application as ``linky-stream portal`` runs it."""
    hub = Hub(cfg.portal_redis_url,
              redis_auth.credentials(cfg.portal_redis_username, cfg.portal_redis_password_file,
                                     cfg.portal_redis_password),
              retry_seconds=cfg.portal_redis_retry_seconds, queue_size=cfg.portal_client_queue)
    return portal_app.build_app(
        authenticator_from_settings(cfg), hub, config=portal_app.PortalConfig.from_settings(cfg),
        sessions=session_signer_from_settings(cfg),
        lockout=Lockout(cfg.portal_lockout_attempts, cfg.portal_lockout_window_seconds, cfg.portal_lockout_seconds),
        settings=cfg)


def public_url(cfg: Settings) -> str:
    return (cfg.portal_public_url or f"http://{cfg.portal_host}:{cfg.portal_port}").rstrip("/")


async def serve(cfg: Settings, *, ready: asyncio.Event | None = None) -> None:
    application = build_from_settings(cfg)
    # handler_cancellation: a browser that closes its EventSource ends its handler at once
    # (the hub unsubscribes when the last one leaves); access_log=None: aiohttp's access log
    # prints query strings (/login?token=...), the portal logs its own lines without them
    runner = web.AppRunner(application, handler_cancellation=True, access_log=None,
                           max_line_size=portal_app.MAX_LINE, max_field_size=portal_app.MAX_FIELD)
    await runner.setup()
    await web.TCPSite(runner, cfg.portal_host, cfg.portal_port, backlog=2048).start()
    metrics_runner = None
    if cfg.portal_metrics_port:
        metrics_runner = web.AppRunner(portal_app.metrics_app(), access_log=None)
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, cfg.portal_metrics_host, cfg.portal_metrics_port).start()
    log.info("portal listening on %s (metrics on %s:%s)", public_url(cfg), cfg.portal_metrics_host,
             cfg.portal_metrics_port, extra={"event": "portal_started"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
