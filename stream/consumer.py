"""The worker's Kafka consumer: faust's aiokafka consumer, fixed for partitions that have no
committed offset yet (docs/stream.md "Processing guarantee", tests/integration/test_stream_first_commit.py).

What went wrong (faust-streaming 0.15.3, aiokafka 0.14.0): a worker killed before its first offset
commit left partitions without a committed offset but with table changes in the changelogs. The
worker that took such a partition over recovered the tables, and **while** it recovered:

1. faust passes its *live* set of active partitions to aiokafka's ``Fetcher.fetched_records``,
   which reads an **empty** selection as "every partition". Between the end of the active
   recovery (changelog partitions paused) and the standby phase that set is empty for a second
   or so: a pending fetch then drained the buffered records of the still-paused readings
   partition, and faust dropped them (not an active partition), so aiokafka's position moved
   to the end of the log without a single reading being folded;
2. after recovery faust's ``perform_seek`` calls aiokafka's ``seek_to_committed``, which seeks only
   partitions with a committed offset (``if offset and offset > 0``): for a committed partition
   the drift above is undone, for one without a commit it is not, and its backlog (and what was
   sent meanwhile) was skipped for good. Observed: position = highwater before ``perform_seek``.

Fixes, both here:

- ``ConsumerThread``: an empty selection of active partitions selects no partition (records of a
  paused partition stay in aiokafka's buffer, its position does not move);
- ``Consumer.seek_to_committed``: a stream partition without a committed offset is sought to its
  beginning, as ``consumer_auto_offset_reset="earliest"`` would do for a fresh assignment, so
  ``perform_seek`` always leaves every stream partition where it must restart (changelog
  partitions are left to faust's recovery). Replaying a partition from its beginning is harmless:
  the folds are idempotent (a reading not newer than the stored cursor is a no-op).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Mapping, Optional, Set

from aiokafka.errors import IllegalStateError
from prometheus_client import Counter
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from stream.tally import tally

log = logging.getLogger(__name__)
FETCH_MAX_WAIT_MS = 100  # set from Settings.kafka_fetch_max_wait_ms by stream/factory.py create_app
FETCH_BATCH_MS = 10  # Settings.kafka_fetch_batch_ms, likewise (0 = never batch)
FETCH_BATCH_ABOVE = 100  # Settings.kafka_fetch_batch_above, likewise (records/s)
BATCH_MIN_BYTES = 64 * 1024  # a busy worker's fetch: the broker answers after FETCH_BATCH_MS unless it has this much
FETCH_MODE = Counter(
    "linky_stream_fetch_mode_changes_total",
    "Switches of the worker's fetch requests between answered at once (idle) and gathered for "
    "LINKY_KAFKA_FETCH_BATCH_MS (busy), stream/consumer.py FetchPacer",
    ["mode"],
)
# records of a direct topic handed over in one call at most (the rest of the fetch next). The call
# folds them PDL by PDL (agents/readings.py ``by_pdl``): the more readings of a PDL it holds, the
# fewer views rendered and states stored (2,000 instead of 500: about 1.3x the readings/s at 200
# PDLs, docs/performance.md); records of other topics in the same fetch wait for it (0.4 s at most)
DIRECT_BATCH_MAX = 2000
HOLD_BACK_SECONDS = 0.1  # pause after a fetch was held back (``Consumer._hold_back``)
HELD_BACK = Counter(
    "linky_stream_fetches_held_back_total",
    "Readings partitions sought back to fetch again because the worker could not fold them yet "
    "(gateway registry still loading at start-up)",
)

__all__ = ["Consumer", "ConsumerThread", "Transport"]


class _Selection:
    """faust's live set of active partitions as aiokafka's ``fetched_records`` selection, where
    an empty set must mean *no* partition (aiokafka tests ``if partitions and tp not in
    partitions``). Stays live: a partition resumed while a fetch waits is served by that fetch."""

    __slots__ = ("tps",)

    def __init__(self, tps: Set[Any]) -> None:
        self.tps = tps

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.tps

    def __repr__(self) -> str:
        return f"_Selection({self.tps!r})"


class FetchPacer:
    """How the worker's fetch requests ask the broker to answer, from the records they bring.

    A fetch request costs about 1 ms of the worker's CPU (aiokafka encodes and decodes it in
    Python, in faust's consumer thread, and hands the records over to the event loop's thread).
    Asked to answer at once (``fetch_min_bytes`` 1), the broker answers a worker at 1,000 meters
    with one or two records at a time, and those round trips took about a tenth of its core
    (docs/performance.md). Busy (more than ``batch_above`` records/s over the last second), the
    worker asks the broker to gather records for up to ``batch_ms`` (``fetch_min_bytes``
    ``BATCH_MIN_BYTES``, ``fetch_max_wait_ms`` ``batch_ms``): a reading waits at most that much
    more. Idle (under half that rate), it goes back to answered-at-once with the long poll of
    ``max_wait_ms``, so a quiet worker neither spins nor makes its few readings wait."""

    def __init__(self, batch_ms: int, batch_above: float, max_wait_ms: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.batch_ms = batch_ms
        self.batch_above = batch_above
        self.max_wait_ms = max_wait_ms
        self._monotonic = monotonic
        self.batching = False
        self._since = monotonic()
        self._records = 0

    def settings(self) -> tuple[int, int]:
        """``(fetch_min_bytes, fetch_max_wait_ms)`` for the next fetch requests."""
        return (BATCH_MIN_BYTES, self.batch_ms) if self.batching else (1, self.max_wait_ms)

    def observe(self, records: int) -> bool:
        """Count the records of one fetch handed over; True when the mode changed (once a second at most)."""
        if self.batch_ms <= 0:
            return False
        now = self._monotonic()
        span = now - self._since
        if not self._records and records and span >= 1.0:
            # the first records after a second or more without any (a start-up, a recovery, an
            # idle spell): the window starts with them, else that quiet time dilutes the rate of
            # the backlog they begin (a restarted worker's whole backlog could come in its first
            # fetches and never count as busy)
            self._since, self._records = now, records
            return False
        self._records += records
        if span < 1.0:
            return False
        rate = self._records / span
        self._since, self._records = now, 0
        batching = rate > self.batch_above if not self.batching else rate >= self.batch_above / 2
        if batching == self.batching:
            return False
        self.batching = batching
        return True


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    _pacer: FetchPacer | None = None

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust hard-codes fetch_max_wait_ms=1500; with several idle partitions in the fetch
        # (changelogs, contracts, ticks...) readings waited up to that long in the broker
        # (bench/stream_latency.py): ``LINKY_KAFKA_FETCH_MAX_WAIT_MS``
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        self._pacer = FetchPacer(FETCH_BATCH_MS, FETCH_BATCH_ABOVE, FETCH_MAX_WAIT_MS)
        return consumer

    def _pace(self, consumer: Any, records: Any) -> None:
        """``FetchPacer`` fed with the records of one fetch; its settings given to aiokafka's
        fetcher (read at each fetch request it builds) when the mode changes."""
        pacer = self._pacer
        if pacer is None or not pacer.observe(sum(map(len, records.values())) if records else 0):
            return
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms = pacer.settings()
        FETCH_MODE.labels("batched" if pacer.batching else "at_once").inc()

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Optional[Set[TP]],
        timeout: Optional[float] = None,
        max_records: Optional[int] = None,
    ) -> Any:
        selection = active_partitions if active_partitions is None else _Selection(active_partitions)
        records = await super()._fetch_records(consumer, selection, timeout=timeout, max_records=max_records)  # type: ignore[arg-type]
        self._pace(consumer, records)
        return records


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in every worker test
        """faust's fetch loop (``faust.transport.consumer.Consumer._drain_messages``, 0.15.3), with
        one change: the records of a topic in ``app.linky_direct_topics`` (name -> ``async
        handler(consumer, messages)``) are collected per fetch and handed to that handler in one
        call (``DIRECT_BATCH_MAX`` records at most), instead of one ``callback(message)`` each. faust runs every delivery under
        ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an
        ``asyncio.wait`` per message, before the conductor builds an ``Event`` and queues it for
        the agent's stream (docs/performance.md, issue 14). The batch runs under the same
        ``wait_first`` (a rebalance suspends the flow and cancels it; the seek to the committed
        offsets that follows fetches again what it did not ack). Other topics, and the read-offset
        and gap bookkeeping, are faust's; records of other topics in the same fetch are delivered
        after the batch folded before them, so per-partition order is kept."""
        direct: Mapping[str, Callable[[Any, list[Any]], Awaitable[None]]] = getattr(self.app, "linky_direct_topics", None) or {}
        if not direct:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        ready: Callable[[], bool] | None = getattr(self.app, "linky_direct_ready", None)

        # partition -> (its first record held back in this fetch, the read offset before it)
        held_back: dict[Any, tuple[int, Any]] = {}

        async def deliver(handler: Callable[[Any, list[Any]], Awaitable[None]], batch: list[Any]) -> None:
            await self.wait_first(handler(self, batch), self.suspend_flow.wait())

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    tally.begin()  # the fetch's metric updates, summed until it is handled (stream/tally.py)
                    try:
                        batch: list[Any] = []
                        batch_handler: Any = None
                        held_back.clear()
                        async for tp, message in ait:
                            if tp in held_back:  # fetched again from the seek, in order (``_hold_back``)
                                continue
                            num_since_yield += 1
                            if num_since_yield > yield_every and not batch:
                                tally.apply()  # what faust's agent path folded so far
                                await sleep(0)
                                num_since_yield = 0
                            offset = message.offset
                            r_offset = get_read_offset(tp)
                            if r_offset is None or offset >= r_offset:
                                handler = direct.get(message.topic)
                                if handler is not None and ready is not None and not ready():
                                    held_back[tp] = (offset, r_offset)  # not yet: fetched again (below)
                                    continue
                                gap = offset - (r_offset or 0)
                                if gap > 1 and r_offset:
                                    if acks_enabled_for(message.topic):
                                        await self._add_gap(tp, r_offset + 1, offset)
                                if commit_every is not None and self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                                if handler is not None:
                                    if batch and handler is not batch_handler:
                                        await deliver(batch_handler, batch)
                                        batch = []
                                    batch.append(message)
                                    batch_handler = handler
                                    set_read_offset(tp, offset)  # the next record's gap check sees this one
                                    if len(batch) >= DIRECT_BATCH_MAX:  # a large fetch: in bounded slices
                                        await deliver(batch_handler, batch)
                                        batch = []
                                    continue
                                if batch:  # what came before this record first
                                    await deliver(batch_handler, batch)
                                    batch = []
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                                set_read_offset(tp, offset)
                            else:
                                self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                        if batch:
                            await deliver(batch_handler, batch)
                        if held_back:
                            await self._hold_back(held_back)
                    finally:
                        tally.end()
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    async def _hold_back(self, first: Mapping[Any, tuple[int, Any]]) -> None:
        """Records of a direct topic fetched before ``app.linky_direct_ready()`` (the gateway
        registry still loading at start-up): seek each of their partitions back to the first one
        and put its read offset back as it was before it, so the next fetches deliver them again
        exactly as if they were read for the first time (gap check included); then pause briefly.
        The loop delivers the other topics' records meanwhile (the registry's among them).
        Nothing of them was tracked, folded or acked."""
        for tp, (offset, read_before) in first.items():
            try:
                await self.seek(tp, offset)
            except IllegalStateError as exc:  # revoked meanwhile: its next owner reads from the commit
                log.info("hold back of %s skipped: %s", tp, exc)
                continue
            self._read_offset[tp] = read_before
        HELD_BACK.inc(len(first))
        await asyncio.sleep(HOLD_BACK_SECONDS)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return committed
        uncommitted = [tp for tp, offset in committed.items() if not offset and not self._is_changelog_tp(tp)]
        if uncommitted:
            log.info("no committed offset: reading %s from the beginning",
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(uncommitted)))  # fmt: skip
            try:
                await self._thread.seek_to_beginning(*uncommitted)
            except IllegalStateError as exc:  # revoked meanwhile: a new assignment starts from the reset policy
                log.info("seek to beginning skipped: %s", exc)
        return committed


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
