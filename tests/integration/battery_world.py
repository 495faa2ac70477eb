"""Helpers of the battery/surplus/alerts integration tests: a deterministic meter simulator, an
independent model of the ledger rules (written from docs/battery.md, not from tables/), and a
real worker subprocess (``faust -A stream.app worker``) configured by ``LINKY_*`` variables.

The simulator produces hourly readings (on UTC hour boundaries, which are Europe/Paris hour
boundaries too) of a standard-mode producer meter with an HP/HC option (HC 22:00-06:00 local):
EASF01 = HC, EASF02 = HP, EAST = their sum, EAIT = injection. It also returns the ground truth:
the energy of every interval between two readings, with its period.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from tests.conftest import REPO_ROOT

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc
HOUR = timedelta(hours=1)
HC_LABEL, HP_LABEL = "HEURES CREUSES", "HEURES PLEINES"


def paris(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=PARIS).astimezone(UTC)


def last_sunday(year: int, month: int) -> date:
    """The last Sunday of a month (the DST change days are the last Sundays of March and October)."""
    last = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


def first_of_previous_month(day: date) -> date:
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


def cents(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


# --------------------------------------------------------------------------- simulator


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    kind: str  # "HP" | "HC"
    import_wh: int
    export_wh: int

    @property
    def day(self) -> date:
        return self.start.astimezone(PARIS).date()

    @property
    def month(self) -> str:
        return f"{self.day.year:04d}-{self.day.month:02d}"


def period_at(t: datetime) -> str:
    hour = t.astimezone(PARIS).hour
    return "HC" if hour >= 22 or hour < 6 else "HP"


@dataclass
class Meter:
    """A producer's Linky in standard mode; indexes start at arbitrary values."""

    pdl: str
    seed: int
    hc: int = 0
    hp: int = 0
    eait: int = 0
    meter_id: str = "041776199277"
    rng: random.Random = field(init=False)
    sun: dict[date, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.hc = self.rng.randint(1_000_000, 9_000_000)
        self.hp = self.rng.randint(1_000_000, 9_000_000)
        self.eait = self.rng.randint(100_000, 900_000)

    def reading(self, t: datetime, **extra: Any) -> dict[str, Any]:
        kind = period_at(t)
        base = {
            "pdl": self.pdl, "meter": self.meter_id, "mode": "standard",
            "time": t.astimezone(PARIS).isoformat(),
            "tariff_period": HC_LABEL if kind == "HC" else HP_LABEL, "tariff_index": 1 if kind == "HC" else 2,
            "import_wh": self.hc + self.hp, "import_wh_by_period": {"EASF01": self.hc, "EASF02": self.hp},
            "export_wh": self.eait, "power_va": 800, "export_power_va": 0, "subscribed_kva": 9,
            "overload": False, "status": None,
        }  # fmt: skip
        base.update(extra)
        return base

    def step(self, start: datetime) -> Interval:
        """Consume and inject during [start, start + 1 h); the indexes move accordingly."""
        local = start.astimezone(PARIS)
        day = local.date()
        if day not in self.sun:
            self.sun[day] = self.rng.choice([0.05, 0.3, 0.6, 0.9, 1.0, 1.0])
        kind = period_at(start)
        hour = local.hour
        imp = self.rng.randint(150, 700)
        if kind == "HC" and hour in (23, 0, 1, 2) and self.rng.random() < 0.35:
            imp += self.rng.randint(1500, 3500)  # an EV charging at night
        exp = 0
        if 9 <= hour <= 17:
            bell = math.sin(math.pi * (hour - 8.5) / 10)
            exp = int(self.sun[day] * 2600 * bell * self.rng.uniform(0.8, 1.1))
            imp = imp // 3
        if kind == "HC":
            self.hc += imp
        else:
            self.hp += imp
        self.eait += exp
        return Interval(start, start + HOUR, kind, imp, exp)

    def run(self, start: datetime, end: datetime) -> tuple[list[dict[str, Any]], list[Interval]]:
        """Readings at every hour of [start, end] (the first is the baseline) and the truth."""
        assert (end - start) % HOUR == timedelta(0), "whole hours only"
        readings = [self.reading(start)]
        intervals = []
        t = start
        while t < end:
            intervals.append(self.step(t))
            t += HOUR
            readings.append(self.reading(t))
        return readings, intervals


# --------------------------------------------------------------------------- independent model


@dataclass
class Row:
    opening: int
    credited: int = 0
    overflow: int = 0
    used_hp: int = 0
    used_hc: int = 0
    imported: int = 0
    exported: int = 0
    fees: Decimal = Decimal(0)
    adjustment: int = 0
    surplus: int = 0  # injected and not stored
    cagnotte: Decimal = Decimal(0)

    @property
    def closing(self) -> int:
        return self.opening + self.credited - self.overflow - self.used_hp - self.used_hc + self.adjustment


@dataclass(frozen=True)
class Terms:
    """What the model needs of a contract version."""

    battery: bool = True
    capacity: int | None = None
    fees: dict[str, Decimal] = field(default_factory=dict)  # by kind
    overflow_rate: Decimal | None = None  # sold overflow
    resale_rate: Decimal | None = None  # surplus_resale offer


def realtime_model(intervals: list[Interval], terms_at: Callable[[datetime], Terms]) -> tuple[int, dict, dict]:
    """Chronological model (domain.md 1.6): per interval charge with the export up to the
    capacity (the rest overflows), then discharge against the import. Returns (level, days,
    months) with rows keyed "YYYY-MM-DD" / "YYYY-MM"."""
    level = 0
    days: dict[str, Row] = {}
    months: dict[str, Row] = {}
    for iv in intervals:
        terms = terms_at(iv.start)
        rows = [days.setdefault(iv.day.isoformat(), Row(level)), months.setdefault(iv.month, Row(level))]
        if terms.battery:
            room = iv.export_wh if terms.capacity is None else max(0, min(iv.export_wh, terms.capacity - level))
            over = iv.export_wh - room
            level += room
            used = min(level, iv.import_wh)
            level -= used
            fee = Decimal(used) * terms.fees.get(iv.kind, Decimal(0)) / 1000
            rate = terms.overflow_rate or Decimal(0)
            for row in rows:
                row.credited += iv.export_wh
                row.overflow += over
                row.used_hp += used if iv.kind == "HP" else 0
                row.used_hc += used if iv.kind == "HC" else 0
                row.fees += fee
                row.surplus += over
                row.cagnotte += Decimal(over) * rate / 1000
        else:
            rate = terms.resale_rate or Decimal(0)
            for row in rows:
                row.surplus += iv.export_wh
                row.cagnotte += Decimal(iv.export_wh) * rate / 1000
        for row in rows:
            row.imported += iv.import_wh
            row.exported += iv.export_wh
    return level, days, months


def monthly_offpeak_model(intervals: list[Interval], fees: dict[str, Decimal],
                          anchors: dict[str, int]) -> tuple[int, dict[str, Row]]:  # fmt: skip
    """Urban Solar monthly settlement, unlimited, HC first (domain.md 1.6): per month
    avail = opening + credits, used_HC = min(avail, import_HC), then HP. ``anchors`` maps a month
    to the invoice balance at its first day (replacing the computed opening)."""
    months: dict[str, Row] = {}
    for iv in intervals:
        row = months.setdefault(iv.month, Row(0))
        row.credited += iv.export_wh
        row.imported += iv.import_wh
        row.exported += iv.export_wh
        if iv.kind == "HC":
            row.used_hc += iv.import_wh  # raw import for now, settled below
        else:
            row.used_hp += iv.import_wh
    opening = 0
    for key in sorted(months):
        row = months[key]
        imp_hc, imp_hp = row.used_hc, row.used_hp
        row.opening = opening
        start = anchors.get(key, opening)
        row.adjustment = start - opening
        avail = start + row.credited
        row.used_hc = min(avail, imp_hc)
        row.used_hp = min(avail - row.used_hc, imp_hp)
        row.fees = (Decimal(row.used_hc) * fees["HC"] + Decimal(row.used_hp) * fees["HP"]) / 1000
        opening = row.closing
    return opening, months


# --------------------------------------------------------------------------- worker and I/O


class Worker:
    """``python -m faust -A stream.app worker`` as a subprocess, configured by env."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", "stream.app", "worker", "-l", "info"],
                env=self.env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def run_cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point (stream.cli:main) in a subprocess."""
    code = "import sys; from stream.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


async def wait_for(predicate: Callable[[], Any], what: str, worker: Worker, timeout: float = 90.0) -> Any:
    """Poll an async predicate until it returns a truthy value (no timing assertion: a bound)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\nworker log:\n{worker.tail()}")


def worker_env(base: dict[str, str], **values: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.update(base)
    env.update(values)
    if "LINKY_READINGS_TOPIC" in env and "LINKY_GATEWAYS_TOPIC" not in {**base, **values}:
        # a gateway registry of the test's own: the default one would be shared by every test,
        # created with the first test's partition count
        env["LINKY_GATEWAYS_TOPIC"] = f"{env['LINKY_READINGS_TOPIC']}.gateways"
    return env


def snapshot_time(payload: dict[str, Any] | None) -> datetime | None:
    if not payload or not payload.get("time"):
        return None
    return datetime.fromisoformat(payload["time"])


def loads(raw: bytes | str | None) -> dict[str, Any] | None:
    return None if raw is None else json.loads(raw)
