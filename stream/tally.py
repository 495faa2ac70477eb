"""Prometheus updates of the readings, summed while a fetch is folded (issue 14).

A reading updates about a dozen series on its way through the worker (faust's per-partition
sensors, outcome counters of the trust check and of each handler, the fold latency, the publish
latencies of its payloads). Each ``Counter.inc`` takes prometheus_client's lock, each
``Histogram.observe`` walks the buckets in Python: about 6 % of the worker's CPU at 200 PDLs
(py-spy, docs/performance.md). Between ``begin()`` and ``end()`` (stream/consumer.py: one fetch;
agents/readings.py ``fold_messages``: one call folding its readings), ``tally`` sums them in
dicts; ``apply()`` adds the sums to the series, at the end and whenever the fold yields to the
event loop (every 2 ms of folding, ``YIELD_SECONDS``), which is when a scrape can run. Outside
such a call every update goes straight to prometheus_client, as before.

What a scrape sees: every reading folded before the fold last yielded, so the series are a few
milliseconds late at most. Totals are the same. A histogram's ``_sum`` gets one addition per
apply, so its last bits may differ from adding the values one by one.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Iterable

__all__ = ["Tally", "observe_all", "tally"]


class Tally:
    """Counter increments, histogram observations and gauge values gathered between ``begin``
    and ``end``.

    ``counter``, ``histogram`` and ``gauge`` are prometheus_client metrics with their labels
    resolved (a child, or a metric without labels); ``inc`` also adds to a gauge."""

    __slots__ = ("_counts", "_observed", "_latest", "_depth")

    def __init__(self) -> None:
        self._counts: dict[Any, float] = {}
        self._observed: dict[Any, list[float]] = {}
        self._latest: dict[Any, float] = {}
        self._depth = 0

    def inc(self, counter: Any, amount: float = 1) -> None:
        if self._depth:
            counts = self._counts
            counts[counter] = counts.get(counter, 0) + amount
        else:
            counter.inc(amount)

    def observe(self, histogram: Any, value: float) -> None:
        if self._depth:
            values = self._observed.get(histogram)
            if values is None:
                self._observed[histogram] = [value]
            else:
                values.append(value)
        else:
            histogram.observe(value)

    def set(self, gauge: Any, value: float) -> None:
        """``gauge.set(value)``; inside a call, the last value set wins."""
        if self._depth:
            self._latest[gauge] = value
        else:
            gauge.set(value)

    def begin(self) -> None:
        self._depth += 1

    def end(self) -> None:
        """Close the innermost ``begin``; the outermost applies everything gathered."""
        self._depth = max(0, self._depth - 1)
        if not self._depth:
            self.apply()

    def apply(self) -> None:
        """Add what was gathered to the series now (the call goes on gathering)."""
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, {}
        latest, self._latest = self._latest, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for gauge, value in latest.items():
            gauge.set(value)
        for histogram, values in observed.items():
            observe_all(histogram, values)


def observe_all(histogram: Any, values: Iterable[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``, with one lock per bucket that changed and
    one for the sum. Uses prometheus_client's ``Histogram`` internals (``_upper_bounds``,
    ``_buckets``, ``_sum``; 0.26, pinned), else observes them one by one;
    tests/unit/test_tally.py compares the exposition with observing one by one."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    summed = 0.0
    last = len(bounds)
    for value in values:
        summed += value
        i = bisect_left(bounds, value)  # the first bound >= value, as observe's ``value <= bound``
        if i < last and value <= bounds[i]:  # NaN: no bucket, as observe
            counts[i] += 1
    total.inc(summed)
    for i, count in enumerate(counts):
        if count:
            buckets[i].inc(count)


tally = Tally()  # the worker's one tally (agents/readings.py opens it around each fold call)
