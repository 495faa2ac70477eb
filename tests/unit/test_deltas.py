"""tables/deltas.py: index cursor rules (duplicates, older readings, backwards, meter change)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tables.deltas import Cursor, advance, cursor_from_dict, cursor_to_dict

UTC = timezone.utc
T0 = datetime(2026, 10, 25, 10, tzinfo=UTC)


def step(cursor: Cursor, seconds: int, imports: dict | None, export: int | None = None, meter: str = "M1", **kw):
    return advance(cursor, time=T0 + timedelta(seconds=seconds), meter=meter, import_wh_by_period=imports,
                   export_wh=export, **kw)  # fmt: skip


def test_first_reading_is_a_baseline_then_deltas_per_register() -> None:
    a = step(Cursor(), 0, {"HCHC": 1000, "HCHP": 500}, 20)
    assert a.applied and a.start is None and a.import_wh_by_period == {} and a.export_wh == 0
    b = step(a.cursor, 60, {"HCHC": 1004, "HCHP": 500}, 27)
    assert (b.start, b.end) == (T0, T0 + timedelta(seconds=60))
    assert b.import_wh_by_period == {"HCHC": 4, "HCHP": 0} and b.export_wh == 7 and b.events == []


def test_duplicates_and_older_readings_change_nothing() -> None:
    a = step(step(Cursor(), 0, {"A": 10}).cursor, 60, {"A": 15})
    for seconds, value in ((60, 15), (60, 99), (30, 12), (0, 10)):
        again = step(a.cursor, seconds, {"A": value})
        assert not again.applied and again.cursor is a.cursor and again.import_wh_by_period == {}


def test_index_going_backwards_rebaselines_with_an_event_and_no_negative_energy() -> None:
    a = step(step(Cursor(), 0, {"A": 5000}).cursor, 60, {"A": 5010})
    b = step(a.cursor, 120, {"A": 3})  # meter reset / replaced without a new id
    assert b.applied and b.import_wh_by_period == {"A": 0}
    assert [(e.kind, e.register, e.previous, e.current) for e in b.events] == [("index_backwards", "A", 5010, 3)]
    c = step(b.cursor, 180, {"A": 10})
    assert c.import_wh_by_period == {"A": 7} and c.events == []


def test_nine_digit_rollover_counts_the_wrap() -> None:
    a = step(Cursor(), 0, {"A": 999_999_990})
    b = step(a.cursor, 60, {"A": 15})
    assert b.import_wh_by_period == {"A": 25}
    assert [e.kind for e in b.events] == ["index_rollover"]


def test_meter_change_rebaselines_everything() -> None:
    a = step(step(Cursor(), 0, {"A": 100}, 50).cursor, 60, {"A": 110}, 55)
    b = step(a.cursor, 120, {"EASF01": 7}, 1, meter="M2")
    assert b.applied and b.import_wh_by_period == {} and b.export_wh == 0
    assert [(e.kind, e.previous, e.current) for e in b.events] == [("meter_changed", "M1", "M2")]
    assert b.cursor.imports == {"EASF01": 7} and b.cursor.export == 1 and b.start == a.end


def test_missing_registers_carry_forward_and_index_less_readings_do_not_move_the_cursor() -> None:
    a = step(Cursor(), 0, {"A": 100, "B": 200}, 10)
    b = step(a.cursor, 60, {"A": 103, "B": None}, None)  # B and EAIT dropped (bad checksum)
    assert b.import_wh_by_period == {"A": 3} and b.cursor.imports == {"A": 103, "B": 200} and b.cursor.export == 10
    c = step(b.cursor, 90, None, None)  # no index at all
    assert not c.applied and c.cursor is b.cursor
    d = step(b.cursor, 120, {"A": 104, "B": 209}, 12)
    assert d.import_wh_by_period == {"A": 1, "B": 9} and d.export_wh == 2 and d.start == b.end


def test_total_register_only_without_per_period_indexes() -> None:
    a = step(Cursor(), 0, None, None, import_wh=1000)
    b = step(a.cursor, 60, None, None, import_wh=1012)
    assert b.import_wh_by_period == {"TOTAL": 12}
    c = step(b.cursor, 120, {"HCHC": 5}, None, import_wh=1020)  # per-period registers win
    assert c.import_wh_by_period == {} and c.cursor.imports == {"TOTAL": 1012, "HCHC": 5}


@pytest.mark.parametrize("bad", [-1, 1.5, "12", True])
def test_invalid_indexes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="integer"):
        step(Cursor(), 0, {"A": bad})


def test_cursor_round_trip() -> None:
    cur = step(step(Cursor(), 0, {"A": 1}, 2).cursor, 1, {"A": 3}, 4).cursor
    assert cursor_from_dict(cursor_to_dict(cur)) == cur
    assert cursor_from_dict(cursor_to_dict(Cursor())) == Cursor()
