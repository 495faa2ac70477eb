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
from typing import Any, Awaitable, Callable, Mapping, Optional, Set

from aiokafka.errors import IllegalStateError
from prometheus_client import Counter
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)
FETCH_MAX_WAIT_MS = 100  # set from Settings.kafka_fetch_max_wait_ms by stream/factory.py create_app
DIRECT_BATCH_MAX = 500  # records of a direct topic handed over in one call at most (the rest of the fetch next)
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


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust hard-codes fetch_max_wait_ms=1500; with several idle partitions in the fetch
        # (changelogs, contracts, ticks...) readings waited up to that long in the broker
        # (bench/stream_latency.py): ``LINKY_KAFKA_FETCH_MAX_WAIT_MS``
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Optional[Set[TP]],
        timeout: Optional[float] = None,
        max_records: Optional[int] = None,
    ) -> Any:
        selection = active_partitions if active_partitions is None else _Selection(active_partitions)
        return await super()._fetch_records(consumer, selection, timeout=timeout, max_records=max_records)  # type: ignore[arg-type]


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
                    batch: list[Any] = []
                    batch_handler: Any = None
                    held_back.clear()
                    async for tp, message in ait:
                        if tp in held_back:  # fetched again from the seek, in order (``_hold_back``)
                            continue
                        num_since_yield += 1
                        if num_since_yield > yield_every and not batch:
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
