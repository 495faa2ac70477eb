"""Durable, append-only, size-bounded on-disk spool of readings waiting for Kafka.

    spool = Spool(Path("/var/lib/teleinfo/spool"), max_bytes=256 << 20)
    seq = spool.append(key=b"12345678901234", value=b'{"pdl": ...}')
    for record in spool.peek(100):          # oldest first
        ...send record.key / record.value...
    spool.commit(record)                    # everything up to record.seq is acknowledged

Layout of the directory (one spool per process; docs/edge.md "Spool"):

    seg-00000000000000000001.log   records, one per line: ``crc32 SP seq SP key SP value LF``
    seg-00000000000000004097.log   (a segment is named by its first sequence number)
    state.json                     {"acked": N}: every record with seq <= N reached Kafka

Guarantees (why each choice):

* **SIGKILL at any moment loses no spooled record.** A record is written with one ``write(2)``
  straight to the file (no user-space buffer), so once ``append`` returns it is in the kernel's
  page cache and survives the death of the process. A record torn by a crash (no LF, or a CRC
  that does not match) can only be the last one of the last segment: it is cut off when the
  spool is opened; it was never acknowledged to the caller. The acknowledged position is
  written to ``state.json`` through a temporary file and ``os.replace`` (atomic), *after* Kafka
  acknowledged the records: a crash in between re-sends them, so downstream sees duplicates at
  most, never a gap.
* **fsync policy** (power loss, kernel panic, not needed for SIGKILL): segments are fsync'ed at
  most every ``fsync_seconds`` (default 1 s) while records are being appended, and when a
  segment is closed. A power cut can therefore lose the last ``fsync_seconds`` of spooled
  records; ``fsync_seconds=0`` syncs every append (safer, harder on an SD card).
* **Bounded**: when the files exceed ``max_bytes`` the *oldest* segment is deleted and the
  unacknowledged records it held are reported to ``on_drop`` (counted in
  ``linky_edge_readings_dropped_total{reason="spool_full"}``). Segments are ``max_bytes / 16``,
  so at least 15/16 of the budget is always kept.
* **Drained in order, then deleted**: ``peek`` returns records in append order; fully
  acknowledged segments are deleted as the drain passes them, and the whole spool is emptied
  as soon as the last record is acknowledged.

Keys and values are opaque bytes; a key must not contain SP or LF, a value must not contain LF
(compact JSON never does).
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolRecord", "NO_KEY"]

log = logging.getLogger("teleinfo.spool")

NO_KEY = b"-"  # written for a record without a key
_STATE = "state.json"
_PREFIX, _SUFFIX = "seg-", ".log"
_MIN_SEGMENT = 16 * 1024


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled record; ``key`` is None when it was appended without one."""

    seq: int
    key: bytes | None
    value: bytes
    segment: int  # first seq of the segment holding it
    end: int  # byte offset just after it in that segment


@dataclass(slots=True)
class _Segment:
    first: int
    path: Path
    size: int
    last: int  # seq of its last record (first - 1 while empty)


class Spool:
    """See the module docstring. Not thread-safe: one owner (the publisher task)."""

    def __init__(self, directory: Path, max_bytes: int = 256 << 20, *,
                 fsync_seconds: float = 1.0, segment_bytes: int | None = None,
                 on_drop: Callable[[int, str], None] | None = None) -> None:
        if max_bytes < 2 * _MIN_SEGMENT:
            raise ValueError(f"spool max_bytes must be at least {2 * _MIN_SEGMENT}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.fsync_seconds = fsync_seconds
        self.segment_bytes = segment_bytes or max(_MIN_SEGMENT, max_bytes // 16)
        self._on_drop = on_drop or (lambda count, reason: None)
        self._segments: list[_Segment] = []
        self._acked = 0
        self._last_seq = 0
        self._fd: int | None = None  # append fd of the last segment
        self._dirty_since: float | None = None
        self._cursor: tuple[int, int] = (0, 0)  # (segment first seq, byte offset)
        self._reader: tuple[int, object] | None = None  # (segment first seq, open file)
        self._open()

    # -- public API ----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records not yet acknowledged."""
        if not self._segments:
            return 0
        first = self._segments[0].first
        return max(0, self._last_seq - max(self._acked, first - 1))

    @property
    def size_bytes(self) -> int:
        """Bytes of segment files on disk."""
        return sum(s.size for s in self._segments)

    @property
    def acked(self) -> int:
        """Highest acknowledged sequence number."""
        return self._acked

    def empty(self) -> bool:
        return self._acked >= self._last_seq or not self._segments

    def append(self, value: bytes, key: bytes | None = None) -> int:
        """Write one record durably (see fsync policy); return its sequence number."""
        seq = self._last_seq + 1
        body = b"%d %s %s" % (seq, key if key is not None else NO_KEY, value)
        line = b"%08x %s\n" % (zlib.crc32(body), body)
        seg = self._segments[-1] if self._segments else None
        if seg is None or (seg.size and seg.size + len(line) > self.segment_bytes):
            seg = self._roll(seq)
        assert self._fd is not None
        os.write(self._fd, line)
        seg.size += len(line)
        seg.last = seq
        self._last_seq = seq
        now = time.monotonic()
        if self._dirty_since is None:
            self._dirty_since = now
        if now - self._dirty_since >= self.fsync_seconds:
            self.sync()
        self._enforce_limit()
        return seq

    def peek(self, limit: int) -> list[SpoolRecord]:
        """Up to ``limit`` unacknowledged records, oldest first (does not consume them)."""
        out: list[SpoolRecord] = []
        seg_first, offset = self._cursor
        for seg in self._segments:
            if seg.first < seg_first:
                continue
            if seg.first > seg_first:
                offset = 0
            f = self._read_handle(seg)
            f.seek(offset)  # type: ignore[attr-defined]
            while len(out) < limit and offset < seg.size:
                line = f.readline()  # type: ignore[attr-defined]
                if not line:
                    break
                offset += len(line)
                rec = _parse(line, seg.first, offset)
                if rec is None or rec.seq <= self._acked:
                    continue
                out.append(rec)
            if len(out) >= limit:
                break
        return out

    def commit(self, record: SpoolRecord) -> None:
        """Kafka acknowledged everything up to ``record``: move past it, delete what is done."""
        if record.seq <= self._acked:
            return
        self._acked = record.seq
        if any(s.first == record.segment for s in self._segments):
            self._cursor = (record.segment, record.end)
        if self._acked >= self._last_seq:
            self._clear()
        else:
            while len(self._segments) > 1 and self._segments[0].last <= self._acked:
                self._delete(self._segments.pop(0))
        self._write_state()

    def clear(self) -> None:
        """Forget every record (used when only unreadable records are left)."""
        if not self.empty():
            log.error("spool: dropping %d unreadable record(s)", self.depth,
                      extra={"event": "spool_corrupt", "records": self.depth})
            self._on_drop(self.depth, "spool_corrupt")
        self._clear()

    def sync(self) -> None:
        """fsync the segment being appended to, if anything was written since the last sync."""
        if self._fd is not None and self._dirty_since is not None:
            os.fsync(self._fd)
        self._dirty_since = None

    def maybe_sync(self) -> None:
        """Call periodically: applies the fsync policy when appends have stopped."""
        if self._dirty_since is not None and \
                time.monotonic() - self._dirty_since >= self.fsync_seconds:
            self.sync()

    def close(self) -> None:
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._close_reader()

    # -- internals -----------------------------------------------------------------------

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._acked = int(json.loads((self.directory / _STATE).read_text())["acked"])
        except FileNotFoundError:
            self._acked = 0
        except (ValueError, KeyError, TypeError) as exc:
            # Unreadable state: re-send everything still on disk (duplicates, never a gap).
            log.warning("spool state unreadable, re-sending all spooled records",
                        extra={"event": "spool_state_unreadable", "error": str(exc)})
            self._acked = 0
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        paths = sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}"))
        last_seq = self._acked
        corrupt = 0
        for i, path in enumerate(paths):
            first = int(path.name[len(_PREFIX):-len(_SUFFIX)])
            seg = _Segment(first=first, path=path, size=0, last=first - 1)
            good_end, bad = _scan(path, seg)
            size = path.stat().st_size
            if good_end < size:
                if i == len(paths) - 1:
                    # A record torn by a crash: never acknowledged to anyone, cut it off.
                    with open(path, "r+b") as f:
                        f.truncate(good_end)
                    log.warning("spool: cut a torn record at the end of %s", path.name,
                                extra={"event": "spool_torn_tail", "bytes": size - good_end})
                else:
                    bad += 1
                    good_end = size
            seg.size = good_end
            corrupt += bad
            if seg.last >= seg.first:
                last_seq = max(last_seq, seg.last)
            self._segments.append(seg)
        self._last_seq = last_seq
        if corrupt:
            self._on_drop(corrupt, "spool_corrupt")
            log.error("spool: %d unreadable record(s) skipped", corrupt,
                      extra={"event": "spool_corrupt", "records": corrupt})
        if self._segments and self.empty():
            self._clear()
        elif self._segments:
            while len(self._segments) > 1 and self._segments[0].last <= self._acked:
                self._delete(self._segments.pop(0))
            self._cursor = (self._segments[0].first, 0)
            last = self._segments[-1]
            self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
            log.info("spool: %d record(s) waiting for Kafka", self.depth,
                     extra={"event": "spool_recovered", "records": self.depth,
                            "bytes": self.size_bytes})

    def _roll(self, first: int) -> _Segment:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._dirty_since = None
        path = self.directory / f"{_PREFIX}{first:020d}{_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        seg = _Segment(first=first, path=path, size=0, last=first - 1)
        if not self._segments:
            self._cursor = (first, 0)
        self._segments.append(seg)
        _fsync_dir(self.directory)
        return seg

    def _enforce_limit(self) -> None:
        while self.size_bytes > self.max_bytes and len(self._segments) > 1:
            seg = self._segments.pop(0)
            lost = max(0, seg.last - max(self._acked, seg.first - 1))
            self._delete(seg)
            if lost:
                self._acked = max(self._acked, seg.last)
                self._write_state()
                self._on_drop(lost, "spool_full")
                log.error("spool full (%d bytes): dropped the %d oldest reading(s)",
                          self.max_bytes, lost,
                          extra={"event": "spool_dropped", "records": lost,
                                 "max_bytes": self.max_bytes})
            if self._cursor[0] == seg.first:
                self._cursor = (self._segments[0].first, 0)

    def _clear(self) -> None:
        """Everything acknowledged: delete all segments (the state keeps the sequence)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._dirty_since = None
        for seg in self._segments:
            self._delete(seg)
        self._segments = []
        self._last_seq = max(self._last_seq, self._acked)
        self._acked = self._last_seq
        self._cursor = (0, 0)
        self._write_state()

    def _delete(self, seg: _Segment) -> None:
        if self._reader is not None and self._reader[0] == seg.first:
            self._close_reader()
        seg.path.unlink(missing_ok=True)

    def _write_state(self) -> None:
        tmp = self.directory / (_STATE + ".tmp")
        tmp.write_text(json.dumps({"acked": self._acked}))
        os.replace(tmp, self.directory / _STATE)

    def _read_handle(self, seg: _Segment) -> object:
        if self._reader is None or self._reader[0] != seg.first:
            self._close_reader()
            self._reader = (seg.first, open(seg.path, "rb"))
        return self._reader[1]

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader[1].close()  # type: ignore[attr-defined]
            self._reader = None


def _parse(line: bytes, segment: int, end: int) -> SpoolRecord | None:
    if not line.endswith(b"\n"):
        return None
    try:
        crc_hex, body = line[:-1].split(b" ", 1)
        if int(crc_hex, 16) != zlib.crc32(body):
            return None
        seq_raw, key, value = body.split(b" ", 2)
        return SpoolRecord(int(seq_raw), None if key == NO_KEY else key, value, segment, end)
    except ValueError:
        return None


def _scan(path: Path, seg: _Segment) -> tuple[int, int]:
    """Validate every record of ``path``; set ``seg.last``. Returns (end of the last good
    record, number of bad records before it)."""
    good_end = offset = bad = pending_bad = 0
    with open(path, "rb") as f:
        for line in f:
            offset += len(line)
            rec = _parse(line, seg.first, offset)
            if rec is None:
                pending_bad += 1
                continue
            bad += pending_bad
            pending_bad = 0
            seg.last = rec.seq
            good_end = offset
    return good_end, bad


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
