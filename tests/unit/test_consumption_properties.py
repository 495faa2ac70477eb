"""Properties of the consumption fold: exact totals against an independent ground truth, and the
same result whatever the at-least-once replays (crash after any prefix of an event's writes)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables.calendar import local_date
from tables.consumption import ConsumptionConfig, Retention, record_to_bytes
from tests.unit.test_consumption import Store, reading

UTC = timezone.utc
KEEP_ALL = ConsumptionConfig(retention=Retention(hours_days=100_000, days_days=100_000, months_days=1_000_000))

step = st.one_of(
    st.integers(1, 600),  # normal: seconds to minutes
    st.integers(600, 4 * 24 * 3600),  # gaps up to four days
)
event = st.tuples(
    step,
    st.integers(0, 3000),  # HC increment
    st.integers(0, 3000),  # HP increment
    st.integers(0, 500),  # export increment
    st.sampled_from(["ok"] * 12 + ["dup", "old", "reset", "noindex", "drop_hp"]),
)


def generate(start: datetime, events: list[tuple[int, int, int, int, str]]) -> tuple[list[dict], dict[str, int]]:
    """Readings as the edge would send them, and the true energy (independent of tables/)."""
    t, hc, hp, ex = start, 1_000_000, 2_000_000, 50_000
    out = [reading(t, {"HCHC": hc, "HCHP": hp}, ex)]
    truth = {"import": 0, "export": 0}
    last_sent = {"HCHC": hc, "HCHP": hp, "EAIT": ex}
    for seconds, d_hc, d_hp, d_ex, kind in events:
        if kind == "dup":
            out.append(dict(out[-1]))
            continue
        if kind == "old" and len(out) > 2:
            out.append(dict(out[len(out) // 2]))
            continue
        t += timedelta(seconds=seconds)
        if kind == "noindex":
            out.append(reading(t, None, None))
            continue
        if kind == "reset":  # indexes restart near zero: a register that went down loses that interval
            hc, hp, ex = d_hc, d_hp, d_ex
            out.append(reading(t, {"HCHC": hc, "HCHP": hp}, ex))
            for label, value in (("HCHC", hc), ("HCHP", hp), ("EAIT", ex)):
                if value >= last_sent[label]:
                    truth["export" if label == "EAIT" else "import"] += value - last_sent[label]
                last_sent[label] = value
            continue
        hc, hp, ex = hc + d_hc, hp + d_hp, ex + d_ex
        sent = {"HCHC": hc} if kind == "drop_hp" else {"HCHC": hc, "HCHP": hp}
        for label, value in sent.items():
            truth["import"] += value - last_sent[label]
            last_sent[label] = value
        truth["export"] += ex - last_sent["EAIT"]
        last_sent["EAIT"] = ex
        out.append(reading(t, sent, ex))
    return out, truth


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1)),
    st.lists(event, min_size=1, max_size=60),
)
def test_totals_are_exact_and_consistent_across_granularities(naive: datetime, events: list) -> None:
    readings, truth = generate(naive.replace(tzinfo=UTC), events)
    s = Store(KEEP_ALL)
    for r in readings:
        s.feed(r)
    hours, days, months = s.query("hour"), s.query("day"), s.query("month")
    for buckets in (hours, days, months):
        assert sum(b["import_wh"] for b in buckets) == truth["import"]
        assert sum(b["export_wh"] for b in buckets) == truth["export"]
        assert all(b["import_wh"] >= 0 and b["export_wh"] >= 0 for b in buckets)
        assert [b["start"] for b in buckets] == sorted({b["start"] for b in buckets}, key=datetime.fromisoformat)
    for d in days:
        day = datetime.fromisoformat(d["start"]).date()
        in_day = [h for h in hours if local_date(datetime.fromisoformat(h["start"])) == day]
        assert sum(h["import_wh"] for h in in_day) == d["import_wh"]
        assert d["import_wh"] == sum(d["by_period"].values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1)),
    st.lists(event, min_size=1, max_size=50),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000), st.booleans()), max_size=4),
)
def test_crash_and_replay_give_the_same_result(naive: datetime, events: list, crashes: list) -> None:
    """At-least-once: after a crash the store holds the writes of a prefix of the processed events
    (possibly the history records of the next event but not its hot value, which is written last)
    and the source is replayed from an earlier offset. The result must not change."""
    readings, _ = generate(naive.replace(tzinfo=UTC), events)
    once = Store()
    for r in readings:
        once.feed(r)

    s = Store()
    snapshots = [(None, {})]  # state of the store after each processed event
    position = 0
    crash_plan = sorted((a % (len(readings) + 1), b, partial) for a, b, partial in crashes)
    while position < len(readings):
        s.feed(readings[position])
        position += 1
        snapshots.append((s.hot, dict(s.records)))
        if crash_plan and crash_plan[0][0] <= position:
            _, back, partial = crash_plan.pop(0)
            durable = back % (position + 1)  # events whose writes survived
            s.hot, s.records = snapshots[durable][0], dict(snapshots[durable][1])
            if partial and durable < position:  # the next event's records made it, not its hot value
                replay = copy.deepcopy(s)
                nxt = replay.feed(readings[durable])
                for key, record in nxt.writes.items():
                    if record is None:
                        s.records.pop(key, None)
                    else:
                        s.records[key] = record_to_bytes(record)
            snapshots = snapshots[: durable + 1]
            position = durable - (durable > 0 and back % 2)  # committed offset <= durable state
            if position < durable:  # the replayed events were already applied: nothing changes
                for r in readings[position:durable]:
                    assert not s.feed(r).applied
                    snapshots.append((s.hot, dict(s.records)))
                position = durable
                snapshots = snapshots[: durable + 1]
    assert s.hot == once.hot
    assert s.records == once.records
