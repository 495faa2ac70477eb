"""The live view of a PDL ("Ma Conso en Direct"): the latest reading, as published (pure).

``live_payload(reading, pdl=)`` builds the ``linky:{pdl}:live`` payload (also the HTTP
``GET /pdl/{pdl}/live`` body and the value of the live table); ``is_newer`` decides whether a
reading replaces the stored one (duplicates and older readings do not: replays publish nothing).

Powers are apparent powers in VA as the meter gives them (SINSTS/PAPP drawn, SINSTI injected),
not active power in W (domain.md 3). ``net_power_va`` = drawn - injected: negative while the home
exports more than it draws; null when the drawn power is unknown.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from tables.calendar import PARIS, iso_local, to_utc

SCHEMA_VERSION = 1

__all__ = ["SCHEMA_VERSION", "live_payload", "is_newer", "payload_time"]


def live_payload(reading: Mapping[str, Any], *, pdl: str, tz: Any = PARIS) -> dict[str, Any]:
    """The live payload of a normalized reading (its ``time`` must carry an offset)."""
    raw = reading.get("time")
    if not isinstance(raw, str):
        raise ValueError(f"reading without a time: {raw!r}")
    when = to_utc(datetime.fromisoformat(raw))
    power = _int_or_none(reading.get("power_va"))
    injected = _int_or_none(reading.get("export_power_va"))
    net = None if power is None else power - (injected or 0)
    return {
        "schema_version": SCHEMA_VERSION,
        "pdl": pdl,
        "time": iso_local(when, tz),
        "meter": reading.get("meter"),
        "mode": reading.get("mode"),
        "power_va": power,
        "export_power_va": injected,
        "net_power_va": net,
        "tariff_period": reading.get("tariff_period"),
        "current_a": _list_or_none(reading.get("current_a")),
        "voltage_v": _list_or_none(reading.get("voltage_v")),
        "subscribed_kva": reading.get("subscribed_kva"),
        "overload": reading.get("overload"),
        "import_wh": _int_or_none(reading.get("import_wh")),
        "export_wh": _int_or_none(reading.get("export_wh")),
        # Added for the portal page (schema_version 1 stays: fields are only added).
        "received_at": reading.get("received_at") if isinstance(reading.get("received_at"), str) else None,
        "import_wh_by_period": _registers(reading.get("import_wh_by_period")),
        "tempo_today": _colour((reading.get("status") or {}).get("tempo_today")),
        "tempo_tomorrow": _colour((reading.get("status") or {}).get("tempo_tomorrow")),
    }


def _registers(value: Any) -> dict[str, int] | None:
    """The per-register import indexes (Wh) of the reading, registers without an index left out."""
    if not isinstance(value, Mapping):
        return None
    out = {str(k): v for k, v in ((k, _int_or_none(v)) for k, v in value.items()) if v is not None}
    return out or None


def _colour(value: Any) -> str | None:
    return value if value in ("blue", "white", "red") else None


def payload_time(payload: Mapping[str, Any]) -> datetime:
    """The (UTC) time of a live payload."""
    return to_utc(datetime.fromisoformat(payload["time"]))


def is_newer(payload: Mapping[str, Any], stored: bytes | Mapping[str, Any] | None) -> bool:
    """True when ``payload`` is strictly more recent than the ``stored`` one (or none is stored)."""
    if stored is None:
        return True
    previous = json.loads(stored) if isinstance(stored, (bytes, bytearray)) else stored
    return payload_time(payload) > payload_time(previous)


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _list_or_none(value: Any) -> list[Any] | None:
    return list(value) if isinstance(value, (list, tuple)) else None
