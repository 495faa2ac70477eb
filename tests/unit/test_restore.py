"""stream/restore.py: the bulk changelog restore, against a fake consumer (the real one runs in
tests/integration/test_stream_consumption.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from stream.restore import restore

A, B = ("cl", 0), ("cl", 1)


@dataclass
class Msg:
    offset: int
    key: bytes
    value: Optional[bytes]


class FakeLog:
    """A changelog per partition: ``{tp: [Msg, ...]}`` with offsets possibly gapped (compaction),
    starting at ``begin`` (retention); ``appended`` records arrive after the end offsets were read."""

    def __init__(self, logs: dict[Any, list[Msg]], begin: Optional[dict[Any, int]] = None, batch: int = 2) -> None:
        self.logs = logs
        self.begin = begin or {tp: 0 for tp in logs}
        self.batch = batch
        self.pos: dict[Any, int] = {}
        self.assigned: list[Any] = []
        self.fetches = 0
        self.appended: dict[Any, list[Msg]] = {}

    async def beginning_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: self.begin[tp] for tp in tps}

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        ends = {tp: (self.logs[tp][-1].offset + 1 if self.logs[tp] else self.begin[tp]) for tp in tps}
        for tp, extra in self.appended.items():  # written after the end offsets were measured
            self.logs[tp].extend(extra)
        return ends

    def assign(self, tps: list[Any]) -> None:
        self.assigned = list(tps)

    def seek(self, tp: Any, offset: int) -> None:
        self.pos[tp] = offset

    async def position(self, tp: Any) -> int:
        return self.pos[tp]

    async def getmany(self, *tps: Any, timeout_ms: int = 0, max_records: Optional[int] = None) -> dict[Any, list[Msg]]:
        self.fetches += 1
        out: dict[Any, list[Msg]] = {}
        for tp in tps:
            assert tp in self.assigned
            msgs = [m for m in self.logs[tp] if m.offset >= self.pos[tp]][: self.batch]
            if msgs:
                out[tp] = msgs
                self.pos[tp] = msgs[-1].offset + 1
        return out


class Store:
    def __init__(self, persisted: Optional[dict[Any, int]] = None) -> None:
        self.data: dict[Any, dict[bytes, bytes]] = {A: {}, B: {}}
        self.offsets: dict[Any, int] = dict(persisted or {})
        self.writes: list[tuple[Any, int, int]] = []

    def persisted(self, tp: Any) -> Optional[int]:
        return self.offsets.get(tp)

    def write(self, tp: Any, records: list[tuple[bytes, Optional[bytes]]], last: int) -> None:
        for key, value in records:
            if value is None:
                self.data[tp].pop(key, None)
            else:
                self.data[tp][key] = value
        self.offsets[tp] = last
        self.writes.append((tp, len(records), last))


def msgs(*items: tuple[int, bytes, Optional[bytes]]) -> list[Msg]:
    return [Msg(o, k, v) for o, k, v in items]


async def test_reads_every_partition_to_its_end_in_order_with_tombstones() -> None:
    log = FakeLog({
        A: msgs((0, b"p1", b"1"), (1, b"p2", b"2"), (2, b"p1", b"3"), (5, b"p2", None), (6, b"p3", b"4")),
        B: msgs((0, b"q1", b"a")),
    })
    store = Store()
    outcome = await restore(log, [A, B], store.persisted, store.write)
    assert store.data[A] == {b"p1": b"3", b"p3": b"4"}  # p2 deleted by its tombstone, p1 last value wins
    assert store.data[B] == {b"q1": b"a"}
    assert store.offsets == {A: 6, B: 0}
    assert outcome.complete and outcome.total == 6 and outcome.records == {A: 5, B: 1}
    assert [w for w in store.writes if w[0] == A] == [(A, 2, 1), (A, 2, 5), (A, 1, 6)]  # one write per fetch


async def test_starts_after_the_persisted_offset_and_skips_what_is_done() -> None:
    log = FakeLog({A: msgs((0, b"p1", b"1"), (1, b"p1", b"2"), (2, b"p2", b"3")), B: msgs((0, b"q", b"x"))})
    store = Store(persisted={A: 0, B: 0})
    store.data[A][b"p1"] = b"1"
    store.data[B][b"q"] = b"x"
    outcome = await restore(log, [A, B], store.persisted, store.write)
    assert outcome.records == {A: 2}  # B was complete: not even assigned
    assert log.assigned == [A]
    assert store.data[A] == {b"p1": b"2", b"p2": b"3"} and store.offsets[A] == 2


async def test_a_log_truncated_by_retention_starts_at_its_beginning() -> None:
    log = FakeLog({A: msgs((7, b"p1", b"7"), (8, b"p2", b"8")), B: []}, begin={A: 7, B: 3})
    store = Store()
    outcome = await restore(log, [A, B], store.persisted, store.write)
    assert log.assigned == [A] and store.offsets == {A: 8} and outcome.total == 2


async def test_stops_at_the_end_offsets_measured_at_the_start() -> None:
    log = FakeLog({A: msgs((0, b"p1", b"1"), (1, b"p1", b"2"))}, batch=10)
    log.appended = {A: msgs((2, b"p1", b"late"))}  # faust's recovery reads these
    store = Store()
    outcome = await restore(log, [A], store.persisted, store.write)
    assert store.data[A] == {b"p1": b"2"} and store.offsets[A] == 1 and outcome.complete


async def test_an_interrupted_restore_leaves_a_prefix_and_its_offset() -> None:
    log = FakeLog({A: msgs(*[(i, b"p%d" % (i % 3), b"%d" % i) for i in range(10)])}, batch=3)
    store = Store()
    turns = iter([True, True, False])
    outcome = await restore(log, [A], store.persisted, store.write, keep_going=lambda: next(turns))
    assert not outcome.complete and outcome.reason == "interrupted"
    assert store.offsets[A] == 5  # two fetches of 3
    # what faust's recovery would then read from offset 6 brings the same table as a full restore
    rest = FakeLog({A: [m for m in log.logs[A] if m.offset > 5]}, begin={A: 6}, batch=3)
    await restore(rest, [A], store.persisted, store.write)
    full = Store()
    await restore(FakeLog({A: log.logs[A]}), [A], full.persisted, full.write)
    assert store.data[A] == full.data[A] and store.offsets[A] == full.offsets[A] == 9


async def test_a_stalled_log_ends_the_restore_early() -> None:
    log = FakeLog({A: msgs((0, b"p", b"1"), (1, b"p", b"2"))})
    log.logs[A][1:] = []  # the end offset says 2 records, the broker serves one
    log.end_offsets = _fixed_end({A: 2})  # type: ignore[method-assign]
    now = iter(range(0, 1000, 20))
    store = Store()
    outcome = await restore(log, [A], store.persisted, store.write, stall_seconds=30, monotonic=lambda: next(now))
    assert not outcome.complete and outcome.reason == "stalled" and store.offsets[A] == 0


def _fixed_end(ends: dict[Any, int]) -> Any:
    async def end_offsets(tps: list[Any]) -> dict[Any, int]:
        return {tp: ends[tp] for tp in tps}

    return end_offsets
