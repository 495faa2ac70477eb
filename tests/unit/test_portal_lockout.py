"""portal/lockout.py: N failures in the window lock an address for the lock time (clock injected)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from portal.lockout import Lockout
from stream import clock

T0 = datetime(2031, 1, 2, 8, 0, tzinfo=timezone.utc)


def test_three_failures_lock_for_three_hours_then_the_lock_expires() -> None:
    lockout = Lockout()  # defaults: 3 attempts, 1 h window, 3 h lock
    with clock.pinned(T0):
        assert lockout.failure("10.0.0.1") is False
        assert lockout.failure("10.0.0.1") is False
        assert lockout.retry_after("10.0.0.1") is None
        assert lockout.failure("10.0.0.1") is True
        assert lockout.retry_after("10.0.0.1") == 3 * 3600
        assert lockout.retry_after("10.0.0.2") is None  # another address is not locked
    with clock.pinned(T0 + timedelta(hours=2, minutes=59)):
        assert 0 < lockout.retry_after("10.0.0.1") <= 60  # type: ignore[operator]
    with clock.pinned(T0 + timedelta(hours=3)):
        assert lockout.retry_after("10.0.0.1") is None
        assert lockout.failure("10.0.0.1") is False  # counting starts again


def test_failures_outside_the_window_do_not_add_up() -> None:
    lockout = Lockout(attempts=3, window_seconds=600, lock_seconds=60)
    for minutes in (0, 6, 12, 18):  # never 3 within 10 minutes
        with clock.pinned(T0 + timedelta(minutes=minutes)):
            assert lockout.failure("a") is False
    with clock.pinned(T0 + timedelta(minutes=19)):
        assert lockout.failure("a") is True


def test_a_success_clears_its_own_address_only() -> None:
    lockout = Lockout(attempts=2)
    with clock.pinned(T0):
        lockout.failure("a")
        lockout.failure("b")
        lockout.success("a")
        assert lockout.failure("a") is False  # a's count restarted
        assert lockout.failure("b") is True  # b's was not reset by a's success


def test_tracked_addresses_are_bounded() -> None:
    lockout = Lockout(attempts=5, max_addresses=100)
    with clock.pinned(T0):
        for i in range(1000):
            lockout.failure(f"10.0.{i // 256}.{i % 256}")
    assert len(lockout._failures) == 100
