"""Local table data after a crash: discard it, recover from the changelogs.

Why (found by tests/integration/test_stream_consumption.py): faust writes a table change to
RocksDB at once and to its changelog topic a little later (producer buffer). A SIGKILLed worker
leaves local RocksDB data *ahead* of its changelogs. Restarted on the same data dir, it resumes
from the committed offsets with that local state: the replayed readings look already applied,
so they are skipped and their changes are never sent to the changelog. When the partition later
moves to another worker, that worker recovers the older changelog state and the readings in
between are folded as one long delta (totals stay exact, but the energy is spread over the
wrong hours and days). After an unclean stop the local tables are therefore deleted and rebuilt
from the changelogs, exactly as a new worker would.

- ``claim(datadir)`` takes an exclusive lock (a second worker on the same data dir is refused)
  and, if the previous worker did not stop cleanly, deletes ``<datadir>/v*/tables``;
- ``mark_clean(datadir)`` is called once the worker has stopped gracefully (SIGTERM/SIGINT).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

MARKER = ".clean-shutdown"
LOCK = ".worker.lock"
_locks: dict[Path, IO[str]] = {}

__all__ = ["claim", "mark_clean", "DatadirInUse"]


class DatadirInUse(RuntimeError):
    pass


def claim(datadir: Path) -> bool:
    """Lock ``datadir`` for this process; returns True if local tables were discarded."""
    datadir = Path(datadir)
    if datadir in _locks:  # faust sends on_worker_init more than once per process
        return False
    datadir.mkdir(parents=True, exist_ok=True)
    lock = open(datadir / LOCK, "a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise DatadirInUse(f"{datadir} is used by another worker (LINKY_DATADIR must differ per worker)") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    _locks[datadir] = lock
    marker = datadir / MARKER
    tables = sorted(datadir.glob("v*/tables"))
    discarded = False
    if tables and not marker.exists():
        for path in tables:
            log.warning("previous worker did not stop cleanly: discarding %s, tables recover from changelogs", path)
            shutil.rmtree(path)
        discarded = True
    marker.unlink(missing_ok=True)
    return discarded


def mark_clean(datadir: Path) -> None:
    """Record a graceful stop (local tables match their changelogs) and release the lock."""
    datadir = Path(datadir)
    (datadir / MARKER).write_text("stopped cleanly\n")
    lock = _locks.pop(datadir, None)
    if lock is not None:
        lock.close()
