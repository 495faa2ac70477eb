"""Alert episodes: each kind opens once and clears once over a realistic sequence."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import pytest

from tables.alerts import (
    AlertEvent,
    AlertSettings,
    AlertState,
    fold_reading,
    render_open_alerts,
    state_from_dict,
    state_to_dict,
    status_signals,
    tempo_colour,
    tempo_day,
    tick,
)
from tables.battery import BatteryState, fold_delta
from tables.contracts import Contract, ContractVersion, version_from_dict
from tables.ledger import LedgerState, fold_alerts
from tables.ledger import fold_reading as ledger_fold_reading

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 1, 12, 10, 0, tzinfo=PARIS)
SETTINGS = AlertSettings(overload_share=1.0, overload_seconds=30, overload_clear_seconds=60, silent_seconds=300,
                         backwards_clear_seconds=3600, daily_budget_wh=5000)  # fmt: skip
RESALE = version_from_dict({"effective_from": "2026-01-01", "offer": "surplus_resale", "resale": {"rate_eur_per_kwh": "0.1"}})


def reading(t: datetime, **fields: Any) -> dict[str, Any]:
    base = {
        "pdl": "p", "meter": "m", "mode": "standard", "time": t.isoformat(), "tariff_period": "HEURE  CREUSE",
        "import_wh": 1000, "import_wh_by_period": None, "export_wh": 0, "power_va": 500, "export_power_va": 0,
        "current_a": [2], "voltage_v": [230], "subscribed_kva": 6, "overload": False, "status": None,
    }  # fmt: skip
    return {**base, **fields}


def run(readings: Iterable[dict[str, Any]], settings: AlertSettings = SETTINGS, state: AlertState | None = None,
        **kwargs: Any) -> tuple[AlertState, list[AlertEvent]]:  # fmt: skip
    state = state or AlertState()
    events: list[AlertEvent] = []
    for r in readings:
        state, new = fold_reading(state, r, settings, **kwargs)
        events += new
    return state, events


def transitions(events: list[AlertEvent], kind: str) -> list[tuple[str, datetime]]:
    return [(e.action, e.at) for e in events if e.kind == kind]


def utc(t: datetime) -> datetime:
    return t.astimezone(ZoneInfo("UTC"))


def test_overload_on_sustained_power_opens_once_and_clears_after_the_hold() -> None:
    # Every 2 s: 0-18 s at 5000 VA (threshold 6000), 20-78 s at 6500 VA except one dip at 60 s,
    # then 5000 VA up to 200 s. Opens 30 s after the first reading above (20 + 30 = 50 s);
    # the dip does not clear it (the calm lasts 2 s < 60 s); clears 60 s after 80 s = 140 s.
    def power(s: int) -> int:
        if s < 20 or s >= 80:
            return 5000
        return 5900 if s == 60 else 6500

    readings = [reading(T0 + timedelta(seconds=s), power_va=power(s)) for s in range(0, 200, 2)]
    _, events = run(readings)
    assert transitions(events, "overload") == [("open", utc(T0 + timedelta(seconds=50))), ("clear", utc(T0 + timedelta(seconds=140)))]


def test_short_power_peaks_never_open_an_overload() -> None:
    # 20 s above, 2 s below, 20 s above...: never 30 s in a row.
    readings = [reading(T0 + timedelta(seconds=s), power_va=7000 if s % 22 else 100) for s in range(0, 600, 2)]
    _, events = run(readings)
    assert transitions(events, "overload") == []


def test_overload_from_the_meter_flag_opens_at_once() -> None:
    readings = [reading(T0 + timedelta(seconds=s), overload=10 <= s < 20) for s in range(0, 120, 2)]
    _, events = run(readings)
    # open at 10 s; flag off from 20 s; clear at 20 + 60 = 80 s
    assert transitions(events, "overload") == [("open", utc(T0 + timedelta(seconds=10))), ("clear", utc(T0 + timedelta(seconds=80)))]


def test_meter_silent_is_raised_by_the_timer_and_cleared_by_the_next_reading() -> None:
    state, _ = run([reading(T0)], now=T0)
    all_events: list[AlertEvent] = []
    for seconds in (200, 301, 400, 500):
        state, events = tick(state, T0 + timedelta(seconds=seconds), SETTINGS)
        all_events += events
    state, events = fold_reading(state, reading(T0 + timedelta(seconds=510)), SETTINGS, now=T0 + timedelta(seconds=510))
    all_events += events
    assert transitions(all_events, "meter_silent") == [("open", utc(T0)), ("clear", utc(T0 + timedelta(seconds=510)))]
    assert all_events[0].details == {"last_reading": utc(T0).isoformat()}


def test_historic_mode_only_matters_on_a_producer_contract() -> None:
    modes = ["standard"] * 3 + ["historic"] * 10 + ["standard"] * 3
    readings = [reading(T0 + timedelta(minutes=i), mode=m) for i, m in enumerate(modes)]
    _, events = run(readings, contract_version=RESALE)
    assert transitions(events, "historic_mode") == [("open", utc(T0 + timedelta(minutes=3))), ("clear", utc(T0 + timedelta(minutes=13)))]
    consumer = version_from_dict({"effective_from": "2026-01-01", "offer": "none"})
    _, events = run(readings, contract_version=consumer)
    assert transitions(events, "historic_mode") == []


def test_index_backwards_opens_once_and_clears_after_an_hour_without_regression() -> None:
    # Index 1000, 1010, then a meter swap: 5, then +1 Wh per minute for 2 hours.
    indexes = [1000, 1010] + [5 + i for i in range(120)]
    readings = [reading(T0 + timedelta(minutes=i), import_wh=x) for i, x in enumerate(indexes)]
    state, events = run(readings)
    # regression at minute 2; clear at minute 2 + 60 = 62
    assert transitions(events, "index_backwards") == [("open", utc(T0 + timedelta(minutes=2))), ("clear", utc(T0 + timedelta(minutes=62)))]
    # Today's import never goes negative: 10 Wh before the swap + 119 Wh after it.
    assert state.day_import_wh == 129


def test_peak_period_follows_hp() -> None:
    labels = ["HEURE  CREUSE", "HEURE  CREUSE", "HEURE  PLEINE", "HEURE  PLEINE", "HEURE  PLEINE", "HEURE  CREUSE"]
    readings = [reading(T0 + timedelta(hours=i), tariff_period=label) for i, label in enumerate(labels)]
    _, events = run(readings)
    assert transitions(events, "peak_period") == [("open", utc(T0 + timedelta(hours=2))), ("clear", utc(T0 + timedelta(hours=5)))]
    _, events = run(readings, settings=AlertSettings(peak_alerts=False))
    assert transitions(events, "peak_period") == []


def test_red_period_is_one_episode_per_red_tempo_day() -> None:
    day = datetime(2026, 1, 13, tzinfo=PARIS)
    plan = [(5, "HC  BLEU"), (6, "HP  ROUGE"), (12, "HP  ROUGE"), (22, "HC  ROUGE"), (29, "HC  ROUGE"), (30, "HP  BLANC")]
    readings = [reading(day + timedelta(hours=h), tariff_period=label) for h, label in plan]
    _, events = run(readings)
    # opens at 06:00 on the red day, clears at 06:00 the next day (hour 30)
    assert transitions(events, "red_period") == [("open", utc(day + timedelta(hours=6))), ("clear", utc(day + timedelta(hours=30)))]


def test_red_tomorrow_clears_when_the_day_comes() -> None:
    day = datetime(2026, 1, 13, tzinfo=PARIS)
    def status(today: str | None, tomorrow: str | None) -> dict[str, Any]:
        return {"tempo_today": today, "tempo_tomorrow": tomorrow, "mobile_peak": 0, "overload": False}
    plan = [(9, status("blue", None)), (11, status("blue", "red")), (15, status("blue", "red")),
            (23, status("blue", "red")), (29, status("blue", "red")),  # 05:00 next day: still the blue Tempo day
            (30, status("red", None)), (35, status("red", None))]  # fmt: skip
    readings = [reading(day + timedelta(hours=h), status=s, tariff_period=None) for h, s in plan]
    _, events = run(readings)
    assert transitions(events, "red_tomorrow") == [("open", utc(day + timedelta(hours=11))), ("clear", utc(day + timedelta(hours=30)))]
    assert [e.details for e in events if e.kind == "red_tomorrow"][0] == {"day": "2026-01-14"}
    # The colour of the current period came from the status (no label): red from 06:00.
    assert transitions(events, "red_period") == [("open", utc(day + timedelta(hours=30)))]


def test_red_tomorrow_clears_when_the_announcement_changes() -> None:
    day = datetime(2026, 1, 13, 12, tzinfo=PARIS)
    plan = [("red", 0), ("red", 1), ("white", 2), ("white", 3)]
    readings = [reading(day + timedelta(hours=h), status={"tempo_tomorrow": c}) for c, h in plan]
    _, events = run(readings)
    assert [a for a, _ in transitions(events, "red_tomorrow")] == ["open", "clear"]


def test_daily_budget_opens_once_a_day_and_clears_at_midnight() -> None:
    start = datetime(2026, 1, 12, 18, tzinfo=PARIS)
    # +1000 Wh per hour from 18:00 to 02:00 next day. Day 12: 18->19 is the first delta.
    readings = [reading(start + timedelta(hours=i), import_wh=10_000 + 1000 * i) for i in range(9)]
    _, events = run(readings)
    # 12th: deltas counted at 19, 20, 21, 22, 23 h = 5000 Wh, not above 5000: no alert that day.
    assert transitions(events, "daily_budget") == []
    readings = [reading(start + timedelta(hours=i), import_wh=10_000 + 1500 * i) for i in range(9)]
    _, events = run(readings)
    # 1500 Wh/h: 19 h 1500, 20 h 3000, 21 h 4500, 22 h 6000 > 5000 -> open at 22:00; clear at 00:00.
    assert transitions(events, "daily_budget") == [("open", utc(start + timedelta(hours=4))), ("clear", utc(start + timedelta(hours=6)))]


def test_daily_budget_is_cleared_by_the_timer_if_the_meter_is_silent() -> None:
    start = datetime(2026, 1, 12, 20, tzinfo=PARIS)
    state, events = run([reading(start, import_wh=0), reading(start + timedelta(hours=1), import_wh=6000)])
    assert [a for a, _ in transitions(events, "daily_budget")] == ["open"]
    state, events = tick(state, datetime(2026, 1, 13, 0, 1, tzinfo=PARIS), AlertSettings(silent_seconds=10**9))
    assert [a for a, _ in transitions(events, "daily_budget")] == ["clear"]


def battery_version(capacity: int | None) -> ContractVersion:
    return version_from_dict({"effective_from": "2026-01-01", "offer": "virtual_battery", "battery": {"capacity_wh": capacity}})


def test_battery_full_opens_on_overflow_and_clears_below_the_hysteresis() -> None:
    v = battery_version(3000)
    b = BatteryState()
    state = AlertState()
    events: list[AlertEvent] = []
    t = datetime(2026, 6, 2, 11, tzinfo=PARIS)
    # (import, export) per 10 min: fill to 2500, overflow 500, overflow more, use 50 (2950 > 2940),
    # use 500 (2450 < 3000 x 0.98 = 2940 -> clear).
    for imp, exp in [(0, 2500), (0, 1000), (0, 800), (50, 0), (500, 0)]:
        b, _, _ = fold_delta(b, [v], start=t, end=t + timedelta(minutes=10), import_wh_by_period={"HP": imp}, export_wh=exp)
        t += timedelta(minutes=10)
        state, new = fold_reading(state, reading(t, tariff_period="HEURE  CREUSE"), SETTINGS, contract_version=v, battery=b)
        events += new
    assert transitions(events, "battery_full") == [("open", utc(datetime(2026, 6, 2, 11, 20, tzinfo=PARIS))),
                                                   ("clear", utc(datetime(2026, 6, 2, 11, 50, tzinfo=PARIS)))]  # fmt: skip


def test_battery_projected_empty_opens_and_clears() -> None:
    v = battery_version(None)
    b, _, _ = fold_delta(BatteryState(), [v], start=datetime(2026, 4, 1, 10, tzinfo=PARIS),
                         end=datetime(2026, 4, 1, 14, tzinfo=PARIS), import_wh_by_period={}, export_wh=3000)  # fmt: skip
    state = AlertState()
    events: list[AlertEvent] = []
    # Each day 06:00-07:00 imports 1000 Wh: after day 1 the month rate is negative.
    t = datetime(2026, 4, 2, 6, tzinfo=PARIS)
    for _ in range(3):
        b, _, _ = fold_delta(b, [v], start=t, end=t + timedelta(hours=1), import_wh_by_period={"HP": 1000}, export_wh=0)
        t += timedelta(hours=1)
        state, new = fold_reading(state, reading(t), SETTINGS, contract_version=v, battery=b)
        events += new
        t += timedelta(hours=23)
    # Day 2 07:00: stored 3000, imported 1000 over 31 h: still positive (+2000) -> projected > 0.
    # Day 3 07:00: imported 2000: stored - imported = +1000 over 55 h; level 1000; 28 days left:
    # 1000 + 1000/55 h x (remaining) > 0. Day 4 07:00: imported 3000 -> net 0 -> level 0 -> 0 <= 0: open.
    assert transitions(events, "battery_empty") == [("open", utc(datetime(2026, 4, 4, 7, tzinfo=PARIS)))]
    b, _, _ = fold_delta(b, [v], start=t, end=t + timedelta(hours=6), import_wh_by_period={}, export_wh=20000)
    t += timedelta(hours=6)
    state, new = fold_reading(state, reading(t), SETTINGS, contract_version=v, battery=b)
    assert [(e.kind, e.action) for e in new if e.kind == "battery_empty"] == [("battery_empty", "clear")]


def test_each_kind_opens_once_and_clears_once_over_a_mixed_day() -> None:
    day = datetime(2026, 1, 13, tzinfo=PARIS)
    readings = []
    for minute in range(0, 26 * 60, 1):
        t = day + timedelta(minutes=minute)
        local_hour = minute // 60
        label = "HP  ROUGE" if 6 <= local_hour < 22 else ("HC  BLEU" if local_hour < 6 else "HC  ROUGE")
        readings.append(reading(t, tariff_period=label, import_wh=1000 + 5 * minute,
                                power_va=7000 if 600 <= minute < 620 else 800))  # fmt: skip
    _, events = run(readings)
    counts = Counter((e.kind, e.action) for e in events)
    for kind in ("overload", "peak_period", "daily_budget"):
        assert counts[(kind, "open")] == 1 and counts[(kind, "clear")] == 1, kind
    assert counts[("red_period", "open")] == 1 and counts[("red_period", "clear")] == 0  # still red at 02:00


def test_an_older_reading_changes_nothing_but_proves_life() -> None:
    state, _ = run([reading(T0 + timedelta(seconds=10), power_va=100)])
    state, _ = tick(state, T0 + timedelta(seconds=400), SETTINGS)
    assert "meter_silent" in state.open
    state2, events = fold_reading(state, reading(T0, import_wh=0), SETTINGS, now=T0 + timedelta(seconds=401))
    assert [(e.kind, e.action) for e in events] == [("meter_silent", "clear")]
    assert state2.last_import_wh == state.last_import_wh and "index_backwards" not in state2.open


def test_state_round_trip_and_open_table() -> None:
    readings = [reading(T0 + timedelta(seconds=s), overload=True, tariff_period="HEURE  PLEINE") for s in (0, 2)]
    state, _ = run(readings)
    assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state
    table = render_open_alerts(state)
    assert [a["kind"] for a in table["open"]] == ["overload", "peak_period"]
    event = AlertEvent("p", "overload", "open", utc(T0), {"power_va": 1})
    assert event.to_payload() == {"schema_version": 1, "pdl": "p", "kind": "overload", "action": "open",
                                  "at": utc(T0).isoformat(), "details": {"power_va": 1}}  # fmt: skip


def test_status_adapter_reads_teleinfo_stge_names() -> None:
    from teleinfo.stge import decode_stge

    # protocol.md 2.3: 463A0800 = white today, blue tomorrow, mobile peak PM1 running.
    signals = status_signals(decode_stge("463A0800"))
    assert (signals.tempo_today, signals.tempo_tomorrow, signals.mobile_peak, signals.overload) == ("white", "blue", True, False)
    assert status_signals(None).tempo_today is None
    assert status_signals({"tempo_tomorrow": 3}).tempo_tomorrow == "red"


@pytest.mark.parametrize(
    ("label", "colour"),
    [("HP  ROUGE", "red"), ("HCJR", "red"), ("BBRHPJW", "white"), ("HC  BLANC", "white"), ("HP  BLEU", "blue"),
     ("HEURE  PLEINE", None), (None, None)],
)  # fmt: skip
def test_tempo_colour(label: str | None, colour: str | None) -> None:
    assert tempo_colour(label) == colour


def test_tempo_day_runs_from_six_to_six() -> None:
    assert str(tempo_day(datetime(2026, 1, 14, 5, 59, tzinfo=PARIS))) == "2026-01-13"
    assert str(tempo_day(datetime(2026, 1, 14, 6, 0, tzinfo=PARIS))) == "2026-01-14"


# --------------------------------------------------------------------------- battery_empty, exact times
#
# docs/battery.md §5 and tables/battery.projected_month_end_wh: at a reading at time t of month m,
#   projected = int(level + (stored - imported) / elapsed x remaining)      (int truncates toward 0)
# with stored = credited - overflow and imported = raw grid import of m so far, elapsed = t - 00:00
# Paris of m's first day, remaining = m's end - t; None before one hour of m. The alert opens at the
# first reading with projected <= 0 and clears at the first reading with projected > the margin
# (1000 Wh by default; between 0 and the margin it stays open) or whose month is another one.
# April 2026 is 720 h long (all CEST); below "h" is the time since 2026-04-01 00:00 Paris.
APRIL = datetime(2026, 4, 1, tzinfo=PARIS)


def april(hours: float) -> datetime:
    return APRIL + timedelta(hours=hours)


class BatteryScenario:
    """A realtime battery: each step folds a delta into the ledger, then the reading at its end."""

    def __init__(self, version: ContractVersion, start: datetime) -> None:
        self.version, self.t = version, start
        self.battery, self.state = BatteryState(), AlertState()
        self.events: list[AlertEvent] = []

    def step(self, end: datetime, *, imp: int = 0, exp: int = 0, read: bool = True) -> list[AlertEvent]:
        self.battery, _, _ = fold_delta(self.battery, [self.version], start=self.t, end=end,
                                        import_wh_by_period={"HP": imp} if imp else {}, export_wh=exp)  # fmt: skip
        self.t = end
        if not read:
            return []
        self.state, new = fold_reading(self.state, reading(end), SETTINGS, contract_version=self.version,
                                       battery=self.battery)  # fmt: skip
        self.events += new
        return [e for e in new if e.kind == "battery_empty"]


def realtime_unlimited() -> ContractVersion:
    return version_from_dict({"effective_from": "2026-03-01", "offer": "virtual_battery",
                              "battery": {"capacity_wh": None, "settlement": "realtime"}})  # fmt: skip


def test_battery_empty_opens_and_clears_at_the_exact_readings_of_the_projection() -> None:
    s = BatteryScenario(realtime_unlimited(), datetime(2026, 3, 31, 10, tzinfo=PARIS))
    s.step(datetime(2026, 3, 31, 14, tzinfo=PARIS), exp=14_000)  # April opens with 14 000 Wh stored
    assert s.battery.level_wh == 14_000
    # April 1st: away (no flow) until 23:00, then 100 Wh drawn every hour. At h >= 23 the level is
    # 14000 - 100 (h - 23) and stored - imported = -100 (h - 23), so
    #   projected(h) = 14000 - 100 (h - 23) - 100 (h - 23) (720 - h) / h = 14000 - 72000 (h - 23) / h.
    # h = 24..28: 14000 - 72000 x 5/28 = 1142.86 -> 1142 at h = 28, still > 0;
    # h = 29 (2026-04-02 05:00): 14000 - 72000 x 6/29 = -896.55 -> -896 <= 0: opens.
    for h in range(1, 30):
        new = s.step(april(h), imp=100 if h > 23 else 0)
        if h < 29:
            assert new == [], h
    assert transitions(s.events, "battery_empty") == [("open", utc(april(29)))]
    assert s.events[-1].details == {"month": "2026-04", "level_wh": 13_400, "projected_wh": -896}
    assert s.step(april(30), imp=100) == []  # 14000 - 72000 x 7/30 = -2800: still open
    # From h = 30, 120 Wh exported every hour and nothing drawn: after j hours stored = 120 j,
    # imported = 700, projected = 14000 + (120 j - 700) x 720 / (30 + j).
    # j = 1 (h = 31): 14000 - 580 x 720/31 = 529.03: above 0 but not above the 1000 Wh margin: open.
    # j = 2 (h = 32, 2026-04-02 08:00): 14000 - 460 x 720/32 = 3650 > 1000: clears.
    assert s.step(april(31), exp=120) == []
    assert [(e.action, e.at) for e in s.step(april(32), exp=120)] == [("clear", utc(april(32)))]
    # The 2026-04-30 23:00 reading (h = 719) after 20 000 Wh drawn since h = 32: the battery
    # (13 540 Wh) is empty, stored = 240, imported = 20 700, one hour left:
    # projected = 0 + (240 - 20700) / 719 x 1 = -28.46 -> -28: opens again.
    assert [(e.action, e.at) for e in s.step(april(719), imp=20_000)] == [("open", utc(april(719)))]
    assert s.events[-1].details == {"month": "2026-04", "level_wh": 0, "projected_wh": -28}
    # May 1st 00:30 (h = 720.5): the month changed: clears, although May has less than an hour of
    # data (no projection yet, so it does not reopen in the same reading).
    may = datetime(2026, 5, 1, tzinfo=PARIS)
    assert [(e.action, e.at) for e in s.step(may + timedelta(minutes=30), imp=300)] == [
        ("clear", utc(may + timedelta(minutes=30)))
    ]
    # May 1st 02:00: May's own projection (empty battery, import only) is negative: a new episode.
    new = s.step(may + timedelta(hours=2), imp=150)
    assert [(e.action, e.at, e.details["month"]) for e in new] == [("open", utc(may + timedelta(hours=2)), "2026-05")]


def test_battery_empty_projection_needs_an_hour_of_the_month() -> None:
    # An empty battery drawing from the grid at 00:30 on the 1st: no projection yet (None), so no
    # alert; at 01:00 (one hour of the month) projected = 0 - 100 / 1 h x 719 h < 0: opens.
    s = BatteryScenario(realtime_unlimited(), datetime(2026, 3, 31, 23, tzinfo=PARIS))
    s.step(APRIL, imp=100)
    assert s.step(april(0.5), imp=50) == []
    assert [(e.action, e.at) for e in s.step(april(1), imp=50)] == [("open", utc(april(1)))]


# --------------------------------------------------------------------------- per-PDL daily budget
#
# The contract version in force at the reading sets the PDL's own budget (alerts.daily_budget_wh);
# null/absent = the deployment's AlertSettings.daily_budget_wh (LINKY_ALERT_DAILY_BUDGET_WH).


def _budget_contract(pdl: str, *versions: dict[str, Any]) -> Contract:
    return Contract(pdl=pdl, versions=tuple(version_from_dict(v) for v in versions))


def _budget_run(pdl: str, contract: Contract | None, settings: AlertSettings) -> list[AlertEvent]:
    """Hourly readings of one PDL from 2027-03-10 00:00 to 2027-03-12 06:00 (Paris), 1000 Wh
    imported every hour, through the battery agent's per-PDL fold (ledger, then alerts)."""
    state, events = LedgerState(pdl=pdl), []
    start = datetime(2027, 3, 10, tzinfo=PARIS)
    for h in range(0, 55):
        t = start + timedelta(hours=h)
        r = reading(t, pdl=pdl, import_wh=50_000 + 1000 * h, import_wh_by_period={"EASF01": 50_000 + 1000 * h},
                    tariff_index=1, tariff_period="HEURES CREUSES")  # fmt: skip
        state = ledger_fold_reading(state, r, contract).state
        state, new = fold_alerts(state, r, contract, settings, now=t)
        events += new
    return [e for e in events if e.kind == "daily_budget"]


def _budget_transitions(events: list[AlertEvent]) -> list[tuple[str, datetime, int | None]]:
    return [(e.action, e.at, e.details.get("budget_wh")) for e in events]


def paris(day: int, hour: int) -> datetime:
    return utc(datetime(2027, 3, day, hour, tzinfo=PARIS))


# Today's import after the reading at hour h is 1000 x h on the 10th (00:00 is the baseline) and
# 1000 x (h + 1) on the next days (the 23:00-00:00 delta counts on the new day). It opens at the
# first reading strictly above the budget and clears at the first reading of the next day.
OWN = _budget_contract(
    "11111111111111",
    {"effective_from": "2027-03-01", "offer": "none", "alerts": {"daily_budget_wh": 8000}},
    # A new budget from 00:00 on the 11th: 3000 Wh.
    {"effective_from": "2027-03-11", "offer": "virtual_battery", "battery": {"capacity_wh": None},
     "alerts": {"daily_budget_wh": 3000}},
    # From the 12th the version has no budget of its own: the deployment default again.
    {"effective_from": "2027-03-12", "offer": "none", "alerts": {"daily_budget_wh": None}},
)  # fmt: skip


@pytest.mark.parametrize("default", [5000, None])
def test_a_pdl_budget_from_its_contract_overrides_the_deployment_default(default: int | None) -> None:
    settings = AlertSettings(daily_budget_wh=default, peak_alerts=False)
    own = _budget_run("11111111111111", OWN, settings)
    # 10th: 8000 -> opens at 09:00 (9000 > 8000); 11th: 3000 -> opens at 03:00 (4000 > 3000);
    # 12th: the default 5000 -> opens at 05:00 (6000 > 5000), nothing without a default.
    expected = [("open", paris(10, 9), 8000), ("clear", paris(11, 0), None), ("open", paris(11, 3), 3000),
                ("clear", paris(12, 0), None)]  # fmt: skip
    if default is not None:
        expected.append(("open", paris(12, 5), 5000))
    assert _budget_transitions(own) == expected
    # Another PDL of the same worker, with a contract without budget or with no contract at all,
    # keeps the deployment default 5000: opens at 06:00 on the 10th (6000), at 05:00 after.
    plain = _budget_contract("22222222222222", {"effective_from": "2027-03-01", "offer": "none"})
    for other in (_budget_run("22222222222222", plain, settings), _budget_run("33333333333333", None, settings)):
        if default is None:
            assert other == []
        else:
            assert _budget_transitions(other) == [
                ("open", paris(10, 6), 5000), ("clear", paris(11, 0), None),
                ("open", paris(11, 5), 5000), ("clear", paris(12, 0), None), ("open", paris(12, 5), 5000),
            ]  # fmt: skip
    assert settings.daily_budget_wh == default  # the shared settings are not modified


def test_battery_alerts_clear_when_no_contract_version_is_in_force() -> None:
    # The same empty battery as above, open at 01:00; then the contract is deleted (tombstone:
    # no version in force): both battery alerts clear at the next reading, instead of never.
    s = BatteryScenario(realtime_unlimited(), datetime(2026, 3, 31, 23, tzinfo=PARIS))
    s.step(APRIL, imp=100)
    assert [e.action for e in s.step(april(1), imp=50)] == ["open"]
    s.state, new = fold_reading(s.state, reading(april(2)), SETTINGS, contract_version=None, battery=s.battery)
    assert [(e.kind, e.action, e.at) for e in new] == [("battery_empty", "clear", utc(april(2)))]
