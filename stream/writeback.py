"""Write-back table state: per-PDL writes kept in memory, flushed once per interval (issue 14).

faust sends one changelog record per table assignment (``Table.__setitem__`` -> ``send_changelog``),
so a worker that rewrites a PDL's hot values on every reading sends several changelog records per
reading. Kafka Streams puts a record cache in front of its stores and Quix Streams stages state per
checkpoint; this module does the same for our tables:

- handlers ``put``/``delete`` table keys here instead of in the table; reads go through ``peek``
  and ``read`` (this buffer first, then the table), so a handler always sees its own writes;
- the readings agent *holds* each event instead of acking it (``hold``): faust commits an offset
  only once every event before it is acked;
- ``flush`` writes every buffered key once (the last value wins) to its table, hence to RocksDB
  and to the changelog, in the order that survives a crash (below), then acks the held events.
  faust flushes its producer (every changelog send acknowledged) before it commits offsets
  (``Consumer._commit_offsets``), so **an offset is committed only after the changelog holds every
  change of the readings before it**. A crash replays from the last committed offset onto state that
  is at most one flush old, and the folds are idempotent (a reading not newer than a PDL's cursor is
  a no-op): totals stay exact (docs/stream.md "Processing guarantee").

Order of one flush, per partition: history records (keys with ``|``) first, then hot values (keys
without ``|``), then deletions. Every key of a PDL lives in the changelog partition of the PDL, so a
crash in the middle of a flush leaves, per PDL, its new records without its new hot value (a replay
rewrites identical records) or both, never a hot value pointing at a record not yet written nor a
record deleted before the hot value that stops listing it.

Table writes need faust's "current event" (its partition picks the RocksDB partition and the
changelog partition). A flush runs outside stream iteration (a timer, a rebalance), so it sets
faust's context variable to a stand-in event of the partition being flushed (``partition_context``).
Values may be given as objects with an encoder: they are encoded once, at flush (JSON of a hot
value per reading was a large share of the worker's time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from faust.streams import _current_event

from stream.pdl_state import merge_parts

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["Entry", "PublishOrder", "TOMBSTONE", "WriteBack", "partition_context"]


class TableLike(Protocol):
    """What the buffer needs of a faust table (a dict in unit tests)."""

    name: str

    def get(self, key: bytes, default: Any = None) -> Any: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def __delitem__(self, key: bytes) -> None: ...

    def __contains__(self, key: object) -> bool: ...


class Entry(Generic[T]):
    """A buffered value: the object the handler works with and, lazily, its stored bytes."""

    __slots__ = ("obj", "_encode", "_raw")

    def __init__(self, obj: T, encode: Callable[[T], bytes] | None = None) -> None:
        self.obj = obj
        self._encode = encode
        self._raw: bytes | None = obj if encode is None else None  # type: ignore[assignment]

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            assert self._encode is not None
            self._raw = self._encode(self.obj)
        return self._raw


class _Tombstone:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TOMBSTONE"


TOMBSTONE: Any = _Tombstone()  # a buffered deletion


class _Message:
    __slots__ = ("partition", "topic", "__weakref__")

    def __init__(self, partition: int, topic: str) -> None:
        self.partition = partition
        self.topic = topic


class _PartitionEvent:
    """The least of a faust event that table writes read: ``event.message.partition`` (RocksDB
    partition and changelog partition) and ``event.message.topic`` (the source topic whose
    partition count faust checks against the changelog's)."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, partition: int, topic: str) -> None:
        self.message = _Message(partition, topic)


@contextlib.contextmanager
def partition_context(partition: int, topic: str) -> Iterator[None]:
    """Make faust's table writes and reads in this block go to ``partition`` (as inside the
    stream iteration of an event of ``topic`` on that partition)."""
    event = _PartitionEvent(partition, topic)
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


FlushListener = Callable[[TableLike, bytes, Entry[Any]], None]
YIELD_EVERY = 100  # keys written between two yields to the event loop during a flush


@dataclass
class _Partition:
    writes: dict[tuple[str, bytes], Any] = field(default_factory=dict)  # (table, key) -> Entry | TOMBSTONE
    held: list[tuple[Callable[[Any, Any], None], Any, Any]] = field(default_factory=list)  # (ack, a, b): ack(a, b) after the flush
    after: list[Callable[[], None]] = field(default_factory=list)  # run once the flush is acknowledged


class WriteBack:
    """The worker's write-back buffer over its PDL tables (one per process, stream/state.py)."""

    def __init__(
        self,
        *,
        source_topic: str,
        interval_seconds: float,
        max_held: int = 20_000,
        max_keys: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
        observe: Callable[[float, int], None] | None = None,
        barrier: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.source_topic = source_topic
        # called when a flush takes its buffers, awaited before it writes them: the publishes
        # queued until then are out (stream/redis_publisher.py ``sent_barrier``); False = timed out
        self._barrier = barrier
        self.barrier_timeouts = 0
        self.interval = interval_seconds
        self.max_held = max_held
        # dirty keys buffered before a flush is due whatever the interval (0: no limit); Kafka
        # Streams' ``statestore.cache.max.bytes``: the buffer, and what its flush has in flight,
        # stay bounded when every reading dirties a PDL of its own (a backlog of many PDLs)
        self.max_keys = max_keys
        self._monotonic = monotonic
        self._tables: dict[str, TableLike] = {}
        self._slots: dict[str, set[str]] = {}  # stored table -> the names of its slots
        self._parts: dict[int, _Partition] = {}
        self._where: dict[tuple[str, bytes], int] = {}  # buffered key -> its partition
        # buffers being written by a flush: still read first (a key may not be in its table yet)
        self._flushing: list[dict[tuple[str, bytes], Any]] = []
        self._tasks: set[asyncio.Future[Any]] = set()  # background flushes (``flush_soon``)
        self._write_lock: asyncio.Lock | None = None  # one flush writes at a time (the newest value last)
        self._held = 0
        self._not_started: set[asyncio.Future[Any]] = set()  # flushes of everything (``flush_soon``) not begun yet
        self._last_flush = monotonic()
        self._listeners: list[FlushListener] = []
        self._observe = observe  # (seconds from write to acknowledgement, keys written) per flush
        self.flushes = 0
        # flushes of everything by what made them due: "interval", "held" (``max_held``), "keys"
        # (``max_keys``: many keys and a small budget make more changelog records per reading);
        # flushes of some partitions (a tick's publishes, a reading settling them) count as
        # "partitions", those of ``drain`` (before a revoke or a stop, or the readings fold
        # waiting because two flushes are in flight: agents/readings.py) as "drain"
        self.flush_reasons: dict[str, int] = dict.fromkeys(("interval", "held", "keys", "partitions", "drain"), 0)
        self.failures = 0
        self.keys_written = 0

    # ------------------------------------------------------------------ configuration

    def register(self, table: TableLike) -> None:
        """A table whose writes go through this buffer: a faust table, or a ``Slot`` of the
        per-PDL state table (stream/pdl_state.py): a PDL's dirty slots are merged into one value,
        one write and one changelog record per flush."""
        self._tables[table.name] = table
        store = getattr(table, "store", None)
        if store is not None:
            self._slots.setdefault(store.name, set()).add(table.name)

    def on_flushed(self, listener: FlushListener) -> None:
        """``listener(table, key, entry)`` after each buffered value is written (decode caches)."""
        self._listeners.append(listener)

    @property
    def enabled(self) -> bool:
        """False when ``interval_seconds`` is 0: every write goes to the table at once."""
        return self.interval > 0

    # ------------------------------------------------------------------ writes and reads

    def put(self, table: TableLike, key: bytes, partition: int, value: Entry[Any] | bytes) -> None:
        """Buffer ``table[key] = value`` for the PDL partition ``partition``."""
        entry = value if isinstance(value, Entry) else Entry(value)
        self._buffer(table, key, partition, entry)

    def delete(self, table: TableLike, key: bytes, partition: int) -> None:
        """Buffer ``del table[key]`` (a no-op at flush if the key is not in the table)."""
        self._buffer(table, key, partition, TOMBSTONE)

    def _buffer(self, table: TableLike, key: bytes, partition: int, entry: Any) -> None:
        if not self.enabled:  # write-through, inside the current event's stream iteration
            if entry is TOMBSTONE:
                if key in table:
                    del table[key]
            else:
                table[key] = entry.raw
                for listener in self._listeners:
                    listener(table, key, entry)
            return
        ref = (table.name, key)
        where = self._where.get(ref)
        if where is not None and where != partition:  # the same key from two partitions: a bug
            raise ValueError(f"{table.name}[{key!r}] buffered for partition {where}, then {partition}")
        self._where[ref] = partition
        writes = self._part(partition).writes
        writes.pop(ref, None)  # re-inserted last: insertion order is the write order within a class
        writes[ref] = entry

    def peek(self, table: TableLike, key: bytes) -> Any:
        """The buffered ``Entry``, ``TOMBSTONE``, or None when the key is not buffered (newest
        first: the buffer being filled, then those a flush is writing)."""
        ref = (table.name, key)
        partition = self._where.get(ref)
        if partition is not None:
            return self._parts[partition].writes[ref]
        for writes in reversed(self._flushing):
            entry = writes.get(ref)
            if entry is not None:
                return entry
        return None

    def read(self, table: TableLike, key: bytes) -> bytes | None:
        """The value a reader must see: the buffered one, else the table's."""
        entry = self.peek(table, key)
        if entry is None:
            return table.get(key)  # type: ignore[no-any-return]
        return None if entry is TOMBSTONE else entry.raw  # type: ignore[no-any-return]

    def buffered(self, table: TableLike) -> Iterator[tuple[bytes, Any]]:
        """``(key, Entry or TOMBSTONE)`` of every buffered key of ``table`` (the newest value of a
        key also being written by a flush)."""
        seen: set[bytes] = set()
        for part in list(self._parts.values()):
            for (name, key), entry in list(part.writes.items()):
                if name == table.name:
                    seen.add(key)
                    yield key, entry
        for writes in reversed(list(self._flushing)):
            for (name, key), entry in list(writes.items()):
                if name == table.name and key not in seen:
                    seen.add(key)
                    yield key, entry

    def items(self, table: TableLike, items: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        """``table.items()`` as readers must see it: buffered values instead of stored ones,
        buffered deletions left out, keys not yet in the table added."""
        seen: set[bytes] = set()
        for key, raw in items:
            entry = self.peek(table, key)
            if entry is None:
                yield key, raw
            else:
                seen.add(key)
                if entry is not TOMBSTONE:
                    yield key, entry.raw
        for key, entry in list(self.buffered(table)):
            if key not in seen and entry is not TOMBSTONE:
                yield key, entry.raw

    # ------------------------------------------------------------------ acks and flushes

    def hold(self, stream: Any, event: Any) -> None:
        """Ack ``event`` (an event of a ``stream.noack()`` stream) at the next flush, not now."""
        if not self.enabled:
            stream_ack(stream, event)
            return
        self._part(event.message.partition).held.append((stream_ack, stream, event))
        self._held += 1

    def hold_message(self, consumer: Any, message: Any) -> None:
        """Ack ``message`` (a faust ``Message`` folded outside any stream: agents/readings.py
        ``fold_messages``) through ``consumer`` at the next flush, not now."""
        if not self.enabled:
            message_ack(consumer, message)
            return
        self._part(message.partition).held.append((message_ack, consumer, message))
        self._held += 1

    def after_flush(self, partition: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything buffered so far for ``partition`` is in the changelog
        (at once when write-back is off). For effects no replay would redo: a timer's alert
        published before its state is durable could be lost by a crash and never taken back."""
        if not self.enabled:
            callback()
            return
        self._part(partition).after.append(callback)

    def due(self) -> bool:
        """Whether a flush is due (interval elapsed with something buffered, too many readings
        held or too many keys buffered), and none of everything is scheduled already (``flush_soon``)."""
        if self._not_started:
            return False
        if self._over_held() or self._over_keys():
            return True
        return bool(self._parts) and self._monotonic() - self._last_flush >= self.interval

    def _over_held(self) -> bool:
        return self._held >= self.max_held

    def _over_keys(self) -> bool:
        return bool(self.max_keys) and len(self._where) >= self.max_keys

    def dirty_keys(self) -> int:
        """Values buffered and not yet taken by a flush: keys of plain tables, and each slot of a
        PDL's state value (what the buffer holds in memory, though the flush writes the slots of
        a PDL as one value)."""
        return len(self._where)

    def held(self) -> int:
        """Readings folded whose ack waits for a flush."""
        return self._held

    def pending(self) -> bool:
        """Whether anything (writes or held events) waits for a flush."""
        return bool(self._parts)

    def flush_soon(self, partitions: Iterable[int] | None = None) -> asyncio.Future[int]:
        """Start a flush in the background (the readings agent goes on folding into a new buffer
        while the changelog records are written and acknowledged); ``drain`` waits for it.

        Until the task of a flush of everything first runs, ``due`` is false: otherwise every
        reading folded before that turn saw the flush still due and scheduled another one, and
        with two in flight the next reading waited for both (``_maybe_flush`` in
        agents/readings.py). The readings then stopped for a whole flush, about 500 ms every
        5 s at 1,000 meters: that was the latency p99 (docs/performance.md)."""
        task = asyncio.ensure_future(self.flush(partitions))
        if partitions is None:
            self._not_started.add(task)
        self._tasks.add(task)
        task.add_done_callback(self._flush_done)
        return task

    def _flush_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        self._not_started.discard(task)  # cancelled before its first turn
        if not task.cancelled():
            task.exception()  # retrieved: ``flush`` logged and counted it and gave the buffer back

    def flushing(self) -> int:
        """Flushes in flight."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Flush everything and wait for the flushes in flight (before a revoke or a stop)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.flush(reason="drain")

    async def flush(self, partitions: Iterable[int] | None = None, *, reason: str | None = None) -> int:
        """Write the buffered keys (all partitions, or those given), wait until Kafka acknowledged
        their changelog records, then ack the events held for them. Returns how many keys were
        written.

        The buffers are taken at once and a new one fills meanwhile; the taken ones stay readable
        (``peek``) until their keys are in the tables. Writing yields to the event loop every
        ``YIELD_EVERY`` keys, so a flush of many PDLs never stalls the readings; a crash in the
        middle leaves, per PDL, a prefix of its writes in the order of ``_write``."""
        if self._not_started:  # a task of ``flush_soon``: started now
            self._not_started.discard(asyncio.current_task())  # type: ignore[arg-type]
        chosen = list(self._parts) if partitions is None else [p for p in partitions if p in self._parts]
        if partitions is None or not self._parts:
            self._last_flush = self._monotonic()
        if not chosen:
            return 0
        if reason is None:
            reason = ("partitions" if partitions is not None else "keys" if self._over_keys()
                      else "held" if self._over_held() else "interval")  # fmt: skip
        self.flush_reasons[reason] = self.flush_reasons.get(reason, 0) + 1
        started = self._monotonic()
        taken = {p: self._parts.pop(p) for p in chosen}
        visible: dict[tuple[str, bytes], Any] = {}
        for part in taken.values():
            for ref in part.writes:
                self._where.pop(ref, None)
            visible.update(part.writes)
            self._held -= len(part.held)
        self._flushing.append(visible)
        waiter = self._barrier() if self._barrier is not None else None  # the publishes of these events
        written, sent = 0, []
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        try:
            if waiter is not None and not await waiter:
                self.barrier_timeouts += 1
                log.warning("state flush: publishes queued before it were not all sent in time; writing anyway")
            async with self._write_lock:  # an older flush still writing finishes first
                for partition, part in taken.items():
                    written += await self._write(partition, part, sent)
            if sent:  # every changelog record acknowledged by Kafka...
                results = await asyncio.gather(*(future for _, future in sent))
                _persist_offsets((table for table, _ in sent), results)
        except Exception:  # not acknowledged or not written: give the buffers back, ack nothing
            self.failures += 1
            log.exception("state flush failed; its readings stay unacked (replayed if this worker stops)")
            self._give_back(taken)
            raise
        finally:
            self._flushing.remove(visible)
        for part in taken.values():  # ...before faust may commit the offsets of these events
            for ack, first, second in part.held:
                ack(first, second)
        for part in taken.values():
            for callback in part.after:
                try:
                    callback()
                except Exception:  # one callback's bug must not skip the others
                    log.exception("after-flush callback failed")
        self.flushes += 1
        self.keys_written += written
        if self._observe is not None:
            self._observe(self._monotonic() - started, written)
        return written

    def _give_back(self, taken: dict[int, _Partition]) -> None:
        """A failed flush: its writes go back under the newer buffer (a key buffered again since
        keeps its newer value), its held events before the newer ones (ack order)."""
        for partition, part in taken.items():
            current = self._part(partition)
            merged = dict(part.writes)
            for ref, entry in current.writes.items():
                merged.pop(ref, None)
                merged[ref] = entry
            current.writes = merged
            for ref in merged:
                self._where[ref] = partition
            current.held = part.held + current.held
            current.after = part.after + current.after
            self._held += len(part.held)

    async def _write(self, partition: int, part: _Partition, sent: list[tuple[Any, Any]]) -> int:
        """Write one partition's buffer: history records, then hot values (a PDL's slots merged
        into its one state value), then deletions. Returns the stored keys written or deleted."""
        records, hots, deletes = [], [], []
        slotted: dict[tuple[str, bytes], list[tuple[Any, Any]]] = {}  # (store, PDL key) -> [(slot, entry)]
        for ref, entry in part.writes.items():
            table = self._tables[ref[0]]
            if b"|" not in ref[1] and getattr(table, "store", None) is not None:
                slotted.setdefault((table.store.name, ref[1]), []).append((table, entry))
            elif entry is TOMBSTONE:
                deletes.append(ref)
            elif b"|" in ref[1]:
                records.append((ref, entry))
            else:
                hots.append((ref, entry))
        n = 0
        for (name, key), entry in records + hots:
            table = self._tables[name]
            with partition_context(partition, self.source_topic):  # not across the yields below
                send = _set(_stored(table), partition, key, entry.raw)
            if send is not None:
                sent.append(await send)
            for listener in self._listeners:
                listener(table, key, entry)
            n += 1
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for (_, key), changes in slotted.items():
            store = changes[0][0].store
            with partition_context(partition, self.source_topic):
                # every slot of the table changed (each reading's usual case): nothing to keep
                kept = None if {slot.name for slot, _ in changes} >= self._slots[store.name] else store.get(key)
                parts = {slot.name: None if entry is TOMBSTONE else entry.raw for slot, entry in changes}
                value = merge_parts(kept, parts)
                if value is not None:
                    send = _set(store, partition, key, value)
                else:
                    send = _delete(store, partition, key) if key in store else None
            if send is not None:
                sent.append(await send)
            for slot, entry in changes:
                if entry is not TOMBSTONE:
                    for listener in self._listeners:
                        listener(slot, key, entry)
            n += 1
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        for name, key in deletes:
            table = _stored(self._tables[name])
            with partition_context(partition, self.source_topic):
                send = _delete(table, partition, key) if key in table else None
            if send is not None:
                sent.append(await send)
            n += 1
        return n

    def _part(self, partition: int) -> _Partition:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition()
        return part


class PublishOrder:
    """Per-PDL order of publishes when some must wait until their state is durable.

    A reading's publishes go out at once: if a crash loses its state, the reading is replayed
    (its event is held until the flush) and publishes the same again. A timer tick or a contract
    change is not replayed, so what it publishes waits for the flush that holds its state
    (``after_flush``): otherwise a crash could lose the state of an ``open`` already published,
    and the ``clear`` would never come. A later reading's publishes for the same PDL queue behind
    the waiting ones (``now``), so subscribers never see the ``clear`` before the ``open``.

    A reading must not wait that way, though: its state would then reach the changelog in the
    same flush as the tick's, before its publishes are even queued, and a crash right after that
    flush would lose them for good (the replay finds the reading folded and publishes nothing;
    the flush's publish barrier only covers what is queued when it starts). So the readings
    agent calls ``settle`` first: the tick's flush is done before the reading is folded, and
    the reading's publishes go out at once, ahead of the flush that makes its state durable."""

    def __init__(self, writeback: WriteBack) -> None:
        self._writeback = writeback
        self._queues: dict[str, list[list[Any]]] = {}  # key -> [[emit, ready, partition], ...] in publish order
        self._drained: dict[str, asyncio.Future[None]] = {}  # key -> done when its queue empties
        self._waiting = 0  # entries in ``_queues`` (all keys)

    def now(self, key: str, emit: Callable[[], None]) -> None:
        """Publish now, or behind the publishes of ``key`` still waiting for a flush."""
        queue = self._queues.get(key)
        if queue is None:
            emit()
        else:
            queue.append([emit, True])
            self._waiting += 1

    def after_flush(self, key: str, partition: int, emit: Callable[[], None]) -> None:
        """Publish once what is buffered now for ``partition`` is in the changelog (in order)."""
        if not self._writeback.enabled and key not in self._queues:
            emit()
            return
        entry: list[Any] = [emit, False, partition]
        self._queues.setdefault(key, []).append(entry)
        self._waiting += 1
        self._writeback.after_flush(partition, lambda: self._ready(key, entry))

    def waiting(self) -> int:
        """Publishes queued behind a flush (all PDLs); O(1)."""
        return self._waiting

    async def release(self, timeout: float = 30.0) -> bool:
        """Flush now the partitions whose buffered state holds publishes back, and wait until
        those publishes went out (at most ``timeout``). What the ticks agent does before the
        publishes waiting for a flush could overflow the Redis queue once released together
        (agents/battery.py): they go out in smaller bursts instead. False when a flush failed
        or the time ran out (the publishes then wait for the next flush, as before)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queues:
            partitions = sorted({entry[2] for queue in self._queues.values() for entry in queue if not entry[1]})
            if not partitions:  # only ready entries behind ones a flush in flight holds: wait for it
                await asyncio.sleep(0.01)
            else:
                flush = self._writeback.flush_soon(partitions)
                await asyncio.wait({flush}, timeout=max(0.0, deadline - loop.time()))
                if not flush.done() or flush.cancelled() or flush.exception() is not None:
                    return False  # a failed flush is logged and counted by the flush itself
                if self._queues and flush.result() == 0:  # a flush in flight holds them: its turn
                    await asyncio.sleep(0.01)
            if loop.time() >= deadline:
                return not self._queues
        return True

    def waits(self, key: str | None = None) -> bool:
        """Whether a publish of ``key`` (of any key: None) waits for a flush; O(1)."""
        return key in self._queues if key is not None else bool(self._queues)

    async def settle(self, key: str, timeout: float = 30.0) -> bool:
        """Return once no publish of ``key`` waits for a flush: flush the partitions still
        buffering those states now, and wait for a flush already writing them. Called before a
        reading of ``key`` is folded (see the class docstring). False when a flush failed or
        ``timeout`` passed: the reading's publishes then queue behind, as ``now`` does."""
        if key not in self._queues:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while key in self._queues:
            partitions = sorted({entry[2] for entry in self._queues[key] if not entry[1]})
            # in the background (never cancelled halfway), waited for at most until the deadline;
            # a partition already taken by a flush in flight flushes nothing here
            flush = self._writeback.flush_soon(partitions)
            await asyncio.wait({flush}, timeout=max(0.0, deadline - loop.time()))
            if not flush.done():
                log.warning("publishes of %s still wait for a flush after %.0f s", key, timeout)
                return False
            if flush.cancelled() or flush.exception() is not None:  # logged and counted by the flush
                return False
            if key not in self._queues:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("publishes of %s still wait for a flush after %.0f s", key, timeout)
                return False
            drained = self._drained.get(key)
            if drained is None or drained.done():
                drained = self._drained[key] = loop.create_future()
            try:  # a flush in flight holds them; short waits, so a flush that failed is retried above
                await asyncio.wait_for(asyncio.shield(drained), min(remaining, 0.25))
            except asyncio.TimeoutError:
                pass
        return True

    def _ready(self, key: str, entry: list[Any]) -> None:
        entry[1] = True
        queue = self._queues.get(key, [])
        while queue and queue[0][1]:
            emit = queue.pop(0)[0]
            self._waiting -= 1
            try:
                emit()
            except Exception:  # a publishing bug must not keep the rest queued forever
                log.exception("queued publish of %s failed", key)
        if not queue:
            self._queues.pop(key, None)
            drained = self._drained.pop(key, None)
            if drained is not None and not drained.done():
                drained.set_result(None)


def _stored(table: Any) -> Any:
    """The table a history key or a plain table's key is written to (a slot's: its store)."""
    store = getattr(table, "store", None)
    return table if store is None else store


def _set(table: Any, partition: int, key: bytes, raw: bytes) -> Awaitable[tuple[Any, Any]] | None:
    """``table[key] = raw`` in RocksDB; returns the changelog send to await (None for a plain
    mapping in unit tests, written at once)."""
    if getattr(table, "send_changelog", None) is None:
        table[key] = raw
        return None
    table.data[key] = raw
    sensor = getattr(table, "_sensor_on_set", None)
    if sensor is not None:
        sensor(table, key, raw)
    return _changelog_send(table, partition, key, raw)


def _delete(table: Any, partition: int, key: bytes) -> Awaitable[tuple[Any, Any]] | None:
    if getattr(table, "send_changelog", None) is None:
        del table[key]
        return None
    del table.data[key]
    sensor = getattr(table, "_sensor_on_del", None)
    if sensor is not None:
        sensor(table, key)
    return _changelog_send(table, partition, key, None)


async def _changelog_send(table: Any, partition: int, key: bytes, raw: bytes | None) -> tuple[Any, Any]:
    """Hand the changelog record to the Kafka producer; returns the future of its acknowledgement.

    A faust table's ``send_changelog`` goes through faust's producer buffer, and faust's conductor
    holds every incoming message while that buffer has more than 100 records
    (``ProducerBuffer.wait_until_ebb``): a flush of a few hundred PDLs stalled the readings for
    the time the buffer took to drain one record per event-loop turn (about 300 ms at 300 meters,
    bench/stream_latency.py). Sending straight to the producer does not fill that buffer; the
    flush awaits the acknowledgements itself and then records the changelog offset RocksDB holds
    (what faust's ``_on_changelog_sent`` does per record, done once per table partition here).
    Returns ``(table or None, future of the acknowledgement)``."""
    producer = getattr(getattr(table, "app", None), "producer", None)
    topic = getattr(table, "changelog_topic", None)
    if producer is None or topic is None or not getattr(producer, "started", True):
        # a unit-test table, or an agent's test_context (no producer running): faust's own path
        value_serializer = "raw" if raw is None else None
        return None, table.send_changelog(partition, key, raw, value_serializer=value_serializer)
    ack = await producer.send(topic.get_topic_name(), key, raw, partition=partition, timestamp=None, headers=None)
    return table, ack


def _persist_offsets(tables: Iterable[Any], results: Iterable[Any]) -> None:
    """Record, per table partition, the highest changelog offset acknowledged (RocksDB then knows
    at the next start which changelog records it already holds)."""
    highest: dict[tuple[int, Any], tuple[Any, Any, int]] = {}
    for table, result in zip(tables, results):
        if table is None:
            continue
        tp = result.topic_partition
        ref = (id(table), tp)
        known = highest.get(ref)
        if known is None or result.offset > known[2]:
            highest[ref] = (table, tp, result.offset)
    for table, tp, offset in highest.values():
        table.data.set_persisted_offset(tp, offset)


def message_ack(consumer: Any, message: Any) -> None:
    """What ``stream_ack`` does for a message that went through no stream: faust's consumer marks
    its offset acked (committable once every offset before it is), and faust's sensors see it
    out (they saw it in at ``consumer.track_message``)."""
    if consumer.ack(message):
        consumer.app.sensors.on_message_out(message.tp, message.offset, message)


def stream_ack(stream: Any, event: Any) -> None:
    """``await stream.ack(event)`` without the await (faust's ``Stream.ack`` is a coroutine only
    by its signature): the message is acked and the stream's sensors see the event out."""
    last = event.ack()
    message = event.message
    stream._on_stream_event_out(message.tp, message.offset, stream, event)
    if last:
        stream._on_message_out(message.tp, message.offset, message)
