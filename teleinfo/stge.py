"""STGE status register and PJOURF+1 / PPOINTE day profiles, decoded into named fields.

STGE: 8 hex chars, bit 0 = LSB (54E §6.2.3.14; table in protocol.md §2.3). Day profiles:
11 blocks ``HHMMSSSS`` separated by SP, unused blocks ``NONUTILE`` (54E §6.2.3.22).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["BitField", "STGE_FIELDS", "decode_stge", "parse_day_profile", "decode_relais"]


@dataclass(frozen=True, slots=True)
class BitField:
    """``name`` = ``values[(register >> shift) & mask]`` (or the int itself when no values)."""

    name: str
    shift: int
    width: int
    values: tuple[Any, ...] | None = None
    meaning: str = ""


_TEMPO = (None, "blue", "white", "red")  # 0 = no announcement (54E §6.2.3.14)

STGE_FIELDS: tuple[BitField, ...] = (
    BitField("dry_contact_open", 0, 1, (False, True), "Contact sec: 0 closed, 1 open"),
    BitField("cut_off", 1, 3, (
        "closed", "open_overpower", "open_overvoltage", "open_load_shedding",
        "open_cpl_euridis_order", "open_overheat_above_max_current",
        "open_overheat_below_max_current", "unknown",
    ), "Organe de coupure"),
    BitField("terminal_cover_open", 4, 1, (False, True), "Cache-bornes distributeur"),
    BitField("overvoltage", 6, 1, (False, True), "Surtension sur une des phases"),
    BitField("overload", 7, 1, (False, True), "Dépassement de la puissance de référence"),
    BitField("producer", 8, 1, (False, True), "Fonctionnement producteur/consommateur"),
    BitField("active_energy_negative", 9, 1, (False, True), "Sens de l'énergie active"),
    # Index numbers are 1-based on the wire labels: value v means index v+1 (EASFv+1).
    BitField("supplier_index", 10, 4, tuple(range(1, 17)), "Tarif en cours, fourniture"),
    BitField("distributor_index", 14, 2, (1, 2, 3, 4), "Tarif en cours, distributeur"),
    BitField("clock_degraded", 16, 1, (False, True), "Mode dégradé de l'horloge"),
    BitField("tic_mode", 17, 1, ("historic", "standard"), "État de la sortie TIC"),
    BitField("euridis", 19, 2, ("disabled", "enabled_unsecured", "unknown", "enabled_secured"),
             "Sortie communication Euridis"),
    BitField("plc_status", 21, 2, ("new_unlock", "new_lock", "registered", "unknown"),
             "Statut du CPL"),
    BitField("plc_synchronized", 23, 1, (False, True), "Synchronisation CPL"),
    BitField("tempo_today", 24, 2, _TEMPO, "Couleur du jour (Tempo)"),
    BitField("tempo_tomorrow", 26, 2, _TEMPO, "Couleur du lendemain (Tempo)"),
    BitField("mobile_peak_notice", 28, 2, None, "Préavis pointe mobile: 0 none, n = PMn"),
    BitField("mobile_peak", 30, 2, None, "Pointe mobile en cours: 0 none, n = PMn"),
)


def decode_stge(value: str) -> dict[str, Any]:
    """Decode an STGE value (8 hex chars) into named fields; raises ValueError if not hex."""
    return dict(_decode_stge(value.upper()))


@lru_cache(maxsize=256)
def _decode_stge(value: str) -> tuple[tuple[str, Any], ...]:
    if len(value) != 8:
        raise ValueError(f"STGE must be 8 hex chars, got {value!r}")
    register = int(value, 16)
    out: list[tuple[str, Any]] = [("raw", value)]
    for f in STGE_FIELDS:
        v = (register >> f.shift) & ((1 << f.width) - 1)
        out.append((f.name, f.values[v] if f.values is not None else v))
    return tuple(out)


_DRY_CONTACT = ("no_change", "tempo", "open", "closed")  # bits 14-15 (54E §6.2.3.22)


def parse_day_profile(value: str) -> list[dict[str, Any]]:
    """PJOURF+1 / PPOINTE -> one entry per used block, in order.

    Each entry: ``start`` "HH:MM" (None if not a valid time), ``action`` raw hex,
    ``index`` supplier index 1-10 or None (0 and 11-15 = no change), ``virtual_contacts``
    (7 bools, contacts 1-7 from bits 4-10), ``dry_contact`` (no_change/tempo/open/closed).
    Raises ValueError on a malformed block.
    """
    entries = []
    for block in value.split(" "):
        if block == "NONUTILE":
            continue
        if len(block) != 8:
            raise ValueError(f"bad profile block {block!r}")
        hhmm, action_hex = block[:4], block[4:]
        action = int(action_hex, 16)
        start = None
        if hhmm.isdigit() and int(hhmm[:2]) < 24 and int(hhmm[2:]) < 60:
            start = f"{hhmm[:2]}:{hhmm[2:]}"
        index = action & 0x0F
        entries.append({
            "start": start,
            "action": action_hex,
            "index": index if 1 <= index <= 10 else None,
            "virtual_contacts": [bool(action >> bit & 1) for bit in range(4, 11)],
            "dry_contact": _DRY_CONTACT[action >> 14 & 0x3],
        })
    return entries


def decode_relais(value: str) -> list[bool]:
    """RELAIS (3-digit decimal): closed state of relays 1-8, relay 1 = dry contact (§6.2.3.19)."""
    register = int(value, 10)
    return [bool(register >> i & 1) for i in range(8)]
