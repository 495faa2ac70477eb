"""Sans-IO incremental TIC decoder: feed it bytes, get whole validated frames back.

    decoder = FrameDecoder()
    for frame in decoder.feed(chunk):  # any chunking, never raises on input bytes
        ...

Framing (54E §5.3.6, 02E): STX 0x02 ... ETX 0x03; EOT 0x04 interrupts the frame being sent.
Groups: ``LF label SEP [horodate SEP] value SEP checksum CR``; SEP is SP (historic) or HT
(standard) and tells the mode of each frame (protocol.md §1.4). Policy (protocol.md §1.7): a
bad group is dropped and reported, the rest of the frame is kept; a value whose checksum or
width/charset check failed is never returned.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import compress
from operator import ne
from typing import Any

from teleinfo.labels import (
    HISTORIC_LABELS,
    MAX_FRAME_BYTES,
    MAX_GROUP_BYTES,
    STANDARD_LABELS,
    valid_horodate,
    valid_label,
    valid_unknown_value,
)

__all__ = ["Frame", "DecoderStats", "FrameDecoder", "BAUD_BY_MODE", "parse_group"]

BAUD_BY_MODE = {"historic": 1200, "standard": 9600}

_HIGH = bytes(range(0x80, 0x100))
_STRIP_BIT7 = bytes(i & 0x7F for i in range(0x100))
_PRINTABLE = bytes(range(0x20, 0x7F))
_PRINTABLE_HT = _PRINTABLE + b"\t"
_LABEL_END = re.compile(b"[\t ]")

# Parsed-group tuples: (kind, label, horodate, value); invalid ones: (INVALID, label, reason,
# None). Historic groups record which checksum zone matched (see FrameDecoder._historic).
INVALID, STANDARD, HISTORIC_1, HISTORIC_2 = 0, 1, 2, 3
_CACHE_MAX = 4096
_STANDARD_BY_BYTES = {
    name.encode("ascii"): (name, info.horodate, info.validate)
    for name, info in STANDARD_LABELS.items()
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame: valid groups, their horodates, and the labels that were dropped."""

    mode: str  # "historic" | "standard"
    groups: dict[str, str]  # label -> raw value (DATE's value is "")
    horodates: dict[str, str]  # label -> raw horodate, e.g. "H240210121413"
    invalid: list[str]  # labels of dropped groups, "?" when the label is unreadable
    size: int = 0  # bytes from STX to ETX inclusive


def _frame_maker():  # type: ignore[no-untyped-def]
    # A frozen dataclass __init__ goes through object.__setattr__ per field; setting the slots
    # directly halves the cost, which matters at ~50k frames/s (docs/performance.md).
    new = object.__new__
    set_mode, set_groups, set_horodates, set_invalid, set_size = (
        Frame.__dict__[name].__set__ for name in ("mode", "groups", "horodates", "invalid", "size")
    )

    def make(mode: str, groups: dict[str, str], horodates: dict[str, str], invalid: list[str],
             size: int) -> Frame:
        frame = new(Frame)
        set_mode(frame, mode)
        set_groups(frame, groups)
        set_horodates(frame, horodates)
        set_invalid(frame, invalid)
        set_size(frame, size)
        return frame

    return make


_new_frame = _frame_maker()


@dataclass(slots=True)
class DecoderStats:
    """Counters since the decoder was created. ``invalid_groups`` = checksum + format errors."""

    frames: int = 0
    groups: int = 0
    invalid_groups: int = 0
    interrupted_frames: int = 0
    skipped_bytes: int = 0
    parity_stripped_bytes: int = 0
    oversized_discarded: int = 0
    checksum_errors: int = 0
    format_errors: int = 0
    invalid_by_label: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serializable)."""
        out = asdict(self)
        out["invalid_by_label"] = dict(self.invalid_by_label)
        return out


class FrameDecoder:
    """Incremental TIC parser. Memory is bounded by ``MAX_FRAME_BYTES``.

    Attributes: ``stats`` (DecoderStats), ``mode`` (mode of the last frame with a valid
    group, or None), ``baud`` (1200/9600 for that mode), ``historic_checksum`` (1 or 2 once
    learned: whether this historic meter leaves the last SP out of its checksum).
    """

    def __init__(self) -> None:
        self.stats = DecoderStats()
        self.mode: str | None = None
        self.historic_checksum: int | None = None
        self._buf = bytearray()
        self._in_frame = False
        self._cache: dict[bytes, tuple[Any, ...]] = {}
        # Previous clean frame, for _frame_from_previous.
        self._prev_chunks: list[bytes] | None = None
        self._prev_labels: list[str] = []
        self._prev_kind = INVALID
        self._prev_mode = "standard"
        self._prev_groups: dict[str, str] = {}
        self._prev_horodates: dict[str, str] = {}

    @property
    def baud(self) -> int | None:
        """Baud rate implied by the mode seen on the wire (None before the first frame)."""
        return BAUD_BY_MODE.get(self.mode) if self.mode else None

    def reset(self) -> None:
        """Forget a partial frame (after a reconnect); counters and learned state are kept."""
        self._buf.clear()
        self._in_frame = False

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data``; return the frames it completed, in stream order."""
        if type(data) is not bytes:
            data = bytes(data)
        if not data:
            return []
        stats = self.stats
        if not data.isascii():
            # 8N1 instead of 7E1 puts the parity bit in bit 7 (protocol.md §5.2): strip it.
            stats.parity_stripped_bytes += len(data) - len(data.translate(None, _HIGH))
            data = data.translate(_STRIP_BIT7)
        out: list[Frame] = []
        buf = self._buf
        pos, n = 0, len(data)
        etx = eot = -1
        while pos < n:
            if not self._in_frame:
                i = data.find(b"\x02", pos)
                if i < 0:
                    stats.skipped_bytes += n - pos
                    break
                stats.skipped_bytes += i - pos
                pos = i + 1
                self._in_frame = True
                continue
            # Next ETX / EOT positions are remembered so that a burst of STX bytes stays
            # O(bytes) (h11's receive buffer has the same concern).
            if etx < pos:
                etx = data.find(b"\x03", pos)
                if etx < 0:
                    etx = n
            if eot < pos:
                eot = data.find(b"\x04", pos)
                if eot < 0:
                    eot = n
            j = etx if etx < eot else eot
            # An EOT or a new STX before the ETX cuts the frame (02E; protocol.md §1.3).
            k = data.find(b"\x02", pos, j)
            if k >= 0:
                j = k
            if j == n:
                buf += data[pos:]
                if len(buf) > MAX_FRAME_BYTES:
                    self._discard_oversized(len(buf))
                break
            if buf:
                buf += data[pos:j]
                body = bytes(buf)
                buf.clear()
            else:
                body = data[pos:j]
            pos = j + 1
            control = data[j]
            if control == 0x03:
                self._in_frame = False
                if len(body) > MAX_FRAME_BYTES:
                    self._discard_oversized(len(body))
                    continue
                frame = self._frame(body)
                if frame is not None:
                    out.append(frame)
            else:
                # EOT, or a new STX before ETX: the frame being sent was cut (02E; §1.3).
                stats.interrupted_frames += 1
                self._in_frame = control == 0x02
        return out

    def _discard_oversized(self, size: int) -> None:
        self.stats.oversized_discarded += 1
        self.stats.skipped_bytes += size
        self._buf.clear()
        self._in_frame = False

    def _frame(self, body: bytes) -> Frame | None:
        chunks = body.split(b"\n")
        stats = self.stats
        if len(chunks) == 1:  # no group at all: not a frame (02E step B)
            stats.skipped_bytes += len(body) + 2
            return None
        if chunks[0]:
            stats.skipped_bytes += len(chunks[0])
        del chunks[0]
        if self._prev_chunks is not None and len(chunks) == len(self._prev_chunks):
            frame = self._frame_from_previous(chunks, len(body) + 2)
            if frame is not None:
                return frame
        return self._frame_from_scratch(chunks, body)

    def _frame_from_previous(self, chunks: list[bytes], size: int) -> Frame | None:
        """Fast path: a meter sends the same labels in the same order every frame (54E
        §5.3.6) and most groups repeat byte for byte, so only the groups that changed since
        the previous clean frame are looked at. None when the shape changed."""
        prev_labels = self._prev_labels
        kind = self._prev_kind
        # Updated in place: if this returns None, _frame_from_scratch replaces or drops them.
        groups = self._prev_groups
        horodates = self._prev_horodates
        cache = self._cache
        for i in compress(range(len(chunks)), map(ne, chunks, self._prev_chunks)):
            chunk = chunks[i]
            entry = cache.get(chunk)
            if entry is None:
                entry = parse_group(chunk)
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[chunk] = entry
            k, label, horodate, value = entry
            if k != kind or label != prev_labels[i]:
                return None
            groups[label] = value
            if horodate is not None:
                if label not in horodates:
                    return None
                horodates[label] = horodate
            elif label in horodates:
                return None
        self._prev_chunks = chunks
        stats = self.stats
        stats.frames += 1
        stats.groups += len(chunks)
        return _new_frame(self._prev_mode, groups.copy(), horodates.copy(), [], size)

    def _parse(self, chunk: bytes) -> tuple[Any, ...]:
        entry = parse_group(chunk)
        cache = self._cache
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[chunk] = entry
        return entry

    def _frame_from_scratch(self, chunks: list[bytes], body: bytes) -> Frame:
        stats = self.stats
        cache = self._cache
        std: list[tuple[Any, ...]] = []
        hist: list[tuple[Any, ...]] = []
        bad: list[tuple[Any, ...]] = []
        for chunk in chunks:
            entry = cache.get(chunk)
            if entry is None:
                if not chunk:  # LF LF: nothing to report
                    continue
                entry = self._parse(chunk)
            kind = entry[0]
            if kind == STANDARD:
                std.append(entry)
            elif kind:
                hist.append(entry)
            else:
                bad.append(entry)

        if std and len(std) >= len(hist) or not hist and b"\t" in body:
            mode = "standard"
            valid = std
            for e in hist:
                bad.append((INVALID, e[1], "format", None))
        else:
            mode = "historic"
            valid = self._historic(hist, bad)
            for e in std:
                bad.append((INVALID, e[1], "format", None))

        groups = {e[1]: e[3] for e in valid}
        horodates = {e[1]: e[2] for e in valid if e[2] is not None}
        stats.frames += 1
        stats.groups += len(valid)
        invalid = []
        if bad:
            invalid = [e[1] for e in bad]
            stats.invalid_groups += len(bad)
            stats.invalid_by_label.update(invalid)
            for e in bad:
                if e[2] == "checksum":
                    stats.checksum_errors += 1
                elif e[2] == "oversized":
                    stats.oversized_discarded += 1
                    stats.format_errors += 1
                else:
                    stats.format_errors += 1
        if valid:
            self.mode = mode
        # Remember a clean frame (every group valid, of one kind, labels unique) for the fast
        # path; anything else is decoded from scratch next time too.
        kinds = {e[0] for e in valid}
        if not bad and len(valid) == len(chunks) == len(groups) and len(kinds) == 1:
            self._prev_chunks = chunks
            self._prev_labels = [e[1] for e in valid]
            self._prev_kind = kinds.pop()
            self._prev_mode = mode
            self._prev_groups = groups.copy()
            self._prev_horodates = horodates.copy()
        else:
            self._prev_chunks = None
        return Frame(mode, groups, horodates, invalid, len(body) + 2)

    def _historic(self, hist: list[tuple[Any, ...]], bad: list[tuple[Any, ...]]
                  ) -> list[tuple[Any, ...]]:
        """Accept either checksum zone until this meter's is known, then only that one.

        02E v6: meters up to 2013 leave the last SP out of the checksum ("mode 1"), later
        ones may include it ("mode 2"); the two never collide (protocol.md §1.5). Accepting
        both forever would double the odds of a corrupted group passing.
        """
        if not hist:
            return hist
        learned = self.historic_checksum
        n2 = sum(1 for e in hist if e[0] == HISTORIC_2)
        n1 = len(hist) - n2
        if learned is None:
            if len(hist) >= 3 and (n1 == 0 or n2 == 0):
                self.historic_checksum = 1 if n1 else 2
            return hist
        if (n2 if learned == 1 else n1) > (n1 if learned == 1 else n2):
            learned = self.historic_checksum = 3 - learned  # the meter changed
        keep = HISTORIC_1 if learned == 1 else HISTORIC_2
        valid = []
        for e in hist:
            if e[0] == keep:
                valid.append(e)
            else:
                bad.append((INVALID, e[1], "checksum", None))
        return valid


def parse_group(chunk: bytes) -> tuple[Any, ...]:
    """Parse one group (the bytes after LF, up to and including CR); never raises.

    Parsed from the end: the checksum byte may be SP or a backslash and standard values may
    contain SP (protocol.md §1.4), so the separator is the byte before the checksum.
    """
    n = len(chunk)
    if n >= MAX_GROUP_BYTES:
        return (INVALID, _label_of(chunk), "oversized", None)
    if n < 5 or chunk[-1] != 0x0D:
        return (INVALID, _label_of(chunk), "format", None)
    sep = chunk[-3]
    chk = chunk[-2]
    if sep == 0x09:
        zone = chunk[:-2]  # label HT [horodate HT] value HT: every HT counts (54E §5.3.6)
        fields = zone.split(b"\t")
        known = _STANDARD_BY_BYTES.get(fields[0])
        if known is not None:
            # Known label: its validators cover every byte of the group, no charset pass.
            label, has_horodate, validate = known
            if (sum(zone) & 0x3F) + 0x20 != chk:
                return (INVALID, label, "checksum", None)
            if len(fields) == 3:
                if not has_horodate and validate(fields[1]):
                    return (STANDARD, label, None, fields[1].decode("ascii"))
            elif len(fields) == 4 and has_horodate:
                horodate, value = fields[1], fields[2]
                if validate(value) and valid_horodate(horodate):
                    return (STANDARD, label, horodate.decode("ascii"), value.decode("ascii"))
            return (INVALID, label, "format", None)
        if zone.translate(None, _PRINTABLE_HT):
            return (INVALID, _label_of(chunk), "format", None)
        if len(fields) == 3:
            raw_label, value = fields[0], fields[1]
            horodate = None
        elif len(fields) == 4:
            raw_label, horodate, value = fields[0], fields[1], fields[2]
        else:
            return (INVALID, _label_of(chunk), "format", None)
        if not valid_label(raw_label):
            return (INVALID, "?", "format", None)
        label = raw_label.decode("ascii")
        if (sum(zone) & 0x3F) + 0x20 != chk:
            return (INVALID, label, "checksum", None)
        if not valid_unknown_value(value):
            return (INVALID, label, "format", None)
        if horodate is None:
            return (STANDARD, label, None, value.decode("ascii"))
        if not valid_horodate(horodate):
            return (INVALID, label, "format", None)
        return (STANDARD, label, horodate.decode("ascii"), value.decode("ascii"))
    if sep == 0x20:
        zone = chunk[:-3]  # label SP value (02E: data may itself contain SP)
        if zone.translate(None, _PRINTABLE):
            return (INVALID, _label_of(chunk), "format", None)
        raw_label, found, value = zone.partition(b" ")
        if not found:
            return (INVALID, _label_of(chunk), "format", None)
        if not valid_label(raw_label):
            return (INVALID, "?", "format", None)
        label = raw_label.decode("ascii")
        total = sum(zone)
        if (total & 0x3F) + 0x20 == chk:
            kind = HISTORIC_1
        elif ((total + 0x20) & 0x3F) + 0x20 == chk:
            kind = HISTORIC_2
        else:
            return (INVALID, label, "checksum", None)
        info = HISTORIC_LABELS.get(label)
        if not (info.validate(value) if info is not None else valid_unknown_value(value)):
            return (INVALID, label, "format", None)
        return (kind, label, None, value.decode("ascii"))
    return (INVALID, _label_of(chunk), "format", None)


def _label_of(chunk: bytes) -> str:
    """Best-effort label of a malformed group, for reports; "?" if unreadable."""
    m = _LABEL_END.search(chunk)
    raw = chunk[: m.start()] if m else chunk.rstrip(b"\r")
    return raw.decode("ascii") if valid_label(raw) else "?"
