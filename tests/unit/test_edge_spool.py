"""The disk spool: order, durability across a crash (torn last record), bound, deletion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teleinfo.spool import Spool


def _values(records) -> list[bytes]:
    return [r.value for r in records]


def test_records_come_back_in_order_and_commit_moves_past_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(10):
        spool.append(b'{"n":%d}' % i, key=b"pdl-%d" % (i % 3))
    assert spool.depth == 10
    first = spool.peek(4)
    assert _values(first) == [b'{"n":%d}' % i for i in range(4)]
    assert [r.key for r in first] == [b"pdl-0", b"pdl-1", b"pdl-2", b"pdl-0"]
    assert _values(spool.peek(4)) == _values(first)  # peek does not consume
    spool.commit(first[-1])
    assert spool.depth == 6
    assert _values(spool.peek(100)) == [b'{"n":%d}' % i for i in range(4, 10)]


def test_a_record_without_key_keeps_none(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(b"{}", key=None)
    assert spool.peek(1)[0].key is None


def test_drained_spool_deletes_its_files_and_keeps_counting(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        spool.append(b"v%d" % i)
    spool.commit(spool.peek(10)[-1])
    assert spool.empty() and spool.depth == 0
    assert list(tmp_path.glob("seg-*.log")) == []
    assert spool.append(b"next") == 6  # sequence numbers never restart
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert [(r.seq, r.value) for r in again.peek(10)] == [(6, b"next")]


def test_reopen_resumes_after_the_last_acknowledged_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(6):
        spool.append(b"v%d" % i)
    spool.commit(spool.peek(2)[-1])
    # no close(): the process dies here
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert _values(again.peek(10)) == [b"v2", b"v3", b"v4", b"v5"]
    assert again.depth == 4


def test_a_torn_last_record_is_cut_and_the_rest_survives(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        spool.append(b"v%d" % i)
    segment = next(tmp_path.glob("seg-*.log"))
    with open(segment, "ab") as f:  # a crash in the middle of a write
        f.write(b"deadbeef 4 - {\"half")
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert _values(again.peek(10)) == [b"v0", b"v1", b"v2"]
    assert again.append(b"v3") == 4
    assert _values(Spool(tmp_path, max_bytes=1 << 20).peek(10)) == [b"v0", b"v1", b"v2", b"v3"]


def test_a_flipped_byte_fails_the_crc_and_is_counted(tmp_path: Path) -> None:
    drops: list[tuple[int, str]] = []
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64 * 1024)
    for i in range(3):
        spool.append(b'{"n":%d}' % i)
    spool.close()
    segment = next(tmp_path.glob("seg-*.log"))
    data = bytearray(segment.read_bytes())
    data[data.index(b'{"n":1}') + 5] ^= 0x01
    segment.write_bytes(bytes(data))
    again = Spool(tmp_path, max_bytes=1 << 20, on_drop=lambda n, why: drops.append((n, why)))
    assert _values(again.peek(10)) == [b'{"n":0}', b'{"n":2}']
    assert drops == [(1, "spool_corrupt")]


def test_past_the_size_limit_the_oldest_records_are_dropped_and_counted(tmp_path: Path) -> None:
    drops: list[tuple[int, str]] = []
    value = b"x" * 1000
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=16 * 1024,
                  on_drop=lambda n, why: drops.append((n, why)))
    for _ in range(200):
        spool.append(value)
    assert spool.size_bytes <= 64 * 1024
    dropped = sum(n for n, _ in drops)
    assert dropped > 0 and {why for _, why in drops} == {"spool_full"}
    remaining = spool.peek(1000)
    assert dropped + len(remaining) == 200  # nothing vanishes without being counted
    seqs = [r.seq for r in remaining]
    assert seqs == list(range(dropped + 1, 201))  # the newest are kept, in order
    assert spool.size_bytes >= 64 * 1024 * 0.7  # at most one segment's worth below the limit


def test_commit_while_appending_keeps_new_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=16 * 1024)
    for i in range(100):
        spool.append(b"a%03d" % i + b"-" * 400)
    batch = spool.peek(60)
    for i in range(20):  # readings keep arriving during the drain
        spool.append(b"b%03d" % i)
    spool.commit(batch[-1])
    rest = spool.peek(1000)
    assert rest[0].value.startswith(b"a060") and rest[-1].value == b"b019"
    assert len(rest) == 60
    assert len(list(tmp_path.glob("seg-*.log"))) < 5  # fully sent segments are gone


def test_unreadable_state_resends_everything(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        spool.append(b"v%d" % i)
    spool.commit(spool.peek(1)[0])
    spool.close()
    (tmp_path / "state.json").write_text("{not json")
    assert _values(Spool(tmp_path, max_bytes=1 << 20).peek(10)) == [b"v0", b"v1", b"v2"]


def test_state_records_the_acknowledged_sequence(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(4):
        spool.append(b"v%d" % i)
    spool.commit(spool.peek(3)[-1])
    assert json.loads((tmp_path / "state.json").read_text()) == {"acked": 3}


def test_too_small_a_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path, max_bytes=1000)
