"""Consumption: index deltas into hour/day/month buckets per tariff register and injection.
``handle`` is called for each reading by the readings agent (agents/readings.py).

The rules are tables/consumption.py's; storage is stream/state.py's (hot value + history records
in one table, written in an order that survives a crash). Publishes ``linky:{pdl}:conso`` (the
open hour, day and month) when they change, and counts index anomalies (backwards, rollover,
meter change) in ``linky_stream_index_events_total``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping
import logging

from agents.contracts import UNRESOLVED, on_contract_change, resolve
from stream import metrics
from stream.tally import tally
from stream.state import (
    conso_channel,
    consumption_config,
    history_loader,
    load_consumption,
    publisher,
    store_consumption,
)
from tables.consumption import ConsumptionState, fold_reading, render_conso_payload
from tables.contracts import Contract

log = logging.getLogger(__name__)
AGENT = "consumption"
APPLIED, BASELINE, DUPLICATE = (metrics.READINGS.labels(AGENT, o) for o in ("applied", "baseline", "duplicate"))


def handle(
    key: bytes | None,
    value: bytes | Mapping[str, Any],
    partition: int,
    received_at: float | None = None,
    *,
    contract: Contract | None | object = UNRESOLVED,
) -> None:
    """Fold one reading into its PDL's buckets, buffer the writes (stream/writeback.py), publish
    (inside stream iteration; ``partition`` is the event's). ``contract``: the PDL's contract as
    the readings agent resolved it once for every handler (else looked up here)."""
    try:
        reading = json.loads(value) if isinstance(value, (bytes, str)) else value  # parsed once by the agent
        pdl = key.decode() if key else str(reading["pdl"])
        before = load_consumption(pdl) or ConsumptionState()
        fold = fold_reading(before, reading, consumption_config)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        metrics.READINGS.labels(AGENT, "invalid").inc()
        log.warning("consumption: reading ignored (%s): %.200r", exc, value)
        return
    except Exception:  # a bug must not stop the stream for every other PDL: count, log, go on
        metrics.READINGS.labels(AGENT, "error").inc()
        log.exception("consumption: fold failed for %.200r", value)
        return
    if not fold.applied:
        tally.inc(DUPLICATE)
        return
    for ev in fold.events:
        metrics.INDEX_EVENTS.labels(ev.kind).inc()
        log.warning("consumption: %s on %s: %s", ev.kind, pdl, ev.to_dict())
    store_consumption(pdl, fold, partition)
    tally.inc(BASELINE if before.cursor.time is None else APPLIED)
    if fold.changed or fold.events:
        event_time = fold.state.cursor.time.timestamp() if fold.state.cursor.time else None

        def render() -> dict[str, Any]:
            resolved = resolve(pdl, contract)
            versions = resolved.versions if resolved is not None else ()
            return render_conso_payload(fold.state, pdl=pdl, config=consumption_config, events=fold.events,
                                        versions=versions, load=history_loader(pdl))  # fmt: skip

        if fold.events:  # index events happened: this payload is never replaced by a later one
            publisher.publish(conso_channel(pdl), render(), event_time=event_time, received_at=received_at)
        else:  # the PDL's current buckets: rendered once per coalescing scope (agents/readings.py)
            publisher.publish_latest(conso_channel(pdl), render, event_time=event_time, received_at=received_at)


@on_contract_change
async def _contract_changed(pdl: str, contract: Contract | None, partition: int) -> None:
    """A new contract document (a tariff set or changed today): republish the conso payload so
    its ``cost`` and ``periods`` show the new terms without waiting for the next reading."""
    state = load_consumption(pdl)
    if state is None or state.day is None:
        return
    versions = contract.versions if contract is not None else ()
    payload = render_conso_payload(state, pdl=pdl, config=consumption_config, versions=versions,
                                   load=history_loader(pdl))  # fmt: skip
    publisher.publish(conso_channel(pdl), payload)
