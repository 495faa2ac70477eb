"""One state value per PDL (stream/pdl_state.py): its stored form, the slots' views of it, the
write-back buffer merging a PDL's slots into one write per flush, and the conversion of the
three old tables (stream/migrate.py ``convert``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream.migrate import convert
from stream.pdl_state import HEADER, Slot, decode_parts, encode_parts, merge_parts
from stream.writeback import TOMBSTONE, Entry, WriteBack
from tests.unit.test_writeback import ChangelogTable, Table


def test_parts_round_trip_whatever_bytes_they_hold() -> None:
    parts = {"live": b'{"w":1}', "consumption": b"line one\nline two\n", "battery-ledger": b"", "x": b"12 34\n5"}
    raw = encode_parts(parts)
    assert raw.startswith(HEADER)
    assert decode_parts(raw) == parts
    assert decode_parts(None) == {}
    assert raw.split(b"\n")[1] == b"battery-ledger 0"  # readable off the changelog: name and length


@pytest.mark.parametrize("raw", [b'{"w": 1}', HEADER + b"live 10\nshort\n", HEADER + b"live x\n", HEADER + b"live 3"])
def test_a_value_that_is_not_a_state_value_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_parts(raw)


def test_merge_replaces_removes_and_deletes_when_nothing_is_left() -> None:
    raw = encode_parts({"live": b"L", "consumption": b"C"})
    assert decode_parts(merge_parts(raw, {"live": b"L2"})) == {"live": b"L2", "consumption": b"C"}
    assert decode_parts(merge_parts(raw, {"live": None})) == {"consumption": b"C"}
    assert merge_parts(raw, {"live": None, "consumption": None}) is None
    assert decode_parts(merge_parts(None, {"battery-ledger": b"B"})) == {"battery-ledger": b"B"}


def test_slots_read_and_write_their_own_part_and_history_keys() -> None:
    store_table = Table("pdl-state", [])
    live, conso = Slot(store_table, "live"), Slot(store_table, "consumption")
    ledger = Slot(store_table, "battery-ledger")
    live[b"P"] = b"live P"
    conso[b"P"] = b"conso P"
    conso[b"P|D|2026-10-25"] = b"day row"
    ledger[b"P|bd|2026-10-25"] = b"battery row"
    ledger[b"Q"] = b"ledger Q"
    assert live.get(b"P") == b"live P" and conso.get(b"P") == b"conso P" and ledger.get(b"P") is None
    assert b"P" in live and b"Q" not in live and b"Q" in ledger
    assert conso.get(b"P|D|2026-10-25") == b"day row"
    assert sorted(store_table) == [b"P", b"P|D|2026-10-25", b"P|bd|2026-10-25", b"Q"]  # one key per PDL
    assert dict(conso.items()) == {b"P": b"conso P"}  # every PDL's part, no history records
    assert dict(ledger.items()) == {b"Q": b"ledger Q"}
    del live[b"P"]
    assert live.get(b"P") is None and conso.get(b"P") == b"conso P"
    del conso[b"P"]
    assert b"P" not in store_table  # no part left: the key is gone
    del conso[b"P|D|2026-10-25"]
    assert b"P|D|2026-10-25" not in store_table


async def test_a_flush_writes_one_value_per_pdl_whatever_slots_changed() -> None:
    log: list[tuple[Any, ...]] = []
    wb = WriteBack(source_topic="readings", interval_seconds=5.0, max_keys=5)
    store = ChangelogTable("pdl-state", log)
    live, conso = Slot(store, "live"), Slot(store, "consumption")
    ledger = Slot(store, "battery-ledger")
    for slot in (live, conso, ledger):
        wb.register(slot)
    store[b"Q"] = encode_parts({"live": b"old live Q", "battery-ledger": b"old ledger Q"})
    log.clear()
    for n in range(3):  # three readings of P, each writing every slot
        wb.put(live, b"P", 1, f"live {n}".encode())
        wb.put(conso, b"P", 1, Entry(n, lambda obj: f"conso {obj}".encode()))
        wb.put(ledger, b"P", 1, f"ledger {n}".encode())
    wb.put(conso, b"P|D|2026-10-25", 1, b"day row")
    wb.put(live, b"Q", 2, b"live Q")  # one slot of Q: its other parts are kept
    assert wb.dirty_keys() == 5  # what the buffer holds: P's three slots, P's record and Q's slot
    assert wb.due()
    assert wb.read(conso, b"P") == b"conso 2" and wb.read(ledger, b"Q") == b"old ledger Q"
    flush = asyncio.ensure_future(wb.flush())
    await asyncio.sleep(0)
    for future in store.futures:
        future.set_result(None)
    assert await flush == 3
    assert [entry[1:3] for entry in log] == [("pdl-state", b"P|D|2026-10-25"), ("pdl-state", b"P"), ("pdl-state", b"Q")]
    assert len(store.futures) == 3  # one changelog record per stored key
    assert decode_parts(store[b"P"]) == {"live": b"live 2", "consumption": b"conso 2", "battery-ledger": b"ledger 2"}
    assert decode_parts(store[b"Q"]) == {"live": b"live Q", "battery-ledger": b"old ledger Q"}
    assert wb.dirty_keys() == 0 and wb.read(ledger, b"Q") == b"old ledger Q"


async def test_a_slot_deleted_in_the_buffer_is_removed_from_the_value() -> None:
    wb = WriteBack(source_topic="readings", interval_seconds=5.0)
    store = Table("pdl-state", [])
    live, conso = Slot(store, "live"), Slot(store, "consumption")
    wb.register(live)
    wb.register(conso)
    store[b"P"] = encode_parts({"live": b"L", "consumption": b"C"})
    store[b"P|H|2026-10-25T10"] = b"hour row"
    wb.delete(live, b"P", 0)
    wb.delete(conso, b"P|H|2026-10-25T10", 0)
    assert wb.peek(live, b"P") is TOMBSTONE and wb.read(conso, b"P") == b"C"
    await wb.flush()
    assert decode_parts(store[b"P"]) == {"consumption": b"C"}
    assert b"P|H|2026-10-25T10" not in store
    wb.delete(conso, b"P", 0)
    await wb.flush()
    assert b"P" not in store


def test_the_old_tables_convert_to_records_first_then_one_value_per_pdl() -> None:
    old = {
        "live": {b"P": b"live P", b"R": b"live R"},
        "consumption": {b"P": b"conso P", b"P|D|2026-10-25": b"day", b"P|M|2026-10": b"month"},
        "battery-ledger": {b"P": b"ledger P", b"P|bd|2026-10-25": b"battery day"},
    }
    records = convert(old)
    keys = [key for key, _ in records]
    assert keys == [b"P|D|2026-10-25", b"P|M|2026-10", b"P|bd|2026-10-25", b"P", b"R"]
    values = dict(records)
    assert values[b"P|D|2026-10-25"] == b"day" and values[b"P|bd|2026-10-25"] == b"battery day"
    assert decode_parts(values[b"P"]) == {"live": b"live P", "consumption": b"conso P", "battery-ledger": b"ledger P"}
    assert decode_parts(values[b"R"]) == {"live": b"live R"}
    assert convert({}) == []


def test_a_rocksdb_store_lists_every_pdl_value_without_visiting_its_history(tmp_path: Any) -> None:
    """stream/factory.py ``hot_items``: one seek past each PDL's records, PDL keys of any length
    (a historic meter's 12-digit ADCO next to 14-digit PDLs that start with the same digits)."""
    from tests.unit.test_table_reads import _table

    table = _table(tmp_path, "pdl-state", 0)
    store = table.data
    dbs = [store._db_for_partition(0), store._db_for_partition(1)]
    expected = {}
    for n, pdl in enumerate([b"042464519002", b"04246451900212", b"04246451900299", b"25000000000000"]):
        db = dbs[n % 2]
        value = encode_parts({"live": b"L" + pdl})
        db[pdl] = value
        expected[pdl] = b"L" + pdl
        for day in range(300):
            db[pdl + b"|D|%04d" % day] = b"day"
    dbs[0][b"31000000000000|D|0001"] = b"a record whose PDL has no value (yet)"
    dbs[1][b"31000000000001|D|0001"] = b"r"
    dbs[1][b"31000000000001"] = encode_parts({"consumption": b"C"})
    visited: list[bytes] = []

    class Counted:  # a RocksDB iterator that records the keys it was asked for
        def __init__(self, it: Any) -> None:
            self._it = it

        def key(self) -> bytes:
            visited.append(self._it.key())
            return self._it.key()  # type: ignore[no-any-return]

        def __getattr__(self, name: str) -> Any:
            return getattr(self._it, name)

    class DB:
        def __init__(self, db: Any) -> None:
            self._db = db

        def iter(self) -> Counted:
            return Counted(self._db.iter())

    store._dbs_for_actives = lambda: iter([DB(db) for db in dbs])
    assert sorted(store.hot_items()) == sorted([(k, encode_parts({"live": v})) for k, v in expected.items()]
                                              + [(b"31000000000001", encode_parts({"consumption": b"C"}))])  # fmt: skip
    assert len(visited) <= 2 * 6 + 2, visited  # each PDL's value and its first record, not 1,800 records
    live = Slot(table, "live")
    assert dict(live.items()) == expected
