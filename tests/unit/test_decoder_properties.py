"""Property tests (hypothesis): chunking, corruption, random bytes."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teleinfo.encode import encode_frame, encode_group
from teleinfo.protocol import Frame, FrameDecoder
from teleinfo.reading import build_reading

FRAMES = Path(__file__).resolve().parents[2] / ".." / "shared" / "tic" / "frames"

# Hand-built frames of both modes (the real ones join when ../shared is present).
_STD = encode_frame([
    ("ADSC", None, "041776199277"), ("VTIC", None, "02"), ("DATE", "H200214230804", ""),
    ("NGTF", None, "     TEMPO      "), ("EAST", None, "021849106"),
    ("EASF01", None, "004855593"), ("IRMS1", None, "003"), ("URMS1", None, "237"),
    ("PREF", None, "30"), ("SINSTS", None, "02700"), ("SMAXSN-1", "H200213085118", "09562"),
    ("DPM1", " 200214060000", "00"), ("STGE", None, "463A0800"),
    ("PJOURF+1", None, "00004001 06004002 22004001" + " NONUTILE" * 8),
], "standard")
_HIST = encode_frame([
    ("ADCO", None, "021861348497"), ("OPTARIF", None, "BASE"), ("ISOUSC", None, "30"),
    ("BASE", None, "018328702"), ("PTEC", None, "TH.."), ("IINST", None, "012"),
    ("PAPP", None, "02830"), ("MOTDETAT", None, "000000"),
], "historic")
_HIST2 = encode_frame([("ADCO", None, "021861348497"), ("PAPP", None, "02830"),
                       ("IINST", None, "012")], "historic", historic_checksum=2)


def _real() -> list[bytes]:
    if not FRAMES.is_dir():
        return []
    names = ["F1.bin", "F2.bin", "F3.bin", "F4.bin", "F5.bin", "F6.bin"]
    return [(FRAMES / n).read_bytes() for n in names if (FRAMES / n).is_file()]


TEMPLATES = [_STD, _HIST, _HIST2, *_real()]
CONTROL = b"\x02\x03\x04\n\r\t \x0c"
PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def feed_all(chunks: list[bytes]) -> tuple[list[Frame], FrameDecoder]:
    decoder = FrameDecoder()
    return [f for c in chunks for f in decoder.feed(c)], decoder


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


stream_st = st.lists(
    st.one_of(
        st.sampled_from(TEMPLATES),
        st.sampled_from(TEMPLATES).map(lambda f: f[: len(f) // 2] + b"\x04"),  # EOT-cut
        st.binary(max_size=40),  # line noise
    ),
    min_size=1, max_size=8,
).map(b"".join)


@PROPS
@given(stream_st, st.lists(st.integers(min_value=0), max_size=60))
def test_random_chunking_gives_identical_output(stream: bytes, cuts: list[int]) -> None:
    whole, d1 = feed_all([stream])
    chunked, d2 = feed_all(split_at(stream, cuts))
    assert chunked == whole
    assert d2.stats == d1.stats


@PROPS
@given(stream_st)
def test_one_byte_at_a_time(stream: bytes) -> None:
    whole, d1 = feed_all([stream])
    bytewise, d2 = feed_all([stream[i:i + 1] for i in range(len(stream))])
    assert bytewise == whole and d2.stats == d1.stats


def _valid_encodings(frame: Frame, label: str, value: str) -> list[bytes]:
    horodate = frame.horodates.get(label)
    if frame.mode == "standard":
        return [encode_group(label, value, horodate)]
    return [encode_group(label, value, mode="historic", historic_checksum=m) for m in (1, 2)]


mutation_st = st.lists(
    st.tuples(st.integers(min_value=0), st.sampled_from(["flip", "set", "delete", "insert"]),
              st.integers(min_value=0, max_value=255)),
    min_size=1, max_size=12,
)


@PROPS
@given(st.lists(st.sampled_from(TEMPLATES), min_size=1, max_size=4), mutation_st)
def test_corruption_never_yields_a_value_with_a_failed_checksum(
        frames: list[bytes], mutations: list[tuple[int, str, int]]) -> None:
    data = bytearray(b"".join(frames))
    for pos, op, byte in mutations:
        i = pos % len(data)
        if op == "flip":
            data[i] ^= 1 << (byte % 8)
        elif op == "set":
            data[i] = byte
        elif op == "delete" and len(data) > 1:
            del data[i]
        else:
            data.insert(i, byte)
    received = bytes(data)
    stripped = bytes(b & 0x7F for b in received)  # what the decoder reads (8N1 tolerance)
    decoded, _ = feed_all([received])
    for frame in decoded:
        json.dumps(build_reading(frame, None))
        for label, value in frame.groups.items():
            # every returned value comes from a group, present as such in the input, whose
            # checksum is valid
            assert any(g in stripped for g in _valid_encodings(frame, label, value)), (
                label, value)


@PROPS
@given(st.lists(st.one_of(st.binary(max_size=64),
                          st.lists(st.sampled_from(list(CONTROL) + list(b"EAST0123H")),
                                   max_size=64).map(bytes)),
                max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            json.dumps(build_reading(frame, None))
    json.dumps(decoder.stats.as_dict())
