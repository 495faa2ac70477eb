"""teleinfo.stge: STGE worked examples (protocol.md §2.3) and day profiles (§2.2)."""

from __future__ import annotations

import pytest

from teleinfo.stge import decode_relais, decode_stge, parse_day_profile

DEFAULTS = {
    "dry_contact_open": False, "cut_off": "closed", "terminal_cover_open": False,
    "overvoltage": False, "overload": False, "producer": False,
    "active_energy_negative": False, "supplier_index": 1, "distributor_index": 1,
    "clock_degraded": False, "tic_mode": "historic", "euridis": "disabled",
    "plc_status": "new_unlock", "plc_synchronized": False, "tempo_today": None,
    "tempo_tomorrow": None, "mobile_peak_notice": 0, "mobile_peak": 0,
}


@pytest.mark.parametrize(("raw", "changed"), [
    ("00000000", {}),
    # F3 mono consumer BASE
    ("003A0000", {"tic_mode": "standard", "euridis": "enabled_secured",
                  "plc_status": "new_lock"}),
    # F4 tri Tempo: index 3, white today, blue tomorrow, PM1 in progress
    ("463A0800", {"supplier_index": 3, "tic_mode": "standard", "euridis": "enabled_secured",
                  "plc_status": "new_lock", "tempo_today": "white", "tempo_tomorrow": "blue",
                  "mobile_peak": 1}),
    # F6 tri producer Tempo
    ("013A0501", {"dry_contact_open": True, "producer": True, "supplier_index": 2,
                  "tic_mode": "standard", "euridis": "enabled_secured",
                  "plc_status": "new_lock", "tempo_today": "blue"}),
    # F5 mono producer, injecting
    ("002A0301", {"dry_contact_open": True, "producer": True, "active_energy_negative": True,
                  "tic_mode": "standard", "euridis": "enabled_unsecured",
                  "plc_status": "new_lock"}),
])
def test_worked_examples(raw: str, changed: dict[str, object]) -> None:
    assert decode_stge(raw) == {"raw": raw, **DEFAULTS, **changed}


@pytest.mark.parametrize(("bit", "field", "value"), [
    (0, "dry_contact_open", True),
    (4, "terminal_cover_open", True),
    (6, "overvoltage", True),
    (7, "overload", True),  # Tasmota wrongly used bit 3 (protocol.md §2.3)
    (8, "producer", True),
    (9, "active_energy_negative", True),
    (16, "clock_degraded", True),
    (17, "tic_mode", "standard"),
    (23, "plc_synchronized", True),
])
def test_single_bits(bit: int, field: str, value: object) -> None:
    decoded = decode_stge(f"{1 << bit:08X}")
    assert decoded[field] == value
    assert sum(decoded[k] != v for k, v in DEFAULTS.items()) == 1


def test_multi_bit_fields() -> None:
    assert decode_stge(f"{3 << 1:08X}")["cut_off"] == "open_load_shedding"
    assert decode_stge(f"{9 << 10:08X}")["supplier_index"] == 10  # 4 bits, not 3 (enedis-tic)
    assert decode_stge(f"{3 << 14:08X}")["distributor_index"] == 4
    assert decode_stge(f"{2 << 21:08X}")["plc_status"] == "registered"
    assert decode_stge(f"{3 << 21:08X}")["plc_status"] == "unknown"  # enedis-tic IndexError
    assert decode_stge(f"{3 << 24:08X}")["tempo_today"] == "red"
    assert decode_stge(f"{2 << 26:08X}")["tempo_tomorrow"] == "white"
    assert decode_stge(f"{2 << 28:08X}")["mobile_peak_notice"] == 2
    assert decode_stge(f"{3 << 30:08X}")["mobile_peak"] == 3


def test_decoded_copy_is_independent() -> None:
    first = decode_stge("463A0800")
    first["overload"] = "mutated"
    assert decode_stge("463A0800")["overload"] is False


def test_bad_stge_raises() -> None:
    with pytest.raises(ValueError):
        decode_stge("46")
    with pytest.raises(ValueError):
        decode_stge("XYZ00000")


def test_day_profile_f4() -> None:
    value = "00004001 06004002 22004001" + " NONUTILE" * 8
    entries = parse_day_profile(value)
    assert [(e["start"], e["index"], e["dry_contact"]) for e in entries] == [
        ("00:00", 1, "tempo"), ("06:00", 2, "tempo"), ("22:00", 1, "tempo")]
    assert entries[0]["action"] == "4001"
    assert entries[0]["virtual_contacts"] == [False] * 7


def test_day_profile_dry_contact_virtual_contacts_and_no_change() -> None:
    # F3: all day on index 1, dry contact closed
    assert parse_day_profile("0000C001" + " NONUTILE" * 10) == [{
        "start": "00:00", "action": "C001", "index": 1, "virtual_contacts": [False] * 7,
        "dry_contact": "closed"}]
    (entry,) = parse_day_profile("1730801F")  # contact 1 on (bit 4), index 15 = no change
    assert entry["start"] == "17:30"
    assert entry["index"] is None
    assert entry["virtual_contacts"] == [True] + [False] * 6
    assert entry["dry_contact"] == "open"
    (entry,) = parse_day_profile("0C1EC001")  # HHMM not a time: kept raw, start unknown
    assert entry["start"] is None and entry["action"] == "C001"


def test_bad_profile_raises() -> None:
    with pytest.raises(ValueError):
        parse_day_profile("0000C00")


def test_relais() -> None:
    assert decode_relais("001") == [True] + [False] * 7
    # spec example: relays 3, 4 and 8 closed -> 140
    assert [i + 1 for i, closed in enumerate(decode_relais("140")) if closed] == [3, 4, 8]
