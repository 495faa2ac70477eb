"""Every TIC label of both modes: meaning, unit, type, width and value validation.

Sources: Enedis-NOI-CPT_54E §6.1 (historic labels as a Linky emits them), §6.2.2 (standard
table), Enedis-NOI-CPT_02E (older historic meters). Summary in ../shared/tic/protocol.md §2.

The 6-bit TIC checksum misses bit-6 flips, transpositions and compensating errors (protocol.md
§1.5), so each known label also has a width and charset check, applied after the checksum.
Validators take the raw value as ``bytes`` (the decoder works on bytes until a group is valid).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "LabelInfo",
    "HISTORIC_LABELS",
    "STANDARD_LABELS",
    "LABELS",
    "HORODATE_LABELS",
    "MAX_GROUP_BYTES",
    "MAX_FRAME_BYTES",
    "label_info",
    "valid_label",
    "valid_horodate",
    "valid_unknown_value",
]

Validator = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class LabelInfo:
    """One TIC label. ``width`` is exact for numbers/codes, a maximum for free text."""

    name: str
    mode: str  # "historic" | "standard"
    meaning: str
    unit: str | None
    type: str  # int | text | code | hex | id | date | profile
    width: int
    fixed_width: bool = True
    horodate: bool = False  # standard mode: the group carries a horodate field
    phase: int | None = None  # 1, 2, 3 for per-phase labels
    three_phase: bool = False  # only emitted by three-phase meters
    producer: bool = False  # only emitted in producer mode
    short_frame: bool = False  # historic three-phase short frame (overload)
    validate: Validator = field(default=lambda v: False, repr=False, compare=False)


# --- value validators (bytes in, bool out); each is tiny and C-backed where possible ---

_PRINTABLE = bytes(range(0x20, 0x7F))
_UPPER_HEX = re.compile(rb"[0-9A-F]+")
_ALNUM_UPPER = re.compile(rb"[0-9A-Z]+")
_LABEL = re.compile(rb"[A-Z0-9][A-Z0-9+\-]{0,8}")
_TARIFF = re.compile(rb"[A-Z.]{4}")  # PTEC: TH.. HC.. HP.. HN.. PM.. HCJB ... (02E)
_DEMAIN = re.compile(rb"----|BLEU|BLAN|ROUG")
_PROFILE_BLOCK = rb"(?:[0-9A-F]{8}|NONUTILE)"
# 11 blocks of 8 chars separated by SP (54E §6.2.3.22). Fewer blocks are accepted: each block
# is still strictly checked, and peers' fixtures show shorter PPOINTE values.
_PROFILE = re.compile(_PROFILE_BLOCK + rb"(?: " + _PROFILE_BLOCK + rb"){0,10}")
_SEASONS = frozenset(b"EHeh ")
_LAST_DAY = {b"%02d" % m: b"%02d" % d
             for m, d in enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1)}


def _digits(width: int) -> Validator:
    return lambda v: len(v) == width and v.isdigit()


def _hex(width: int) -> Validator:
    match = _UPPER_HEX.fullmatch
    return lambda v: len(v) == width and match(v) is not None


def _alnum(width: int) -> Validator:
    # Meter addresses are digits on the wire; anonymised public fixtures use letters (F2).
    match = _ALNUM_UPPER.fullmatch
    return lambda v: len(v) == width and match(v) is not None


def _text(max_width: int, exact: bool = False) -> Validator:
    # Free text: printable ASCII 0x20-0x7E (54E §6.2.1.2). Width is a maximum because real
    # meters send shorter NGTF values (F5: "PRODUCTEUR").
    if exact:
        return lambda v: len(v) == max_width and not v.translate(None, _PRINTABLE)
    return lambda v: 0 < len(v) <= max_width and not v.translate(None, _PRINTABLE)


def _regex(pattern: re.Pattern[bytes]) -> Validator:
    match = pattern.fullmatch
    return lambda v: match(v) is not None


def _empty(v: bytes) -> bool:
    return v == b""


def valid_label(label: bytes) -> bool:
    """A label is 1-9 of ``A-Z 0-9 + -`` (9 chars occur: SMAXSN1-1, 54E §6.2.2)."""
    return _LABEL.fullmatch(label) is not None


def valid_horodate(h: bytes) -> bool:
    """Season char (E/H, e/h degraded clock, SP none) + YYMMDDhhmmss, a real date and time
    (54E §6.2.1.1). Byte-slice comparisons: this runs for every frame's DATE."""
    if len(h) != 13 or h[0] not in _SEASONS or not h[1:].isdigit():
        return False
    last_day = _LAST_DAY.get(h[3:5])
    if last_day is None or not b"01" <= h[5:7] <= last_day:
        return False
    if h[7:9] > b"23" or h[9:11] > b"59" or h[11:13] > b"59":
        return False
    return h[3:7] != b"0229" or int(h[1:3]) % 4 == 0  # years 2000-2099


def valid_unknown_value(v: bytes) -> bool:
    """Unknown labels are kept raw: only printable ASCII is required."""
    return len(v) <= 98 and not v.translate(None, _PRINTABLE)


# --- the tables -------------------------------------------------------------------------

def _h(name: str, meaning: str, unit: str | None, type_: str, width: int, validate: Validator,
       **kw: object) -> LabelInfo:
    return LabelInfo(name, "historic", meaning, unit, type_, width, validate=validate, **kw)  # type: ignore[arg-type]


def _s(name: str, meaning: str, unit: str | None, type_: str, width: int, validate: Validator,
       **kw: object) -> LabelInfo:
    return LabelInfo(name, "standard", meaning, unit, type_, width, validate=validate, **kw)  # type: ignore[arg-type]


_HISTORIC: list[LabelInfo] = [
    _h("ADCO", "Meter address (EURIDIS secondary address)", None, "id", 12, _alnum(12)),
    _h("OPTARIF", "Tariff option (BASE, HC.., EJP., BBRx)", None, "text", 4, _text(4, exact=True)),
    _h("ISOUSC", "Subscribed current", "A", "int", 2, _digits(2)),
    _h("BASE", "Index, Base option", "Wh", "int", 9, _digits(9)),
    _h("HCHC", "Index, off-peak hours (HC)", "Wh", "int", 9, _digits(9)),
    _h("HCHP", "Index, peak hours (HP)", "Wh", "int", 9, _digits(9)),
    _h("EJPHN", "Index, EJP normal hours", "Wh", "int", 9, _digits(9)),
    _h("EJPHPM", "Index, EJP mobile peak hours", "Wh", "int", 9, _digits(9)),
    _h("BBRHCJB", "Index, Tempo off-peak blue days", "Wh", "int", 9, _digits(9)),
    _h("BBRHPJB", "Index, Tempo peak blue days", "Wh", "int", 9, _digits(9)),
    _h("BBRHCJW", "Index, Tempo off-peak white days", "Wh", "int", 9, _digits(9)),
    _h("BBRHPJW", "Index, Tempo peak white days", "Wh", "int", 9, _digits(9)),
    _h("BBRHCJR", "Index, Tempo off-peak red days", "Wh", "int", 9, _digits(9)),
    _h("BBRHPJR", "Index, Tempo peak red days", "Wh", "int", 9, _digits(9)),
    _h("PEJP", "EJP start notice (30 min)", "min", "int", 2, _digits(2)),
    _h("PTEC", "Current tariff period", None, "code", 4, _regex(_TARIFF)),
    _h("DEMAIN", "Tomorrow's Tempo colour (----, BLEU, BLAN, ROUG)", None, "code", 4,
       _regex(_DEMAIN)),
    _h("IINST", "Instantaneous current", "A", "int", 3, _digits(3), phase=1),
    _h("IINST1", "Instantaneous current, phase 1", "A", "int", 3, _digits(3), phase=1,
       three_phase=True, short_frame=True),
    _h("IINST2", "Instantaneous current, phase 2", "A", "int", 3, _digits(3), phase=2,
       three_phase=True, short_frame=True),
    _h("IINST3", "Instantaneous current, phase 3", "A", "int", 3, _digits(3), phase=3,
       three_phase=True, short_frame=True),
    _h("ADPS", "Subscribed power exceeded warning (current)", "A", "int", 3, _digits(3)),
    _h("ADIR1", "Setting current exceeded warning, phase 1", "A", "int", 3, _digits(3),
       phase=1, three_phase=True, short_frame=True),
    _h("ADIR2", "Setting current exceeded warning, phase 2", "A", "int", 3, _digits(3),
       phase=2, three_phase=True, short_frame=True),
    _h("ADIR3", "Setting current exceeded warning, phase 3", "A", "int", 3, _digits(3),
       phase=3, three_phase=True, short_frame=True),
    _h("IMAX", "Maximum current drawn", "A", "int", 3, _digits(3)),
    _h("IMAX1", "Maximum current drawn, phase 1", "A", "int", 3, _digits(3), phase=1,
       three_phase=True),
    _h("IMAX2", "Maximum current drawn, phase 2", "A", "int", 3, _digits(3), phase=2,
       three_phase=True),
    _h("IMAX3", "Maximum current drawn, phase 3", "A", "int", 3, _digits(3), phase=3,
       three_phase=True),
    # 54E §6.1.2: "W" in the table, but a Linky sends Smax of day n-1 in VA.
    _h("PMAX", "Maximum three-phase power reached", "W", "int", 5, _digits(5),
       three_phase=True),
    _h("PAPP", "Apparent power (rounded to 10 VA)", "VA", "int", 5, _digits(5)),
    _h("HHPHC", "Peak/off-peak hours schedule (A, C, D, E, Y)", None, "code", 1,
       _regex(re.compile(rb"[A-Z]"))),
    _h("MOTDETAT", "Meter status word (distributor use)", None, "hex", 6, _hex(6)),
    _h("PPOT", "Phase potentials presence (bit n = phase n absent)", None, "hex", 2, _hex(2),
       three_phase=True),
    # Concentrator ("concentrateur de téléreport") only, per 02E.
    _h("GAZ", "Gas meter index (concentrator)", "dal", "int", 7, _digits(7)),
    _h("AUTRE", "Third meter index (concentrator)", "dal", "int", 7, _digits(7)),
]


def _std_index(name: str, meaning: str, producer: bool = False) -> LabelInfo:
    return _s(name, meaning, "Wh", "int", 9, _digits(9), producer=producer)


_STANDARD: list[LabelInfo] = [
    _s("ADSC", "Meter secondary address", None, "id", 12, _alnum(12)),
    _s("VTIC", "TIC version", None, "code", 2, _digits(2)),
    _s("DATE", "Current date and time (in the horodate, empty value)", None, "date", 0,
       _empty, horodate=True),
    _s("NGTF", "Supplier tariff calendar name", None, "text", 16, _text(16), fixed_width=False),
    _s("LTARF", "Current supplier tariff label", None, "text", 16, _text(16),
       fixed_width=False),
    _std_index("EAST", "Active energy withdrawn, total"),
    *[_std_index(f"EASF{i:02d}", f"Active energy withdrawn, supplier index {i}")
      for i in range(1, 11)],
    *[_std_index(f"EASD{i:02d}", f"Active energy withdrawn, distributor index {i}")
      for i in range(1, 5)],
    _std_index("EAIT", "Active energy injected, total", producer=True),
    *[_s(f"ERQ{i}", f"Reactive energy Q{i}, total", "VArh", "int", 9, _digits(9),
         producer=True) for i in range(1, 5)],
    *[_s(f"IRMS{i}", f"RMS current, phase {i}", "A", "int", 3, _digits(3), phase=i,
         three_phase=i > 1) for i in range(1, 4)],
    *[_s(f"URMS{i}", f"RMS voltage, phase {i}", "V", "int", 3, _digits(3), phase=i,
         three_phase=i > 1) for i in range(1, 4)],
    _s("PREF", "Reference (subscribed) apparent power", "kVA", "int", 2, _digits(2)),
    _s("PCOUP", "Cut-off apparent power threshold", "kVA", "int", 2, _digits(2)),
    _s("SINSTS", "Instantaneous apparent power withdrawn", "VA", "int", 5, _digits(5)),
    *[_s(f"SINSTS{i}", f"Instantaneous apparent power withdrawn, phase {i}", "VA", "int", 5,
         _digits(5), phase=i, three_phase=True) for i in range(1, 4)],
    _s("SMAXSN", "Max apparent power withdrawn today", "VA", "int", 5, _digits(5),
       horodate=True),
    *[_s(f"SMAXSN{i}", f"Max apparent power withdrawn today, phase {i}", "VA", "int", 5,
         _digits(5), horodate=True, phase=i, three_phase=True) for i in range(1, 4)],
    _s("SMAXSN-1", "Max apparent power withdrawn yesterday", "VA", "int", 5, _digits(5),
       horodate=True),
    *[_s(f"SMAXSN{i}-1", f"Max apparent power withdrawn yesterday, phase {i}", "VA", "int", 5,
         _digits(5), horodate=True, phase=i, three_phase=True) for i in range(1, 4)],
    _s("SINSTI", "Instantaneous apparent power injected", "VA", "int", 5, _digits(5),
       producer=True),
    _s("SMAXIN", "Max apparent power injected today", "VA", "int", 5, _digits(5),
       horodate=True, producer=True),
    _s("SMAXIN-1", "Max apparent power injected yesterday", "VA", "int", 5, _digits(5),
       horodate=True, producer=True),
    _s("CCASN", "Active load curve withdrawn, point n", "W", "int", 5, _digits(5),
       horodate=True),
    _s("CCASN-1", "Active load curve withdrawn, point n-1", "W", "int", 5, _digits(5),
       horodate=True),
    _s("CCAIN", "Active load curve injected, point n", "W", "int", 5, _digits(5),
       horodate=True, producer=True),
    _s("CCAIN-1", "Active load curve injected, point n-1", "W", "int", 5, _digits(5),
       horodate=True, producer=True),
    *[_s(f"UMOY{i}", f"Mean voltage, phase {i}", "V", "int", 3, _digits(3), horodate=True,
         phase=i, three_phase=i > 1) for i in range(1, 4)],
    _s("STGE", "Status register (see teleinfo.stge)", None, "hex", 8, _hex(8)),
    # DPMx/FPMx carry a horodate whose season char is SP (54E §6.2.1.1).
    *[_s(f"{kind}PM{i}", f"{'Start' if kind == 'D' else 'End'} of mobile peak {i}", None,
         "code", 2, _digits(2), horodate=True) for i in range(1, 4) for kind in "DF"],
    _s("MSG1", "Short message", None, "text", 32, _text(32), fixed_width=False),
    _s("MSG2", "Ultra-short message", None, "text", 16, _text(16), fixed_width=False),
    _s("PRM", "Delivery point reference (PRM / PDL)", None, "id", 14, _digits(14)),
    _s("RELAIS", "Relay states (bit n-1 = relay n closed)", None, "int", 3, _digits(3)),
    _s("NTARF", "Current tariff index number", None, "int", 2, _digits(2)),
    _s("NJOURF", "Current day number, supplier calendar", None, "int", 2, _digits(2)),
    _s("NJOURF+1", "Next day number, supplier calendar", None, "int", 2, _digits(2)),
    _s("PJOURF+1", "Next day profile, supplier calendar", None, "profile", 98,
       _regex(_PROFILE), fixed_width=False),
    _s("PPOINTE", "Next peak day profile", None, "profile", 98, _regex(_PROFILE),
       fixed_width=False),
]

HISTORIC_LABELS: dict[str, LabelInfo] = {i.name: i for i in _HISTORIC}
STANDARD_LABELS: dict[str, LabelInfo] = {i.name: i for i in _STANDARD}
LABELS: dict[str, LabelInfo] = {**HISTORIC_LABELS, **STANDARD_LABELS}
assert len(LABELS) == len(HISTORIC_LABELS) + len(STANDARD_LABELS), "label names overlap"

HORODATE_LABELS: frozenset[str] = frozenset(i.name for i in _STANDARD if i.horodate)

# LF + 9-char label + HT + horodate(13) + HT + 98-char value + HT + checksum + CR = 126; the
# spec's longest group is PJOURF+1/PPOINTE (111 bytes). LibTeleinfo also rejects >= 128.
MAX_GROUP_BYTES = 128


def _group_bytes(info: LabelInfo) -> int:
    horodate = 14 if info.horodate else 0
    return 1 + len(info.name) + 1 + horodate + info.width + 1 + 1 + 1


# A frame holding every standard label at once is the largest the spec allows; a margin of
# 8 maximal groups leaves room for labels not in 54E (pilot meters, 02E variants).
MAX_FRAME_BYTES = 2 + sum(_group_bytes(i) for i in _STANDARD) + 8 * MAX_GROUP_BYTES


def label_info(label: str) -> LabelInfo | None:
    """The table entry for ``label`` (either mode), or None for an unknown label."""
    return LABELS.get(label)
