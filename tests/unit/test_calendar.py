"""tables/calendar.py: Europe/Paris bucket bounds and exact proportional splitting."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.calendar import (
    PARIS,
    day_bounds,
    hour_start,
    local_date,
    local_midnight,
    midnights_between,
    month_bounds,
    split_by_hour,
    split_delta,
    split_proportionally,
)

UTC = timezone.utc


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold).astimezone(UTC)


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 10, 25), 25), (date(2026, 3, 29), 23), (date(2026, 7, 14), 24), (date(2026, 12, 31), 24)],
)
def test_local_days_last_23_24_or_25_hours(day: date, hours: int) -> None:
    start, end = day_bounds(day)
    assert end - start == timedelta(hours=hours)
    assert start.astimezone(PARIS).hour == 0 and end.astimezone(PARIS).hour == 0


def test_month_bounds_follow_local_midnights() -> None:
    start, end = month_bounds(date(2026, 10, 7))
    assert start == datetime(2026, 9, 30, 22, tzinfo=UTC)  # 00:00+02:00
    assert end == datetime(2026, 10, 31, 23, tzinfo=UTC)  # 00:00+01:00 (after the change)
    assert month_bounds(date(2026, 12, 31))[1] == local_midnight(date(2027, 1, 1))


def test_hour_start_tells_the_two_2am_hours_apart_on_fall_back_day() -> None:
    first = paris(2026, 10, 25, 2, 30, fold=0)  # 02:30+02:00
    second = paris(2026, 10, 25, 2, 30, fold=1)  # 02:30+01:00
    assert second - first == timedelta(hours=1)
    assert hour_start(first) == datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert hour_start(second) == datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert local_date(first) == local_date(second) == date(2026, 10, 25)


def test_midnights_between_is_strict() -> None:
    a, b = local_midnight(date(2026, 10, 24)), local_midnight(date(2026, 10, 27))
    assert midnights_between(a, b) == [local_midnight(date(2026, 10, 25)), local_midnight(date(2026, 10, 26))]
    assert midnights_between(a, a + timedelta(hours=3)) == []


def test_split_proportionally_is_exact_and_proportional() -> None:
    assert split_proportionally(10, [1, 1, 1]) == [4, 3, 3]  # ties to the earlier share
    assert split_proportionally(7, [0, 0]) == [7, 0]
    assert split_proportionally(0, [5, 5]) == [0, 0]
    assert split_proportionally(100, [1, 3]) == [25, 75]


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**7), min_size=1, max_size=30))
def test_split_proportionally_properties(total: int, weights: list[int]) -> None:
    shares = split_proportionally(total, weights)
    assert sum(shares) == total and all(s >= 0 for s in shares)
    wsum = sum(weights)
    if wsum:
        for s, w in zip(shares, weights):
            assert abs(s - total * w / wsum) < 1  # largest remainder: within one Wh of the exact share


def test_split_by_hour_over_a_gap_across_the_25_hour_day() -> None:
    # 2026-10-24 23:30+02:00 -> 2026-10-25 03:30+01:00 = 5 real hours, 1000 Wh: half an hour on
    # the 24th (100 Wh), 4.5 h on the 25th (900 Wh), of which the two "02:00" hours.
    start, end = paris(2026, 10, 24, 23, 30), paris(2026, 10, 25, 3, 30)
    assert end - start == timedelta(hours=5)
    pieces = split_by_hour(start, end, {"HCHC": 1000, "": 7})
    assert [h for h, _ in pieces] == [datetime(2026, 10, 24, 21 + i, tzinfo=UTC) for i in range(3)] + [
        datetime(2026, 10, 25, i, tzinfo=UTC) for i in range(3)
    ]
    assert [p["HCHC"] for _, p in pieces] == [100, 200, 200, 200, 200, 100]
    assert sum(p[""] for _, p in pieces) == 7
    assert [local_date(h) for h, _ in pieces] == [date(2026, 10, 24)] + [date(2026, 10, 25)] * 5


def test_split_by_hour_exact_hours_and_fast_path() -> None:
    start = paris(2026, 10, 25, 1, 0)
    end = paris(2026, 10, 25, 4, 0)  # 01:00+02:00 -> 04:00+01:00 = 4 real hours (02:00 twice)
    pieces = split_by_hour(start, end, {"EASF01": 4})
    assert [p["EASF01"] for _, p in pieces] == [1, 1, 1, 1]
    assert len({h for h, _ in pieces}) == 4
    one = split_by_hour(paris(2026, 1, 1, 10, 0, 2), paris(2026, 1, 1, 10, 0, 4), {"A": 3})
    assert one == [(datetime(2026, 1, 1, 9, tzinfo=UTC), {"A": 3})]
    ends_on_boundary = split_by_hour(paris(2026, 1, 1, 10, 59), paris(2026, 1, 1, 11, 0), {"A": 3})
    assert ends_on_boundary == [(datetime(2026, 1, 1, 9, tzinfo=UTC), {"A": 3})]


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    st.integers(0, 6 * 24 * 3600),
    st.integers(0, 10**7),
)
def test_split_by_hour_day_totals_match_a_midnight_split(naive: datetime, seconds: int, wh: int) -> None:
    start = naive.replace(tzinfo=UTC)
    end = start + timedelta(seconds=seconds)
    pieces = split_by_hour(start, end, {"R": wh})
    assert sum(p["R"] for _, p in pieces) == wh
    by_day: dict[date, int] = {}
    for h, p in pieces:
        by_day[local_date(h)] = by_day.get(local_date(h), 0) + p["R"]
    midnight_split = split_delta(start, end, [], {"R": wh}, 0)
    assert by_day == {local_date(a): imp["R"] for a, _, imp, _ in midnight_split}
    hours = [h for h, _ in pieces]
    assert hours == sorted(set(hours))
    assert all(hours[i + 1] - hours[i] == timedelta(hours=1) for i in range(len(hours) - 1))


def test_other_zones_with_whole_hour_offsets() -> None:
    ny = ZoneInfo("America/New_York")
    start, end = day_bounds(date(2026, 3, 8), ny)
    assert end - start == timedelta(hours=23)
    pieces = split_by_hour(start, end, {"A": 23}, ny)
    assert len(pieces) == 23 and all(p["A"] == 1 for _, p in pieces)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        split_by_hour(datetime(2026, 1, 1), datetime(2026, 1, 2), {"A": 1})


def _split_reference(start: datetime, end: datetime, cuts: list[datetime], imports: dict[str, int],
                     export: int) -> list[tuple[datetime, datetime, dict[str, int], int]]:
    """split_delta's contract written out without its fast path: cut at every local midnight
    and cut inside (start, end), then share by time with the largest remainder."""
    bounds = sorted({c for c in (*midnights_between(start, end), *cuts) if start < c < end})
    edges = [start, *bounds, end]
    spans = list(zip(edges, edges[1:])) or [(start, end)]
    weights = [(b - a) // timedelta(microseconds=1) for a, b in spans]
    shares = {label: split_proportionally(wh, weights) for label, wh in imports.items()}
    exports = split_proportionally(export, weights)
    return [(a, b, {label: s[i] for label, s in shares.items()}, exports[i]) for i, (a, b) in enumerate(spans)]


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
    st.integers(-5, 3 * 24 * 3600),
    st.lists(st.integers(-3600, 3 * 24 * 3600), max_size=3),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_split_delta_gives_the_reference_split(naive: datetime, seconds: int, cut_offsets: list[int],
                                               wh: int, export: int) -> None:
    """The one-piece fast path (no midnight, no cut inside) and the general path both give what
    the contract says, including empty and reversed intervals and cuts on the bounds."""
    start = naive.replace(tzinfo=UTC)
    end = start + timedelta(seconds=seconds)
    cuts = [start + timedelta(seconds=s) for s in cut_offsets]
    imports = {"HP": wh, "HC": wh // 3}
    assert split_delta(start, end, iter(cuts), imports, export) == _split_reference(start, end, cuts, imports, export)


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)),
       st.sampled_from([PARIS, ZoneInfo("America/New_York"), UTC]))
def test_local_date_is_the_date_in_the_zone(naive: datetime, zone: ZoneInfo) -> None:
    """Memoized per UTC hour: every instant, including both sides of the DST changes, still gets
    its own zone's date."""
    when = naive.replace(tzinfo=UTC)
    assert local_date(when, zone) == when.astimezone(zone).date()
    assert local_date(when.astimezone(PARIS), zone) == when.astimezone(zone).date()
