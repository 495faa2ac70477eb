"""Which event-loop steps of a worker run long (a bench instrument, never the product's).

Put this directory first on ``PYTHONPATH`` and set ``LINKY_BENCH_SLOW_STEPS=FILE``: every asyncio
callback (a task's step, an I/O callback) is timed, and the steps longer than
``LINKY_BENCH_SLOW_STEP_MS`` (default 20) are written to FILE at exit, grouped by where the task
was suspended after the step (its coroutine and line), with their count, total and maximum.
Only the standard library's loop is seen (its ``Handle._run``). Unlike ``PYTHONASYNCIODEBUG=1``
(which makes every step several times slower), this costs two clock reads per step, so the
stalls it shows are the worker's own. Used by
``bench/stream_latency.py --slow-steps FILE``. The garbage collector's pauses are listed too, by
generation (all of them, whatever their length): a long step may be one. Two experiment knobs,
never product settings: ``LINKY_BENCH_GC_THRESHOLD=a,b,c`` (``gc.set_threshold``) and
``LINKY_BENCH_GC_FREEZE_AFTER=S`` (``gc.freeze()`` S seconds after the start).
"""

from __future__ import annotations

import atexit
import os

_path = os.environ.get("LINKY_BENCH_SLOW_STEPS")
if _path:
    import asyncio.events
    import time
    from collections import defaultdict

    _threshold = float(os.environ.get("LINKY_BENCH_SLOW_STEP_MS", "20")) / 1e3
    _slow: dict[str, list[float]] = defaultdict(list)
    _all = [0.0, 0]  # seconds in steps, steps
    _clock = time.perf_counter
    _run = asyncio.events.Handle._run

    def _where(handle: asyncio.events.Handle) -> str:
        callback = handle._callback
        task = getattr(callback, "__self__", None)
        coro = getattr(task, "get_coro", lambda: None)() if task is not None else None
        if coro is not None:
            frame = getattr(coro, "cr_frame", None)
            name = getattr(coro, "__qualname__", repr(coro))
            if frame is not None:
                return f"{name} at {frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}"
            return f"{name} (finished)"
        return getattr(callback, "__qualname__", repr(callback))

    def _timed_run(self: asyncio.events.Handle) -> None:
        start = _clock()
        try:
            _run(self)
        finally:
            spent = _clock() - start
            _all[0] += spent
            _all[1] += 1
            if spent >= _threshold:
                _slow[_where(self)].append(spent)

    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]

    import gc

    _gc: dict[int, list[float]] = defaultdict(list)  # generation -> pause seconds
    _gc_start = [0.0]

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _gc_start[0] = _clock()
        else:
            _gc[info["generation"]].append(_clock() - _gc_start[0])

    gc.callbacks.append(_on_gc)
    if os.environ.get("LINKY_BENCH_GC_THRESHOLD"):  # an experiment: "700,10,10" is CPython's default
        gc.set_threshold(*(int(x) for x in os.environ["LINKY_BENCH_GC_THRESHOLD"].split(",")))
    if os.environ.get("LINKY_BENCH_GC_FREEZE_AFTER"):  # an experiment: gc.freeze() this many seconds in
        import threading

        threading.Timer(float(os.environ["LINKY_BENCH_GC_FREEZE_AFTER"]), gc.freeze).start()

    def _report() -> None:
        rows = sorted(_slow.items(), key=lambda item: -sum(item[1]))
        with open(_path, "w") as out:
            out.write(f"# {_all[1]} steps, {_all[0]:.1f} s in steps; steps >= {_threshold * 1e3:.0f} ms below "
                      f"(where the task stood after the step)\n")
            out.write("count  total_s  max_ms  where\n")
            for where, spent in rows:
                out.write(f"{len(spent):5d}  {sum(spent):7.2f}  {max(spent) * 1e3:6.0f}  {where}\n")
            for generation, pauses in sorted(_gc.items()):
                out.write(f"{len(pauses):5d}  {sum(pauses):7.2f}  {max(pauses) * 1e3:6.0f}  "
                          f"(garbage collector, generation {generation}: every pause, inside the steps above)\n")

    atexit.register(_report)
