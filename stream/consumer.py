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

import logging
from typing import Any, Mapping, Optional, Set

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)
FETCH_MAX_WAIT_MS = 100  # set from Settings.kafka_fetch_max_wait_ms by stream/factory.py create_app

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
