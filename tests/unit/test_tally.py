"""stream/tally.py: a fold call's metric updates gathered and applied once, with the same totals
(and, for histograms, the same buckets) as updating prometheus_client one by one."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.tally import Tally, observe_all

BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 1.0, 60.0)


def samples(metric: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in metric.collect() for s in m.samples
            if not s.name.endswith("_created")}  # fmt: skip


def test_outside_a_call_updates_go_straight_to_the_metrics() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_straight_total", "t", registry=registry)
    histogram = Histogram("t_straight_seconds", "t", buckets=BUCKETS, registry=registry)
    tally = Tally()
    tally.inc(counter)
    tally.inc(counter, 2)
    tally.observe(histogram, 0.03)
    assert counter._value.get() == 3
    assert samples(histogram)[("t_straight_seconds_count", ())] == 1


def test_inside_a_call_updates_wait_for_its_end_and_nested_calls_for_the_outermost() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_wait_total", "t", ["outcome"], registry=registry)
    applied, duplicate = counter.labels("applied"), counter.labels("duplicate")
    histogram = Histogram("t_wait_seconds", "t", buckets=BUCKETS, registry=registry)
    tally = Tally()
    tally.begin()
    tally.begin()  # e.g. a handler's own scope inside the fold call
    for _ in range(5):
        tally.inc(applied)
    tally.inc(duplicate)
    tally.observe(histogram, 0.007)
    tally.end()
    assert applied._value.get() == 0 and duplicate._value.get() == 0  # the outer call is still running
    tally.observe(histogram, 2.0)
    tally.end()
    assert applied._value.get() == 5 and duplicate._value.get() == 1
    got = samples(histogram)
    assert got[("t_wait_seconds_count", ())] == 2
    assert got[("t_wait_seconds_bucket", (("le", "0.01"),))] == 1
    assert got[("t_wait_seconds_bucket", (("le", "60.0"),))] == 2
    tally.end()  # one end too many: harmless, and the next updates go straight again
    tally.inc(applied)
    assert applied._value.get() == 6


def test_a_gauge_set_inside_a_call_takes_its_last_value_at_the_end() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("t_offset", "t", ["partition"], registry=registry).labels("0")
    tally = Tally()
    tally.begin()
    for offset in (5, 9, 7):
        tally.set(gauge, offset)
    assert gauge._value.get() == 0
    tally.end()
    assert gauge._value.get() == 7
    tally.set(gauge, 11)  # outside a call: at once
    assert gauge._value.get() == 11


def test_observe_all_gives_the_buckets_of_observing_one_by_one() -> None:
    registry = CollectorRegistry()
    one_by_one = Histogram("t_one_seconds", "t", ["channel"], buckets=BUCKETS, registry=registry).labels("live")
    gathered = Histogram("t_all_seconds", "t", ["channel"], buckets=BUCKETS, registry=registry).labels("live")
    # values on every bound (observe counts ``value <= bound``), between them, above the last
    # finite bound, zero, negative and NaN (no bucket; the sum turns NaN as observe's does)
    values = [0.0, -1.0, *BUCKETS, *(b * 1.5 for b in BUCKETS), 0.0049999, 1e9, 0.01, 0.01]
    for value in values:
        one_by_one.observe(value)
    observe_all(gathered, values)
    expected = {(name.replace("t_one", "t_all"), labels): v for (name, labels), v in samples(one_by_one).items()}
    got = samples(gathered)
    assert {k: v for k, v in got.items() if not k[0].endswith("_sum")} == {
        k: v for k, v in expected.items() if not k[0].endswith("_sum")
    }
    assert math.isclose(got[("t_all_seconds_sum", ())], expected[("t_all_seconds_sum", ())], rel_tol=1e-12)
    observe_all(gathered, [float("nan")])
    one_by_one.observe(float("nan"))
    assert samples(gathered)[("t_all_seconds_count", ())] == samples(one_by_one)[("t_one_seconds_count", ())]
    assert math.isnan(samples(gathered)[("t_all_seconds_sum", ())])


def test_observe_all_falls_back_to_observe_without_the_internals() -> None:
    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, value: float) -> None:
            self.seen.append(value)

    plain = Plain()
    observe_all(plain, [0.1, 0.2])
    assert plain.seen == [0.1, 0.2]
