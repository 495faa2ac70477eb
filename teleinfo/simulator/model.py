"""Meter models: what a Linky (or an older historic meter) would send, frame by frame.

Everything is a pure function of the simulated clock and a seed, so a run is reproducible from
``--start`` and ``--seed``. Energy is integrated from the power the meter reports: between two
frames the registers grow by ``P x dt``, where ``P`` is the power of the first frame and ``dt``
the simulated time between them. Indexes are the floor of the true (float) energy, so
``index(end) - index(start)`` equals the true energy to the Wh.

Tariffs (domain.md §4): BASE; HP/HC with configurable off-peak ranges; Tempo (HP 06-22, HC
22-06, colours chosen per Tempo day 06:00->06:00 with the real rules: Sunday blue, red only
on November-March weekdays). Standard-mode labels follow 54E §6.2.2 (fixtures F3-F6),
historic ones 02E/54E §6.1 (F1, F2).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from teleinfo.encode import EOT, encode_frame

__all__ = ["MeterSpec", "Meter", "FrameOut", "parse_meter_spec", "default_specs",
           "tempo_colour", "PARIS"]

PARIS = ZoneInfo("Europe/Paris")
_GAP_SECONDS = 0.025  # between frames: 16.7 to 33.4 ms (54E §5.3.6)
_COLOURS = ("BLEU", "BLANC", "ROUGE")
_DEMAIN = {"BLEU": "BLEU", "BLANC": "BLAN", "ROUGE": "ROUG"}
_PTEC_COLOUR = {"BLEU": "B", "BLANC": "W", "ROUGE": "R"}
_HIST_INDEXES = {
    "base": ("BASE",),
    "hchp": ("HCHC", "HCHP"),
    "tempo": ("BBRHCJB", "BBRHPJB", "BBRHCJW", "BBRHPJW", "BBRHCJR", "BBRHPJR"),
}
_NGTF = {"base": "BASE", "hchp": "H PLEINE/CREUSE", "tempo": "TEMPO"}
_OPTARIF = {"base": "BASE", "hchp": "HC..", "tempo": "BBR("}
_MSG1 = "PAS DE          MESSAGE         "
_STGE_BASE = 0x003A0000  # standard TIC, Euridis on and secured, CPL locked (fixture F3)


@dataclass(frozen=True)
class MeterSpec:
    """One simulated meter. ``hc``: off-peak ranges in minutes of the local day."""

    mode: str = "standard"  # standard | historic
    phases: int = 1  # 1 | 3
    producer: bool = False
    tariff: str = "hchp"  # base | hchp | tempo
    kva: int = 6
    pv_kwc: float = 3.0
    hc: tuple[tuple[int, int], ...] = ((22 * 60 + 30, 6 * 60 + 30),)
    index: int = 0  # position in the simulator, used for ids
    seed: int = 1
    pdl: str | None = None  # PRM (standard); default derived from seed/index

    @property
    def baud(self) -> int:
        return 9600 if self.mode == "standard" else 1200

    @property
    def adsc(self) -> str:
        type_code = "76" if self.phases == 3 else "64"  # tri 60 A G3 / mono 60 A G3 (§1.8)
        return f"0424{type_code}{(self.seed * 1000 + self.index) % 1_000_000:06d}"

    @property
    def prm(self) -> str:
        return self.pdl or f"{24_000_000_000_000 + self.seed * 1000 + self.index:014d}"

    @property
    def reading_pdl(self) -> str:
        """The ``pdl`` the decoder reports: PRM in standard mode, the address in historic."""
        return self.prm if self.mode == "standard" else self.adsc

    def describe(self) -> str:
        return (f"{self.mode} {'tri' if self.phases == 3 else 'mono'} "
                f"{'producer' if self.producer else 'consumer'} {self.tariff} {self.kva} kVA")


def parse_meter_spec(text: str, index: int = 0, seed: int = 1) -> MeterSpec:
    """``standard,tri,producer,tempo,kva=9,pv=4.5,hc=22:30-06:30+12:00-14:00,pdl=...``."""
    kw: dict[str, Any] = {"index": index, "seed": seed}
    for token in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = token.partition("=")
        if not sep:
            if token in ("standard", "historic"):
                kw["mode"] = token
            elif token in ("mono", "tri"):
                kw["phases"] = 3 if token == "tri" else 1
            elif token in ("consumer", "producer"):
                kw["producer"] = token == "producer"
            elif token in ("base", "hchp", "tempo"):
                kw["tariff"] = token
            else:
                raise ValueError(f"unknown meter option {token!r}")
        elif key == "kva":
            kw["kva"] = int(value)
        elif key == "pv":
            kw["pv_kwc"] = float(value)
        elif key == "pdl":
            kw["pdl"] = value
        elif key == "seed":
            kw["seed"] = int(value)
        elif key == "hc":
            kw["hc"] = tuple(_parse_range(r) for r in value.split("+"))
        else:
            raise ValueError(f"unknown meter option {key!r}")
    spec = MeterSpec(**kw)
    if spec.kva < 1 or spec.kva > 36:
        raise ValueError("kva must be 1..36")
    return spec


def default_specs(count: int, seed: int = 1) -> list[MeterSpec]:
    """A varied fleet: standard HP/HC, standard tri producer Tempo, historic Tempo, ..."""
    mix = ["standard,mono,consumer,hchp", "standard,tri,producer,tempo,kva=12",
           "historic,mono,consumer,tempo", "standard,mono,producer,base",
           "historic,tri,consumer,base,kva=12"]
    return [parse_meter_spec(mix[i % len(mix)], index=i, seed=seed) for i in range(count)]


def tempo_colour(day: date, seed: int = 1) -> str:
    """Colour of a Tempo day (06:00 -> 06:00): Sunday blue; red only November-March on
    weekdays; white never on Sunday (domain.md §4.1). Deterministic per (seed, day)."""
    if day.weekday() == 6:
        return "BLEU"
    u = _unit(seed, "tempo", day.toordinal())
    winter = day.month in (11, 12, 1, 2, 3)
    if winter and day.weekday() < 5 and u < 0.20:
        return "ROUGE"
    if u > (0.80 if winter else 0.93):
        return "BLANC"
    return "BLEU"


@dataclass
class FrameOut:
    """One frame as sent, and what it says (the ground truth for that frame)."""

    data: bytes  # on the wire (with corruption/EOT when injected)
    seconds: float  # simulated time until the next frame starts
    truth: dict[str, Any]  # time, import_wh, import_wh_by_period, export_wh, power_va, status


@dataclass
class Meter:
    """The state of one meter; ``next_frame()`` emits a frame and advances the clock."""

    spec: MeterSpec
    now: datetime  # aware, simulated (kept in UTC)
    error_rate: float = 0.0
    energy: list[float] = field(default_factory=list)  # Wh per tariff period (true)
    exported: float = 0.0  # Wh (true)
    start_energy: list[float] = field(default_factory=list)
    start_exported: float = 0.0
    frames: int = 0
    _rng: random.Random = field(default_factory=random.Random)
    _smax: dict[str, Any] = field(default_factory=dict)
    _curve: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.spec
        # Arithmetic in UTC: adding a timedelta to a zoneinfo datetime is wall-clock arithmetic
        # and would walk straight through a DST change.
        self.now = self.now.astimezone(timezone.utc)
        self._rng = random.Random(f"{s.seed}:{s.index}:errors")
        n = len(_HIST_INDEXES[s.tariff])
        if not self.energy:
            base = random.Random(f"{s.seed}:{s.index}:index")
            self.energy = [float(base.randint(200_000, 20_000_000)) for _ in range(n)]
            self.exported = float(base.randint(0, 5_000_000)) if s.producer else 0.0
        self.start_energy = list(self.energy)
        self.start_exported = self.exported
        self._smax = {"day": self.now.date(), "today": [0.0] * 4, "today_at": [self.now] * 4,
                      "yesterday": [self._p0(k) for k in range(4)],
                      "yesterday_at": [self.now - timedelta(hours=17)] * 4,
                      "inj_today": 0.0, "inj_today_at": self.now, "inj_yesterday": 0.0,
                      "inj_yesterday_at": self.now - timedelta(hours=20)}
        self._curve = {"start": _floor(self.now, 30), "imp": self.total_import,
                       "exp": self.exported, "cur_ccasn": 0, "cur_ccain": 0,
                       "prev_ccasn": 0, "prev_ccain": 0}

    # -- what the meter measures ---------------------------------------------------------

    @property
    def total_import(self) -> float:
        return sum(self.energy)

    def load_w(self, t: datetime) -> float:
        """Household consumption (W) at ``t``: base load, fridge cycles, heating in winter,
        meals, water heater in off-peak hours, and a few seeded appliance runs per day."""
        s = self.spec
        local = t.astimezone(PARIS)
        hour = local.hour + local.minute / 60 + local.second / 3600
        sec_of_day = hour * 3600
        scale = 1.6 if s.phases == 3 else 1.0
        p = 160.0 + 40 * math.sin(2 * math.pi * hour / 24)
        p += 95.0 if (sec_of_day % 1800) < 700 else 0.0  # fridge
        season = _heating_season(local.date())
        if season:
            # thermostat cycling, stronger at night and in the morning
            duty = season * (0.55 + 0.35 * math.cos(2 * math.pi * (hour - 6) / 24))
            if (sec_of_day % 1200) < 1200 * duty:
                p += 1800 * scale
        day = local.date()
        for start, minutes, watts in self._events(day):
            if start <= hour < start + minutes / 60:
                p += watts * scale
        if self._in_water_heater(local):
            p += 2200.0
        jitter = _unit(s.seed, "noise", s.index, int(sec_of_day // 2)) - 0.5
        return max(60.0, p * (1 + 0.04 * jitter))

    def solar_w(self, t: datetime) -> float:
        """PV production (W): a clear-sky bell between sunrise and sunset, scaled by season
        and by a seeded cloudiness per day and per 10-minute block."""
        s = self.spec
        if not s.producer:
            return 0.0
        local = t.astimezone(PARIS)
        doy = local.timetuple().tm_yday
        offset_h = local.utcoffset().total_seconds() / 3600  # type: ignore[union-attr]
        noon = 11.8 + offset_h  # France is ~2 deg E: solar noon ~11:50 UTC
        length = 12 + 3.9 * math.sin(2 * math.pi * (doy - 80) / 365)
        hour = local.hour + local.minute / 60 + local.second / 3600
        x = (hour - (noon - length / 2)) / length
        if not 0 < x < 1:
            return 0.0
        amplitude = 0.78 + 0.22 * math.sin(2 * math.pi * (doy - 80) / 365)
        cloud_day = 0.35 + 0.65 * _unit(s.seed, "cloud", s.index, local.date().toordinal())
        block = int((local.hour * 60 + local.minute) // 10)
        cloud_block = 0.75 + 0.25 * _unit(s.seed, "cloud10", s.index, local.date().toordinal(),
                                          block)
        return s.pv_kwc * 1000 * 0.85 * amplitude * math.sin(math.pi * x) ** 1.5 \
            * cloud_day * cloud_block

    def period(self, t: datetime) -> tuple[int, str, str | None]:
        """(register index, colour for Tempo or None, HP/HC/TH) at ``t``."""
        s = self.spec
        local = t.astimezone(PARIS)
        minute = local.hour * 60 + local.minute
        if s.tariff == "base":
            return 0, None, "TH"
        if s.tariff == "hchp":
            return (0, None, "HC") if _in_ranges(minute, s.hc) else (1, None, "HP")
        hp = 6 * 60 <= minute < 22 * 60
        colour = tempo_colour((local - timedelta(hours=6)).date(), s.seed)
        return _COLOURS.index(colour) * 2 + (1 if hp else 0), colour, "HP" if hp else "HC"

    # -- frames --------------------------------------------------------------------------

    def next_frame(self) -> FrameOut:
        """Build the frame for ``now``, then integrate energy over its duration."""
        s = self.spec
        t = self.now
        load = self.load_w(t)
        pv = self.solar_w(t)
        net = load - pv
        import_w = max(net, 0.0)
        export_w = max(-net, 0.0)
        register, colour, hphc = self.period(t)
        self._track(t, import_w, export_w)
        if s.mode == "standard":
            groups = self._standard_groups(t, import_w, export_w, register, colour)
        else:
            groups = self._historic_groups(t, import_w, register, colour, hphc)
        clean = encode_frame(groups, s.mode)
        seconds = len(clean) * 10 / s.baud + _GAP_SECONDS
        truth = {
            "time": _iso(t) if s.mode == "standard" else None,
            "sim_time": _iso(t),
            "import_wh": self._east(),
            "import_wh_by_period": self._by_period(),
            "export_wh": int(self.exported) if s.mode == "standard" and s.producer else None,
            "power_va": _round_power(import_w, s.mode),
            "tariff_period": self._tariff_label(colour, hphc),
            "status": "intact",
        }
        data = clean
        if self.error_rate and self._rng.random() < self.error_rate:
            data, truth["status"] = self._corrupt(clean)
        # integrate over the frame period, then advance the clock
        dt = seconds
        self.energy[register] += import_w * dt / 3600
        self.exported += export_w * dt / 3600
        self.now = t + timedelta(seconds=dt)
        self.frames += 1
        return FrameOut(data, seconds, truth)

    def truth_summary(self) -> dict[str, Any]:
        """Energy since the start, per period label, true (float) and as indexes (int)."""
        labels = self._labels()
        s = self.spec
        return {
            "pdl": s.reading_pdl,
            "meter": s.adsc,
            "mode": s.mode,
            "phases": s.phases,
            "producer": s.producer,
            "tariff": s.tariff,
            "kva": s.kva,
            "frames": self.frames,
            "first_index": {l: int(e) for l, e in zip(labels, self.start_energy)},
            "last_index": {l: int(e) for l, e in zip(labels, self.energy)},
            "energy_wh": {l: e - e0 for l, e, e0 in zip(labels, self.energy, self.start_energy)},
            "export_first_index": int(self.start_exported) if s.producer else None,
            "export_last_index": int(self.exported) if s.producer else None,
            "export_energy_wh": self.exported - self.start_exported if s.producer else None,
        }

    # -- helpers -------------------------------------------------------------------------

    def _labels(self) -> tuple[str, ...]:
        if self.spec.mode == "historic":
            return _HIST_INDEXES[self.spec.tariff]
        return tuple(f"EASF{i + 1:02d}" for i in range(len(self.energy)))

    def _by_period(self) -> dict[str, int]:
        by = {l: int(e) for l, e in zip(self._labels(), self.energy)}
        if self.spec.mode == "standard":
            for i in range(len(self.energy) + 1, 11):
                by[f"EASF{i:02d}"] = 0
        return by

    def _east(self) -> int:
        return sum(int(e) for e in self.energy)

    def _tariff_label(self, colour: str | None, hphc: str | None) -> str:
        s = self.spec
        if s.mode == "historic":
            if s.tariff == "base":
                return "TH.."
            if s.tariff == "hchp":
                return f"{hphc}.."
            return f"{hphc}J{_PTEC_COLOUR[colour or 'BLEU']}"
        if s.tariff == "base":
            return "BASE"
        if s.tariff == "hchp":
            return "HEURE  CREUSE" if hphc == "HC" else "HEURE  PLEINE"
        return f"{hphc}  {colour}"

    def _p0(self, k: int) -> float:
        return 2000 + 3000 * _unit(self.spec.seed, "smax", self.spec.index, k)

    def _events(self, day: date) -> list[tuple[float, float, float]]:
        """(start hour, minutes, watts) of the day's appliance runs, seeded per day."""
        r = random.Random(f"{self.spec.seed}:{self.spec.index}:{day.toordinal()}")
        events = [
            (6.5 + r.random(), 20, 1800.0),  # breakfast: kettle, toaster
            (11.8 + r.random() * 0.8, 45, 1500.0 + 800 * r.random()),  # lunch
            (18.7 + r.random() * 1.2, 60, 2000.0 + 1200 * r.random()),  # dinner: oven, hob
            (20.5 + r.random() * 2, 90, 250.0),  # TV, lights
        ]
        for _ in range(r.randint(2, 5)):
            events.append((7 + r.random() * 15, 3, 2200.0))  # kettle
        if r.random() < 0.6:
            events.append((9 + r.random() * 10, 80, 1900.0))  # washing machine
        if r.random() < 0.5:
            events.append((20.5 + r.random() * 1.5, 70, 1700.0))  # dishwasher
        return events

    def _in_water_heater(self, local: datetime) -> bool:
        """Electric water heater: 2.5 h from the start of the night's off-peak period."""
        minute = local.hour * 60 + local.minute
        s = self.spec
        if s.tariff == "hchp":
            start = max(s.hc, key=lambda r: (r[1] - r[0]) % 1440)[0]
        elif s.tariff == "tempo":
            start = 22 * 60
        else:
            start = 23 * 60
        return (minute - start) % 1440 < 150

    def _track(self, t: datetime, import_w: float, export_w: float) -> None:
        """Daily maxima (SMAXSN / SMAXIN) and 30-minute load-curve points (CCASN / CCAIN)."""
        local = t.astimezone(PARIS)
        m = self._smax
        if local.date() != m["day"]:
            m["yesterday"], m["yesterday_at"] = m["today"], m["today_at"]
            m["today"], m["today_at"] = [0.0] * 4, [t] * 4
            m["inj_yesterday"], m["inj_yesterday_at"] = m["inj_today"], m["inj_today_at"]
            m["inj_today"], m["inj_today_at"] = 0.0, t
            m["day"] = local.date()
        per_phase = self._phase_split(import_w)
        for k, v in enumerate([import_w, *per_phase]):
            if v > m["today"][k]:
                m["today"][k], m["today_at"][k] = v, t
        if export_w > m["inj_today"]:
            m["inj_today"], m["inj_today_at"] = export_w, t
        c = self._curve
        start = _floor(t, 30)
        if start != c["start"]:
            # average power over the period that just ended, W
            hours = (start - c["start"]).total_seconds() / 3600
            c["prev_ccasn"], c["prev_ccain"] = c["cur_ccasn"], c["cur_ccain"]
            c["cur_ccasn"] = min(99999, round((self.total_import - c["imp"]) / hours))
            c["cur_ccain"] = min(99999, round((self.exported - c["exp"]) / hours))
            c["prev_start"], c["start"] = c["start"], start
            c["imp"], c["exp"] = self.total_import, self.exported

    def _phase_split(self, watts: float) -> list[float]:
        if self.spec.phases == 1:
            return [watts]
        return [watts * 0.46, watts * 0.33, watts * 0.21]

    def _voltage(self, t: datetime, phase: int) -> int:
        u = _unit(self.spec.seed, "volt", self.spec.index, phase, int(t.timestamp() // 60))
        return int(round(229 + 8 * (u - 0.5) + 3 * math.sin(t.timestamp() / 3600)))

    def _stge(self, register: int, colour: str | None, overload: bool, injecting: bool,
              t: datetime) -> str:
        s = self.spec
        v = _STGE_BASE | (register << 10)
        if overload:
            v |= 1 << 7
        if s.producer:
            v |= 1 << 8
        if injecting:
            v |= 1 << 9
        if s.tariff == "tempo" and colour is not None:
            v |= (_COLOURS.index(colour) + 1) << 24
            local = t.astimezone(PARIS)
            if local.hour >= 11 or local.hour < 6:  # tomorrow is known from ~11h (RTE)
                tomorrow = tempo_colour((local - timedelta(hours=6)).date() + timedelta(days=1),
                                        s.seed)
                v |= (_COLOURS.index(tomorrow) + 1) << 26
        return f"{v:08X}"

    def _standard_groups(self, t: datetime, import_w: float, export_w: float, register: int,
                         colour: str | None) -> list[tuple[str, str | None, str]]:
        s = self.spec
        h = _horodate
        g: list[tuple[str, str | None, str]] = [
            ("ADSC", None, s.adsc), ("VTIC", None, "02"), ("DATE", h(t), ""),
            ("NGTF", None, _NGTF[s.tariff].center(16)),
            ("LTARF", None, self._tariff_label(colour, self.period(t)[2]).center(16)),
            ("EAST", None, f"{self._east():09d}"),
        ]
        for i in range(10):
            value = int(self.energy[i]) if i < len(self.energy) else 0
            g.append((f"EASF{i + 1:02d}", None, f"{value:09d}"))
        g.append(("EASD01", None, f"{self._east():09d}"))
        g += [(f"EASD{i:02d}", None, "000000000") for i in (2, 3, 4)]
        if s.producer:
            imported = self.total_import - sum(self.start_energy)
            exported = self.exported - self.start_exported
            g += [("EAIT", None, f"{int(self.exported):09d}"),
                  ("ERQ1", None, f"{int(imported * 0.21) % 10**9:09d}"),
                  ("ERQ2", None, f"{int(exported * 0.03) % 10**9:09d}"),
                  ("ERQ3", None, f"{int(exported * 0.08) % 10**9:09d}"),
                  ("ERQ4", None, f"{int(imported * 0.02) % 10**9:09d}")]
        phases = range(1, s.phases + 1)
        split = self._phase_split(import_w)
        volts = [self._voltage(t, p) for p in phases]
        for p in phases:
            g.append((f"IRMS{p}", None, f"{min(999, round(split[p - 1] / volts[p - 1])):03d}"))
        for p in phases:
            g.append((f"URMS{p}", None, f"{volts[p - 1]:03d}"))
        g += [("PREF", None, f"{s.kva:02d}"), ("PCOUP", None, f"{s.kva:02d}"),
              ("SINSTS", None, f"{min(99999, round(import_w)):05d}")]
        if s.phases == 3:
            g += [(f"SINSTS{p}", None, f"{min(99999, round(split[p - 1])):05d}") for p in phases]
        m = self._smax
        g.append(("SMAXSN", h(m["today_at"][0]), f"{round(m['today'][0]):05d}"))
        if s.phases == 3:
            g += [(f"SMAXSN{p}", h(m["today_at"][p]), f"{round(m['today'][p]):05d}")
                  for p in phases]
        g.append(("SMAXSN-1", h(m["yesterday_at"][0]), f"{round(m['yesterday'][0]):05d}"))
        if s.phases == 3:
            g += [(f"SMAXSN{p}-1", h(m["yesterday_at"][p]), f"{round(m['yesterday'][p]):05d}")
                  for p in phases]
        if s.producer:
            g += [("SINSTI", None, f"{min(99999, round(export_w)):05d}"),
                  ("SMAXIN", h(m["inj_today_at"]), f"{round(m['inj_today']):05d}"),
                  ("SMAXIN-1", h(m["inj_yesterday_at"]), f"{round(m['inj_yesterday']):05d}")]
        c = self._curve
        prev = c.get("prev_start", c["start"] - timedelta(minutes=30))
        g += [("CCASN", h(c["start"]), f"{c['cur_ccasn']:05d}"),
              ("CCASN-1", h(prev), f"{c['prev_ccasn']:05d}")]
        if s.producer:
            g += [("CCAIN", h(c["start"]), f"{c['cur_ccain']:05d}"),
                  ("CCAIN-1", h(prev), f"{c['prev_ccain']:05d}")]
        umoy_at = _floor(t, 10)
        g += [(f"UMOY{p}", h(umoy_at), f"{self._voltage(umoy_at, p):03d}") for p in phases]
        overload = import_w > s.kva * 1000
        g += [("STGE", None, self._stge(register, colour, overload, export_w > 0, t)),
              ("MSG1", None, _MSG1), ("PRM", None, s.prm), ("RELAIS", None, "000"),
              ("NTARF", None, f"{register + 1:02d}"), ("NJOURF", None, "00"),
              ("NJOURF+1", None, "00"), ("PJOURF+1", None, self._pjourf1(t))]
        return g

    def _pjourf1(self, t: datetime) -> str:
        """Tomorrow's schedule: blocks HHMM + action (index in the low nibble)."""
        s = self.spec
        blocks: list[str] = []
        if s.tariff == "base":
            blocks = ["0000C001"]
        elif s.tariff == "hchp":
            changes = sorted([(a, 1) for a, _ in s.hc] + [(b, 2) for _, b in s.hc])
            first = 1 if _in_ranges(0, s.hc) else 2
            blocks = [f"0000400{first}"] + [f"{m // 60:02d}{m % 60:02d}400{i}"
                                             for m, i in changes if m]
        else:
            local = t.astimezone(PARIS)
            colour = tempo_colour(local.date() + timedelta(days=1), s.seed)
            c = _COLOURS.index(colour) * 2
            blocks = [f"0000400{c + 1}", f"0600400{c + 2}", f"2200400{c + 1}"]
        blocks = blocks[:11]
        return " ".join(blocks + ["NONUTILE"] * (11 - len(blocks)))

    def _historic_groups(self, t: datetime, import_w: float, register: int,
                         colour: str | None, hphc: str | None) -> list[tuple[str, str | None, str]]:
        s = self.spec
        labels = _HIST_INDEXES[s.tariff]
        isousc = s.kva * 5 // s.phases
        g: list[tuple[str, str | None, str]] = [
            ("ADCO", None, s.adsc), ("OPTARIF", None, _OPTARIF[s.tariff]),
            ("ISOUSC", None, f"{isousc:02d}")]
        g += [(label, None, f"{int(e):09d}") for label, e in zip(labels, self.energy)]
        g.append(("PTEC", None, self._tariff_label(colour, hphc)))
        if s.tariff == "tempo":
            local = t.astimezone(PARIS)
            demain = "----"
            if local.hour >= 20 or local.hour < 6:
                tomorrow = tempo_colour((local - timedelta(hours=6)).date() + timedelta(days=1),
                                        s.seed)
                demain = _DEMAIN[tomorrow]
            g.append(("DEMAIN", None, demain))
        split = self._phase_split(import_w)
        amps = [min(999, round(w / 230)) for w in split]
        overload = import_w > s.kva * 1000
        m = self._smax
        if s.phases == 1:
            g.append(("IINST", None, f"{amps[0]:03d}"))
            if overload:
                g.append(("ADPS", None, f"{amps[0]:03d}"))
            g.append(("IMAX", None, "090"))
        else:
            g += [(f"IINST{p}", None, f"{a:03d}") for p, a in enumerate(amps, 1)]
            g += [(f"IMAX{p}", None, "060") for p in (1, 2, 3)]
            g.append(("PMAX", None, f"{min(99999, round(m['yesterday'][0])):05d}"))
        g.append(("PAPP", None, f"{_round_power(import_w, 'historic'):05d}"))
        g.append(("HHPHC", None, "A"))
        g.append(("MOTDETAT", None, "000000"))
        if s.phases == 3:
            g.append(("PPOT", None, "00"))
        return g

    def _corrupt(self, clean: bytes) -> tuple[bytes, str]:
        """Line noise: usually one character of one value altered (a '1' read as '0', the
        real signature, protocol.md §5.3), sometimes a frame cut by EOT."""
        r = self._rng
        if r.random() < 0.25:
            cut = r.randint(2, len(clean) - 2)
            return clean[:cut] + EOT, "interrupted"
        data = bytearray(clean)
        starts = [i for i in range(len(data)) if data[i] == 0x0A]
        for _ in range(20):
            i = r.choice(starts)
            end = data.index(0x0D, i)
            # a position inside the value: after the first separator, before the checksum
            candidates = [j for j in range(i + 2, end - 2) if 0x30 <= data[j] <= 0x39]
            if candidates:
                j = r.choice(candidates)
                data[j] ^= 1 << r.randint(0, 2)
                if data[j] > 0x39:
                    data[j] = 0x30 + (data[j] - 0x30) % 10
                if bytes(data) != clean:
                    return bytes(data), "corrupted"
        return clean, "intact"


def _round_power(watts: float, mode: str) -> int:
    if mode == "historic":
        return min(99990, int(round(watts / 10)) * 10)
    return min(99999, round(watts))


def _heating_season(d: date) -> float:
    """0 in summer, up to 1 in January (electric heating share of the load)."""
    return {1: 1.0, 2: 0.85, 3: 0.6, 4: 0.3, 10: 0.25, 11: 0.6, 12: 0.9}.get(d.month, 0.0)


def _in_ranges(minute: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    for start, end in ranges:
        if start <= end:
            if start <= minute < end:
                return True
        elif minute >= start or minute < end:
            return True
    return False


def _parse_range(text: str) -> tuple[int, int]:
    a, _, b = text.partition("-")
    return _minutes(a), _minutes(b)


def _minutes(hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    value = int(h) * 60 + int(m or 0)
    if not 0 <= value < 1440:
        raise ValueError(f"bad time {hhmm!r}")
    return value


def _floor(t: datetime, minutes: int) -> datetime:
    """Start of the ``minutes`` period containing ``t`` (in UTC terms: periods that divide an
    hour line up with local ones, France's offsets being whole hours)."""
    ts = t.timestamp()
    return datetime.fromtimestamp(ts - ts % (minutes * 60), timezone.utc)


def _horodate(t: datetime) -> str:
    """``SAAMMJJhhmmss``: local legal time, season H (winter, +01:00) or E (summer)."""
    local = t.astimezone(PARIS)
    season = "E" if local.utcoffset() == timedelta(hours=2) else "H"
    return season + local.strftime("%y%m%d%H%M%S")


def _iso(t: datetime) -> str:
    """The reading's ``time`` for a DATE horodate: whole seconds, legal offset."""
    local = t.astimezone(PARIS).replace(microsecond=0)
    return local.isoformat()


def _unit(*parts: object) -> float:
    """Deterministic uniform [0, 1) from the parts (stable across runs and Python versions)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
