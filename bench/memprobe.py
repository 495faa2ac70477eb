"""Run a faust worker with tracemalloc on, and write where its Python memory is on request.

    python bench/memprobe.py REPORT -A stream.app worker -l warn

Everything after REPORT is faust's command line. Creating ``REPORT.go`` makes the worker write
REPORT (then delete the trigger): RSS, the Python heap tracemalloc sees, the top allocation sites
by line and by file, and the most numerous object types (gc). What RSS has beyond the traced heap
is native memory: RocksDB (block cache, memtables), OpenSSL, the interpreter. Last, the report
calls glibc's ``malloc_trim(0)`` and gives RSS before and after it: how much of RSS is freed heap
that malloc kept. ``LINKY_BENCH_TRACEMALLOC_FRAMES=0`` leaves tracemalloc off (the worker at full
speed; the report then has RSS, the gc census and the trim). Used by
``bench/stream_scale.py --memory-report``; tracemalloc slows the worker, so its rates are not
the bench's figures.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def rss_mb() -> float:
    kb = next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS:"))
    return int(kb) / 1024


def report(path: Path, top: int = 40) -> None:
    gc.collect()
    lines = [f"RSS {rss_mb():.0f} MB"]
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        traced, peak = tracemalloc.get_traced_memory()
        lines[0] += f"; traced Python heap {traced / 2**20:.1f} MB (peak {peak / 2**20:.1f} MB)"
    lines.append("")
    for key in ("lineno", "filename") if tracemalloc.is_tracing() else ():
        stats = snap.statistics(key)
        lines.append(f"## top {top} by {key} (of {sum(s.size for s in stats) / 2**20:.1f} MB)")
        lines += [f"{s.size / 2**20:8.2f} MB {s.count:9d} blocks  {s.traceback[0]}" for s in stats[:top]]
        lines.append("")
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    lines.append(f"## top {top} object types tracked by gc")
    lines += [f"{n:9d}  {name}" for name, n in counts.most_common(top)]
    before = rss_mb()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        started = time.perf_counter()
        libc.malloc_trim(0)
        lines.append(f"\nmalloc_trim(0): RSS {before:.0f} -> {rss_mb():.0f} MB in {time.perf_counter() - started:.3f} s")
    except (OSError, AttributeError) as exc:
        lines.append(f"\nmalloc_trim unavailable: {exc}")
    path.write_text("\n".join(lines) + "\n")


def _watch(path: Path) -> None:
    trigger = path.with_name(path.name + ".go")
    while True:
        if trigger.exists():
            trigger.unlink()
            report(path)
        time.sleep(0.5)


def main() -> None:
    path = Path(sys.argv[1]).resolve()
    sys.path.insert(0, os.getcwd())  # the app (faust -A stream.app), as `python -m faust` would have it
    frames = int(os.environ.get("LINKY_BENCH_TRACEMALLOC_FRAMES", "1"))
    if frames:
        tracemalloc.start(frames)
    threading.Thread(target=_watch, args=(path,), daemon=True, name="memprobe").start()
    sys.argv = ["faust", *sys.argv[2:]]
    from faust.cli.faust import cli

    cli()


if __name__ == "__main__":
    main()
