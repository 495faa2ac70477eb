"""FrameDecoder on hand-built frames: framing, resync, bounds, validation, modes."""

from __future__ import annotations

import json

from teleinfo.encode import checksum, encode_frame, encode_group
from teleinfo.labels import MAX_FRAME_BYTES
from teleinfo.protocol import DecoderStats, Frame, FrameDecoder

STD = [
    ("ADSC", None, "041776199277"),
    ("VTIC", None, "02"),
    ("DATE", "H200214230804", ""),
    ("EAST", None, "021849106"),
    ("IRMS1", None, "003"),
    ("SINSTS", None, "02700"),
    ("SMAXSN1-1", "H200213085118", "03129"),
    ("STGE", None, "463A0800"),
]
HIST = [
    ("ADCO", None, "021861348497"),
    ("OPTARIF", None, "BASE"),
    ("ISOUSC", None, "30"),
    ("BASE", None, "018328702"),
    ("PTEC", None, "TH.."),
    ("IINST", None, "012"),
    ("PAPP", None, "02830"),
]
STD_FRAME = encode_frame(STD, "standard")
HIST_FRAME = encode_frame(HIST, "historic")


def decode(*chunks: bytes) -> tuple[list[Frame], FrameDecoder]:
    decoder = FrameDecoder()
    frames = [f for chunk in chunks for f in decoder.feed(chunk)]
    return frames, decoder


def frame_of(groups: list[bytes], *, stx: bytes = b"\x02", etx: bytes = b"\x03") -> bytes:
    return stx + b"".join(groups) + etx


def test_standard_frame() -> None:
    (frame,), decoder = decode(STD_FRAME)
    assert frame.mode == "standard"
    assert frame.groups == {label: value for label, _, value in STD}
    assert frame.horodates == {"DATE": "H200214230804", "SMAXSN1-1": "H200213085118"}
    assert frame.invalid == []
    assert frame.size == len(STD_FRAME)
    assert (decoder.mode, decoder.baud) == ("standard", 9600)
    assert decoder.stats.frames == 1 and decoder.stats.groups == len(STD)


def test_historic_frame() -> None:
    (frame,), decoder = decode(HIST_FRAME)
    assert frame.mode == "historic"
    assert frame.groups == {label: value for label, _, value in HIST}
    assert frame.horodates == {}
    assert (decoder.mode, decoder.baud) == ("historic", 1200)


def test_frame_is_frozen() -> None:
    (frame,), _ = decode(STD_FRAME)
    try:
        frame.mode = "historic"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("Frame must be frozen")


def test_one_byte_chunks_give_the_same_frames() -> None:
    stream = STD_FRAME + HIST_FRAME + STD_FRAME
    whole, _ = decode(stream)
    bytewise, _ = decode(*(stream[i:i + 1] for i in range(len(stream))))
    assert bytewise == whole and len(whole) == 3


def test_eot_drops_the_frame_being_sent() -> None:
    cut = STD_FRAME[:40] + b"\x04"
    frames, decoder = decode(STD_FRAME + cut + HIST_FRAME)
    assert [f.mode for f in frames] == ["standard", "historic"]
    assert decoder.stats.interrupted_frames == 1
    assert decoder.stats.frames == 2


def test_new_stx_before_etx_interrupts() -> None:
    frames, decoder = decode(STD_FRAME[:60] + STD_FRAME)
    assert len(frames) == 1 and frames[0].groups["EAST"] == "021849106"
    assert decoder.stats.interrupted_frames == 1


def test_starts_mid_stream() -> None:
    tail = STD_FRAME[25:]  # starts inside a group, ends with ETX
    frames, decoder = decode(tail + HIST_FRAME)
    assert [f.mode for f in frames] == ["historic"]
    assert decoder.stats.skipped_bytes == len(tail)
    assert decoder.stats.invalid_groups == 0


def test_resynchronises_after_garbage() -> None:
    garbage = bytes(range(0x05, 0x80)) * 3 + b"\r\n\t junk \x03\x04"
    frames, decoder = decode(STD_FRAME + garbage + STD_FRAME)
    assert len(frames) == 2 and frames[0] == frames[1]
    assert decoder.stats.skipped_bytes == len(garbage)


def test_garbage_inside_a_frame_is_reported_not_returned() -> None:
    raw = frame_of([encode_group("EAST", "021849106"), b"\n#\xff%&'\r",
                    encode_group("SINSTS", "02700")])
    (frame,), decoder = decode(raw)
    assert frame.groups == {"EAST": "021849106", "SINSTS": "02700"}
    assert frame.invalid == ["?"]
    assert decoder.stats.invalid_by_label["?"] == 1


def test_empty_frame_is_not_a_frame() -> None:
    frames, decoder = decode(b"\x02\x03" + STD_FRAME)
    assert len(frames) == 1 and decoder.stats.frames == 1


def test_oversized_frame_is_discarded_and_memory_bounded() -> None:
    decoder = FrameDecoder()
    group = encode_group("MSG1", "X" * 32)
    frames = decoder.feed(b"\x02")
    for _ in range(3 * MAX_FRAME_BYTES // len(group)):
        frames += decoder.feed(group)
        assert len(decoder._buf) <= MAX_FRAME_BYTES
    frames += decoder.feed(b"\x03" + HIST_FRAME)
    assert [f.mode for f in frames] == ["historic"]
    assert decoder.stats.oversized_discarded == 1
    assert decoder.stats.skipped_bytes > MAX_FRAME_BYTES


def test_oversized_frame_in_one_chunk_is_discarded() -> None:
    group = encode_group("MSG1", "X" * 32)
    big = frame_of([group] * (MAX_FRAME_BYTES // len(group) + 1))
    frames, decoder = decode(big + STD_FRAME)
    assert len(frames) == 1 and decoder.stats.oversized_discarded == 1


def test_oversized_group_is_dropped_rest_kept() -> None:
    long = encode_group("JUNK", "1" * 120)
    (frame,), decoder = decode(frame_of([encode_group("EAST", "021849106"), long]))
    assert frame.groups == {"EAST": "021849106"}
    assert frame.invalid == ["JUNK"]
    assert decoder.stats.oversized_discarded == 1


def _with_even_parity_bit(raw: bytes) -> bytes:
    """What a port opened 8N1 reads from a 7E1 line: the parity bit lands in bit 7."""
    return bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in raw)


def test_8n1_parity_bit_is_stripped_and_counted() -> None:
    wire = _with_even_parity_bit(STD_FRAME)
    high = sum(b >= 0x80 for b in wire)
    assert high > 0
    (frame,), decoder = decode(wire)
    (reference,), _ = decode(STD_FRAME)
    assert frame == reference
    assert decoder.stats.parity_stripped_bytes == high


def test_bad_checksum_group_dropped_rest_kept() -> None:
    good = encode_group("EAST", "021849106")
    bad = good[:-2] + bytes([good[-2] ^ 0x01]) + b"\r"
    raw = frame_of([encode_group("ADSC", "041776199277"), bad, encode_group("SINSTS", "02700")])
    (frame,), decoder = decode(raw)
    assert frame.groups == {"ADSC": "041776199277", "SINSTS": "02700"}
    assert frame.invalid == ["EAST"]
    assert decoder.stats.checksum_errors == 1
    assert decoder.stats.invalid_by_label == {"EAST": 1}


def test_width_and_charset_checked_after_checksum() -> None:
    # Valid 6-bit checksums, wrong content: 8 digits; '0'->'p' (+64 keeps the sum mod 64).
    short = encode_group("EAST", "02184910")
    flipped = b"\nEAST\t0218491p6\t" + bytes([checksum(b"EAST\t021849106\t")]) + b"\r"
    assert flipped[-2] == checksum(b"EAST\t0218491p6\t")
    (frame,), decoder = decode(frame_of([short, flipped, encode_group("PREF", "30")]))
    assert frame.groups == {"PREF": "30"}
    assert frame.invalid == ["EAST", "EAST"]
    assert decoder.stats.format_errors == 2 and decoder.stats.checksum_errors == 0


def test_known_label_must_have_its_horodate() -> None:
    raw = frame_of([encode_group("SMAXSN", "02940"),  # horodate missing
                    encode_group("EAST", "021849106", "H200214230804"),  # unexpected horodate
                    encode_group("SMAXSN", "02940", "E220526121217")])
    (frame,), _ = decode(raw)
    assert frame.groups == {"SMAXSN": "02940"}
    assert frame.horodates == {"SMAXSN": "E220526121217"}
    assert frame.invalid == ["SMAXSN", "EAST"]


def test_unknown_labels_are_kept_raw() -> None:
    raw = frame_of([encode_group("SINST1", "01234"), encode_group("SMAXN", "0567", "H240210121413"),
                    encode_group("VTIC", "02")])
    (frame,), _ = decode(raw)
    assert frame.groups == {"SINST1": "01234", "SMAXN": "0567", "VTIC": "02"}
    assert frame.horodates == {"SMAXN": "H240210121413"}


def test_checksum_space_and_backslash() -> None:
    raw = frame_of([
        b"\nSMAXSN-1\tH200213085118\t09562\t \r",
        b"\nDPM1\t 200214060000\t00\t\\\r",
        b"\nPCOUP\t30\t\\\r",
    ])
    (frame,), _ = decode(raw)
    assert frame.groups == {"SMAXSN-1": "09562", "DPM1": "00", "PCOUP": "30"}
    assert frame.horodates == {"SMAXSN-1": "H200213085118", "DPM1": " 200214060000"}
    hist = frame_of([b"\nPTEC HP..  \r", encode_group("PAPP", "00540", mode="historic")])
    (frame,), _ = decode(hist)
    assert frame.groups == {"PTEC": "HP..", "PAPP": "00540"}


def test_values_may_contain_spaces_in_standard_mode() -> None:
    raw = frame_of([encode_group("LTARF", "   HC  BLANC    "),
                    encode_group("MSG1", "PAS DE          MESSAGE         ")])
    (frame,), _ = decode(raw)
    assert frame.groups["LTARF"] == "   HC  BLANC    "
    assert frame.groups["MSG1"] == "PAS DE          MESSAGE         "


def test_nine_char_labels() -> None:
    raw = frame_of([encode_group(f"SMAXSN{i}-1", "03129", "H200213085118") for i in (1, 2, 3)])
    (frame,), _ = decode(raw)
    assert sorted(frame.groups) == ["SMAXSN1-1", "SMAXSN2-1", "SMAXSN3-1"]


def test_historic_three_phase_short_frames() -> None:
    short = encode_frame([("ADIR1", None, "021"), ("ADIR2", None, "000"), ("ADIR3", None, "000"),
                          ("ADCO", None, "031861348497"), ("IINST1", None, "021"),
                          ("IINST2", None, "004"), ("IINST3", None, "005")], "historic")
    frames, decoder = decode(short * 20 + HIST_FRAME)
    assert len(frames) == 21
    assert frames[0].groups == {"ADIR1": "021", "ADIR2": "000", "ADIR3": "000",
                                "ADCO": "031861348497", "IINST1": "021", "IINST2": "004",
                                "IINST3": "005"}
    assert decoder.stats.invalid_groups == 0


def test_mode_switch_within_a_stream() -> None:
    frames, decoder = decode(HIST_FRAME + STD_FRAME + HIST_FRAME)
    assert [f.mode for f in frames] == ["historic", "standard", "historic"]
    assert decoder.mode == "historic" and decoder.baud == 1200
    assert decoder.stats.invalid_groups == 0


def test_group_with_the_other_separator_is_dropped() -> None:
    raw = frame_of([encode_group("EAST", "021849106"),
                    encode_group("PAPP", "02830", mode="historic"),
                    encode_group("SINSTS", "02700")])
    (frame,), _ = decode(raw)
    assert frame.mode == "standard"
    assert frame.groups == {"EAST": "021849106", "SINSTS": "02700"}
    assert frame.invalid == ["PAPP"]


def test_historic_meter_with_standard_like_checksum_is_learned() -> None:
    mode2 = encode_frame(HIST, "historic", historic_checksum=2)
    frames, decoder = decode(mode2)
    assert frames[0].groups == {label: value for label, _, value in HIST}
    assert decoder.historic_checksum == 2
    # Once learned, a group checksummed the other way is refused (its odds of passing
    # by accident would otherwise double).
    odd = frame_of([encode_group("ADCO", "021861348497", mode="historic", historic_checksum=2),
                    encode_group("PAPP", "02830", mode="historic", historic_checksum=1),
                    encode_group("IINST", "012", mode="historic", historic_checksum=2)])
    (frame,) = decoder.feed(odd)
    assert frame.groups == {"ADCO": "021861348497", "IINST": "012"}
    assert frame.invalid == ["PAPP"]


def test_historic_mode1_meter_is_learned() -> None:
    frames, decoder = decode(HIST_FRAME)
    assert decoder.historic_checksum == 1
    frames += decoder.feed(encode_frame(HIST, "historic", historic_checksum=2))
    # a whole frame in the other mode means another meter: relearn rather than drop it all
    assert frames[1].groups == frames[0].groups
    assert decoder.historic_checksum == 2


def test_horodate_seasons() -> None:
    raw = frame_of([
        encode_group("DATE", "", "E240710121413"),
        encode_group("SMAXSN", "00986", "h240210110331"),
        encode_group("SMAXSN-1", "01422", "e240209211759"),
        encode_group("DPM1", "00", " 200214060000"),
        encode_group("SMAXIN", "01423", "X180716103316"),  # unknown season: dropped
        encode_group("CCASN", "00108", "H241310120000"),  # month 13: dropped
    ])
    (frame,), _ = decode(raw)
    assert frame.horodates == {"DATE": "E240710121413", "SMAXSN": "h240210110331",
                               "SMAXSN-1": "e240209211759", "DPM1": " 200214060000"}
    assert frame.groups["DATE"] == ""
    assert frame.invalid == ["SMAXIN", "CCASN"]


def test_cr_received_as_ff_never_merges_two_groups() -> None:
    merged = b"\nEASD01\t021849107\t@\x0c\nEASD02\t000000000\t!\r"
    (frame,), decoder = decode(frame_of([merged]))
    assert "EASD01" not in frame.groups
    assert frame.groups == {"EASD02": "000000000"}  # intact on its own, checksum valid
    assert frame.invalid == ["EASD01"]


def test_control_bytes_inside_a_group() -> None:
    (frame,), _ = decode(frame_of([b"\nEAST\t0218\x0049106\t.\r", encode_group("PREF", "30")]))
    assert frame.groups == {"PREF": "30"} and frame.invalid == ["EAST"]


def test_fast_path_matches_a_fresh_decode() -> None:
    # Consecutive frames of one meter take the previous-frame fast path; the result must be
    # what a fresh decoder returns for each frame alone.
    frames_in = []
    for k in range(5):
        groups = [(label, h, value) for label, h, value in STD]
        groups[3] = ("EAST", None, f"{21849106 + k:09d}")
        groups[2] = ("DATE", f"H2002142308{k:02d}", "")
        frames_in.append(encode_frame(groups, "standard"))
    corrupted = frames_in[2].replace(b"SINSTS\t02700\t", b"SINSTS\t12700\t")  # bad checksum
    assert corrupted != frames_in[2]
    frames_in[2] = corrupted
    reshaped = frames_in[4].replace(encode_group("SINSTS", "02700"), b"")  # a group less
    assert reshaped != frames_in[4]
    # same group count, EAST changed (updated first) then two labels swapped (shape change)
    swapped_groups = [(label, h, value) for label, h, value in STD]
    swapped_groups[3] = ("EAST", None, "021849999")
    swapped_groups[-1], swapped_groups[-2] = swapped_groups[-2], swapped_groups[-1]
    swapped = encode_frame(swapped_groups, "standard")
    decoder = FrameDecoder()
    # frames_in[2] (EAST and DATE changed, then a bad group) between two identical frames:
    # the fast path's partial work on it must not leak into the next frame
    for raw in frames_in + [reshaped, frames_in[0], swapped, swapped, frames_in[1],
                            frames_in[2], frames_in[1]]:
        (got,) = decoder.feed(raw)
        (alone,) = FrameDecoder().feed(raw)
        assert got == alone
        assert got.groups is not decoder._prev_groups
    assert decoder.stats.invalid_by_label == {"SINSTS": 2}


def test_frames_do_not_share_mutable_state() -> None:
    decoder = FrameDecoder()
    (first,) = decoder.feed(STD_FRAME)
    first.groups["EAST"] = "mutated"
    first.horodates.clear()
    (second,) = decoder.feed(STD_FRAME)
    assert second.groups["EAST"] == "021849106"
    assert second.horodates["DATE"] == "H200214230804"


def test_stats_are_json_serializable() -> None:
    _, decoder = decode(STD_FRAME, b"\x02\nEAST\t1\tX\r\x03")
    stats = decoder.stats
    assert isinstance(stats, DecoderStats)
    out = json.loads(json.dumps(stats.as_dict()))
    assert out["frames"] == 2 and out["invalid_by_label"] == {"EAST": 1}


def test_reset_forgets_the_partial_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(STD_FRAME[:50]) == []
    decoder.reset()
    assert decoder.feed(STD_FRAME[50:]) == []  # rest of the old frame is skipped
    assert len(decoder.feed(STD_FRAME)) == 1


def test_accepts_bytearray_and_memoryview() -> None:
    decoder = FrameDecoder()
    assert len(decoder.feed(bytearray(STD_FRAME))) == 1
    assert len(decoder.feed(memoryview(STD_FRAME))) == 1
    assert decoder.feed(b"") == []
