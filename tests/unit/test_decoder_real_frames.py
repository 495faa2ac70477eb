"""Real captured frames F1-F6 and the 15 real corrupted groups (protocol.md §4)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from teleinfo.protocol import FrameDecoder

FRAMES = Path(__file__).resolve().parents[2] / ".." / "shared" / "tic" / "frames"

SHA256 = {
    "F1": "3e1f4ab7ca96debb850c5739be55c8ac33fad53e6637250a1e68f7daed58d573",
    "F2": "096b1ca07ab8e8d68702492694727ddf11667b4ac6fe8c5c0cc634059b03a3d9",
    "F3": "db6e688797893c9acb399a9d63df7aa3ff3effa811666f1ed6eb4e08bf8d5b8f",
    "F4": "06c8a94c41c84ed3ff7e444d37c8f3e5b0de1fedf27fe89a1825a313f383370c",
    "F5": "6ca3d67eb4d20f5253591bb62ed5bb15cf3414b17f322f828f874f2653921ab1",
    "F6": "8f7c1d684aea0b6f09e6d191d229c26bf0e67e0cf3fefe6c10efc523a0e38af6",
}
MODES_AND_COUNTS = {"F1": ("historic", 16), "F2": ("historic", 15), "F3": ("standard", 38),
                    "F4": ("standard", 55), "F5": ("standard", 46), "F6": ("standard", 63)}

# Expected values, protocol.md §4.
EXPECTED: dict[str, dict[str, str]] = {
    "F1": {"ADCO": "021861348497", "OPTARIF": "BBR(", "ISOUSC": "30", "BBRHCJB": "018328702",
           "BBRHPJR": "000844115", "PTEC": "HCJB", "DEMAIN": "ROUG", "IINST": "012",
           "IMAX": "090", "PAPP": "02830", "HHPHC": "A", "MOTDETAT": "000000"},
    "F2": {"ADCO": "XXXXXXXXXXXX", "ISOUSC": "20", "BASE": "001181243", "PTEC": "TH..",
           "IINST1": "000", "IINST2": "002", "IINST3": "000", "IMAX1": "026", "IMAX2": "018",
           "IMAX3": "027", "PMAX": "07990", "PAPP": "00540", "MOTDETAT": "400000",
           "PPOT": "00"},
    "F3": {"ADSC": "012345678910", "DATE": "", "NGTF": "base            ",
           "LTARF": "BASE            ", "EAST": "003519703", "EASF01": "003519703",
           "EASD01": "003519703", "IRMS1": "001", "URMS1": "241", "PREF": "06", "PCOUP": "06",
           "SINSTS": "00260", "SMAXSN": "00986", "STGE": "003A0000",
           "PJOURF+1": "0000C001" + " NONUTILE" * 10},
    "F4": {"NGTF": "     TEMPO      ", "LTARF": "   HC  BLANC    ", "NTARF": "03",
           "EAST": "021849106", "IRMS1": "003", "IRMS2": "006", "IRMS3": "003",
           "URMS1": "237", "URMS2": "238", "URMS3": "235", "PREF": "30", "PCOUP": "30",
           "SINSTS": "02700", "SINSTS1": "00664", "SINSTS2": "01373", "SINSTS3": "00664",
           "STGE": "463A0800", "DPM1": "00", "FPM1": "00", "SMAXSN-1": "09562",
           "CCASN-1": "00786"},
    "F5": {"EAST": "000000000", "EAIT": "000032781", "ERQ2": "000000890",
           "ERQ3": "000002546", "IRMS1": "005", "URMS1": "228", "PREF": "03", "PCOUP": "03",
           "SINSTS": "00000", "SINSTI": "01253", "STGE": "002A0301", "NGTF": "PRODUCTEUR",
           "SMAXIN-1": "01971", "EASD01": "000000000"},
    "F6": {"EAST": "011604109", "EAIT": "000671631", "URMS1": "234", "URMS2": "240",
           "URMS3": "242", "PREF": "18", "SINSTS": "00018", "SINSTS1": "00000",
           "SINSTS2": "00565", "SINSTS3": "00000", "STGE": "013A0501", "NTARF": "02",
           "PJOURF+1": "00004001 06004002 22004001" + " NONUTILE" * 8},
}
EXPECTED_HORODATES = {
    "F3": {"DATE": "H240210121413", "SMAXSN": "H240210110331"},
    "F4": {"DPM1": " 200214060000", "FPM1": " 200215060000", "CCASN": "H200214230000",
           "CCASN-1": "H200214225000", "SMAXSN2-1": "H200213101142"},
    "F6": {"CCASN": "E210414080000", "SMAXSN3-1": "E210413195814"},
}

# The 15 groups corrupted by real line noise, in file order (protocol.md §4).
BAD_LABELS = ["EAST", "EASD01", "EASF06", "EASF09", "EASD02", "EASF07", "NTARF", "SMAXSN2-1",
              "SMAXSN1", "FPM1", "SINSTS1", "?", "?", "?", "NTARF"]


def load(name: str) -> bytes:
    path = FRAMES / name
    if not path.is_file():
        pytest.skip(f"real frames not found at {FRAMES} (../shared/tic/frames)")
    return path.read_bytes()


@pytest.mark.parametrize("name", sorted(SHA256))
def test_real_frame_every_group_valid(name: str) -> None:
    raw = load(f"{name}.bin")
    assert hashlib.sha256(raw).hexdigest() == SHA256[name]
    decoder = FrameDecoder()
    (frame,) = decoder.feed(raw)
    mode, count = MODES_AND_COUNTS[name]
    assert frame.mode == mode
    assert frame.invalid == []
    assert len(frame.groups) == count
    assert decoder.stats.groups == count and decoder.stats.invalid_groups == 0
    for label, value in EXPECTED[name].items():
        assert frame.groups[label] == value, label
    for label, horodate in EXPECTED_HORODATES.get(name, {}).items():
        assert frame.horodates[label] == horodate, label


def test_all_real_frames_in_one_stream_any_chunking() -> None:
    stream = b"".join(load(f"{n}.bin") for n in sorted(SHA256))
    whole = FrameDecoder().feed(stream)
    decoder = FrameDecoder()
    chunked = [f for i in range(0, len(stream), 7) for f in decoder.feed(stream[i:i + 7])]
    assert chunked == whole
    assert [f.mode for f in whole] == [MODES_AND_COUNTS[n][0] for n in sorted(SHA256)]


def test_each_real_corrupted_group_is_rejected() -> None:
    bad = load("bad_standard_groups.bin")
    decoder = FrameDecoder()
    (frame,) = decoder.feed(b"\x02" + bad + b"\x03")
    assert frame.invalid == BAD_LABELS
    assert decoder.stats.invalid_groups == 15
    # The only group returned is EASD02, intact after EASD01's CR arrived as FF (0x0C):
    # the FF group is dropped, it is not glued to its neighbour.
    assert frame.groups == {"EASD02": "000000000"}


# The same 15 groups as received, one per line of protocol.md §4.
RECEIVED = [
    b"\nEAST  0021849106\t.\r",
    b"\nEASD01\t021849107\t@\x0c\nEASD02\t000000000\t!\r",
    b"\nEASF06\t000706363\t@\x0c\n",
    b"\nEASF09\t 00000000\t*\r",
    b"\nEASD02\t 00000000\t!\r",
    b"\nEASF07\t 00000000\t(\r",
    b"\nNTARF\t 3\tP\r",
    b"\nSMAXSN2-1\tH200213101142\t 3366\t@\r",
    b"\nSMAXSN1\tH200214175135\t 3411\t&\r",
    b"\nFPM1\t 200215060000\t 0\t_\r",
    b"\nSINSTS1\t0066 \tC\r",
    b"\nCC@SN-1\tH200214225000\t00786\t \r",
    b"\nCC@SN\tH200214230000\t01650\t5\r",
    b"\n@COUP\t30\t\\\r",
    b"\nNTARF\t03\t@\r",
]


def test_received_list_matches_the_fixture_file() -> None:
    assert b"".join(RECEIVED) == load("bad_standard_groups.bin")


@pytest.mark.parametrize("index", range(len(RECEIVED)))
def test_real_corrupted_group_inside_a_good_frame(index: int) -> None:
    """Each bad group, spliced into F4 before its ETX, is dropped; F4's 55 groups are kept."""
    f4 = load("F4.bin")
    (reference,) = FrameDecoder().feed(f4)
    (frame,) = FrameDecoder().feed(f4[:-1] + RECEIVED[index] + f4[-1:])
    assert frame.invalid == [BAD_LABELS[index]]
    assert frame.groups == reference.groups


def test_openhab_partial_first_group_is_discarded() -> None:
    """F5's source starts mid-frame with a truncated group (protocol.md §4)."""
    f5 = load("F5.bin")
    frames = FrameDecoder().feed(b"EP*PREF\t03\tB\r\n" + f5[700:] + f5)
    assert len(frames) == 1 and frames[0].invalid == []
