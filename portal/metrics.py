"""Prometheus metrics of the portal (served on their own port, ``LINKY_PORTAL_METRICS_PORT``).

No per-PDL or per-address labels (unbounded cardinality, and they would be personal data)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUESTS = Counter("linky_portal_requests_total", "HTTP requests answered, by route and status", ["route", "status"])
AUTH_FAILURES = Counter(
    "linky_portal_auth_failures_total",
    "Refused authentications (401), by reason: missing, malformed, bad_signature, expired, not_yet_valid, "
    "bad_claims, unknown_key",
    ["reason"],
)
FORBIDDEN = Counter("linky_portal_forbidden_total", "Valid tokens asking for a PDL they do not name (403)")
LOCKOUTS = Counter("linky_portal_lockouts_total", "Client addresses locked after too many failed authentications")
LOCKED_REQUESTS = Counter("linky_portal_locked_requests_total", "Requests refused (429) from a locked address")
SETTINGS_WRITES = Counter(
    "linky_portal_settings_writes_total", "Alert-settings writes from the page, by outcome", ["outcome"]
)
LOGINS = Counter("linky_portal_logins_total", "Browser sessions opened by /login")
SSE_CLIENTS = Gauge("linky_portal_sse_clients", "Server-Sent Events connections open")
SSE_EVENTS = Counter("linky_portal_sse_events_total", "SSE events written to browsers, by channel", ["channel"])
SSE_DROPPED = Counter(
    "linky_portal_sse_dropped_total",
    "Updates not sent to a slow browser because a newer payload of the same channel replaced them",
)
SUBSCRIBED_PDLS = Gauge("linky_portal_redis_subscribed_pdls", "PDLs whose channels the portal is subscribed to")
REDIS_UP = Gauge("linky_portal_redis_up", "1 while the portal's Redis subscription is healthy")
WORKER_ERRORS = Counter(
    "linky_portal_worker_errors_total", "Forwarded requests the worker could not answer, by reason", ["reason"]
)
