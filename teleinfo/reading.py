"""The normalized, mode-independent reading built from one frame (schema: docs/reading-schema.md).

Spec names stay at the protocol edge; this is the one place they are translated
(protocol.md §2.4 historic <-> standard correspondence). A field whose source group is absent
or was dropped is None, never guessed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from teleinfo.labels import LABELS
from teleinfo.protocol import Frame
from teleinfo.stge import decode_stge

__all__ = ["build_reading", "horodate_to_iso", "horodate_to_datetime", "READING_FIELDS"]

READING_FIELDS = (
    "pdl", "meter", "mode", "time", "tariff_period", "import_wh", "import_wh_by_period",
    "export_wh", "power_va", "export_power_va", "current_a", "voltage_v", "subscribed_kva",
    "overload", "status",
)

# Season char -> UTC offset: French legal time, H winter, E summer; lower case = same offset,
# meter clock degraded; SP = no season (54E §6.2.1.1).
_OFFSETS = {"H": "+01:00", "h": "+01:00", "E": "+02:00", "e": "+02:00"}
_TZ = {"+01:00": timezone(timedelta(hours=1)), "+02:00": timezone(timedelta(hours=2))}

_SUPPLIER_INDEXES = tuple(f"EASF{i:02d}" for i in range(1, 11))
_HISTORIC_INDEXES = ("BASE", "HCHC", "HCHP", "EJPHN", "EJPHPM", "BBRHCJB", "BBRHPJB",
                     "BBRHCJW", "BBRHPJW", "BBRHCJR", "BBRHPJR")
_HISTORIC_INDEX_SET = frozenset(_HISTORIC_INDEXES)
# Index groups a historic meter sends for each OPTARIF (02E; 54E §6.1.1).
_INDEXES_BY_OPTION = {
    "BASE": frozenset({"BASE"}),
    "HC..": frozenset({"HCHC", "HCHP"}),
    "EJP.": frozenset({"EJPHN", "EJPHPM"}),
    "BBR": frozenset(_HISTORIC_INDEXES[5:]),
}
_HISTORIC_THREE_PHASE = frozenset({"IINST1", "IINST2", "IINST3", "IMAX1", "IMAX2", "IMAX3",
                                   "ADIR1", "ADIR2", "ADIR3", "PPOT", "PMAX"})
_HISTORIC_SINGLE_PHASE = frozenset({"IINST", "IMAX", "ADPS"})
_OVERLOAD_LABELS = frozenset({"ADPS", "ADIR1", "ADIR2", "ADIR3"})


def build_reading(frame: Frame, received_at: datetime | None = None) -> dict[str, Any]:
    """The normalized reading of ``frame``; ``received_at`` is used when it has no DATE."""
    if frame.mode == "standard":
        reading = _standard(frame)
    else:
        reading = _historic(frame)
    if reading["time"] is None and received_at is not None:
        reading["time"] = received_at.isoformat(timespec="milliseconds")
        reading["time_source"] = "receiver"
    return reading


def _prm(value: str | None) -> str | None:
    """The PRM, or None when absent or blank/all zeros (unset or anonymised: not an identity)."""
    if value is None or not value.strip("0 "):
        return None
    return value


def horodate_to_iso(horodate: str) -> str | None:
    """``H240210121413`` -> ``2024-02-10T12:14:13+01:00``; None without a season (DPM/FPM)."""
    offset = _OFFSETS.get(horodate[:1])
    if offset is None or len(horodate) != 13:
        return None
    h = horodate
    return f"20{h[1:3]}-{h[3:5]}-{h[5:7]}T{h[7:9]}:{h[9:11]}:{h[11:13]}{offset}"


def horodate_to_datetime(horodate: str) -> datetime | None:
    """Aware datetime for a horodate; naive (meter local time) when the season is blank."""
    h = horodate
    try:
        naive = datetime(2000 + int(h[1:3]), int(h[3:5]), int(h[5:7]), int(h[7:9]),
                         int(h[9:11]), int(h[11:13]))
    except ValueError:
        return None
    offset = _OFFSETS.get(h[:1])
    return naive.replace(tzinfo=_TZ[offset]) if offset else naive


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip(" ") or None


def _phases(p1: str | None, p2: str | None, p3: str | None, invalid: list[str],
            label2: str, label3: str) -> list[int | None] | None:
    """Per-phase list; three entries as soon as a phase-2/3 group is seen, even dropped."""
    if p2 is None and p3 is None and not (invalid and (label2 in invalid or label3 in invalid)):
        return [int(p1)] if p1 is not None else None
    return [int(p1) if p1 is not None else None, int(p2) if p2 is not None else None,
            int(p3) if p3 is not None else None]


def _standard(frame: Frame) -> dict[str, Any]:
    g = frame.groups
    get = g.get
    invalid = frame.invalid
    meter = get("ADSC")
    time = clock_degraded = None
    date = frame.horodates.get("DATE")
    if date is not None:
        time = horodate_to_iso(date)
        if time is not None:
            clock_degraded = date[0] in "he"
    by_period = _by_period(tuple(map(get, _SUPPLIER_INDEXES)))
    stge = get("STGE")
    status = _status(stge) if stge is not None else None
    current = _phases(get("IRMS1"), get("IRMS2"), get("IRMS3"), invalid, "IRMS2", "IRMS3")
    voltage = _phases(get("URMS1"), get("URMS2"), get("URMS3"), invalid, "URMS2", "URMS3")
    v = get("EAST")
    import_wh = int(v) if v is not None else None
    v = get("SINSTS")
    power = int(v) if v is not None else None
    v = get("LTARF")
    tariff = (v.strip(" ") or None) if v is not None else None
    v = get("EAIT")
    export_wh = int(v) if v is not None else None
    v = get("SINSTI")
    export_power = int(v) if v is not None else None
    v = get("PREF")
    subscribed = int(v) if v is not None else None
    v = get("NTARF")
    tariff_index = int(v) if v is not None else None
    return {
        "pdl": _prm(get("PRM")) or meter,
        "meter": meter,
        "mode": "standard",
        "time": time,
        "tariff_period": tariff,
        "import_wh": import_wh,
        "import_wh_by_period": by_period,
        "export_wh": export_wh,
        "power_va": power,
        "export_power_va": export_power,
        "current_a": current,
        "voltage_v": voltage,
        "subscribed_kva": subscribed,
        "overload": status["overload"] if status is not None else None,
        "status": status,
        "time_source": "meter" if time is not None else None,
        "clock_degraded": clock_degraded,
        "tariff_index": tariff_index,
        "phases": len(current) if current is not None else None,
    }


_STATUS_CACHE: dict[str, dict[str, Any]] = {}
_PERIOD_CACHE: dict[tuple[str | None, ...], dict[str, int] | None] = {}


def _by_period(raw: tuple[str | None, ...]) -> dict[str, int] | None:
    """EASF01-10 as ints, memoized on the raw values (they change every few frames)."""
    cached = _PERIOD_CACHE.get(raw)
    if cached is None:
        cached = {label: int(v) for label, v in zip(_SUPPLIER_INDEXES, raw) if v is not None}
        if not cached:
            return None
        if len(_PERIOD_CACHE) > 256:
            _PERIOD_CACHE.clear()
        _PERIOD_CACHE[raw] = cached
    return cached.copy()


def _status(stge: str) -> dict[str, Any]:
    """decode_stge, memoized (STGE rarely changes); each reading gets its own copy."""
    cached = _STATUS_CACHE.get(stge)
    if cached is None:
        if len(_STATUS_CACHE) > 256:
            _STATUS_CACHE.clear()
        cached = _STATUS_CACHE[stge] = decode_stge(stge)
    return cached.copy()


def _historic(frame: Frame) -> dict[str, Any]:
    g = frame.groups
    get = g.get
    invalid = frame.invalid
    meter = get("ADCO")
    by_period = _historic_periods(tuple(map(get, _HISTORIC_INDEXES)))

    option = get("OPTARIF")
    expected = None
    if option is not None:
        expected = _INDEXES_BY_OPTION.get("BBR" if option.startswith("BBR") else option)
    if expected is not None:
        complete = by_period is not None and by_period.keys() >= expected
    else:  # unknown option: any dropped group might have been an index
        complete = not any(label in _HISTORIC_INDEX_SET or label not in LABELS
                           for label in invalid)
    import_wh = sum(by_period.values()) if by_period is not None and complete else None

    phases: int | None = None
    current: list[int | None] | None = None
    if not _HISTORIC_THREE_PHASE.isdisjoint(g) or (
            invalid and not _HISTORIC_THREE_PHASE.isdisjoint(invalid)):
        phases = 3
        current = [_int(get("IINST1")), _int(get("IINST2")), _int(get("IINST3"))]
        if current == [None, None, None]:
            current = None
    elif not _HISTORIC_SINGLE_PHASE.isdisjoint(g):
        phases = 1
        v = get("IINST")
        current = [int(v)] if v is not None else None

    v = get("ISOUSC")
    # ISOUSC is per phase at 200 V: PREF = ISOUSC x 0.2 kVA x phases (54E §6.1).
    subscribed = int(v) * phases / 5 if v is not None and phases else None

    if not _OVERLOAD_LABELS.isdisjoint(g):
        overload: bool | None = True
    elif invalid and any(label in _OVERLOAD_LABELS or label not in LABELS for label in invalid):
        overload = None  # the dropped group may have been the warning
    else:
        overload = False
    v = get("PAPP")
    return {
        "pdl": meter,
        "meter": meter,
        "mode": "historic",
        "time": None,
        "tariff_period": _text(get("PTEC")),
        "import_wh": import_wh,
        "import_wh_by_period": by_period,
        "export_wh": None,
        "power_va": int(v) if v is not None else None,
        "export_power_va": None,
        "current_a": current,
        "voltage_v": None,
        "subscribed_kva": subscribed,
        "overload": overload,
        "status": None,
        "time_source": None,
        "clock_degraded": None,
        "tariff_index": None,
        "phases": phases,
    }


_HISTORIC_PERIOD_CACHE: dict[tuple[str | None, ...], dict[str, int]] = {}


def _historic_periods(raw: tuple[str | None, ...]) -> dict[str, int] | None:
    """Historic index groups as ints, memoized on the raw values."""
    cached = _HISTORIC_PERIOD_CACHE.get(raw)
    if cached is None:
        cached = {label: int(v) for label, v in zip(_HISTORIC_INDEXES, raw) if v is not None}
        if not cached:
            return None
        if len(_HISTORIC_PERIOD_CACHE) > 256:
            _HISTORIC_PERIOD_CACHE.clear()
        _HISTORIC_PERIOD_CACHE[raw] = cached
    return cached.copy()
