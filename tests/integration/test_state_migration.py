"""From the three per-concern tables to one state per PDL (issue 14, stream/migrate.py).

The worker of the last version before the one-state design (its code taken from this
repository's history with ``git archive``) folds two thirds of the readings into its ``live``,
``consumption`` and ``battery-ledger`` tables and stops. Then, against the real broker:

- today's worker started on those changelogs refuses to start (it would count from nothing);
- ``linky-stream migrate-state`` converts them;
- today's worker starts, folds the last third, and every PDL's live, hour and day consumption,
  battery and alerts documents equal those of a worker that folded every reading itself (another
  app and topic), and the day totals equal the simulator's truth to the Wh.
"""

from __future__ import annotations

import difflib
import io
import json
import subprocess
import tarfile
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from stream.contracts import ensure_contracts_topic, write_contract
from stream.settings import Settings
from tables.contracts import Contract, add_version, version_from_dict
from tests.conftest import REPO_ROOT
from tests.integration.battery_world import run_cli
from tests.integration.stream_support import Worker, create_topic, produce, send_order, simulate, wait_for, worker_env

pytestmark = pytest.mark.integration

# the last commit whose worker stores live, consumption and battery-ledger as three tables
OLD_REVISION = "54ddcafca2fcefad8939a563cee8c3ea8153f00c"
CONTRACTS = "linky_contract_records_applied_total"
VIEWS = ("live", "consumption?granularity=day", "consumption?granularity=hour", "battery", "alerts")


def old_tree(target: Path) -> Path:
    """The source tree of ``OLD_REVISION`` (from this clone's history)."""
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", OLD_REVISION], cwd=REPO_ROOT,
                                 capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the old worker's code is not in this checkout's history ({exc}): a clone of the repository has it")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def caught_up(worker: Worker, last_time: dict[str, str]) -> bool:
    for pdl, t in last_time.items():
        status, body = worker.get(f"/pdl/{pdl}/live")
        if status != 200 or body["time"] != t:
            return False
    return True


def diff(expected: Any, got: Any) -> str:
    lines = [json.dumps(doc, indent=1, sort_keys=True).splitlines() for doc in (expected, got)]
    return "\n".join(difflib.unified_diff(*lines, "reference", "migrated", lineterm=""))


def documents(worker: Worker, pdls: list[str]) -> dict[str, dict[str, Any]]:
    return {pdl: {view: worker.get(f"/pdl/{pdl}/{view}") for view in VIEWS} for pdl in pdls}


async def test_the_old_tables_are_migrated_and_the_worker_goes_on_exact(
    kafka_bootstrap: str, redis_worker_url: str, unique_name, tmp_path: Path
) -> None:
    old_root = old_tree(tmp_path / "old")
    topic, app_id, reference_id = unique_name("readings"), unique_name("app"), unique_name("reference")
    reference_topic = unique_name("reference-readings")
    await create_topic(kafka_bootstrap, topic, 2)
    await create_topic(kafka_bootstrap, reference_topic, 2)
    readings, meters = simulate(n_pdls=6, first_day=date(2026, 10, 24), days=3)
    sequence = send_order(readings)
    first = len(sequence) * 2 // 3
    last = max(datetime.fromisoformat(r["time"]) for r in sequence)
    # every worker's clock a minute after the last reading: no day closes mid-test by the timer
    offset = (last - datetime.now(timezone.utc)).total_seconds() + 60
    env = worker_env(kafka_bootstrap, redis_worker_url, topic, app_id, LINKY_TOPIC_PARTITIONS="2",
                     LINKY_STATE_FLUSH_SECONDS="0.5", LINKY_CLOCK_OFFSET_SECONDS=f"{offset:.0f}")  # fmt: skip
    # half of the PDLs on a virtual battery, the contract imported as of October 1st
    cfg = Settings.from_env(env)
    await ensure_contracts_topic(cfg)
    for pdl in sorted(meters)[::2]:
        version = version_from_dict({"effective_from": "2026-10-01", "offer": "virtual_battery",
                                     "battery": {"fees_eur_per_kwh": {"HP": "0.1122", "HC": "0.0945"}}})  # fmt: skip
        await write_contract(cfg, add_version(Contract(pdl=pdl), version, today=date(2026, 10, 1)))
    first_last = {r["pdl"]: r["time"] for r in sequence[:first]}
    last_time = {pdl: rs[-1]["time"] for pdl, rs in readings.items()}

    old = Worker("old", env, tmp_path / "data-old", tmp_path, root=old_root)
    new = Worker("new", env, tmp_path / "data-new", tmp_path)
    reference = Worker("reference", {**env, "LINKY_APP_ID": reference_id, "LINKY_READINGS_TOPIC": reference_topic},
                       tmp_path / "data-ref", tmp_path)  # fmt: skip
    try:
        # readings only once the worker holds the contracts: which comes first is otherwise a race
        # whose outcome shows in the alerts (a contract arriving after a PDL's first reading)
        old.start()
        wait_for(lambda: old.metric(CONTRACTS) >= 3, 60, "the old worker reading the contracts", [old])
        await produce(kafka_bootstrap, topic, sequence[:first])
        wait_for(lambda: caught_up(old, first_last), 90, "the old worker folding the first readings", [old])
        old.stop()  # SIGTERM: flushed and committed
        assert old.proc is not None and old.proc.returncode == 0, old.tail()

        # today's worker on the old changelogs, not migrated: it refuses to start
        new.start()
        assert new.proc is not None
        assert new.proc.wait(timeout=120) == 2, new.tail()
        assert "linky-stream migrate-state" in new.tail(), new.tail()

        needed = run_cli(env, "migrate-state", "--check")
        assert needed.returncode == 1 and "linky-stream migrate-state" in needed.stdout, needed.stdout + needed.stderr
        done = run_cli(env, "migrate-state")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "wrote " in done.stdout and f"and {len(meters)} PDL state values" in done.stdout, done.stdout
        again = run_cli(env, "migrate-state")  # a second run changes nothing
        assert again.returncode == 0 and "already holds" in again.stdout, again.stdout + again.stderr
        checked = run_cli(env, "migrate-state", "--check")
        assert checked.returncode == 0 and "no migration needed" in checked.stdout, checked.stdout + checked.stderr

        started = time.monotonic()
        reference.start()
        wait_for(lambda: reference.metric(CONTRACTS) >= 3, 60, "the reference worker reading the contracts", [reference])
        await produce(kafka_bootstrap, reference_topic, sequence)
        new.start()
        await produce(kafka_bootstrap, topic, sequence[first:])
        wait_for(lambda: caught_up(new, last_time), 120, "the migrated worker folding every reading", [new])
        wait_for(lambda: caught_up(reference, last_time), 120, "the reference worker folding every reading", [reference])
        migrated, expected = documents(new, sorted(meters)), documents(reference, sorted(meters))
        for pdl in sorted(meters):
            for view in VIEWS:
                assert migrated[pdl][view] == expected[pdl][view], (
                    f"{pdl} {view} after the migration differs from a worker that folded every reading "
                    f"({time.monotonic() - started:.0f} s after the start):\n"
                    + diff(expected[pdl][view], migrated[pdl][view]))  # fmt: skip
            status, body = migrated[pdl]["consumption?granularity=day"]
            assert status == 200
            days = {b["start"][:10]: [b["import_wh"], b["export_wh"]] for b in body["buckets"]}
            assert days == meters[pdl].truth_days, pdl
        offers = sorted(migrated[pdl]["battery"][1].get("offer") for pdl in meters)
        assert offers == ["none"] * 3 + ["virtual_battery"] * 3, offers  # the battery case is exercised
    finally:
        for worker in (old, new, reference):
            worker.stop()
