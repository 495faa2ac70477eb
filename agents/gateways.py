"""Edge trust on the worker (docs/security.md): the gateways registry table and ``admit``, the one
check the readings agent calls before any fold.

- Table ``gateways``: key = PDL, value = the PDL's registry document as published on the
  compacted, PDL-keyed topic ``linky.gateways`` (stream/gateways.py, written by
  ``linky-stream gateway add|rotate|revoke``), co-partitioned with the readings like the contracts.
- Table ``trust``: key = PDL, value = tables/trust.py ``TrustState`` (JSON): the baseline of the
  plausibility rules, the replay cursor, the recent rejections and quarantines, the open trust
  alerts. Its own table, so nothing here touches the consumption or battery state.

``admit(event)`` returns a ``Verdict``: ``accepted`` False means drop the reading (rejected: bad or
missing signature, replay; or quarantined: physically impossible). Each refusal is counted
(``linky_stream_readings_rejected_total{reason}``), logged without any key material, kept in the
PDL's trust state (``GET /pdl/{pdl}/quarantine``, stream/web_trust.py) and raises ``gateway_untrusted`` or
``reading_quarantined`` on ``linky:{pdl}:alerts``. A bug in the checks refuses the reading
(reason ``trust_error``, logged with its traceback): failing open would let forged readings in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter

from agents.alerts import ALERT_EVENTS as TRUST_ALERTS
from agents.contracts import UNRESOLVED, resolve
from stream import clock
from stream.app import app, pdl_table, settings
from stream.battery_publish import publish
from stream.decode_cache import DecodeCache
from stream.group_memo import GroupMemo
from stream.state import writeback
from stream.tally import tally
from stream.writeback import TOMBSTONE, Entry
from tables import trust
from tables.contracts import Contract, Offer, effective_at

log = logging.getLogger(__name__)

gateways_topic = app.topic(
    settings.gateways_topic,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
    replicas=settings.topic_replication,
    compacting=True,
    internal=True,  # declared (created, compacted) if missing, as stream/gateways.py does for the CLI
)
gateways = pdl_table("gateways", read_mostly=True)
# read for every reading; written only when a PDL's trust state changes (never for an unsigned
# reading that is not checked, once per flush for the others), so its reads are kept in memory:
# without that, each unsigned reading paid a RocksDB read of an absent key (docs/performance.md)
trust_table = pdl_table("trust", read_mostly=True)
writeback.register(trust_table)  # per-PDL trust state: written back like the folds' (stream/writeback.py)

REJECTED = Counter(
    "linky_stream_readings_rejected_total",
    "Readings not folded: refused by the trust checks or quarantined as impossible (docs/security.md)",
    ["reason"],
)
UNSIGNED = Counter(
    "linky_stream_readings_unsigned_total",
    "Unsigned readings folded because LINKY_GATEWAY_ACCEPT_UNSIGNED is on (roll-out only)",
)
VERIFIED = Counter("linky_stream_readings_verified_total", "Signed readings whose signature verified")
REBASELINED = Counter(
    "linky_stream_readings_rebaselined_total", "Readings that re-baselined a PDL after a quarantine (no energy across the jump)"
)
GATEWAY_RECORDS = Counter("linky_gateway_records_total", "Gateway registry records read", ["outcome"])

RULES = trust.Plausibility(tolerance=settings.trust_power_tolerance, slack_wh=settings.trust_index_slack_wh,
                           max_future=timedelta(seconds=settings.trust_max_future_seconds))
REPLAY_WINDOW = timedelta(seconds=settings.gateway_replay_window_seconds)
CLEAR_AFTER = timedelta(seconds=settings.trust_alert_clear_seconds)

_docs: DecodeCache[trust.PdlGateways] = DecodeCache()


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    value: Any  # what the folds get: the parsed reading (or the raw value), or a re-baseline rewrite of it
    reason: str | None = None


def registry_for(pdl: str) -> trust.PdlGateways | None:
    raw = gateways.get(pdl.encode())
    if raw is None:
        return None
    try:
        return _docs.get(pdl.encode(), raw, lambda value: trust.decode_registry(value, pdl=pdl))
    except trust.TrustError:  # stored documents were validated; only a schema change gets here
        log.exception("stored gateway document of %s is invalid", pdl)
        return None


# a PDL's registry read once per group of its readings (agents/readings.py ``begin_group``)
registries: GroupMemo[str, trust.PdlGateways | None] = GroupMemo(registry_for)


def _producer_contract(contract: Contract | None, when: datetime | None) -> bool:
    if contract is None or when is None:
        return False
    version = effective_at(contract.versions, when)
    return version is not None and version.offer is not Offer.NONE


def admit(event: Any, parsed: Any = None, contract: Contract | None | object = UNRESOLVED) -> Verdict:
    """Verify and judge one reading event (inside stream iteration: the event's partition).
    ``parsed``: the reading as the agent parsed it (agents/readings.py ``parse``), else parsed here;
    ``contract``: the PDL's contract as the agent resolved it, else looked up here."""
    try:
        return _admit(event, parsed, contract)
    except Exception:
        REJECTED.labels("trust_error").inc()
        log.exception("trust: reading refused after an internal error (offset %s)", getattr(event.message, "offset", "?"))
        return Verdict(False, None, "trust_error")


def _admit(event: Any, parsed: Any, contract: Contract | None | object) -> Verdict:
    key, value = event.key, event.value
    given = value if parsed is None else parsed
    if key is None or value is None:
        return Verdict(True, given)  # the folds count keyless/empty records themselves
    pdl = key.decode(errors="replace")
    reading = parsed
    if reading is None:
        try:
            reading = json.loads(value)
        except ValueError:
            reading = None
    if not isinstance(reading, dict):
        return Verdict(True, given)  # not a reading: the folds refuse and count it (their own reasons)
    now = clock.now()
    point = trust.point_of(reading)
    offset = int(event.message.offset)
    signed = trust.verify_headers(
        registries.get(pdl), trust.header_map(event.headers), value, key_pdl=pdl, value_pdl=reading.get("pdl"),
        reading_time=point.time if point else None, now=now, accept_unsigned=settings.gateway_accept_unsigned,
        grace=REPLAY_WINDOW,
    )
    before = _trust_state(key)
    resolved = resolve(pdl, contract)
    producer = trust.is_producer(reading, _producer_contract(resolved, point.time if point else None))
    state, decision = trust.judge(before, point, now=now, offset=offset, signed=signed, producer=producer,
                                  rules=RULES, replay_window=REPLAY_WINDOW,
                                  plausibility=signed.signed or settings.trust_check_unsigned)
    state, events = trust.note(state, decision, pdl=pdl, at=point.time if point else now, now=now, offset=offset,
                               clear_after=CLEAR_AFTER)
    if state != before:
        writeback.put(trust_table, key, event.message.partition, Entry(state, trust.encode_state))
    _publish_alerts(pdl, state, events, now)
    if decision.action != "fold":
        REJECTED.labels(decision.reason).inc()
        log.warning("trust: reading of %s %s: %s (gateway %s, key %s, offset %d)", pdl,
                    "quarantined" if decision.action == "quarantine" else "refused", decision.reason,
                    signed.gateway_id, signed.key_id, offset,
                    extra={"event": "reading_" + ("quarantined" if decision.action == "quarantine" else "rejected"),
                           "pdl": pdl, "reason": decision.reason})
        return Verdict(False, None, decision.reason)
    if signed.signed:
        tally.inc(VERIFIED)
    elif signed.reason is None and reading.get("pdl") is not None:
        tally.inc(UNSIGNED)
    if decision.rebaselined:
        REBASELINED.inc()
        log.warning("trust: %s re-baselined after a quarantine at %s (meter id for the folds: %s)", pdl,
                    reading.get("time"), decision.meter, extra={"event": "reading_rebaselined", "pdl": pdl})
    if decision.meter is not None and decision.meter != reading.get("meter"):
        return Verdict(True, {**reading, "meter": decision.meter})
    return Verdict(True, reading)


_trust_states: DecodeCache[trust.TrustState] = DecodeCache()


def _trust_state(key: bytes) -> trust.TrustState:
    """The PDL's trust state: the write-back buffer's, else the table's."""
    entry = writeback.peek(trust_table, key)
    if entry is not None:
        return trust.decode_state(None) if entry is TOMBSTONE else entry.obj  # type: ignore[no-any-return]
    raw = trust_table.get(key)
    return trust.decode_state(None) if raw is None else _trust_states.get(key, raw, trust.decode_state)


def _publish_alerts(pdl: str, state: trust.TrustState, events: list[tuple[str, str, dict[str, Any]]], now: datetime) -> None:
    """Each open/clear on ``linky:{pdl}:alerts`` (the agents/alerts.py payload), with the PDL's open
    alerts: the ledger's and the trust ones."""
    if not events:
        return
    from agents.alerts import snapshot_payload
    from agents.battery import load
    from agents.preferences import preferences_for

    ledger = load(pdl)
    base = snapshot_payload(ledger.alerts, pdl, preferences_for(pdl)) if ledger is not None else {
        "schema_version": 1, "pdl": pdl, "open": [], "recent": []}
    open_ = [*base["open"], *trust_open(state)]
    for kind, action, details in events:
        TRUST_ALERTS.labels(kind, action).inc()
        publish(f"linky:{pdl}:alerts", {**base, "kind": kind, "action": action, "at": now.isoformat(),
                                         "details": details, "open": open_})


def trust_open(state: trust.TrustState) -> list[dict[str, Any]]:
    return [{"kind": kind, "since": info["since"], "details": {"reason": info.get("reason")}}
            for kind, info in sorted(state.alerts.items())]


def http_document(pdl: str) -> dict[str, Any] | None:
    """``GET /pdl/{pdl}/quarantine``: the PDL's recent quarantined and refused readings."""
    raw = writeback.read(trust_table, pdl.encode())
    doc = registry_for(pdl)
    if raw is None and doc is None:
        return None
    state = trust.decode_state(raw)
    return {
        "pdl": pdl,
        "quarantined": list(reversed(state.quarantined)),
        "rejected": list(reversed(state.rejected)),
        "open": trust_open(state),
        "baseline": state.baseline.to_dict() if state.baseline else None,
        "rebaselined_meter": state.alias,
        "gateways": trust.public_view(doc)["gateways"] if doc is not None else {},
    }


def review_document(limit: int = 200) -> dict[str, Any]:
    """``GET /quarantine``: the quarantined and refused readings of every PDL of *this worker's*
    partitions, newest first (the supplier's review list; ask each worker, as ``linky-stream status``
    does). Each entry is the PDL's own entry (``/pdl/{pdl}/quarantine``) plus ``pdl``."""
    quarantined: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for key, raw in writeback.items(trust_table, trust_table.items()):
        state = _trust_states.get(key, raw, trust.decode_state)
        pdl = key.decode(errors="replace")
        quarantined += [{"pdl": pdl, **entry} for entry in state.quarantined]
        rejected += [{"pdl": pdl, **entry} for entry in state.rejected]

    def newest(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(entries, key=lambda e: str(e.get("received_at") or ""), reverse=True)[:limit]

    return {"quarantined": newest(quarantined), "rejected": newest(rejected),
            "totals": {"quarantined": len(quarantined), "rejected": len(rejected)}}  # fmt: skip


_read_up_to: dict[int, int] = {}  # gateways topic partition -> last offset the agent handled
_registry_check: "asyncio.Future[None] | None" = None  # the one check of the process, shared


async def wait_for_registry(timeout: float = 60.0) -> None:
    """Once per process, before the first reading is judged: wait until the gateways agent has
    loaded the registry topic as it was at start-up. Readings and registry are two topics with no
    order between them: on a worker's first start (new group, empty changelogs) readings judged
    before the registry would be refused as ``gateway_not_provisioned``. Gives up after
    ``timeout`` (logged): never blocks the stream for good. Every caller waits for the same
    check (a caller cancelled meanwhile does not cancel it)."""
    await asyncio.shield(_registry_checking(timeout))


def registry_ready() -> bool:
    """Whether the check of ``wait_for_registry`` is over (starting it on the first call), without
    waiting: the worker's consumer asks before it folds a fetch of readings itself
    (stream/consumer.py), since waiting there would also hold back the registry's own records."""
    return _registry_checking(60.0).done()


def _registry_checking(timeout: float) -> "asyncio.Future[None]":
    global _registry_check
    if _registry_check is None:
        _registry_check = asyncio.ensure_future(_check_registry(timeout))
    return _registry_check


async def _check_registry(timeout: float) -> None:
    if getattr(app, "_consumer", None) is None or not app.started:  # agent.test_context(): no broker
        return
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.kafka_security import client_kwargs

    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        client = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.app_id,
                                  enable_auto_commit=False, client_id="linky-registry-check",
                                  request_timeout_ms=10_000, **client_kwargs(settings))  # fmt: skip
        await asyncio.wait_for(client.start(), 15)
        try:
            tps = [TopicPartition(settings.gateways_topic, p) for p in range(settings.topic_partitions)]
            ends = {tp.partition: off for tp, off in (await client.end_offsets(tps)).items()}
            committed = {}
            for tp in tps:
                offset = await client.committed(tp)
                committed[tp.partition] = -1 if offset is None else offset
        finally:
            await client.stop()
        while not trust.registry_loaded(ends, committed, _read_up_to):
            if loop.time() - started > timeout:
                log.error("trust: the gateway registry was not loaded after %.0f s; judging readings anyway", timeout)
                return
            await asyncio.sleep(0.1)
        log.info("trust: gateway registry loaded (%.1f s)", loop.time() - started)
    except Exception:  # the check is a guard, not a dependency: judge readings as before
        log.warning("trust: could not check the gateway registry's end offsets", exc_info=True)


@app.agent(gateways_topic)
async def gateways_agent(stream):  # type: ignore[no-untyped-def]
    """Store each valid registry document (a tombstone deletes)."""
    async for event in stream.events():
        _read_up_to[event.message.partition] = event.message.offset
        if event.key is None:
            GATEWAY_RECORDS.labels("rejected").inc()
            continue
        pdl = event.key.decode(errors="replace")
        if event.value is None:
            gateways.pop(event.key, None)
            GATEWAY_RECORDS.labels("deleted").inc()
            continue
        try:
            trust.decode_registry(event.value, pdl=pdl)
        except trust.TrustError as exc:
            GATEWAY_RECORDS.labels("rejected").inc()
            log.warning("gateway record for %s ignored: %s", pdl, exc)
            continue
        gateways[event.key] = event.value
        GATEWAY_RECORDS.labels("applied").inc()
