"""stream/datadir.py: local tables are discarded after an unclean stop, kept after a clean one."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream import datadir


def make_tables(root: Path) -> Path:
    tables = root / "v1" / "tables"
    (tables / "consumption-0.db").mkdir(parents=True)
    (tables / "consumption-0.db" / "CURRENT").write_text("x")
    return tables


def test_clean_stop_keeps_local_tables_and_crash_discards_them(tmp_path: Path) -> None:
    assert datadir.claim(tmp_path) is False  # first start: nothing to discard
    tables = make_tables(tmp_path)
    datadir.mark_clean(tmp_path)
    assert datadir.claim(tmp_path) is False and tables.exists()  # after a clean stop: kept
    # no mark_clean: the worker was killed
    datadir._locks.pop(tmp_path).close()
    assert datadir.claim(tmp_path) is True and not tables.exists()
    datadir.mark_clean(tmp_path)


def test_a_second_worker_on_the_same_datadir_is_refused(tmp_path: Path) -> None:
    datadir.claim(tmp_path)
    lock = datadir._locks.pop(tmp_path)  # as if another process held it
    try:
        with pytest.raises(datadir.DatadirInUse, match="another worker"):
            datadir.claim(tmp_path)
    finally:
        lock.close()
