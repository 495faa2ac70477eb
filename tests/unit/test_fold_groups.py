"""A fetch folded per PDL (agents/readings.py ``by_pdl``: a PDL's readings in a row, one coalescing
scope per group) ends with exactly what folding the same readings one by one ends with: the same
buffered table values (live, consumption, battery ledger, trust; closed rows included) and the same
latest payload on every channel. The live channel still gets every reading; the conso, battery and
surplus views of a group are published once, for its last reading.

The real handlers, tables (RocksDB in a private data dir) and write-back buffer; no broker, no
Redis (the publisher's queue is read as it is). Readings of two meters across a local midnight
(day rows closed), with injection (surplus), a duplicate and an index going backwards (a conso
payload carrying an event, never coalesced).
"""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.unit.datadir import private_datadir

with private_datadir("linky-unit-fold-groups-") as _datadir:  # never .stack/worker-data; removed at exit
    from agents import battery, gateways, readings
    from stream import clock, metrics
    from stream.app import app, readings_topic
    from stream.state import consumption_table, live_table, publisher, writeback

from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 10, 24, 21, 45, tzinfo=timezone.utc)  # 23:45 in Paris: midnight at step 30
STEPS = 40  # one reading every 30 s per meter


class _Message:
    def __init__(self, offset: int, key: bytes, value: bytes) -> None:
        self.topic = readings_topic.get_topic_name()
        self.partition, self.offset, self.key, self.value, self.headers = 0, offset, key, value, None
        self.tp = (self.topic, 0)


class _Consumer:
    def track_message(self, message: Any) -> None:
        pass

    def ack(self, message: Any) -> bool:
        return True


def meter_readings(pdls: list[str], first_offset: int) -> list[_Message]:
    """The same readings for any pair of PDL names (only the names differ)."""
    out: list[_Message] = []
    index = {pdl: [5_000_000 + i * 1_000, 7_000_000, 20_000] for i, pdl in enumerate(pdls)}
    for step in range(STEPS):
        local = (START + timedelta(seconds=30 * step)).astimezone(PARIS)
        for i, pdl in enumerate(pdls):
            idx = index[pdl]
            idx[1] += 3 + step % 4
            idx[2] += step % 3
            if i == 0 and step == 25:
                idx[1] -= 40  # the index goes backwards once: an index event on the conso channel
            value = json.dumps({
                "pdl": pdl, "meter": "M" + pdl, "mode": "standard", "time": local.isoformat(),
                "tariff_period": "HEURE PLEINE", "import_wh": idx[0] + idx[1],
                "import_wh_by_period": {"EASF01": idx[0], "EASF02": idx[1]}, "export_wh": idx[2],
                "power_va": 1000 + step, "export_power_va": 10 * (step % 3), "current_a": [5], "voltage_v": [231],
                "subscribed_kva": 9, "overload": False, "status": None,
            }).encode()  # fmt: skip
            out.append(_Message(first_offset + len(out), pdl.encode(), value))
            if i == 1 and step == 10:  # the edge sent it twice
                out.append(_Message(first_offset + len(out), pdl.encode(), value))
    return out


def buffered(pdls: list[str]) -> dict[tuple[str, bytes], bytes]:
    """Every buffered value of these PDLs' keys, by table (hot values and closed rows)."""
    out: dict[tuple[str, bytes], bytes] = {}
    for name, table in (("live", live_table), ("consumption", consumption_table), ("ledger", battery.ledger),
                        ("trust", gateways.trust_table)):  # fmt: skip
        for key, entry in writeback.buffered(table):
            if key.split(b"|")[0].decode() in pdls:
                out[(name, key)] = b"TOMBSTONE" if entry is writeback_tombstone() else entry.raw
    for (name, key), raw in out.items():
        if name == "ledger" and b"|ck|" in key and raw != b"TOMBSTONE":
            # a day's checkpoint record: the battery and surplus before the day's first delta and
            # the closed rows' keys, all that is ever read of it (tables/ledger.py
            # ``_load_checkpoint``); its other fields are the state's when it was stored, which is
            # the group's end here, that reading there
            record = json.loads(raw)
            out[(name, key)] = json.dumps({k: record[k] for k in ("battery", "surplus", "history")}).encode()
    return out


def writeback_tombstone() -> Any:
    from stream.writeback import TOMBSTONE

    return TOMBSTONE


def published(pdls: list[str]) -> list[tuple[str, bytes]]:
    return [(channel, data) for channel, data, *_ in publisher._queue if channel.split(":")[1] in pdls]


def renamed(data: Any, names: dict[str, str]) -> Any:
    """``data`` (bytes, str or a structure of them) with PDL names replaced."""
    if isinstance(data, dict):
        return {renamed(k, names): renamed(v, names) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(renamed(v, names) for v in data)
    if isinstance(data, bytes):
        return renamed(data.decode(), names).encode()
    if isinstance(data, str):
        for old, new in names.items():
            data = data.replace(old, new)
    return data


def isolated_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write-back buffer and a publish queue of the test's own, dropped after it; nothing is
    flushed (everything stays in the buffer, compared there)."""
    app.flow_control.resume()  # as a worker's consumer does once partitions are assigned
    monkeypatch.setattr(writeback, "_barrier", None)
    monkeypatch.setattr(writeback, "due", lambda: False)
    for name, empty in (("_parts", {}), ("_where", {}), ("_held", 0)):
        monkeypatch.setattr(writeback, name, empty)
    monkeypatch.setattr(publisher, "_queue", deque())
    monkeypatch.setattr(publisher, "queue_size", 1_000_000)


async def test_a_fetch_folded_per_pdl_ends_with_the_states_and_views_of_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolated_buffers(monkeypatch)
    grouped_pdls, single_pdls = ["30000000000301", "30000000000302"], ["30000000000401", "30000000000402"]
    names = dict(zip(single_pdls, grouped_pdls))
    coalesced = metrics.REDIS_COALESCED._value.get()
    live_counted, battery_counted = _live_outcomes(), _battery_outcomes()
    with clock.pinned(START + timedelta(seconds=30 * STEPS)):
        grouped = meter_readings(grouped_pdls, 1_000)
        await readings.fold_messages(_Consumer(), grouped)  # one fetch: groups of up to GROUP_MAX
        for message in meter_readings(single_pdls, 2_000):  # one reading per fetch: no group
            await readings.fold_messages(_Consumer(), [message])
    coalesced = metrics.REDIS_COALESCED._value.get() - coalesced
    # each reading's outcome counted once per handler: the fold calls' tallies were applied when
    # each call ended (stream/tally.py)
    folded = 2 * len(grouped)
    assert _live_outcomes() - live_counted == folded
    assert _battery_outcomes() - battery_counted == folded

    # the same state, to the byte
    state_grouped, state_single = buffered(grouped_pdls), renamed(buffered(single_pdls), names)
    assert any(b"|bd|2026-10-24" in key for _, key in state_grouped)  # a day row closed at the midnight
    assert state_grouped == state_single

    # every channel ends on the same view; live and alerts payloads are every one of them
    by_channel: dict[str, list[list[bytes]]] = {}
    for run, pdls in ((0, grouped_pdls), (1, single_pdls)):
        for channel, data in published(pdls):
            by_channel.setdefault(renamed(channel, names), [[], []])[run].append(renamed(data, names))
    kinds = {channel.split(":")[2] for channel in by_channel}
    assert {"live", "conso", "battery", "surplus"} <= kinds
    for channel, (in_groups, one_by_one) in by_channel.items():
        assert in_groups[-1] == one_by_one[-1], channel
        if channel.endswith((":live", ":alerts")):
            assert in_groups == one_by_one, channel
        else:  # each view of the groups is one the one-by-one run published, in the same order
            rest = iter(one_by_one)
            assert all(any(view == other for other in rest) for view in in_groups), channel
            assert len(in_groups) < len(one_by_one), channel
    conso_events = [d for c, ds in by_channel.items() if c.endswith(":conso") for d in ds[0] if b'"events":[{' in d]
    assert conso_events  # the backwards index: its payload was published, not coalesced away
    dropped = sum(len(b) - len(a) for a, b in by_channel.values())
    assert coalesced == dropped  # every view not published is counted


def _live_outcomes() -> float:
    return sum(metrics.READINGS.labels("live", outcome)._value.get() for outcome in ("applied", "duplicate"))


def _battery_outcomes() -> float:
    return sum(sample.value for metric in battery.READINGS.collect() for sample in metric.samples
               if sample.name == "linky_battery_readings_total")  # fmt: skip


async def test_a_scrape_during_a_fold_call_sees_the_readings_folded_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metric updates gathered by the fold (stream/tally.py) reach the series each time it
    yields to the event loop, which is when a scrape can run: not only when the call ends."""
    import asyncio

    isolated_buffers(monkeypatch)
    monkeypatch.setattr(readings, "YIELD_SECONDS", 0.0)  # yield after every group
    messages = meter_readings(["30000000000501", "30000000000502"], 3_000)
    start = _live_outcomes()
    seen: list[float] = []
    done = False

    async def scrape() -> None:
        while not done:
            seen.append(_live_outcomes() - start)
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(scrape())
    with clock.pinned(START + timedelta(seconds=30 * STEPS)):
        await readings.fold_messages(_Consumer(), messages)
    done = True
    await watcher
    assert _live_outcomes() - start == len(messages)
    assert any(0 < n < len(messages) for n in seen), seen  # moved while the call was folding
