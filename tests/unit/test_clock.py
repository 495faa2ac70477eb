"""The product's one wall clock (stream/clock.py): pinned and shifted in-process, shifted for a
whole process tree by LINKY_CLOCK_OFFSET_SECONDS, and read by the decisions that depend on "today"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from stream import clock
from stream.contracts import today_in_paris
from tables.contracts import ContractError, add_version, version_from_dict
from tables.contracts import Contract
from tests.conftest import REPO_ROOT

LEAP = datetime(2028, 2, 29, 23, 30, tzinfo=clock.PARIS)


def test_pinned_reads_the_instant_and_restores_the_previous_source() -> None:
    before = clock.now()
    with clock.pinned(LEAP):
        assert clock.now() == LEAP.astimezone(timezone.utc)
        assert clock.now().tzinfo is timezone.utc
        assert clock.time() == LEAP.timestamp()
        assert clock.today() == date(2028, 2, 29)
        with clock.pinned(LEAP + timedelta(hours=1)):  # nested: the inner one wins, then the outer
            assert clock.today() == date(2028, 3, 1)  # 00:30 in Paris on March 1st
        assert clock.today() == date(2028, 2, 29)
    assert abs((clock.now() - before).total_seconds()) < 60


def test_shifted_clock_runs_on_from_the_instant() -> None:
    with clock.shifted_to(LEAP):
        first = clock.time()
        time.sleep(0.05)
        second = clock.time()
    assert abs(first - LEAP.timestamp()) < 5
    assert 0.04 <= second - first < 5


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        with clock.pinned(datetime(2028, 2, 29)):
            pass
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.offset_for(datetime(2028, 2, 29))


def test_the_offset_variable_shifts_a_whole_process() -> None:
    """What ``pytest --clock-at`` gives every subprocess it starts (worker, CLI, edge)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), LINKY_CLOCK_OFFSET_SECONDS=repr(clock.offset_for(LEAP)))
    code = "from stream import clock; print(clock.now_paris().isoformat())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seen = datetime.fromisoformat(out.stdout.strip())
    assert abs((seen - LEAP).total_seconds()) < 30
    bad = subprocess.run([sys.executable, "-c", code], env=dict(env, LINKY_CLOCK_OFFSET_SECONDS="soon"),
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "LINKY_CLOCK_OFFSET_SECONDS" in bad.stderr


def test_never_retroactive_is_judged_on_the_product_clock() -> None:
    version = version_from_dict({"effective_from": "2028-02-29", "offer": "surplus_resale",
                                 "resale": {"rate_eur_per_kwh": "0.06"}})  # fmt: skip
    with clock.pinned(LEAP):  # 23:30 on Feb 29th in Paris: still "today"
        assert today_in_paris() == date(2028, 2, 29)
        add_version(Contract(pdl="1" * 14), version, today=today_in_paris())
    with clock.pinned(LEAP + timedelta(hours=1)):  # 00:30 on March 1st: now in the past
        assert today_in_paris() == date(2028, 3, 1)
        with pytest.raises(ContractError, match="retroactively"):
            add_version(Contract(pdl="1" * 14), version, today=today_in_paris())
