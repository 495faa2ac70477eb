"""stream/consumer.py ``FetchPacer``: a busy worker's fetch requests gather records in the broker
for ``LINKY_KAFKA_FETCH_BATCH_MS``, an idle one's are answered at once (injected clock)."""

from __future__ import annotations

from typing import Any

from stream.consumer import BATCH_MIN_BYTES, ConsumerThread, FetchPacer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def feed(pacer: FetchPacer, clock: Clock, per_second: int, seconds: int, fetches_per_second: int = 8) -> list[bool]:
    """``seconds`` of fetches bringing about ``per_second`` records/s in all; the mode after each
    second (steps of 1/8 s: exact in binary, so a second is a second)."""
    modes = []
    for _ in range(seconds):
        for _ in range(fetches_per_second):
            clock.t += 1.0 / fetches_per_second
            pacer.observe(per_second // fetches_per_second)
        modes.append(pacer.batching)
    return modes


def test_an_idle_worker_asks_for_answers_at_once_with_the_long_poll() -> None:
    clock = Clock()
    pacer = FetchPacer(10, 100, 100, monotonic=clock)
    assert pacer.settings() == (1, 100)
    assert feed(pacer, clock, 50, 5) == [False] * 5
    assert pacer.settings() == (1, 100)


def test_a_busy_worker_gathers_records_then_goes_back_when_idle_with_hysteresis() -> None:
    clock = Clock()
    pacer = FetchPacer(10, 100, 100, monotonic=clock)
    assert feed(pacer, clock, 600, 2) == [True, True]
    assert pacer.settings() == (BATCH_MIN_BYTES, 10)
    assert feed(pacer, clock, 60, 2) == [True, True]  # above half the threshold: stays batched
    assert feed(pacer, clock, 30, 1) == [False]  # under half: answered at once again
    assert pacer.settings() == (1, 100)
    assert feed(pacer, clock, 90, 2) == [False, False]  # under the threshold: stays at once


def test_a_backlog_after_a_quiet_start_up_counts_from_its_first_records() -> None:
    """A worker restarted on a backlog: nothing for 20 s (recovery), then its first fetches bring
    thousands of records at once. The quiet start-up is not part of the rate: it is busy."""
    clock = Clock()
    pacer = FetchPacer(10, 100, 100, monotonic=clock)
    clock.t += 20.0  # no fetch at all: faust's fetcher starts once the recovery is done
    assert not pacer.observe(1_900)  # 1,900 records after 20 s: 95/s if the start-up counted
    clock.t += 0.2
    pacer.observe(100)
    assert feed(pacer, clock, 0, 1) == [True]  # then nothing more: 2,000 records in its first second
    assert pacer.settings() == (BATCH_MIN_BYTES, 10)


def test_a_zero_batch_time_never_batches() -> None:
    clock = Clock()
    pacer = FetchPacer(0, 100, 100, monotonic=clock)
    assert feed(pacer, clock, 10_000, 3) == [False] * 3
    assert pacer.settings() == (1, 100)


def test_the_consumer_thread_hands_a_mode_change_to_aiokafkas_fetcher() -> None:
    """``ConsumerThread._pace``: the fetcher's ``_fetch_min_bytes``/``_fetch_max_wait_ms`` (read by
    aiokafka at each fetch request it builds) follow the pacer's mode."""

    class Fetcher:
        _fetch_min_bytes, _fetch_max_wait_ms = 1, 100

    class AioConsumer:
        _fetcher = Fetcher()

    clock = Clock()
    thread: Any = object.__new__(ConsumerThread)  # no faust service: only _pace is exercised
    thread._pacer = FetchPacer(10, 100, 100, monotonic=clock)
    consumer = AioConsumer()
    for _ in range(9):
        clock.t += 0.125
        thread._pace(consumer, {"tp": [object()] * 60})
    assert (consumer._fetcher._fetch_min_bytes, consumer._fetcher._fetch_max_wait_ms) == (BATCH_MIN_BYTES, 10)
    for _ in range(17):  # two windows: the first still counts the last busy fetch
        clock.t += 0.125
        thread._pace(consumer, {})
    assert (consumer._fetcher._fetch_min_bytes, consumer._fetcher._fetch_max_wait_ms) == (1, 100)
