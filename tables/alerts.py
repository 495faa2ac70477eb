"""Alert episodes per PDL: a pure state machine that opens each kind once and clears it once.

The alerts agent calls ``fold_reading`` for every normalized reading (teleinfo/reading.py) and
``tick`` from a timer; both return ``(new_state, events)``. An event is ``open`` or ``clear``
for one ``kind``; while an episode is open, nothing more is emitted for that kind, and clear
conditions carry a hold time or hysteresis where a signal can flicker ("never a flood").

Kinds (domain.md 4.5, 6 and 7):

==================== ========================================= ===========================================
kind                 opens                                     clears
==================== ========================================= ===========================================
overload             meter flag (STGE bit 7 / ADPS), or        flag off and power under the threshold
                     power_va > share x subscribed power for   for ``overload_clear_seconds``
                     ``overload_seconds``
meter_silent         ``tick``: no reading for                  the next reading
                     ``silent_seconds`` (reception clock)
historic_mode        historic TIC mode on a producer contract  standard mode, or the contract is no
                     (injection invisible, ask Enedis F185)    longer a producer offer
index_backwards      a total index (import or export) lower    ``backwards_clear_seconds`` of readings
                     than the previous reading's               without a new regression
peak_period          the tariff period turns HP (peak), or a   the period is no longer peak
                     mobile peak (STGE bits 30-31) is running
red_period           the period is a red Tempo period (label   no longer red (one episode per red day,
                     ROUGE/...JR, else STGE colour of today)   06:00 to 06:00)
red_tomorrow         STGE says tomorrow is red                 that Tempo day starts, or tomorrow is
                                                               announced non-red
daily_budget         today's grid import > ``daily_budget_wh`` the day ends (reading or tick)
                     (the PDL's contract version's budget,
                     else the setting: ledger.fold_alerts)
battery_empty        battery projected empty by month end      projection above the margin, or month
                     (tables/battery.projected_month_end_wh)   changes, or no battery offer in force
battery_full         the battery overflows (the month's        no new overflow and the level below
                     overflow grows)                           capacity x (1 - hysteresis), or no
                                                               battery offer in force
bill_over_installment the month's projected bill (current      the projection falls to the installment
                     pace to month end, tables/bill.py) >      or below, the month changes, or no
                     installment x (1 + share), once at least  installment is in force
                     ``bill_min_elapsed_hours`` of the month
                     have data
==================== ========================================= ===========================================

Reading fields used: pdl, mode ("standard"/"historic"), time (ISO-8601 with offset),
tariff_period, import_wh and export_wh (total indexes), power_va, subscribed_kva, overload,
status (decoded STGE, teleinfo/stge.py names: tempo_today/tempo_tomorrow in None/"blue"/"white"/
"red", mobile_peak 0..3, overload). ``status_signals`` is the one adapter from that dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Mapping

from tables.battery import BatteryState, month_key, period_kind, projected_month_end_wh
from tables.calendar import PARIS, local_date, to_utc
from tables.contracts import ContractVersion, Offer
from tables.frozen import replace

SCHEMA_VERSION = 1
KINDS = (
    "overload", "meter_silent", "historic_mode", "index_backwards", "peak_period", "red_period",
    "red_tomorrow", "daily_budget", "battery_empty", "battery_full", "bill_over_installment",
)  # fmt: skip


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds, per deployment. ``daily_budget_wh`` is the default: the contract version in
    force at the reading can set the PDL's own (``alerts.daily_budget_wh``, tables/contracts.py),
    and tables/ledger.py ``fold_alerts`` passes a copy with it."""

    overload_share: float = 1.0  # of subscribed power (kVA x 1000 VA)
    overload_seconds: float = 30.0
    overload_clear_seconds: float = 60.0
    silent_seconds: float = 300.0
    backwards_clear_seconds: float = 3600.0
    daily_budget_wh: int | None = None  # None: no budget alert
    peak_alerts: bool = True
    battery_empty_clear_margin_wh: int = 1000
    battery_full_hysteresis: float = 0.02
    bill_over_installment_share: float = 0.10  # projected bill above installment x (1 + share)
    bill_min_elapsed_hours: float = 72.0  # no projection before this much of the month has data


@dataclass(frozen=True)
class BillProjection:
    """The month's bill at its current pace (tables/bill.py ``projected_total``) and the
    installment in force, as of the reading (the battery agent computes it)."""

    month: str  # "2027-01"
    projected_eur: Decimal
    installment_eur: Decimal | None
    elapsed_hours: float  # hours of the month covered by data


@dataclass(frozen=True)
class OpenAlert:
    kind: str
    since: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClosedAlert:
    """An ended episode, kept for "recent alerts" (the newest ``RECENT_KEPT``)."""

    kind: str
    since: datetime
    until: datetime


RECENT_KEPT = 20


@dataclass(frozen=True)
class AlertEvent:
    pdl: str
    kind: str
    action: str  # "open" | "clear"
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The JSON published on ``linky:{pdl}:alerts``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "pdl": self.pdl,
            "kind": self.kind,
            "action": self.action,
            "at": self.at.isoformat(),
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class AlertState:
    pdl: str | None = None
    open: Mapping[str, OpenAlert] = field(default_factory=dict)
    last_time: datetime | None = None  # meter time of the latest reading
    last_seen: datetime | None = None  # reception clock of the latest reading
    last_import_wh: int | None = None
    last_export_wh: int | None = None
    above_since: datetime | None = None  # power above the overload threshold since
    calm_since: datetime | None = None  # overload condition false since (while open)
    backwards_at: datetime | None = None
    day: date | None = None
    day_import_wh: int = 0
    battery_overflow_seen: int = 0  # month overflow of the battery at the previous reading
    battery_month: str | None = None
    recent: tuple[ClosedAlert, ...] = ()  # ended episodes, oldest first, at most RECENT_KEPT


@dataclass(frozen=True)
class StatusSignals:
    overload: bool = False
    tempo_today: str | None = None  # "blue" | "white" | "red" | None
    tempo_tomorrow: str | None = None
    mobile_peak: bool = False


def status_signals(status: Mapping[str, Any] | None) -> StatusSignals:
    """The fields of a decoded STGE dict (teleinfo/stge.py) the alerts use; None -> defaults."""
    if not status:
        return StatusSignals()
    return StatusSignals(
        overload=bool(status.get("overload")),
        tempo_today=_colour(status.get("tempo_today")),
        tempo_tomorrow=_colour(status.get("tempo_tomorrow")),
        mobile_peak=bool(status.get("mobile_peak")),
    )


def fold_reading(
    state: AlertState,
    reading: Mapping[str, Any],
    settings: AlertSettings,
    *,
    contract_version: ContractVersion | None = None,
    battery: BatteryState | None = None,
    now: datetime | None = None,
    bill: BillProjection | None = None,
) -> tuple[AlertState, list[AlertEvent]]:
    """Fold one reading; ``now`` is the reception clock (default: the reading's time);
    ``bill``: the month's projected bill (None: no tariff or no installment in force).

    A reading not newer than the previous one only proves the meter is alive (it clears
    ``meter_silent``); its values are ignored.
    """
    t = to_utc(datetime.fromisoformat(reading["time"]))
    seen = to_utc(now) if now is not None else t
    pdl = str(reading.get("pdl") or state.pdl or "")
    ep = _Episodes(state, pdl)
    ep.clear("meter_silent", seen)
    st = replace(state, pdl=pdl, last_seen=seen if state.last_seen is None else max(seen, state.last_seen))
    if state.last_time is not None and t <= state.last_time:
        return replace(st, open=ep.open, recent=ep.closed()), ep.events
    signals = status_signals(reading.get("status"))
    st = _overload(st, ep, reading, signals, settings, t)
    _historic_mode(ep, reading, contract_version, t)
    st = _backwards_and_budget(st, ep, reading, settings, t)
    _periods(ep, reading, signals, settings, t)
    _red_tomorrow(ep, signals, t)
    if contract_version is None:
        # No version in force (contract deleted by a tombstone, or not started yet): no battery,
        # so an episode opened under an earlier version must end (it could never clear otherwise).
        ep.clear("battery_empty", t)
        ep.clear("battery_full", t)
    elif battery is not None:
        st = _battery(st, ep, contract_version, battery, settings, t)
    _bill(ep, bill, settings, t)
    return replace(st, open=ep.open, recent=ep.closed(), last_time=t), ep.events


def _bill(ep: "_Episodes", bill: BillProjection | None, settings: AlertSettings, t: datetime) -> None:
    kind = "bill_over_installment"
    current = ep.open.get(kind)
    if bill is None or bill.installment_eur is None:
        ep.clear(kind, t)
        return
    if current is not None and current.details.get("month") != bill.month:
        ep.clear(kind, t, {"month": current.details.get("month")})
    elif current is not None and bill.projected_eur <= bill.installment_eur:
        ep.clear(kind, t, {"month": bill.month, "projected_eur": str(bill.projected_eur)})
        return
    threshold = bill.installment_eur * (1 + Decimal(str(settings.bill_over_installment_share)))
    if bill.elapsed_hours >= settings.bill_min_elapsed_hours and bill.projected_eur > threshold:
        ep.open_(kind, t, {"month": bill.month, "projected_eur": str(bill.projected_eur),
                           "installment_eur": str(bill.installment_eur),
                           "over_eur": str(bill.projected_eur - bill.installment_eur)})  # fmt: skip


def tick(state: AlertState, now: datetime, settings: AlertSettings) -> tuple[AlertState, list[AlertEvent]]:
    """Timer: open ``meter_silent`` after ``silent_seconds`` without a reading, and end the
    daily budget episode at midnight even if the meter is silent."""
    now = to_utc(now)
    ep = _Episodes(state, state.pdl or "")
    if state.last_seen is not None and (now - state.last_seen).total_seconds() > settings.silent_seconds:
        ep.open_("meter_silent", state.last_seen, {"last_reading": state.last_seen.isoformat()})
    if "daily_budget" in ep.open and state.day is not None and local_date(now) > state.day:
        ep.clear("daily_budget", now)
    return replace(state, open=ep.open, recent=ep.closed()), ep.events


def render_open_alerts(state: AlertState) -> dict[str, Any]:
    """The open-alerts table entry of a PDL (for the HTTP query and the snapshot key)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": state.pdl,
        "open": [
            {"kind": a.kind, "since": a.since.isoformat(), "details": dict(a.details)}
            for a in sorted(state.open.values(), key=lambda a: (a.since, a.kind))
        ],
        "recent": render_recent(state),
    }


def render_recent(state: AlertState) -> list[dict[str, Any]]:
    """The ended episodes kept, newest first (the page's "alertes récentes")."""
    return [{"kind": c.kind, "since": c.since.isoformat(), "until": c.until.isoformat()} for c in reversed(state.recent)]


def tempo_colour(label: str | None) -> str | None:
    """Tempo colour carried by a period label ("HP  ROUGE", "HCJR", "BBRHPJR"), else None."""
    if not label:
        return None
    text = " ".join(label.upper().replace(".", " ").split())
    if "ROUGE" in text or "RED" in text.split() or text.endswith("JR"):
        return "red"
    if "BLANC" in text or "WHITE" in text.split() or text.endswith("JW"):
        return "white"
    if "BLEU" in text or "BLUE" in text.split() or text.endswith("JB"):
        return "blue"
    return None


def tempo_day(when: datetime) -> date:
    """The Tempo day of an instant: days run 06:00 -> 06:00 Europe/Paris (domain.md 4.1)."""
    return local_date(when) if _paris_hour(when) >= 6 else local_date(when) - timedelta(days=1)


def state_to_dict(state: AlertState) -> dict[str, Any]:
    def iso(v: datetime | date | None) -> str | None:
        return None if v is None else v.isoformat()

    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": state.pdl,
        "open": [
            {"kind": a.kind, "since": a.since.isoformat(), "details": dict(a.details)} for a in state.open.values()
        ],
        "last_time": iso(state.last_time),
        "last_seen": iso(state.last_seen),
        "last_import_wh": state.last_import_wh,
        "last_export_wh": state.last_export_wh,
        "above_since": iso(state.above_since),
        "calm_since": iso(state.calm_since),
        "backwards_at": iso(state.backwards_at),
        "day": iso(state.day),
        "day_import_wh": state.day_import_wh,
        "battery_overflow_seen": state.battery_overflow_seen,
        "battery_month": state.battery_month,
        "recent": [[c.kind, c.since.isoformat(), c.until.isoformat()] for c in state.recent],
    }


def state_from_dict(data: Mapping[str, Any]) -> AlertState:
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported alert state schema_version {data.get('schema_version')!r}")

    def dt(v: str | None) -> datetime | None:
        return None if v is None else datetime.fromisoformat(v)

    return AlertState(
        pdl=data.get("pdl"),
        open={
            a["kind"]: OpenAlert(a["kind"], datetime.fromisoformat(a["since"]), dict(a["details"]))
            for a in data.get("open", [])
        },
        last_time=dt(data.get("last_time")),
        last_seen=dt(data.get("last_seen")),
        last_import_wh=data.get("last_import_wh"),
        last_export_wh=data.get("last_export_wh"),
        above_since=dt(data.get("above_since")),
        calm_since=dt(data.get("calm_since")),
        backwards_at=dt(data.get("backwards_at")),
        day=None if data.get("day") is None else date.fromisoformat(data["day"]),
        day_import_wh=int(data.get("day_import_wh", 0)),
        battery_overflow_seen=int(data.get("battery_overflow_seen", 0)),
        battery_month=data.get("battery_month"),
        recent=tuple(ClosedAlert(k, datetime.fromisoformat(a), datetime.fromisoformat(b))
                     for k, a, b in data.get("recent", ())),  # fmt: skip
    )


# --------------------------------------------------------------------------- rules


class _Episodes:
    """Open/clear bookkeeping: emits an event only on a real transition."""

    def __init__(self, state: AlertState, pdl: str) -> None:
        self.open: dict[str, OpenAlert] = dict(state.open)
        self.recent: tuple[ClosedAlert, ...] = state.recent
        self.events: list[AlertEvent] = []
        self.pdl = pdl

    def closed(self) -> tuple[ClosedAlert, ...]:
        return self.recent

    def open_(self, kind: str, at: datetime, details: Mapping[str, Any] | None = None) -> None:
        if kind not in self.open:
            self.open[kind] = OpenAlert(kind, at, dict(details or {}))
            self.events.append(AlertEvent(self.pdl, kind, "open", at, dict(details or {})))

    def clear(self, kind: str, at: datetime, details: Mapping[str, Any] | None = None) -> None:
        if kind in self.open:
            since = self.open.pop(kind).since
            self.recent = (*self.recent, ClosedAlert(kind, since, at))[-RECENT_KEPT:]
            self.events.append(AlertEvent(self.pdl, kind, "clear", at, dict(details or {})))

    def set(self, kind: str, active: bool, at: datetime, details: Mapping[str, Any] | None = None) -> None:
        if active:
            self.open_(kind, at, details)
        else:
            self.clear(kind, at)


def _overload(
    st: AlertState,
    ep: _Episodes,
    reading: Mapping[str, Any],
    signals: StatusSignals,
    settings: AlertSettings,
    t: datetime,
) -> AlertState:
    flag = bool(reading.get("overload")) or signals.overload
    power, kva = reading.get("power_va"), reading.get("subscribed_kva")
    threshold = settings.overload_share * kva * 1000 if kva else None
    above = power is not None and threshold is not None and power > threshold
    above_since = (st.above_since or t) if above else None
    sustained = above_since is not None and (t - above_since).total_seconds() >= settings.overload_seconds
    if flag or sustained:
        ep.open_("overload", t, {"power_va": power, "threshold_va": threshold, "meter_flag": flag})
    active = flag or above
    calm_since = None if active else (st.calm_since or t)
    if "overload" in ep.open and calm_since is not None:
        if (t - calm_since).total_seconds() >= settings.overload_clear_seconds:
            ep.clear("overload", t)
    return replace(st, above_since=above_since, calm_since=calm_since)


def _historic_mode(ep: _Episodes, reading: Mapping[str, Any], version: ContractVersion | None, t: datetime) -> None:
    producer = version is not None and version.offer is not Offer.NONE
    historic = str(reading.get("mode") or "").lower() in {"historic", "historique"}
    ep.set("historic_mode", producer and historic, t, {"hint": "ask the supplier for standard TIC mode (Enedis F185)"})


def _backwards_and_budget(
    st: AlertState, ep: _Episodes, reading: Mapping[str, Any], settings: AlertSettings, t: datetime
) -> AlertState:
    imp, exp = reading.get("import_wh"), reading.get("export_wh")
    went_back = (imp is not None and st.last_import_wh is not None and imp < st.last_import_wh) or (
        exp is not None and st.last_export_wh is not None and exp < st.last_export_wh
    )
    backwards_at = st.backwards_at
    if went_back:
        backwards_at = t
        ep.open_("index_backwards", t, {"import_wh": imp, "previous_import_wh": st.last_import_wh,
                                        "export_wh": exp, "previous_export_wh": st.last_export_wh})  # fmt: skip
    elif "index_backwards" in ep.open and backwards_at is not None:
        if (t - backwards_at).total_seconds() >= settings.backwards_clear_seconds:
            ep.clear("index_backwards", t)
    # Today's grid import from index deltas (a regression re-baselines, never negative energy).
    day = local_date(t)
    day_import = st.day_import_wh if st.day == day else 0
    if st.day is not None and day > st.day:
        ep.clear("daily_budget", t)
    if imp is not None and st.last_import_wh is not None and not went_back:
        day_import += imp - st.last_import_wh
    if settings.daily_budget_wh is not None and day_import > settings.daily_budget_wh:
        details = {"day": day.isoformat(), "budget_wh": settings.daily_budget_wh, "import_wh": day_import}
        ep.open_("daily_budget", t, details)
    return replace(
        st,
        last_import_wh=imp if imp is not None else st.last_import_wh,
        last_export_wh=exp if exp is not None else st.last_export_wh,
        backwards_at=backwards_at,
        day=day,
        day_import_wh=day_import,
    )


def _periods(
    ep: _Episodes, reading: Mapping[str, Any], signals: StatusSignals, settings: AlertSettings, t: datetime
) -> None:
    # A missing input (group dropped) keeps the episode as it is rather than clearing it.
    label = reading.get("tariff_period")
    if settings.peak_alerts and (label is not None or signals.mobile_peak):
        peak = signals.mobile_peak or (label is not None and period_kind(label) == "HP")
        ep.set("peak_period", peak, t, {"tariff_period": label, "mobile_peak": signals.mobile_peak})
    colour = tempo_colour(label) or signals.tempo_today
    if label is not None or signals.tempo_today is not None:
        ep.set("red_period", colour == "red", t, {"tariff_period": label})


def _red_tomorrow(ep: _Episodes, signals: StatusSignals, t: datetime) -> None:
    today = tempo_day(t)
    current = ep.open.get("red_tomorrow")
    if current is not None:
        target = date.fromisoformat(current.details["day"])
        announced_other = signals.tempo_tomorrow not in (None, "red") and target == today + timedelta(days=1)
        if today >= target or announced_other:
            ep.clear("red_tomorrow", t)
    if signals.tempo_tomorrow == "red":
        ep.open_("red_tomorrow", t, {"day": (today + timedelta(days=1)).isoformat()})


def _battery(
    st: AlertState, ep: _Episodes, version: ContractVersion, battery: BatteryState, settings: AlertSettings, t: datetime
) -> AlertState:
    terms = version.battery if version.offer is Offer.VIRTUAL_BATTERY else None
    if terms is None:
        ep.clear("battery_empty", t)
        ep.clear("battery_full", t)
        return st
    month = month_key(local_date(t))
    projected = projected_month_end_wh(battery, t)
    current = ep.open.get("battery_empty")
    recovered = projected is not None and projected > settings.battery_empty_clear_margin_wh
    if current is not None and (current.details.get("month") != month or recovered):
        ep.clear("battery_empty", t)
    if projected is not None and projected <= 0:
        ep.open_("battery_empty", t, {"month": month, "level_wh": battery.level_wh, "projected_wh": projected})
    row = battery.months.get(month)
    overflow = row.overflow_wh if row is not None else 0
    seen = st.battery_overflow_seen if st.battery_month == month else 0
    capacity = terms.capacity_wh
    if capacity is not None:
        # Overflow growing is the signal: within one delta the battery charges first and then
        # discharges against the import of the same delta, so the level seen after a reading is
        # usually below the capacity even while overflowing (hourly readings, a day's import).
        grew = overflow > seen
        low = battery.level_wh < capacity * (1 - settings.battery_full_hysteresis)
        if "battery_full" in ep.open and not grew and low:
            ep.clear("battery_full", t, {"level_wh": battery.level_wh})
        if grew:
            ep.open_("battery_full", t, {"level_wh": battery.level_wh, "capacity_wh": capacity})
    return replace(st, battery_overflow_seen=overflow, battery_month=month)


def _colour(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (None, "blue", "white", "red")[value] if 0 <= value <= 3 else None
    return tempo_colour(str(value))


def _paris_hour(when: datetime) -> int:
    return to_utc(when).astimezone(PARIS).hour


# --------------------------------------------------------------------------- household preferences

# Kinds a household may switch off from the portal ("activer et modifier les alertes"). Every kind
# the worker raises is listed; ``gateway_untrusted`` and the like are for the supplier, not here.
PREFERENCE_KINDS = (
    "overload", "meter_silent", "historic_mode", "index_backwards", "peak_period", "red_period",
    "red_tomorrow", "daily_budget", "battery_empty", "battery_full", "bill_over_installment",
)  # fmt: skip
MAX_BUDGET_WH = 1_000_000  # 1 MWh a day: beyond that it is a typing error, not a budget


@dataclass(frozen=True)
class AlertPreferences:
    """What a household chose in the portal (topic ``linky.alert-settings``, key = PDL).

    ``enabled``: kinds switched off are False (a kind not listed is on). ``daily_budget_wh``: the
    household's own budget, which wins over the contract's and the deployment's (None: theirs).
    ``bill_over_installment_share``: the projected bill may exceed the installment by this share
    before ``bill_over_installment`` opens (None: the deployment's). ``updated_at``: when it was
    written; preferences apply to what the worker folds from then on, never retroactively.
    """

    enabled: Mapping[str, bool] = field(default_factory=dict)
    daily_budget_wh: int | None = None
    bill_over_installment_share: float | None = None
    updated_at: datetime | None = None

    def shows(self, kind: str) -> bool:
        return self.enabled.get(kind, True)


class PreferencesError(ValueError):
    """A preferences document that cannot be accepted; the message says which field and why."""


def preferences_from_dict(data: Any) -> AlertPreferences:
    """Validate a preferences document (the portal's PUT body, or a record of the topic)."""
    if not isinstance(data, Mapping):
        raise PreferencesError("the body must be a JSON object")
    unknown = sorted(set(data) - {"enabled", "daily_budget_wh", "bill_over_installment_share", "updated_at"})
    if unknown:
        raise PreferencesError(f"unknown field(s) {unknown}")
    enabled_raw = data.get("enabled") or {}
    if not isinstance(enabled_raw, Mapping):
        raise PreferencesError("enabled: an object {kind: true|false}")
    bad = sorted(k for k in enabled_raw if k not in PREFERENCE_KINDS)
    if bad:
        raise PreferencesError(f"enabled: unknown alert kind(s) {bad}; known: {list(PREFERENCE_KINDS)}")
    if any(not isinstance(v, bool) for v in enabled_raw.values()):
        raise PreferencesError("enabled: every value must be true or false")
    budget = data.get("daily_budget_wh")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or not 0 < budget <= MAX_BUDGET_WH):
        raise PreferencesError(f"daily_budget_wh: a whole number of Wh from 1 to {MAX_BUDGET_WH}, or null")
    share = data.get("bill_over_installment_share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 5):
        raise PreferencesError("bill_over_installment_share: a number from 0 to 5 (0.1 = 10 % over), or null")
    updated = data.get("updated_at")
    try:
        updated_at = None if updated is None else to_utc(datetime.fromisoformat(updated))
    except (TypeError, ValueError):
        raise PreferencesError("updated_at: an ISO-8601 time with an offset") from None
    return AlertPreferences(
        enabled={k: bool(v) for k, v in enabled_raw.items()},
        daily_budget_wh=budget,
        bill_over_installment_share=None if share is None else float(share),
        updated_at=updated_at,
    )


def preferences_to_dict(prefs: AlertPreferences) -> dict[str, Any]:
    return {
        "enabled": {k: prefs.shows(k) for k in PREFERENCE_KINDS},
        "daily_budget_wh": prefs.daily_budget_wh,
        "bill_over_installment_share": prefs.bill_over_installment_share,
        "updated_at": None if prefs.updated_at is None else prefs.updated_at.isoformat(),
    }


def visible_events(events: list[AlertEvent], prefs: AlertPreferences | None) -> list[AlertEvent]:
    """The events a household is told about (episodes of switched-off kinds are still tracked,
    so switching a kind back on shows its true state at once)."""
    return events if prefs is None else [e for e in events if prefs.shows(e.kind)]


def visible_open(rendered: Mapping[str, Any], prefs: AlertPreferences | None) -> dict[str, Any]:
    """``render_open_alerts`` output without the kinds switched off."""
    if prefs is None:
        return dict(rendered)
    out = dict(rendered)
    out["open"] = [a for a in rendered.get("open", []) if prefs.shows(a["kind"])]
    out["recent"] = [a for a in rendered.get("recent", []) if prefs.shows(a["kind"])]
    return out
