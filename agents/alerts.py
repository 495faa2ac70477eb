"""Alerts: alert episodes per PDL (tables/alerts.py), one event when an episode opens and one
when it clears, on ``linky:{pdl}:alerts``; the open alerts are queryable over HTTP.

Table ``alerts``: key = PDL, value = ONE JSON document (the episode state and the PDL's
partition). A reading not newer than the last one changes nothing but the meter's liveness, so
replays after a crash emit nothing twice. Readings come through the battery agent
(``on_reading``, right after the ledger fold of the same reading), so the battery alerts are
deterministic; the alerts' own agent handles the timer ticks.

``meter_silent`` must open without readings: a timer (reception clock) scans this worker's
active partitions and ticks the PDLs whose ``tick`` would emit something; ``alerts_ticks`` applies
it inside stream iteration (faust forbids table writes in timers).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from prometheus_client import Counter

from agents.ticks import send_tick, ticks_topic
from stream.app import app, settings, table_options
from stream.battery_publish import publish
from tables.alerts import (
    AlertEvent,
    AlertSettings,
    AlertState,
    fold_reading,
    render_open_alerts,
    state_from_dict,
    state_to_dict,
    tick,
)
from tables.battery import BatteryState
from tables.contracts import Contract, effective_at

log = logging.getLogger(__name__)

alert_settings = AlertSettings(
    overload_share=settings.alert_overload_share,
    overload_seconds=settings.alert_overload_seconds,
    overload_clear_seconds=settings.alert_overload_clear_seconds,
    silent_seconds=settings.alert_silent_seconds,
    backwards_clear_seconds=settings.alert_backwards_clear_seconds,
    daily_budget_wh=settings.alert_daily_budget_wh or None,
    peak_alerts=settings.alert_peak_periods,
)

alerts = app.Table(
    "alerts",
    default=None,
    partitions=settings.topic_partitions,
    key_type=bytes,
    value_type=bytes,
    options=table_options(settings),
)

ALERT_EVENTS = Counter("linky_alert_events_total", "Alert episodes opened or cleared", ["kind", "action"])
TICKS_SENT = Counter("linky_alert_ticks_sent_total", "Silence/day-end ticks sent by the alerts timer")


@dataclass(frozen=True)
class _Stored:
    state: AlertState
    partition: int | None


def load(pdl: str) -> _Stored | None:
    raw = alerts.get(pdl.encode())
    if raw is None:
        return None
    data = json.loads(raw)
    return _Stored(state_from_dict(data["state"]), data.get("partition"))


def _store(pdl: str, state: AlertState, partition: int | None) -> None:
    value = {"state": state_to_dict(state), "partition": partition}
    alerts[pdl.encode()] = json.dumps(value, separators=(",", ":")).encode()


async def on_reading(
    pdl: str, reading: dict[str, Any], partition: int, contract: Contract | None, battery: BatteryState | None
) -> None:
    """Fold one reading into the PDL's alert episodes and publish each open and clear.

    Called by the battery agent right after it folded the same reading, so the battery alerts
    see the ledger as of this reading (two agents on the topic would race); inside stream
    iteration, so the table write is allowed.
    """
    try:
        when = datetime.fromisoformat(reading["time"])
    except (KeyError, TypeError, ValueError):
        return
    stored = load(pdl)
    before = stored.state if stored else AlertState(pdl=pdl)
    version = effective_at(contract.versions, when) if contract is not None else None
    try:
        state, events = fold_reading(
            before, reading, alert_settings, contract_version=version, battery=battery, now=datetime.now(timezone.utc)
        )
    except (ValueError, TypeError) as exc:
        log.warning("alerts: reading of %s ignored: %s", pdl, exc)
        return
    if state != before or stored is None or stored.partition != partition:
        _store(pdl, state, partition)
    await _publish(state, events)


@app.agent(ticks_topic)
async def alerts_ticks(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        message = json.loads(event.value)
        if message.get("kind") != "alerts":
            continue
        pdl = event.key.decode()
        stored = load(pdl)
        if stored is None:
            continue
        state, events = tick(stored.state, datetime.fromisoformat(message["now"]), alert_settings)
        if events:
            _store(pdl, state, stored.partition)
            await _publish(state, events)


@app.timer(interval=settings.battery_tick_seconds)
async def alerts_timer() -> None:
    """Reception-clock scan of this worker's active partitions (meter silence, day end)."""
    now = datetime.now(timezone.utc)
    due: list[tuple[str, int]] = []
    try:
        for i, (key, raw) in enumerate(alerts.items()):
            data = json.loads(raw)
            if data.get("partition") is not None and tick(state_from_dict(data["state"]), now, alert_settings)[1]:
                due.append((key.decode() if isinstance(key, bytes) else str(key), data["partition"]))
            if i % 200 == 199:
                await asyncio.sleep(0)
    except Exception:  # a rebalance can close a partition's store under the scan: next tick
        log.debug("alerts timer scan interrupted", exc_info=True)
        return
    for pdl, partition in due:
        await send_tick(pdl, partition, "alerts", now)
        TICKS_SENT.inc()


async def _publish(state: AlertState, events: list[AlertEvent]) -> None:
    open_alerts = render_open_alerts(state)["open"]
    for event in events:
        ALERT_EVENTS.labels(event.kind, event.action).inc()
        payload = {**event.to_payload(), "open": open_alerts}
        await publish(f"linky:{event.pdl}:alerts", payload)


def http_document(pdl: str) -> dict[str, Any] | None:
    """``GET /pdl/{pdl}/alerts``: the open alerts (in the worker holding the PDL's partition)."""
    stored = load(pdl)
    return None if stored is None else render_open_alerts(stored.state)
