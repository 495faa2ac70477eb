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
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path


def rss_mb() -> float:
    kb = next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS:"))
    return int(kb) / 1024


def report(path: Path, top: int = 40) -> None:
    before = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    found = gc.collect()
    garbage = before - collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    lines = [f"RSS {rss_mb():.0f} MB; {gc.get_freeze_count()} objects frozen (gc.freeze: not in the census below)"]
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
    lines.append(f"## cyclic garbage: {found} unreachable objects found by the report's gc.collect(); "
                 f"tracked objects gone by type (garbage, and whatever other threads freed meanwhile)")
    lines += [f"{n:9d}  {name}" for name, n in garbage.most_common(top)]
    lines.append("")
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    lines.append(f"## top {top} object types tracked by gc")
    lines += [f"{n:9d}  {name}" for name, n in counts.most_common(top)]
    lines += _untracked(top) + _pymalloc() + _mappings()
    before = rss_mb()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        started = time.perf_counter()
        libc.malloc_trim(0)
        lines.append(f"\nmalloc_trim(0): RSS {before:.0f} -> {rss_mb():.0f} MB in {time.perf_counter() - started:.3f} s")
    except (OSError, AttributeError) as exc:
        lines.append(f"\nmalloc_trim unavailable: {exc}")
    path.write_text("\n".join(lines) + "\n")


def _untracked(top: int) -> list[str]:
    """What gc's census cannot see: the objects it does not track (bytes, str, int, float, and
    tuples/dicts of those only), counted once each as referents of the objects it tracks."""
    seen: set[int] = set()
    sizes: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        for ref in gc.get_referents(obj):
            if not gc.is_tracked(ref) and id(ref) not in seen:
                seen.add(id(ref))
                name = type(ref).__qualname__
                sizes[name] += sys.getsizeof(ref)
                counts[name] += 1
    out = [f"\n## top {top} untracked types referenced by tracked objects (of {sum(sizes.values()) / 2**20:.1f} MB)"]
    out += [f"{size / 2**20:8.2f} MB {counts[name]:9d}  {name}" for name, size in sizes.most_common(top)]
    return out


def _pymalloc() -> list[str]:
    """pymalloc's own totals (``sys._debugmallocstats``, written to fd 2): the Python heap's
    arenas, what is in use in them and what is free but kept."""
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    keep = ("# arenas allocated current", "# arenas highwater", "# bytes in allocated blocks",
            "# bytes in available blocks", "# bytes lost to")
    out = [f"\n## pymalloc (sys._debugmallocstats), {sys.getallocatedblocks()} allocated blocks"]
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("# arenas allocated total")), len(lines))
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("Total")), len(lines))
    out += [line for line in lines[start:end + 1] if line.startswith(keep) or line.startswith("Total")]
    return out


def _mappings() -> list[str]:
    """RSS by kind of mapping (/proc/self/smaps): the glibc heap, anonymous mappings (pymalloc's
    arenas, glibc's mmap'd chunks and thread arenas, RocksDB), files (code, libraries)."""
    rss: collections.Counter[str] = collections.Counter()
    kind = "?"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else ""
            kind = name if name.startswith("[") else ("anonymous" if not name else "file (.so)" if ".so" in name else "file")
        elif head and head[0] == "Rss:":
            rss[kind] += int(head[1])
    out = ["\n## RSS by mapping (smaps)"]
    out += [f"{kb / 1024:8.1f} MB  {name}" for name, kb in rss.most_common(12)]
    return out


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
