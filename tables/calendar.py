"""Calendar buckets of the Europe/Paris day and exact proportional splitting (pure).

Shared by the consumption fold (tables/consumption.py) and, once switched over, the battery and
surplus folds: every module that attributes index deltas to hours, days or months should split
with the same functions so that their day totals agree to the Wh.

Conventions:

- Instants are aware datetimes; computations are done in UTC. Naive datetimes are refused.
- Buckets are half-open ``[start, end)``: an interval ending exactly at midnight belongs to the
  day before. Local days last 23, 24 or 25 hours (DST changes); hours are the local clock hours
  (the 25-hour day has two hours starting at "02:00", one at +02:00 and one at +01:00).
- ``tz`` must have whole-hour UTC offsets (true for Europe/Paris): a local hour is then a UTC
  hour, and local midnights are UTC hour boundaries.
- Splitting: an integer amount spread over an interval is shared in proportion to the time
  (microseconds) each bucket covers, with the largest-remainder rule (ties go to the earlier
  bucket), so the parts always add up exactly to the amount. An interval is cut at local
  midnights first, then each day's share is cut at hour boundaries: day totals are therefore the
  same as those of a midnight-only split (``split_delta`` with no other cuts), whatever the hours.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc
HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_MICRO = timedelta(microseconds=1)

__all__ = [
    "PARIS", "UTC", "HOUR", "to_utc", "local_date", "local_midnight", "day_bounds", "hour_start",
    "month_key", "month_start_day", "next_month", "prev_month", "month_bounds", "month_of_key",
    "midnights_between", "split_proportionally", "split_delta", "split_by_hour", "iso_local",
]  # fmt: skip


# =========================================================================== bucket bounds


def to_utc(when: datetime) -> datetime:
    """``when`` as an aware UTC datetime; a naive datetime is an error (its offset is unknown)."""
    tzinfo = when.tzinfo
    if tzinfo is UTC:  # already UTC (nearly every call): astimezone would only copy it
        return when
    if tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: times must carry an offset")
    return when.astimezone(UTC)


_DATES_KEPT = 8192  # (UTC hour, tz) -> local date: about a year of hours
_date_of_hour: dict[tuple[float, ZoneInfo], date] = {}


def local_date(when: datetime, tz: ZoneInfo = PARIS) -> date:
    """The local calendar date of an aware instant.

    Memoized per UTC hour (``tz`` has whole-hour offsets and changes them on UTC hours, see the
    module docstring, so every instant of a UTC hour has the same local date): a reading asks
    about a dozen times, ``astimezone`` costs about twice the lookup."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: times must carry an offset")
    key = (when.timestamp() // 3600, tz)
    day = _date_of_hour.get(key)
    if day is None:
        if len(_date_of_hour) >= _DATES_KEPT:
            _date_of_hour.clear()
        day = _date_of_hour[key] = when.astimezone(tz).date()
    return day


@lru_cache(maxsize=4096)  # pure; a few days are asked for at every reading (about 11 years of days)
def local_midnight(day: date, tz: ZoneInfo = PARIS) -> datetime:
    """00:00 local time of ``day`` as an aware UTC datetime."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def day_bounds(day: date, tz: ZoneInfo = PARIS) -> tuple[datetime, datetime]:
    """``[start, end)`` of a local day in UTC (23, 24 or 25 hours long)."""
    return local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)


def hour_start(when: datetime, tz: ZoneInfo = PARIS) -> datetime:
    """Start (UTC) of the local clock hour containing ``when``."""
    local = to_utc(when).astimezone(tz)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


@lru_cache(maxsize=1024)  # pure; asked about eight times per reading
def month_key(day: date) -> str:
    """``"2026-10"`` for any day of October 2026."""
    return f"{day.year:04d}-{day.month:02d}"


def month_of_key(key: str) -> date:
    """First day of the month named by ``month_key``."""
    year, month = key.split("-")
    return date(int(year), int(month), 1)


def month_start_day(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    """First day of the month after ``day``'s."""
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def prev_month(day: date) -> date:
    """First day of the month before ``day``'s."""
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def month_bounds(day: date, tz: ZoneInfo = PARIS) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the local month containing ``day``."""
    return local_midnight(day.replace(day=1), tz), local_midnight(next_month(day), tz)


def midnights_between(start: datetime, end: datetime, tz: ZoneInfo = PARIS) -> list[datetime]:
    """Local midnights strictly inside ``(start, end)``, in UTC."""
    start, end = to_utc(start), to_utc(end)
    out = []
    day = local_date(start, tz) + timedelta(days=1)
    while (m := local_midnight(day, tz)) < end:
        if m > start:
            out.append(m)
        day += timedelta(days=1)
    return out


@lru_cache(maxsize=2048)  # pure; bucket bounds come back at every reading (the reading times do not)
def iso_local(when: datetime, tz: ZoneInfo = PARIS) -> str:
    """ISO-8601 in local time with its offset: ``2026-10-25T02:00:00+01:00``."""
    return when.astimezone(tz).isoformat()


# =========================================================================== splitting


def split_proportionally(total: int, weights: Sequence[int]) -> list[int]:
    """Integer shares of ``total`` proportional to ``weights`` that sum exactly to ``total``.

    Largest remainder; ties go to the earlier share. All weights zero: everything to the first.
    """
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [total] + [0] * (len(weights) - 1)
    shares = [total * w // weight_sum for w in weights]
    leftover = total - sum(shares)
    if leftover:
        order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % weight_sum), i))
        for i in order[:leftover]:
            shares[i] += 1
    return shares


def split_delta(
    start: datetime,
    end: datetime,
    cuts: Iterable[datetime],
    import_wh_by_period: Mapping[str, int],
    export_wh: int,
    tz: ZoneInfo = PARIS,
) -> list[tuple[datetime, datetime, dict[str, int], int]]:
    """Split a delta at every local midnight and at ``cuts`` inside ``(start, end)``.

    Same contract and results as ``tables.battery.split_delta`` (which it can replace): pieces
    ``(start, end, import_wh_by_period, export_wh)`` in time order, amounts shared in proportion
    to time with the largest-remainder rule. A zero-length delta is one piece.
    """
    start, end, cuts = to_utc(start), to_utc(end), tuple(cuts)
    if end <= local_midnight(local_date(start, tz) + _DAY, tz) and not any(start < to_utc(c) < end for c in cuts):
        # fast path: nothing to cut (nearly every reading, 2 s after the last), one piece with
        # everything, as the general path gives for a single span
        return [(start, end, dict(import_wh_by_period), export_wh)]
    bounds = sorted({c for c in (*midnights_between(start, end, tz), *map(to_utc, cuts)) if start < c < end})
    edges = [start, *bounds, end]
    spans = list(zip(edges, edges[1:])) or [(start, end)]
    weights = [(b - a) // _MICRO for a, b in spans]
    imports = {label: split_proportionally(wh, weights) for label, wh in import_wh_by_period.items()}
    exports = split_proportionally(export_wh, weights)
    return [
        (a, b, {label: parts[i] for label, parts in imports.items()}, exports[i]) for i, (a, b) in enumerate(spans)
    ]


def split_by_hour(
    start: datetime, end: datetime, amounts: Mapping[str, int], tz: ZoneInfo = PARIS
) -> list[tuple[datetime, dict[str, int]]]:
    """Share ``amounts`` (label -> Wh) of the interval ``[start, end)`` among local hours.

    Returns ``(hour_start_utc, {label: Wh})`` for every hour the interval overlaps, in time order
    (hours with 0 Wh included: the interval covers them). Cut at midnights first, then at hours
    (see the module docstring), so the pieces of each day add up to the midnight-only split.
    A zero-length interval is one piece in the hour of ``start``.
    """
    start, end = to_utc(start), to_utc(end)
    if end < start:
        raise ValueError(f"interval ends before it starts: {start.isoformat()} > {end.isoformat()}")
    first_hour = hour_start(start, tz)
    if end <= first_hour + HOUR:  # fast path: one hour (nearly every reading, 2 s apart)
        return [(first_hour, dict(amounts))]
    days = [start, *midnights_between(start, end, tz), end]
    day_spans = list(zip(days, days[1:]))
    day_weights = [(b - a) // _MICRO for a, b in day_spans]
    day_shares = {label: split_proportionally(wh, day_weights) for label, wh in amounts.items()}
    pieces: list[tuple[datetime, dict[str, int]]] = []
    for i, (a, b) in enumerate(day_spans):
        h = hour_start(a, tz)
        edges = [a]
        while (h := h + HOUR) < b:
            edges.append(h)
        edges.append(b)
        spans = list(zip(edges, edges[1:]))
        weights = [(y - x) // _MICRO for x, y in spans]
        shares = {label: split_proportionally(parts[i], weights) for label, parts in day_shares.items()}
        for j, (x, _) in enumerate(spans):
            pieces.append((hour_start(x, tz), {label: s[j] for label, s in shares.items()}))
    return pieces
