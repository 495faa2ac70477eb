"""Alerts: alert episodes per PDL (tables/alerts.py), one event when an episode opens and one
when it clears, on ``linky:{pdl}:alerts``; the open alerts are queryable over HTTP.

The episode state lives in the battery agent's table value (tables/ledger.py ``LedgerState``),
folded right after the ledger for the same reading: one atomic write per reading, so replays
after a crash emit nothing new and the battery alerts always see the ledger of their reading.
The timer (agents/battery.py) opens ``meter_silent`` on the reception clock. This module holds
the thresholds, the channel payload and the HTTP document.

Channel payload (also the snapshot key ``linky:{pdl}:alerts``): the event (``kind``,
``action`` open|clear, ``at``, ``details``) plus ``open``, the PDL's open alerts after it.
After a crash an event can be published again (at-least-once): it is identical (same ``kind``,
``action``, ``at``), so subscribers deduplicate on these.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from stream.app import settings
from stream.battery_publish import publish
from tables.alerts import (
    SCHEMA_VERSION,
    AlertEvent,
    AlertPreferences,
    AlertSettings,
    AlertState,
    render_open_alerts,
    visible_events,
    visible_open,
)

alert_settings = AlertSettings(
    overload_share=settings.alert_overload_share,
    overload_seconds=settings.alert_overload_seconds,
    overload_clear_seconds=settings.alert_overload_clear_seconds,
    silent_seconds=settings.alert_silent_seconds,
    backwards_clear_seconds=settings.alert_backwards_clear_seconds,
    daily_budget_wh=settings.alert_daily_budget_wh or None,
    peak_alerts=settings.alert_peak_periods,
    bill_over_installment_share=settings.alert_bill_over_installment_share,
    bill_min_elapsed_hours=settings.alert_bill_min_elapsed_hours,
)

ALERT_EVENTS = Counter("linky_alert_events_total", "Alert episodes opened or cleared", ["kind", "action"])


def publish_events(state: AlertState, events: list[AlertEvent], prefs: AlertPreferences | None = None) -> None:
    """Publish each event with the open and recent alerts after it (non-blocking,
    stream/battery_publish.py); kinds the household switched off are not published."""
    if not events:
        return
    shown = visible_open(render_open_alerts(state), prefs)
    for event in events:
        ALERT_EVENTS.labels(event.kind, event.action).inc()
    for event in visible_events(events, prefs):
        publish(f"linky:{event.pdl}:alerts", {**event.to_payload(), "open": shown["open"], "recent": shown["recent"]})


def snapshot_payload(state: AlertState, pdl: str, prefs: AlertPreferences | None = None) -> dict[str, Any]:
    """The alerts snapshot rewritten from the table (no event: kind/action/at are null)."""
    shown = visible_open(render_open_alerts(state), prefs)
    return {"schema_version": SCHEMA_VERSION, "pdl": pdl, "kind": None, "action": None, "at": None,
            "details": {}, "open": shown["open"], "recent": shown["recent"]}  # fmt: skip


def http_document(pdl: str) -> dict[str, Any] | None:
    """``GET /pdl/{pdl}/alerts``: ``{"schema_version", "pdl", "open": [...]}`` or None."""
    from agents.battery import load
    from agents.preferences import preferences_for

    state = load(pdl)
    if state is None:
        return None
    return {**visible_open(render_open_alerts(state.alerts), preferences_for(pdl)), "pdl": pdl}
