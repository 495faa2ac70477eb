"""teleinfo.reading: the normalized reading (contract field names, nulls, both modes)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from teleinfo.encode import encode_frame, encode_group
from teleinfo.protocol import Frame, FrameDecoder
from teleinfo.reading import READING_FIELDS, build_reading, horodate_to_datetime, horodate_to_iso

FRAMES = Path(__file__).resolve().parents[2] / ".." / "shared" / "tic" / "frames"
CONTRACT = {"pdl", "meter", "mode", "time", "tariff_period", "import_wh", "import_wh_by_period",
            "export_wh", "power_va", "export_power_va", "current_a", "voltage_v",
            "subscribed_kva", "overload", "status"}


def real(name: str) -> Frame:
    path = FRAMES / f"{name}.bin"
    if not path.is_file():
        pytest.skip(f"real frames not found at {FRAMES} (../shared/tic/frames)")
    (frame,) = FrameDecoder().feed(path.read_bytes())
    return frame


def frame(groups: list[tuple[str, str | None, str]], mode: str = "standard",
          extra: bytes = b"") -> Frame:
    raw = encode_frame(groups, mode)
    (f,) = FrameDecoder().feed(raw[:-1] + extra + raw[-1:])
    return f


def test_contract_field_names() -> None:
    assert set(READING_FIELDS) == CONTRACT
    for name in ("F1", "F4"):
        reading = build_reading(real(name), None)
        assert CONTRACT <= set(reading)
        json.dumps(reading)


def test_f1_historic_tempo() -> None:
    r = build_reading(real("F1"), None)
    assert r["pdl"] == r["meter"] == "021861348497"
    assert r["mode"] == "historic"
    assert r["time"] is None
    assert r["tariff_period"] == "HCJB"
    assert r["import_wh_by_period"] == {
        "BBRHCJB": 18328702, "BBRHPJB": 23739545, "BBRHCJW": 1466099, "BBRHPJW": 2132883,
        "BBRHCJR": 860118, "BBRHPJR": 844115}
    assert r["import_wh"] == 18328702 + 23739545 + 1466099 + 2132883 + 860118 + 844115
    assert r["power_va"] == 2830
    assert r["current_a"] == [12]
    assert r["voltage_v"] is None
    assert r["subscribed_kva"] == pytest.approx(6.0)  # ISOUSC 30 A x 0.2 kVA
    assert r["overload"] is False
    assert r["export_wh"] is None and r["export_power_va"] is None and r["status"] is None


def test_f2_historic_three_phase() -> None:
    r = build_reading(real("F2"), None)
    assert r["import_wh"] == 1181243
    assert r["current_a"] == [0, 2, 0]
    assert r["power_va"] == 540
    assert r["subscribed_kva"] == pytest.approx(12.0)  # 20 A x 0.2 kVA x 3 phases
    assert r["tariff_period"] == "TH.."


def test_f3_standard_mono() -> None:
    r = build_reading(real("F3"), None)
    assert r["meter"] == "012345678910"
    # F3's PRM is all zeros (anonymised): not an identity, so the PDL falls back to ADSC.
    assert r["pdl"] == "012345678910"
    assert r["time"] == "2024-02-10T12:14:13+01:00"
    assert r["tariff_period"] == "BASE"
    assert r["import_wh"] == 3519703
    assert r["import_wh_by_period"]["EASF01"] == 3519703
    assert len(r["import_wh_by_period"]) == 10
    assert r["power_va"] == 260 and r["current_a"] == [1] and r["voltage_v"] == [241]
    assert r["subscribed_kva"] == 6
    assert r["export_wh"] is None and r["export_power_va"] is None
    assert r["status"]["tic_mode"] == "standard"
    assert r["overload"] is False


def test_f4_standard_three_phase() -> None:
    r = build_reading(real("F4"), None)
    assert r["pdl"] == "07361794479930" and r["meter"] == "041776199277"
    assert r["time"] == "2020-02-14T23:08:04+01:00"
    assert r["tariff_period"] == "HC  BLANC"
    assert r["import_wh"] == 21849106
    assert r["current_a"] == [3, 6, 3] and r["voltage_v"] == [237, 238, 235]
    assert r["power_va"] == 2700 and r["subscribed_kva"] == 30
    assert r["status"]["tempo_today"] == "white" and r["status"]["mobile_peak"] == 1


def test_f5_f6_producers() -> None:
    r5 = build_reading(real("F5"), None)
    assert (r5["export_wh"], r5["power_va"], r5["export_power_va"]) == (32781, 0, 1253)
    assert r5["time"] == "2018-07-16T10:34:23+02:00"  # summer time
    assert r5["status"]["producer"] and r5["status"]["active_energy_negative"]
    r6 = build_reading(real("F6"), None)
    assert (r6["import_wh"], r6["export_wh"], r6["export_power_va"]) == (11604109, 671631, 0)
    assert r6["voltage_v"] == [234, 240, 242] and r6["subscribed_kva"] == 18


def test_receive_time_used_only_without_date() -> None:
    at = datetime(2024, 2, 10, 11, 14, 13, tzinfo=timezone.utc)
    assert build_reading(real("F1"), at)["time"] == "2024-02-10T11:14:13.000+00:00"  # millisecond precision
    assert build_reading(real("F3"), at)["time"] == "2024-02-10T12:14:13+01:00"


def test_dropped_sources_are_null_not_guessed() -> None:
    corrupt = b"\nEAST\t021849107\t.\r\nIRMS2\t006\t6\r\nSTGE\t463A0800\tL\r"
    f = frame([("ADSC", None, "041776199277"), ("IRMS1", None, "003"), ("IRMS3", None, "003"),
               ("SINSTS", None, "02700")], extra=corrupt)
    assert f.invalid == ["EAST", "IRMS2", "STGE"]
    r = build_reading(f, None)
    assert r["import_wh"] is None
    assert r["current_a"] == [3, None, 3]  # phase 2 dropped: null, three phases still known
    assert r["status"] is None and r["overload"] is None
    assert r["pdl"] == "041776199277"  # no PRM: the meter address
    assert r["voltage_v"] is None and r["tariff_period"] is None


def test_historic_sum_is_null_when_an_index_is_missing() -> None:
    groups = [("ADCO", None, "021861348497"), ("OPTARIF", None, "HC.."),
              ("HCHC", None, "000000100"), ("HCHP", None, "000000200"), ("IINST", None, "001")]
    assert build_reading(frame(groups, "historic"), None)["import_wh"] == 300
    dropped = frame(groups[:3] + groups[4:], "historic", extra=b"\nHCHP 000000200 X\r")
    assert dropped.invalid == ["HCHP"]
    r = build_reading(dropped, None)
    assert r["import_wh"] is None
    assert r["import_wh_by_period"] == {"HCHC": 100}
    # unknown option: the sum stands only when no dropped group could be an index
    no_option = [g for g in groups if g[0] != "OPTARIF"]
    assert build_reading(frame(no_option, "historic"), None)["import_wh"] == 300
    garbled = frame(no_option, "historic", extra=b"\nHC@P 000000200 X\r")
    assert garbled.invalid == ["?"]
    assert build_reading(garbled, None)["import_wh"] is None


def test_historic_overload_warnings() -> None:
    short = [("ADIR1", None, "021"), ("ADIR2", None, "000"), ("ADIR3", None, "000"),
             ("ADCO", None, "031861348497"), ("IINST1", None, "021"), ("IINST2", None, "004"),
             ("IINST3", None, "005")]
    r = build_reading(frame(short, "historic"), None)
    assert r["overload"] is True
    assert r["current_a"] == [21, 4, 5]
    assert r["import_wh"] is None and r["power_va"] is None and r["subscribed_kva"] is None
    mono = [("ADCO", None, "021861348497"), ("IINST", None, "031"), ("ADPS", None, "031")]
    assert build_reading(frame(mono, "historic"), None)["overload"] is True


def test_standard_overload_from_stge_bit_7() -> None:
    f = frame([("ADSC", None, "041776199277"), ("STGE", None, "003A0080")])
    assert build_reading(f, None)["overload"] is True


def test_degraded_clock_season() -> None:
    r = build_reading(frame([("DATE", "e240710121413", "")]), None)
    assert r["time"] == "2024-07-10T12:14:13+02:00"
    assert r["clock_degraded"] is True


def test_horodate_helpers() -> None:
    assert horodate_to_iso("H081225223518") == "2008-12-25T22:35:18+01:00"
    assert horodate_to_iso("E090714074553") == "2009-07-14T07:45:53+02:00"
    assert horodate_to_iso(" 200214060000") is None
    assert horodate_to_datetime("E090714074553") == datetime(
        2009, 7, 14, 7, 45, 53, tzinfo=timezone(timedelta(hours=2)))
    assert horodate_to_datetime(" 200214060000") == datetime(2020, 2, 14, 6, 0)
    assert horodate_to_datetime("H200231000000") is None


def test_reading_values_are_independent_copies() -> None:
    f = real("F4")
    first = build_reading(f, None)
    first["status"]["overload"] = "mutated"
    first["import_wh_by_period"]["EASF01"] = -1
    second = build_reading(f, None)
    assert second["status"]["overload"] is False
    assert second["import_wh_by_period"]["EASF01"] == 4855593


def test_tariff_label_with_only_spaces_is_null() -> None:
    f = frame([("LTARF", None, " " * 16), ("ADSC", None, "041776199277")])
    assert build_reading(f, None)["tariff_period"] is None


def test_unused_standard_label_group_does_not_break_reading() -> None:
    raw = encode_frame([("ADSC", None, "041776199277")], "standard")
    (f,) = FrameDecoder().feed(raw[:-1] + encode_group("FOO", "bar") + raw[-1:])
    assert f.groups["FOO"] == "bar"
    assert build_reading(f, None)["meter"] == "041776199277"
