"""Households' alert preferences (tables/alerts.py, set in the portal) and the recent episodes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tables.alerts import (
    RECENT_KEPT,
    AlertPreferences,
    AlertSettings,
    AlertState,
    PreferencesError,
    fold_reading,
    preferences_from_dict,
    preferences_to_dict,
    render_open_alerts,
    state_from_dict,
    state_to_dict,
    visible_events,
    visible_open,
)
from tables.ledger import LedgerState, fold_alerts
from tables.ledger import fold_reading as ledger_fold_reading
from tests.unit.test_alerts import PARIS, SETTINGS, _budget_contract, reading, utc

T0 = datetime(2027, 3, 10, 10, tzinfo=PARIS)


def overload_episodes(n: int) -> tuple[AlertState, list]:
    """``n`` overload episodes (meter flag on for one reading, then calm for long enough)."""
    state, events, t = AlertState(), [], T0
    settings = AlertSettings(overload_clear_seconds=0)
    for _ in range(n):
        for flag in (True, False):
            state, new = fold_reading(state, reading(t, overload=flag), settings)
            events += new
            t += timedelta(minutes=10)
    return state, events


def test_ended_episodes_are_kept_newest_first_and_bounded() -> None:
    state, events = overload_episodes(RECENT_KEPT + 3)
    assert [e.action for e in events[:2]] == ["open", "clear"]
    recent = render_open_alerts(state)["recent"]
    assert len(recent) == RECENT_KEPT  # the three oldest dropped
    assert recent[0] == {"kind": "overload", "since": events[-2].at.isoformat(), "until": events[-1].at.isoformat()}
    assert recent[-1]["since"] == events[6].at.isoformat()  # episode 4 of 23 is the oldest kept
    assert state_from_dict(state_to_dict(state)) == state  # stored with the state
    assert state_from_dict({**state_to_dict(state), "recent": None} | {"recent": []}).recent == ()


def test_preferences_are_validated_with_a_reason() -> None:
    prefs = preferences_from_dict({"enabled": {"peak_period": False}, "daily_budget_wh": 12_500,
                                   "bill_over_installment_share": 0.1})  # fmt: skip
    assert not prefs.shows("peak_period") and prefs.shows("overload")
    doc = preferences_to_dict(prefs)
    assert doc["enabled"]["peak_period"] is False and doc["enabled"]["daily_budget"] is True
    assert preferences_to_dict(preferences_from_dict(doc)) == doc
    for body, reason in [
        ([], "JSON object"),
        ({"colour": "red"}, "unknown field"),
        ({"enabled": {"fire": True}}, "unknown alert kind"),
        ({"enabled": {"overload": "no"}}, "true or false"),
        ({"enabled": ["overload"]}, "an object"),
        ({"daily_budget_wh": -5}, "daily_budget_wh"),
        ({"daily_budget_wh": 1.5}, "daily_budget_wh"),
        ({"daily_budget_wh": True}, "daily_budget_wh"),
        ({"daily_budget_wh": 10**9}, "daily_budget_wh"),
        ({"bill_over_installment_share": "0.1"}, "bill_over_installment_share"),
        ({"bill_over_installment_share": 9}, "bill_over_installment_share"),
        ({"updated_at": "yesterday"}, "updated_at"),
    ]:
        with pytest.raises(PreferencesError, match=reason):
            preferences_from_dict(body)


def test_switched_off_kinds_are_tracked_but_not_shown() -> None:
    state, events = overload_episodes(1)
    state, opened = fold_reading(state, reading(T0 + timedelta(hours=2), overload=True), AlertSettings())
    off = AlertPreferences(enabled={"overload": False})
    assert visible_events(events + opened, off) == []
    assert visible_events(events + opened, None) == events + opened
    shown = visible_open(render_open_alerts(state), off)
    assert shown["open"] == [] and shown["recent"] == []
    assert [a["kind"] for a in render_open_alerts(state)["open"]] == ["overload"]  # still tracked
    assert [a["kind"] for a in visible_open(render_open_alerts(state), AlertPreferences())["open"]] == ["overload"]


def test_the_households_budget_wins_over_the_contracts_and_the_deployments() -> None:
    pdl = "22222222222222"
    contract = _budget_contract(pdl, {"effective_from": "2027-03-01", "offer": "none", "alerts": {"daily_budget_wh": 8000}})

    def opened_at(prefs: AlertPreferences | None) -> list[datetime]:
        state, out = LedgerState(pdl=pdl), []
        start = datetime(2027, 3, 10, tzinfo=PARIS)
        for h in range(0, 20):
            t = start + timedelta(hours=h)
            r = reading(t, pdl=pdl, import_wh=50_000 + 1000 * h, import_wh_by_period={"EASF01": 50_000 + 1000 * h})
            state = ledger_fold_reading(state, r, contract).state
            state, new = fold_alerts(state, r, contract, SETTINGS, now=t, prefs=prefs)
            out += [e.at for e in new if e.kind == "daily_budget" and e.action == "open"]
        return out

    start = datetime(2027, 3, 10, tzinfo=PARIS)
    assert opened_at(None) == [utc(start + timedelta(hours=9))]  # the contract's 8 kWh
    assert opened_at(AlertPreferences(daily_budget_wh=3000)) == [utc(start + timedelta(hours=4))]
    assert opened_at(AlertPreferences(enabled={"daily_budget": False})) == [utc(start + timedelta(hours=9))]
