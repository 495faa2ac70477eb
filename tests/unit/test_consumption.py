"""tables/consumption.py: hour/day/month buckets of the Europe/Paris calendar from index deltas."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from tables.calendar import PARIS, local_midnight
from tables.consumption import (
    ConsumptionConfig,
    ConsumptionState,
    Fold,
    Retention,
    fold_reading,
    query_buckets,
    record_from_bytes,
    record_to_bytes,
    render_conso_payload,
    state_from_bytes,
    state_to_bytes,
)

UTC = timezone.utc
CFG = ConsumptionConfig()


class Store:
    """What the agent does with a Fold, on a dict: hot value + history records, as bytes."""

    def __init__(self, config: ConsumptionConfig = CFG) -> None:
        self.config = config
        self.hot: bytes | None = None
        self.records: dict[tuple[str, str], bytes] = {}
        self.folds: list[Fold] = []

    @property
    def state(self) -> ConsumptionState:
        return state_from_bytes(self.hot) if self.hot else ConsumptionState()

    def feed(self, reading: dict[str, Any]) -> Fold:
        fold = fold_reading(self.state, reading, self.config)
        for key, record in fold.writes.items():
            if record is None:
                self.records.pop(key, None)
            else:
                self.records[key] = record_to_bytes(record)
        if fold.applied:
            self.hot = state_to_bytes(fold.state)
        self.folds.append(fold)
        return fold

    def load(self, kind: str, period: str) -> dict[str, Any] | None:
        raw = self.records.get((kind, period))
        return None if raw is None else record_from_bytes(raw)

    def query(self, granularity: str, start: datetime | None = None, end: datetime | None = None) -> list[dict]:
        return query_buckets(self.state, granularity, start, end, self.load, self.config)

    def query_with(self, granularity: str, versions: tuple, start: datetime | None = None,
                   end: datetime | None = None) -> list[dict]:  # fmt: skip
        return query_buckets(self.state, granularity, start, end, self.load, self.config, versions)


def reading(when: datetime, imports: dict[str, int] | None, export: int | None = None, meter: str = "M1") -> dict:
    return {"pdl": "P1", "meter": meter, "time": when.astimezone(PARIS).isoformat(),
            "import_wh_by_period": imports, "export_wh": export}  # fmt: skip


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)


def totals(buckets: list[dict]) -> list[tuple[str, int, int]]:
    return [(b["start"], b["import_wh"], b["export_wh"]) for b in buckets]


def test_a_day_of_readings_fills_hour_day_and_month_buckets() -> None:
    s = Store()
    idx = {"HCHC": 10_000, "HCHP": 20_000}
    exp = 500
    s.feed(reading(paris(2026, 7, 14, 0, 0), idx, exp))
    for minute in range(15, 24 * 60 + 1, 15):  # every 15 min up to the next midnight
        t = paris(2026, 7, 14) + timedelta(minutes=minute)
        hour = (t - timedelta(minutes=1)).astimezone(PARIS).hour
        reg = "HCHC" if hour < 6 or hour >= 22 else "HCHP"
        idx = {**idx, reg: idx[reg] + 25}
        exp += 10 if 10 <= hour < 16 else 0
        s.feed(reading(t.astimezone(UTC), idx, exp))
    hours = s.query("hour")
    assert len(hours) == 24
    assert hours[0]["start"] == "2026-07-14T00:00:00+02:00" and hours[0]["end"] == "2026-07-14T01:00:00+02:00"
    assert all(h["import_wh"] == 100 for h in hours)
    assert hours[3]["by_period"] == {"HCHC": 100} and hours[12]["by_period"] == {"HCHP": 100}
    assert hours[12]["export_wh"] == 40 and hours[20]["export_wh"] == 0
    # the last reading is exactly at midnight: the 14th is still the open day
    (day,) = s.query("day")
    assert day.pop("cost") is None  # no contract, no tariff (tests/unit/test_cost.py)
    assert day.pop("periods")["HCHC"]["kind"] == "HC"
    assert day == {"start": "2026-07-14T00:00:00+02:00", "end": "2026-07-15T00:00:00+02:00",
                   "import_wh": 2400, "export_wh": 240, "by_period": {"HCHC": 800, "HCHP": 1600}}  # fmt: skip
    (month,) = s.query("month")
    assert (month["start"], month["end"], month["import_wh"]) == ("2026-07-01T00:00:00+02:00",
                                                                  "2026-08-01T00:00:00+02:00", 2400)  # fmt: skip
    assert s.records == {}  # nothing closed yet


def test_duplicates_and_older_readings_change_nothing() -> None:
    s = Store()
    s.feed(reading(paris(2026, 1, 5, 10, 0), {"A": 0}))
    s.feed(reading(paris(2026, 1, 5, 10, 30), {"A": 300}))
    hot = s.hot
    for r in (reading(paris(2026, 1, 5, 10, 30), {"A": 300}), reading(paris(2026, 1, 5, 10, 0), {"A": 0}),
              reading(paris(2026, 1, 5, 10, 30), {"A": 999})):  # fmt: skip
        fold = s.feed(r)
        assert not fold.applied and not fold.changed and fold.writes == {}
    assert s.hot == hot
    assert totals(s.query("day")) == [("2026-01-05T00:00:00+01:00", 300, 0)]


def test_index_backwards_rebaselines_and_reports_never_negative() -> None:
    s = Store()
    s.feed(reading(paris(2026, 1, 5, 10, 0), {"A": 5000}))
    s.feed(reading(paris(2026, 1, 5, 10, 30), {"A": 5100}))
    fold = s.feed(reading(paris(2026, 1, 5, 11, 0), {"A": 40}))
    assert [e.kind for e in fold.events] == ["index_backwards"]
    s.feed(reading(paris(2026, 1, 5, 11, 30), {"A": 90}))
    assert totals(s.query("hour")) == [("2026-01-05T10:00:00+01:00", 100, 0), ("2026-01-05T11:00:00+01:00", 50, 0)]
    payload = render_conso_payload(fold.state, pdl="P1", events=fold.events)
    assert payload["events"][0]["kind"] == "index_backwards" and payload["events"][0]["previous"] == 5100


def test_gap_of_several_hours_is_split_in_proportion_to_time() -> None:
    s = Store()
    s.feed(reading(paris(2026, 2, 10, 3, 15), {"A": 0}, 0))
    s.feed(reading(paris(2026, 2, 10, 7, 45), {"A": 900}, 45))  # 4.5 h offline: 200 Wh per full hour
    # 45 + 60 + 60 + 60 + 45 minutes; export 45 Wh -> 7.5, 10, 10, 10, 7.5: the tie goes to the earlier
    assert totals(s.query("hour")) == [
        ("2026-02-10T03:00:00+01:00", 150, 8),
        ("2026-02-10T04:00:00+01:00", 200, 10),
        ("2026-02-10T05:00:00+01:00", 200, 10),
        ("2026-02-10T06:00:00+01:00", 200, 10),
        ("2026-02-10T07:00:00+01:00", 150, 7),
    ]


def test_gap_across_midnight_closes_the_day_and_writes_records() -> None:
    s = Store()
    s.feed(reading(paris(2026, 3, 30, 22, 0), {"A": 0}))
    fold = s.feed(reading(paris(2026, 3, 31, 2, 0), {"A": 400}))  # 4 h: 200 Wh on each day
    assert set(fold.writes) == {("H", "2026-03-30"), ("D", "2026-03-30")}
    assert totals(s.query("day")) == [("2026-03-30T00:00:00+02:00", 200, 0), ("2026-03-31T00:00:00+02:00", 200, 0)]
    fold = s.feed(reading(paris(2026, 4, 1, 1, 0), {"A": 500}))  # into April: March closes
    assert ("M", "2026-03") in fold.writes and fold.changed
    assert totals(s.query("month")) == [("2026-03-01T00:00:00+01:00", 496, 0), ("2026-04-01T00:00:00+02:00", 4, 0)]
    assert sum(b["import_wh"] for b in s.query("day")) == 500
    assert sum(b["import_wh"] for b in s.query("hour")) == 500


@pytest.mark.parametrize(("day", "hours"), [(date(2026, 10, 25), 25), (date(2026, 3, 29), 23)])
def test_dst_days_have_25_and_23_hour_buckets(day: date, hours: int) -> None:
    s = Store()
    start = local_midnight(day)
    s.feed(reading(start, {"EASF01": 0}, 0))
    for i in range(1, hours * 4 + 1):  # every 15 real minutes, 10 Wh each
        s.feed(reading(start + timedelta(minutes=15 * i), {"EASF01": 10 * i}, i))
    got = s.query("hour")
    assert len(got) == hours and all(h["import_wh"] == 40 for h in got)
    assert len({h["start"] for h in got}) == hours  # both "02:00" hours are distinct buckets
    (d,) = s.query("day")
    assert d["import_wh"] == hours * 40 and d["export_wh"] == hours * 4
    assert d["end"] == (day + timedelta(days=1)).isoformat() + ("T00:00:00+01:00" if day.month == 10 else "T00:00:00+02:00")


def test_query_range_filters_overlapping_buckets_in_time_order() -> None:
    s = Store()
    t = paris(2026, 5, 1, 0, 0)
    s.feed(reading(t, {"A": 0}))
    for i in range(1, 24 * 4 + 1):  # four days, hourly, 1 Wh per hour... x day number
        s.feed(reading(t + timedelta(hours=i), {"A": i}))
    days = s.query("day", paris(2026, 5, 2), paris(2026, 5, 4))
    assert [d["start"][:10] for d in days] == ["2026-05-02", "2026-05-03"]
    hours = s.query("hour", paris(2026, 5, 3, 22, 30), paris(2026, 5, 4, 1, 0))
    assert [h["start"] for h in hours] == ["2026-05-03T22:00:00+02:00", "2026-05-03T23:00:00+02:00",
                                          "2026-05-04T00:00:00+02:00"]  # fmt: skip
    assert s.query("day", paris(2026, 5, 3), paris(2026, 5, 3)) == []
    # the open day (the 4th, last reading at 00:00 on the 5th) is included and last
    assert s.query("day")[-1]["start"] == "2026-05-04T00:00:00+02:00"
    with pytest.raises(ValueError, match="granularity"):
        s.query("week")


def test_retention_prunes_closed_records() -> None:
    cfg = ConsumptionConfig(retention=Retention(hours_days=2, days_days=5, months_days=40))
    s = Store(cfg)
    t = paris(2026, 1, 1, 0, 0)
    s.feed(reading(t, {"A": 0}))
    for day in range(1, 70):  # one reading per day at 12:00, then one at midnight
        s.feed(reading(t + timedelta(days=day - 1, hours=12), {"A": day * 10 - 5}))
        s.feed(reading(t + timedelta(days=day), {"A": day * 10}))
    open_day = s.state.day
    assert open_day == date(2026, 3, 10)  # the last reading is 00:00 on the 11th
    hour_days = sorted(p for k, p in s.records if k == "H")
    day_days = sorted(p for k, p in s.records if k == "D")
    months = sorted(p for k, p in s.records if k == "M")
    assert hour_days == ["2026-03-08", "2026-03-09"]
    assert day_days == [f"2026-03-0{i}" for i in range(5, 10)]
    assert months == ["2026-01", "2026-02"]  # Jan ends 38 days before Mar 10: kept
    assert [d["start"][:10] for d in s.query("day")] == [f"2026-03-{i:02d}" for i in range(5, 11)]
    for _ in range(25):  # open day Apr 4: February ended 35 days before, kept
        s.feed(reading(s.state.cursor.time + timedelta(days=1), {"A": s.state.cursor.imports["A"] + 10}))
    assert sorted(p for k, p in s.records if k == "M") == ["2026-02", "2026-03"]
    for _ in range(15):  # open day Apr 19: February ended 50 days before, pruned
        s.feed(reading(s.state.cursor.time + timedelta(days=1), {"A": s.state.cursor.imports["A"] + 10}))
    assert sorted(p for k, p in s.records if k == "M") == ["2026-03"]
    assert [m["start"][:7] for m in s.query("month")] == ["2026-03", "2026-04"]


def test_state_round_trip_and_payload() -> None:
    s = Store()
    s.feed(reading(paris(2026, 10, 25, 2, 30, fold=1), {"EASF01": 1, "EASF02": 5}, 0))
    fold = s.feed(reading(paris(2026, 10, 25, 3, 10), {"EASF01": 11, "EASF02": 5}, 3))
    assert state_from_bytes(state_to_bytes(fold.state)) == fold.state
    p = render_conso_payload(fold.state, pdl="P1")
    assert p["schema_version"] == 1 and p["pdl"] == "P1" and p["time"] == "2026-10-25T03:10:00+01:00"
    # 40 min: 30 in the second 02:00 hour, 10 in 03:00 -> 7.5 / 2.5 Wh (tie: earlier), 2.25 / 0.75
    assert p["hour"]["start"] == "2026-10-25T03:00:00+01:00" and p["hour"]["import_wh"] == 2
    assert p["hour"]["export_wh"] == 1
    assert p["day"]["import_wh"] == 10 and p["day"]["by_period"] == {"EASF01": 10} and p["month"]["export_wh"] == 3
    assert p["day"]["end"] == "2026-10-26T00:00:00+01:00"
    empty = render_conso_payload(ConsumptionState(), pdl="P2")
    assert empty["hour"] is None and empty["time"] is None


def test_reading_without_time_offset_is_refused() -> None:
    with pytest.raises(ValueError):
        fold_reading(ConsumptionState(), {"time": "2026-01-01T00:00:00", "import_wh_by_period": {"A": 1}}, CFG)
    with pytest.raises(ValueError):
        fold_reading(ConsumptionState(), {"import_wh_by_period": {"A": 1}}, CFG)


def test_hour_query_from_an_hour_boundary_excludes_the_hour_ending_there() -> None:
    """``from`` on an hour boundary: the hour that ends at ``from`` does not overlap [from, to)."""
    s = Store()
    t = paris(2026, 5, 1, 0, 0)
    s.feed(reading(t, {"A": 0}))
    for i in range(1, 24 * 3 + 12):  # up to the 4th at 11:00; the 1st..3rd are closed days (records)
        s.feed(reading(t + timedelta(hours=i), {"A": i * (i + 1) // 2}))  # hour h holds h + 1 Wh
    closed = s.query("hour", paris(2026, 5, 2, 22, 0), paris(2026, 5, 3, 1, 0))  # across a closed midnight
    assert [h["start"] for h in closed] == ["2026-05-02T22:00:00+02:00", "2026-05-02T23:00:00+02:00",
                                           "2026-05-03T00:00:00+02:00"]  # fmt: skip
    assert [h["import_wh"] for h in closed] == [24 + 22 + 1, 24 + 23 + 1, 48 + 1]
    at_midnight = s.query("hour", paris(2026, 5, 4, 0, 0), paris(2026, 5, 4, 2, 0))  # the open day
    assert [h["start"] for h in at_midnight] == ["2026-05-04T00:00:00+02:00", "2026-05-04T01:00:00+02:00"]
    open_hours = s.query("hour", paris(2026, 5, 4, 5, 0), paris(2026, 5, 4, 7, 0))
    assert [h["start"] for h in open_hours] == ["2026-05-04T05:00:00+02:00", "2026-05-04T06:00:00+02:00"]


@pytest.mark.parametrize("opens", ["hour", "day"])
def test_a_zero_wh_reading_that_opens_a_new_bucket_is_a_change(opens: str) -> None:
    """The conso payload must move to the new hour/day even when the reading adds nothing."""
    s = Store()
    first = paris(2026, 5, 1, 23, 10) if opens == "day" else paris(2026, 5, 1, 10, 10)
    s.feed(reading(first, {"A": 1000}))
    s.feed(reading(first + timedelta(minutes=20), {"A": 1100}))
    same_bucket = s.feed(reading(first + timedelta(minutes=40), {"A": 1100}))  # 0 Wh, still the same hour
    assert same_bucket.applied and not same_bucket.changed
    before = render_conso_payload(s.state, pdl="P1")
    fold = s.feed(reading(first + timedelta(minutes=60), {"A": 1100}))  # 0 Wh, into the next hour (and day)
    assert fold.applied and fold.changed
    after = render_conso_payload(fold.state, pdl="P1")
    assert after["hour"]["start"] != before["hour"]["start"] and after["hour"]["import_wh"] == 0
    if opens == "day":
        assert (before["day"]["start"], after["day"]["start"]) == ("2026-05-01T00:00:00+02:00",
                                                                   "2026-05-02T00:00:00+02:00")  # fmt: skip
        assert after["day"]["import_wh"] == 0
    else:
        assert after["day"] == before["day"]
