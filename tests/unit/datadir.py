"""Importing the worker's modules (agents, stream.app) in a unit test without touching
.stack/worker-data: faust opens its data dir from ``LINKY_DATADIR`` at import time."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def private_datadir(prefix: str) -> Iterator[tempfile.TemporaryDirectory[str]]:
    """``LINKY_DATADIR`` set to a new temporary directory inside the block, restored after; the
    directory is removed when the object yielded is collected (keep it for the module's life)."""
    previous = os.environ.get("LINKY_DATADIR")
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    os.environ["LINKY_DATADIR"] = tmp.name
    try:
        yield tmp
    finally:
        if previous is None:
            del os.environ["LINKY_DATADIR"]
        else:
            os.environ["LINKY_DATADIR"] = previous
