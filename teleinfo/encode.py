"""TIC frame and group encoder (the inverse of ``teleinfo.protocol``).

Used by tests and by the meter simulator. Layouts: 54E §5.2 Table 2 (historic) and §5.3.6
Tables 6/7 (standard); protocol.md §1.4-1.5.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["STX", "ETX", "EOT", "checksum", "encode_group", "encode_frame"]

STX = b"\x02"
ETX = b"\x03"
EOT = b"\x04"


def checksum(zone: bytes) -> int:
    """``(sum(zone) & 0x3F) + 0x20``: always a byte in 0x20-0x5F (space and backslash occur)."""
    return (sum(zone) & 0x3F) + 0x20


def encode_group(label: str, value: str, horodate: str | None = None,
                 mode: str = "standard", *, historic_checksum: int = 1) -> bytes:
    """One group ``LF ... CR``.

    Standard: ``label HT [horodate HT] value HT chk`` with every HT in the checksum.
    Historic: ``label SP value SP chk``; ``historic_checksum=1`` leaves the last SP out of the
    checksum (02E), ``2`` includes it (02E v6 meters built after 2013).
    """
    if mode == "standard":
        zone = f"{label}\t{horodate}\t{value}\t" if horodate is not None else f"{label}\t{value}\t"
        raw = zone.encode("ascii")
        return b"\n" + raw + bytes((checksum(raw),)) + b"\r"
    if mode == "historic":
        if horodate is not None:
            raise ValueError("historic groups carry no horodate")
        raw = f"{label} {value}".encode("ascii")
        if historic_checksum == 1:
            chk = checksum(raw)
        elif historic_checksum == 2:
            chk = checksum(raw + b" ")
        else:
            raise ValueError(f"historic_checksum must be 1 or 2, not {historic_checksum!r}")
        return b"\n" + raw + b" " + bytes((chk,)) + b"\r"
    raise ValueError(f"mode must be 'historic' or 'standard', not {mode!r}")


def encode_frame(groups: Iterable[tuple[str, str | None, str]], mode: str, *,
                 historic_checksum: int = 1) -> bytes:
    """``STX`` + the groups ``(label, horodate or None, value)`` + ``ETX``."""
    body = b"".join(
        encode_group(label, value, horodate, mode, historic_checksum=historic_checksum)
        for label, horodate, value in groups
    )
    return STX + body + ETX
