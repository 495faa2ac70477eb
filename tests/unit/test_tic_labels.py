"""teleinfo.labels: the label table covers both specs and validates width and charset."""

from __future__ import annotations

import pytest

from teleinfo.labels import (
    HISTORIC_LABELS,
    HORODATE_LABELS,
    LABELS,
    MAX_FRAME_BYTES,
    STANDARD_LABELS,
    label_info,
    valid_horodate,
    valid_label,
)

# protocol.md §2.1 (historic, mono + tri) and §2.2 (standard, incl. tri and producer).
HISTORIC = """ADCO OPTARIF ISOUSC BASE HCHC HCHP EJPHN EJPHPM BBRHCJB BBRHPJB BBRHCJW BBRHPJW
BBRHCJR BBRHPJR PEJP PTEC DEMAIN IINST IINST1 IINST2 IINST3 ADPS ADIR1 ADIR2 ADIR3 IMAX IMAX1
IMAX2 IMAX3 PMAX PAPP HHPHC MOTDETAT PPOT GAZ AUTRE""".split()
STANDARD = """ADSC VTIC DATE NGTF LTARF EAST EASF01 EASF02 EASF03 EASF04 EASF05 EASF06 EASF07
EASF08 EASF09 EASF10 EASD01 EASD02 EASD03 EASD04 EAIT ERQ1 ERQ2 ERQ3 ERQ4 IRMS1 IRMS2 IRMS3
URMS1 URMS2 URMS3 PREF PCOUP SINSTS SINSTS1 SINSTS2 SINSTS3 SMAXSN SMAXSN1 SMAXSN2 SMAXSN3
SMAXSN-1 SMAXSN1-1 SMAXSN2-1 SMAXSN3-1 SINSTI SMAXIN SMAXIN-1 CCASN CCASN-1 CCAIN CCAIN-1
UMOY1 UMOY2 UMOY3 STGE DPM1 FPM1 DPM2 FPM2 DPM3 FPM3 MSG1 MSG2 PRM RELAIS NTARF NJOURF
NJOURF+1 PJOURF+1 PPOINTE""".split()
# The 24 labels with a horodate (protocol.md §1.6).
WITH_HORODATE = """DATE SMAXSN SMAXSN1 SMAXSN2 SMAXSN3 SMAXSN-1 SMAXSN1-1 SMAXSN2-1 SMAXSN3-1
SMAXIN SMAXIN-1 CCASN CCASN-1 CCAIN CCAIN-1 UMOY1 UMOY2 UMOY3 DPM1 FPM1 DPM2 FPM2 DPM3
FPM3""".split()


def test_every_label_of_both_specs_is_known() -> None:
    assert sorted(HISTORIC_LABELS) == sorted(HISTORIC)
    assert sorted(STANDARD_LABELS) == sorted(STANDARD)
    assert set(LABELS) == set(HISTORIC) | set(STANDARD)
    assert HORODATE_LABELS == frozenset(WITH_HORODATE)


def test_entries_carry_meaning_unit_type_and_flags() -> None:
    for info in LABELS.values():
        assert info.meaning and info.type
    assert (label_info("EAST").unit, label_info("EAST").type, label_info("EAST").width) == (
        "Wh", "int", 9)
    assert label_info("SINSTI").producer and label_info("EAIT").producer
    assert not label_info("SINSTS").producer
    assert label_info("IRMS3").three_phase and label_info("IRMS3").phase == 3
    assert label_info("ADIR2").short_frame
    assert label_info("PREF").unit == "kVA"
    assert label_info("NOPE") is None


@pytest.mark.parametrize(("label", "value", "ok"), [
    ("EAST", b"021849106", True),
    ("EAST", b"02184910", False),  # 8 digits (esphome/issues #4690)
    ("EAST", b"0218491p6", False),  # bit-6 flip '0'->'p' keeps the 6-bit sum
    ("EAST", b" 21849106", False),
    ("STGE", b"463A0800", True),
    ("STGE", b"463a0800", False),
    ("NGTF", b"     TEMPO      ", True),
    ("NGTF", b"PRODUCTEUR", True),  # shorter than 16 on a real meter (F5)
    ("NGTF", b"X" * 17, False),
    ("NGTF", b"TEMPO\x7f", False),
    ("DATE", b"", True),
    ("DATE", b"0", False),
    ("PTEC", b"HCJB", True),
    ("PTEC", b"hcjb", False),
    ("DEMAIN", b"ROUG", True),
    ("DEMAIN", b"ROUX", False),
    ("ADCO", b"021861348497", True),
    ("ADCO", b"XXXXXXXXXXXX", True),  # anonymised public fixture (F2)
    ("ADCO", b"02186134849", False),
    ("OPTARIF", b"BBR(", True),
    ("PJOURF+1", b"00004001 06004002 22004001" + b" NONUTILE" * 8, True),
    ("PPOINTE", b"00008002 0300C001 08008002", True),
    ("PJOURF+1", b"00004001  NONUTILE", False),
    ("PJOURF+1", b"0000400G", False),
    ("PRM", b"07361794479930", True),
    ("PRM", b"0736179447993", False),
])
def test_value_validation(label: str, value: bytes, ok: bool) -> None:
    assert LABELS[label].validate(value) is ok


@pytest.mark.parametrize(("horodate", "ok"), [
    (b"H240210121413", True),
    (b"E090714074553", True),
    (b"h240210121413", True),  # degraded clock
    (b"e240210121413", True),
    (b" 200214060000", True),  # DPM/FPM: no season
    (b"X240210121413", False),
    (b"H2402101214", False),
    (b"H24021012141a", False),
    (b"H241310121413", False),  # month 13
    (b"H240230121413", False),  # 30 February
    (b"H240229121413", True),  # leap year
    (b"H230229121413", False),
    (b"H240210241413", False),  # hour 24
    (b"H240210126013", False),
])
def test_horodate_validation(horodate: bytes, ok: bool) -> None:
    assert valid_horodate(horodate) is ok


@pytest.mark.parametrize(("label", "ok"), [
    (b"SMAXSN1-1", True), (b"NJOURF+1", True), (b"CC@SN", False), (b"", False),
    (b"ABCDEFGHIJ", False), (b"adco", False),
])
def test_label_charset(label: bytes, ok: bool) -> None:
    assert valid_label(label) is ok


def test_frame_bound_fits_the_largest_real_frame_and_is_bounded() -> None:
    assert 1442 < MAX_FRAME_BYTES < 8192
