"""Compact JSON bytes of the table values and records, byte for byte the standard library's
``json.dumps(obj, separators=(",", ":")).encode()``, with orjson where that gives the same bytes.

The write-back flush encodes each dirty PDL's hot values (the battery ledger's, the consumption
state's, the trust state's) with the standard library: about 38 % of a flush at 1,000 meters
(py-spy, docs/performance.md "2026-12-06, late night"), and a flush is a burst the readings
queue behind. orjson encodes them several times faster. The bytes go to the tables and their
changelogs, so they stay what they were: orjson's output is kept only when it is the standard
library's too, that is when it is ASCII without DEL (the standard library escapes every other
character, and DEL, as ``\\uXXXX``; orjson writes UTF-8, and DEL as it is) and holds no float
below 1e-4 (orjson spells ``1e-05`` as ``0.00001`` and ``8.1e-07`` as ``8.1e-7``; the checks
``b"0.0000"`` and ``b"e-"`` may also match inside a string, which only costs the slower path).
Anything orjson refuses or would treat differently (non-str keys, ints over 64 bits, subclasses
of str/int/dict/list such as str enums, dataclasses, datetimes) raises inside orjson and goes
to the standard library, which encodes it or raises its own TypeError as before.

Not the same: NaN and infinities, which orjson writes as ``null`` and the standard library as
``NaN``/``Infinity`` (not JSON). No table value holds one: indexes and Wh are integers, euros are
strings, and the floats of the alert settings are validated finite. tests/unit/test_stored_json.py
compares both encoders on generated values.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "orjson_copy"]

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _orjson(obj: Any) -> bytes | None:
    """orjson's compact UTF-8 JSON of ``obj`` (its whole buffer), or None when orjson refuses it:
    what it would handle differently from the standard library raises (``OPT_PASSTHROUGH_*``,
    non-str keys, big ints)."""
    try:
        return orjson.dumps(obj, option=_OPTIONS)
    except TypeError:
        return None


def orjson_copy(obj: Any) -> bytes | None:
    """``_orjson`` as a right-sized copy (orjson keeps its whole buffer: stream/payload_json.py).
    Shared by this module and stream/payload_json.py."""
    raw = _orjson(obj)
    return None if raw is None else b"".join((raw, b""))


def dumps(obj: Any) -> bytes:
    """``json.dumps(obj, separators=(",", ":")).encode()``, the same bytes, faster (module docstring)."""
    raw = _orjson(obj)
    if raw is not None and raw.isascii() and b"\x7f" not in raw and b"0.0000" not in raw and b"e-" not in raw:
        return b"".join((raw, b""))  # copied only once kept
    return json.dumps(obj, separators=(",", ":")).encode()
