"""tables/live.py: the live payload and the newer-than rule; stream/web.py query bounds."""

from __future__ import annotations


import pytest

from tables.live import is_newer, live_payload


def reading(**kw: object) -> dict:
    base = {"pdl": "P1", "meter": "M1", "mode": "standard", "time": "2026-10-25T02:30:00+01:00",
            "tariff_period": "HEURE CREUSE", "import_wh": 1000, "export_wh": 50, "power_va": 1200,
            "export_power_va": 300, "current_a": [5], "voltage_v": [231], "subscribed_kva": 9,
            "overload": False, "status": None}  # fmt: skip
    base.update(kw)
    return base


def test_live_payload_fields_and_net_power() -> None:
    p = live_payload(reading(), pdl="P1")
    assert p["schema_version"] == 1 and p["pdl"] == "P1"
    assert p["time"] == "2026-10-25T02:30:00+01:00"  # the second 02:30 of the fall-back day, kept
    assert (p["power_va"], p["export_power_va"], p["net_power_va"]) == (1200, 300, 900)
    assert p["current_a"] == [5] and p["voltage_v"] == [231] and p["tariff_period"] == "HEURE CREUSE"
    historic = live_payload(reading(mode="historic", export_power_va=None, voltage_v=None, export_wh=None), pdl="P1")
    assert historic["net_power_va"] == 1200 and historic["voltage_v"] is None
    assert live_payload(reading(power_va=None), pdl="P1")["net_power_va"] is None
    # a time in UTC is rendered in Paris time
    assert live_payload(reading(time="2026-07-01T10:00:00+00:00"), pdl="P1")["time"] == "2026-07-01T12:00:00+02:00"


def test_only_strictly_newer_readings_replace_the_stored_one() -> None:
    stored = live_payload(reading(), pdl="P1")
    assert is_newer(stored, None)
    assert not is_newer(live_payload(reading(), pdl="P1"), stored)  # duplicate
    # same instant written with another offset: still the same reading
    assert not is_newer(live_payload(reading(time="2026-10-25T01:30:00+00:00"), pdl="P1"), stored)
    assert is_newer(live_payload(reading(time="2026-10-25T02:30:02+01:00"), pdl="P1"), stored)
    assert not is_newer(live_payload(reading(time="2026-10-25T02:30:00+02:00"), pdl="P1"), stored)  # older


def test_reading_without_time_is_refused() -> None:
    with pytest.raises(ValueError):
        live_payload(reading(time=None), pdl="P1")


def test_live_payload_carries_what_the_page_shows() -> None:
    """Reception time (age of the reading), per-register indexes, Tempo colours of today/tomorrow."""
    p = live_payload(reading(received_at="2026-10-25T01:30:00.250+00:00",
                             import_wh_by_period={"EASF01": 700, "EASF02": 300, "EASF03": None},
                             status={"tempo_today": "white", "tempo_tomorrow": "red"}), pdl="P1")  # fmt: skip
    assert p["received_at"] == "2026-10-25T01:30:00.250+00:00"
    assert p["import_wh_by_period"] == {"EASF01": 700, "EASF02": 300}
    assert (p["tempo_today"], p["tempo_tomorrow"]) == ("white", "red")
    bare = live_payload(reading(status={"tempo_today": "mauve"}), pdl="P1")
    assert (bare["received_at"], bare["import_wh_by_period"], bare["tempo_today"], bare["tempo_tomorrow"]) == (
        None, None, None, None)  # fmt: skip
