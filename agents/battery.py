"""Battery agent: virtual battery, surplus cagnotte and alert episodes per PDL, from readings.

Slot ``battery-ledger`` of the PDL's state value (stream/pdl_state.py): ONE JSON document
(tables/ledger.py ``LedgerState``: index cursor + open battery rows + surplus + alert episodes),
so a reading's effects are written atomically; closed day/month rows are records of their own
(``{pdl}|bd|2026-10-25``, in the same table), written once before the hot value that lists them
(tables/ledger.py ``to_storage``). Replays after a crash (at-least-once) are skipped by the
cursor: a reading not newer than the last one changes nothing. Publishes ``linky:{pdl}:battery``
and ``linky:{pdl}:surplus`` when they change and each alert open/clear on ``linky:{pdl}:alerts``
(agents/alerts.py), with the same-name snapshot keys. The rules are in tables/; this file only moves data.

Work without readings (month end, meter silence): each stored state schedules the PDL at the
earliest instant the timer could have work for it (stream/due_index.py); the timer looks only at
the PDLs due and, for those with something to do, sends a tick to the internal ticks topic on the PDL's
partition; ``battery_ticks`` applies it inside stream iteration (faust forbids table writes in
timers). A tick is not replayed after a crash, so what it publishes waits until its state is in
the changelog, and the PDL's later publishes queue behind (stream/writeback.py ``PublishOrder``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping

from prometheus_client import Counter, Gauge

from stream import clock
from agents import alerts
from agents.contracts import UNRESOLVED, contract_for, on_contract_change, resolve
from agents.preferences import preferences_for
from agents.ticks import send_tick, ticks_topic
from stream.app import app, settings
from stream.battery_publish import add_snapshot_source, publish_latest
from stream.decode_cache import DecodeCache
from stream.due_index import DueIndex
from stream.group_memo import GroupMemo
from stream.redis_publisher import Snapshot, encode
from stream.pdl_state import Slot
from stream.state import history_loader, load_consumption, publisher, state_table, writeback
from stream.tally import tally
from stream.writeback import TOMBSTONE, Entry, PublishOrder
from tables import stored_json
from tables.alerts import BillProjection
from tables.bill import bill_projection
from tables.contracts import Contract
from tables.frozen import replace
from tables.ledger import (
    as_stored,
    LedgerFold,
    LedgerState,
    battery_document,
    battery_payload,
    fold_alerts,
    fold_reading,
    from_storage,
    surplus_payload,
    reconcile,
    tick,
    next_tick_due,
    tick_is_due,
    record_changes,
    hot_value,
)

log = logging.getLogger(__name__)

ledger = Slot(state_table, "battery-ledger")
writeback.register(ledger)
_order = PublishOrder(writeback)  # a PDL's publishes in order, a tick's after its flush

READINGS = Counter("linky_battery_readings_total", "Readings seen by the battery agent, by outcome", ["outcome"])
_OUTCOMES: dict[str, Any] = {}  # outcome -> its READINGS child (``labels`` takes a lock per call)


def _outcome(status: str) -> Any:
    child = _OUTCOMES.get(status)
    if child is None:
        child = _OUTCOMES[status] = READINGS.labels(status)
    return child


REFOLDS = Counter(
    "linky_battery_contract_refolds_total",
    "Contract versions that changed a day already folded: refolded (the day is re-folded from its "
    "checkpoint), retroactive (dated before that day: re-folded from the checkpoint only), impossible",
    ["outcome"],
)
TICKS_SENT = Counter("linky_battery_ticks_sent_total", "Ticks sent by the battery timer (month end, silence)")
TICKS_DEFERRED = Counter(
    "linky_battery_ticks_deferred_total",
    "PDLs due whose tick the battery timer left to its next run because the Redis publish queue was half full",
)
TICKS_APPLIED = Counter(
    "linky_battery_ticks_applied_total",
    "Timer ticks handled by the ticks agent, by outcome: changed (a day or month closed, an alert), "
    "unchanged (nothing left to do) or unknown_pdl (no state). Ticks sent but none handled: the "
    "ticks partitions are not consumed (alert LinkyBatteryTicksNotApplied)",
    ["outcome"],
)
TICK_OUTCOMES = {outcome: TICKS_APPLIED.labels(outcome) for outcome in ("changed", "unchanged", "unknown_pdl")}
TIMER_CHECKS = Counter("linky_battery_timer_checks_total", "PDL states the battery timer looked at (the due ones)")
SETTLES = Counter(
    "linky_battery_publish_settles_total",
    "Readings whose PDL had a tick's publishes waiting for a flush: flushed first (ok) or not (failed)",
    ["outcome"],
)
TICK_RELEASES = Counter(
    "linky_battery_tick_releases_total",
    "Times the ticks agent flushed and waited before its next tick because the publishes waiting for "
    "a flush, released together, could have overflowed the Redis publish queue: done (ok) or not "
    "(flush failed or Redis still full after the wait: the tick goes on, a drop is then counted by "
    "linky_redis_publish_failures_total)",
    ["outcome"],
)
TIMER_SCHEDULED = Gauge("linky_battery_timer_scheduled", "PDLs of this worker with a scheduled timer check")
Gauge("linky_battery_publishes_waiting_for_flush",
      "Publishes of ticks and contract changes waiting for the flush that makes their state durable",
      ).set_function(_order.waiting)  # fmt: skip


def load(pdl: str) -> LedgerState | None:
    """The PDL's state: the write-back buffer's (stream/writeback.py), else the table's (in stream
    iteration: the event's partition; outside: the partitions this worker holds). Closed rows are
    read from their own keys only when used."""
    if _deferred is not None:
        pending = _deferred.get(pdl)
        if pending is not None:
            return pending[1]
    key = pdl.encode()
    entry = writeback.peek(ledger, key)
    if entry is not None:
        return None if entry is TOMBSTONE else entry.obj  # type: ignore[no-any-return]
    raw = ledger.get(key)
    return None if raw is None else _decode(pdl, raw)


def history_key(pdl: str, kind: str, key: str) -> bytes:
    """Table key of a closed row (tables/ledger.py ``to_storage``): ``{pdl}|bd|2026-10-25``."""
    return f"{pdl}|{kind}|{key}".encode()


_states: DecodeCache[LedgerState] = DecodeCache()  # hot value bytes -> state (stream/decode_cache.py)


def _record_loader(pdl: str) -> Callable[[str, str], dict[str, Any] | None]:
    def load_record(kind: str, key: str) -> dict[str, Any] | None:
        record = writeback.read(ledger, history_key(pdl, kind, key))
        if record is None:
            log.warning("battery: closed row %s/%s of %s is missing", kind, key, pdl)
            return None
        return json.loads(record)  # type: ignore[no-any-return]

    return load_record


def _decode(pdl: str, raw: bytes) -> LedgerState:
    return _states.get(pdl.encode(), raw, lambda data: from_storage(json.loads(data), _record_loader(pdl)))


def _store(
    before: LedgerState | None, after: LedgerState, partition: int, *, ticked_at: datetime | None = None
) -> None:
    """Buffer the closed rows that changed, the hot value and the pruned rows' deletions; the
    flush writes them in that order, which survives a crash (docs/stream.md, stream/writeback.py).
    ``ticked_at``: ``after`` is a tick applied at that instant (see ``_schedule``)."""
    pdl = after.pdl
    writes, deletes = record_changes(before, after)
    for (kind, key), record in writes.items():
        writeback.put(ledger, history_key(pdl, kind, key), partition, stored_json.dumps(record))
    for kind, key in deletes:
        writeback.delete(ledger, history_key(pdl, kind, key), partition)
    writeback.put(ledger, pdl.encode(), partition, Entry(as_stored(after, _record_loader(pdl)), _encode_hot))
    _schedule(after, checked_at=ticked_at, replace=ticked_at is not None)


def _encode_hot(state: LedgerState) -> bytes:
    """The hot value's bytes, built at flush time only (once per flush, not per reading)."""
    return stored_json.dumps(hot_value(state))


def _remember_state(table: object, key: bytes, entry: Entry) -> None:  # type: ignore[type-arg]
    """After a flush wrote a hot value: its state stays memoized under the stored bytes."""
    if table is ledger and b"|" not in key:
        _states.put(key, entry.raw, entry.obj)


writeback.on_flushed(_remember_state)


def _hot_states() -> Iterator[LedgerState]:
    """The state of every PDL of this worker's partitions (buffered ones from the write-back
    buffer, without encoding them; closed-row keys skipped)."""
    buffered = set()
    for key, entry in list(writeback.buffered(ledger)):
        if b"|" not in key:
            buffered.add(key)
            if entry is not TOMBSTONE:
                yield entry.obj
    for key, raw in ledger.items():
        if b"|" not in key and key not in buffered:
            yield _decode(key.decode(), raw)


def handle(
    key: bytes | None,
    value: bytes | Mapping[str, Any],
    partition: int,
    received_at: float | None = None,
    *,
    contract: Contract | None | object = UNRESOLVED,
) -> None:
    """Fold one reading into its PDL's ledger and alerts; store once; publish what changed.
    Called by agents/readings.py for each event of the readings topic (inside stream iteration:
    ``partition`` is the event's), with the PDL's ``contract`` it resolved once for every handler
    (else looked up here)."""
    try:
        reading = json.loads(value) if isinstance(value, (bytes, str)) else value  # parsed once by the agent
        pdl = key.decode() if key else str(reading["pdl"])
    except (ValueError, KeyError, TypeError, AttributeError):
        READINGS.labels("invalid").inc()
        return
    before = load(pdl) or LedgerState(pdl=pdl, partition=partition)
    contract = resolve(pdl, contract)
    try:
        fold = fold_reading(before, reading, contract, load=_record_loader(pdl))
    except ValueError as exc:  # a malformed index or time: the ledger ignores the reading
        READINGS.labels("invalid").inc()
        log.warning("battery: reading of %s ignored: %s", pdl, exc)
        fold = LedgerFold(before, False, [], [], "invalid")
    tally.inc(_outcome(fold.status))
    _report_refolds(pdl, fold)
    prefs = _prefs.get(pdl)
    try:
        bill = _bill_projection(pdl, fold.state, contract)
        after, alert_events = fold_alerts(
            fold.state, reading, contract, alerts.alert_settings, now=clock.now(), bill=bill, prefs=prefs
        )
    except (ValueError, TypeError) as exc:
        log.warning("alerts: reading of %s ignored: %s", pdl, exc)
        after, alert_events = fold.state, []
    after = replace(after, partition=partition)
    if after != before:
        if _deferred is None:
            _store(before, after, partition)
        else:  # stored once at the end of the group, from the state before its first reading
            pending = _deferred.get(pdl)
            _deferred[pdl] = (before if pending is None else pending[0], after, partition)
    if not fold.changed and not alert_events:
        return

    def emit() -> None:
        if fold.changed:
            last_end = after.battery.last_end
            event_time = last_end.timestamp() if last_end is not None else None
            _publish(before, fold._replace(state=after), contract, event_time=event_time, received_at=received_at)
        alerts.publish_events(after.alerts, alert_events, prefs)

    _order.now(pdl, emit)  # at once, unless a tick's publishes of this PDL wait for their flush


# Inside a group (agents/readings.py folds a PDL's readings of one fetch back to back): PDL ->
# (its state before the group's first reading, its latest state, partition), stored by
# ``end_group``. ``_store`` compares the two: the closed rows any of the readings changed
# (``LazyRows.changed_since`` follows the copies), one hot value, one timer schedule.
_deferred: dict[str, tuple[LedgerState, LedgerState, int]] | None = None


# a PDL's alert preferences read once per group of its readings
_prefs: GroupMemo[str, Any] = GroupMemo(preferences_for)


def begin_group() -> None:
    """Until ``end_group``, a reading's state is kept here, not buffered: nothing may be
    awaited in between (the timer, ticks and HTTP read the buffer)."""
    global _deferred
    _deferred = {}
    _prefs.begin()


def end_group() -> None:
    """Buffer the states the group's readings changed, each PDL once."""
    global _deferred
    deferred, _deferred = _deferred, None
    _prefs.end()
    for before, after, partition in (deferred or {}).values():
        try:
            _store(before, after, partition)
        except Exception:  # a bug must not stop the stream: count, log, go on
            READINGS.labels("error").inc()
            log.exception("battery: state of %s could not be stored", after.pdl)


def publishes_wait() -> bool:
    """Whether any PDL's publishes wait for a flush (a tick's, a contract change's): O(1)."""
    return _order.waits()


async def settle(pdl: str) -> None:
    """Before a reading of ``pdl`` is folded: if a tick's publishes of this PDL still wait for
    their flush, flush now (stream/writeback.py ``PublishOrder.settle``), so the reading's own
    publishes go out at once and are covered by the publish barrier of the flush that makes its
    state durable. Else a crash right after one flush holding both states would lose them."""
    if _order.waits(pdl):
        settled = await _order.settle(pdl)
        SETTLES.labels("ok" if settled else "failed").inc()
        if not settled:
            log.warning("battery: publishes of %s queue behind a flush that did not complete", pdl)


def _bill_projection(pdl: str, state: LedgerState, contract: Contract | None) -> BillProjection | None:
    """The open month's projected bill for ``bill_over_installment``. Reads the consumption
    table (same partition; the consumption handler folded this reading just before) without
    writing it; None when no installment is in force."""
    if contract is None or not any(v.tariff is not None and v.tariff.installment_eur_per_month is not None
                                   for v in contract.versions):  # fmt: skip
        return None
    try:
        return bill_projection(consumption=load_consumption(pdl), load=history_loader(pdl), ledger=state,
                               versions=contract.versions, deduct_cagnotte=settings.bill_deduct_cagnotte)  # fmt: skip
    except Exception:  # a bug here must not stop the battery and the other alerts
        log.exception("bill projection of %s failed", pdl)
        return None


@app.agent(ticks_topic)
async def battery_ticks(stream):  # type: ignore[no-untyped-def]
    """Apply a timer tick (wall-clock time in the message) to its PDL."""
    async for event in stream.events():
        if _release_due():
            await _release_ticks()
        message = json.loads(event.value)
        before = load(event.key.decode())
        if before is None:
            TICK_OUTCOMES["unknown_pdl"].inc()
            continue
        ticked_at = datetime.fromisoformat(message["now"])
        fold, alert_events = tick(before, ticked_at, alerts.alert_settings)
        TICK_OUTCOMES["changed" if fold.changed else "unchanged"].inc()
        if fold.changed:
            partition = event.message.partition
            _store(before, fold.state, partition, ticked_at=ticked_at)
            _order.after_flush(before.pdl, partition, _tick_emit(before, fold, alert_events))


# What one tick publishes at most, counted for the back-pressure below: battery, surplus and
# an alert event (a tick that opens or clears two alerts at once publishes one more).
PAYLOADS_PER_TICK = 3


def _release_due() -> bool:
    """Whether the publishes waiting for a flush (ticks, contract changes) plus the Redis queue
    reach a quarter of its size. A tick's publishes wait for the flush that makes its state
    durable and are all released when it is acknowledged: at midnight or a month end with
    100,000 PDLs, thousands of ticks between two flushes released more payloads at once than
    the queue holds, and the surplus was dropped (2,410 payloads, ``queue_full``, in one
    100,000-PDL run, docs/performance.md). With at most a quarter released at once, plus at
    most half already queued (readings wait beyond that), the queue never fills."""
    return _order.waiting() * PAYLOADS_PER_TICK + publisher.queued >= publisher.queue_size // 4


async def _release_ticks() -> None:
    """Flush what holds the waiting publishes back, then wait until the Redis queue is down to a
    quarter: the next ticks' publishes wait for a later flush, in a smaller burst."""
    released = await _order.release()
    room = await publisher.wait_for_room()
    TICK_RELEASES.labels("ok" if released and room else "failed").inc()
    if not (released and room):
        log.warning("ticks: %d publishes still wait for a flush, %d queued for Redis: ticking on",
                    _order.waiting(), publisher.queued)  # fmt: skip


def _tick_emit(before: LedgerState, fold: LedgerFold, alert_events: list[Any]) -> Callable[[], None]:
    """A tick's publishes, sent once its state is in the changelog: the tick is not replayed
    after a crash, so an ``open`` published before would have no state behind it."""

    def emit() -> None:
        _publish(before, fold, contract_for(before.pdl))
        alerts.publish_events(fold.state.alerts, alert_events, preferences_for(before.pdl))

    return emit


@on_contract_change
async def _contract_changed(pdl: str, contract: Contract | None, partition: int) -> None:
    """A new contract document: re-fold the journal's day if its versions changed (a version
    effective today that arrived after today's readings), or apply a new invoice anchor; then
    republish."""
    before = load(pdl)
    if before is None:
        return
    fold = reconcile(before, contract, load=_record_loader(pdl))
    _report_refolds(pdl, fold)
    def emit() -> None:
        _publish(before, fold, contract, force=True)

    if fold.changed:
        _store(before, fold.state, partition)
        _order.after_flush(pdl, partition, emit)
        await writeback.flush([partition])  # a contract change is not replayed: written at once
    else:
        _order.now(pdl, emit)


_due: DueIndex[str] = DueIndex()  # pdl -> when the timer must look at it (stream/due_index.py)
_scanned: set[int] = set()  # partitions whose PDLs are in ``_due`` (scanned once per assignment)
TICK_RETRY_SECONDS = 60.0  # a PDL ticked is looked at again this much later if the tick got lost


def _schedule(state: LedgerState, checked_at: datetime | None = None, *, replace: bool = False) -> None:
    """Schedule the timer's next look at ``state`` (``checked_at``: when it found nothing to do).

    ``replace``: ``state`` is a tick just applied at ``checked_at``. ``tick`` is idempotent at a
    given instant (tests/unit/test_due_index.py), so the state has nothing left to do then, and
    its next instant replaces both the timer's retry (``TICK_RETRY_SECONDS``, for a tick that got
    lost) and the end of a day the tick just closed. Scheduled as a reading's state, the PDL was
    looked at once more for nothing after nearly every tick: 165,000 checks for 100,000 ticks at
    100,000 PDLs (docs/performance.md "2026-12-07, night"). A reading folded since the tick was
    sent is in ``state`` (same partition, read through the write-back buffer); one folded later
    schedules its own instant.

    The key is interned: the index's dict key and heap entries of a PDL share one string,
    whichever decode of its state scheduled them (one str per PDL instead of one per schedule)."""
    when = next_tick_due(state, alerts.alert_settings, checked_at)
    at = None if when is None else when.timestamp()
    if replace:
        _due.reschedule(sys.intern(state.pdl), at)
    elif at is not None:
        _due.schedule(sys.intern(state.pdl), at)


def _active_partitions() -> set[int]:
    topic = settings.readings_topic
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


@app.timer(interval=settings.battery_tick_seconds)
async def battery_timer() -> None:
    """Tick the PDLs of this worker's active partitions that have something due (a day or month
    to close, a silent meter): O(PDLs due), at most ``LINKY_BATTERY_TICK_MAX_PER_RUN`` per run,
    yielding to the agents every 200. A partition newly assigned is scanned once (paced)."""
    now = clock.now()
    active = _active_partitions()
    _scanned.intersection_update(active)
    try:
        if active - _scanned:
            new = active - _scanned
            for i, state in enumerate(_hot_states()):
                if state.partition in new:
                    _schedule(state)
                if i % 200 == 199:
                    await asyncio.sleep(0)  # let the agents run during a long scan
            _scanned.update(new)
    except Exception:  # a rebalance can close a partition's store under the scan: next tick
        log.debug("battery timer scan interrupted", exc_info=True)
        return
    checked = 0
    due = _due.pop_due(now.timestamp(), limit=settings.battery_tick_max_per_run)
    for i, pdl in enumerate(due):
        if publisher.backlogged():  # Redis behind: a tick's publishes go out in bursts (after its
            for later in due[i:]:  # flush), so no new tick until the queue has room: next run
                _due.schedule(later, now.timestamp())
            TICKS_DEFERRED.inc(len(due) - i)
            break
        checked += 1
        if checked % 200 == 0:
            await asyncio.sleep(0)
        try:
            state = load(pdl)
        except Exception:
            log.debug("battery timer: %s unreadable (rebalance?)", pdl, exc_info=True)
            continue
        if state is None or state.partition not in active:
            continue  # gone, or another worker's now (its timer schedules it)
        if tick_is_due(state, now, alerts.alert_settings):
            await send_tick(state.pdl, state.partition, now)
            TICKS_SENT.inc()
            _due.schedule(pdl, now.timestamp() + TICK_RETRY_SECONDS)
        else:  # nothing to do now (a reading moved it, or already closed): its next instant
            _schedule(state, checked_at=now)
    TIMER_CHECKS.inc(checked)
    TIMER_SCHEDULED.set(len(_due))


def _report_refolds(pdl: str, fold: LedgerFold) -> None:
    for event in fold.battery_events:
        if event.kind == "contract_refolded":
            outcome = "retroactive" if event.data.get("retroactive") else "refolded"
            REFOLDS.labels(outcome).inc()
            log.warning("battery: contract change for %s re-folded %s (%s)", pdl, event.data.get("day"), outcome)
        elif event.kind == "contract_refold_impossible":
            REFOLDS.labels("impossible").inc()
            log.error("battery: contract change for %s could not re-fold %s: %s", pdl, event.data.get("day"),
                      event.data.get("reason"))  # fmt: skip


def _publish(
    before: LedgerState,
    fold: LedgerFold,
    contract: Contract | None,
    *,
    force: bool = False,
    event_time: float | None = None,
    received_at: float | None = None,
) -> None:
    """Queue the battery and surplus payloads that changed (never waits for Redis).
    ``event_time``: the reading's time (latency histogram), None for ticks and contract changes."""
    after = fold.state
    pdl = after.pdl
    # each is the PDL's current view: rendered once per coalescing scope (agents/readings.py)
    if force or after.battery != before.battery:
        publish_latest(f"linky:{pdl}:battery", lambda: battery_payload(after, contract),
                       event_time=event_time, received_at=received_at)  # fmt: skip
    if force or after.surplus != before.surplus:
        publish_latest(f"linky:{pdl}:surplus", lambda: surplus_payload(after, contract),
                       event_time=event_time, received_at=received_at)  # fmt: skip


def snapshots() -> Iterator[Snapshot]:
    """Every battery, surplus and alerts snapshot of this worker's partitions (from the table),
    rewritten when Redis comes back. The alerts key then holds the open alerts with null event
    fields (the last event itself is not kept)."""
    for state in _hot_states():
        contract = contract_for(state.pdl)
        yield f"linky:{state.pdl}:battery", encode(battery_payload(state, contract))
        yield f"linky:{state.pdl}:surplus", encode(surplus_payload(state, contract))
        yield f"linky:{state.pdl}:alerts", encode(alerts.snapshot_payload(state.alerts, state.pdl,
                                                                          preferences_for(state.pdl)))  # fmt: skip


add_snapshot_source(snapshots)


def http_document(pdl: str) -> dict[str, Any] | None:
    """``GET /pdl/{pdl}/battery`` (stream/web_battery.py)."""
    state = load(pdl)
    return None if state is None else battery_document(state, contract_for(pdl))
