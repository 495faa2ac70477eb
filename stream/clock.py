"""The product's one wall clock.

Every place where linky-stream asks "what time is it?" for a decision (the worker's timers that
close days and months, the pruning they trigger, ``meter_silent``, the contract CLI's "never
before today", reception stamps at the edge, token expiry and lockouts in the portal) reads it
here, never from ``datetime.now()`` or ``time.time()``. Monotonic clocks (timeouts, rates,
back-offs) are not wall-clock decisions and stay on ``time.monotonic()``.

Two ways to move it, both meant for tests and rehearsals:

- ``LINKY_CLOCK_OFFSET_SECONDS`` (``Settings.clock_offset_seconds``): seconds added to the system
  clock in this process. A test session that exports it before starting subprocesses gives every
  process of the run (worker, CLI, edge) the same shifted clock: ``pytest --clock-at=ISO`` does
  exactly that (tests/conftest.py).
- in-process, for unit tests: ``pinned(at)`` freezes the clock, ``shifted_to(at)`` moves it so that
  it reads ``at`` now and runs on from there; both are context managers and restore the previous
  source on exit.

No Faust import: the edge (teleinfo) uses this module too.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
OFFSET_ENV = "LINKY_CLOCK_OFFSET_SECONDS"

_source: Callable[[], float] | None = None  # epoch seconds; None = system clock + offset
_offset: float | None = None  # read from the environment on first use


def _env_offset() -> float:
    from stream.settings import Settings

    return Settings.from_env().clock_offset_seconds


def offset_seconds() -> float:
    """The shift applied to the system clock (0.0 in production)."""
    global _offset
    if _offset is None:
        _offset = _env_offset()
    return _offset


def time() -> float:
    """Wall-clock epoch seconds, as ``time.time()`` but through this clock."""
    if _source is not None:
        return _source()
    return _time.time() + offset_seconds()


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.fromtimestamp(time(), timezone.utc)


def now_paris() -> datetime:
    """The current instant in Europe/Paris (the calendar of every bucket and contract)."""
    return now().astimezone(PARIS)


def today() -> date:
    """Today's Europe/Paris date."""
    return now_paris().date()


def reset() -> None:
    """Forget any override and re-read ``LINKY_CLOCK_OFFSET_SECONDS`` on next use."""
    global _source, _offset
    _source, _offset = None, None


def offset_for(at: datetime) -> float:
    """The offset that makes the system clock read ``at`` now (aware datetime)."""
    if at.tzinfo is None:
        raise ValueError("the clock is set with a timezone-aware datetime")
    return at.timestamp() - _time.time()


@contextmanager
def pinned(at: datetime) -> Iterator[None]:
    """The clock reads ``at`` until the block ends (unit tests)."""
    instant = at.timestamp() if at.tzinfo else _naive_error()
    with _using(lambda: instant):
        yield


@contextmanager
def shifted_to(at: datetime) -> Iterator[None]:
    """The clock reads ``at`` now and advances in real time until the block ends."""
    delta = offset_for(at)
    with _using(lambda: _time.time() + delta):
        yield


@contextmanager
def _using(source: Callable[[], float]) -> Iterator[None]:
    global _source
    previous = _source
    _source = source
    try:
        yield
    finally:
        _source = previous


def _naive_error() -> float:
    raise ValueError("the clock is set with a timezone-aware datetime")
