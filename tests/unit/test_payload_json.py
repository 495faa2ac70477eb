"""stream/payload_json.py: orjson's bytes are the standard library's for our payloads, and
whatever orjson would treat differently goes to the standard library."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from stream import payload_json
from stream.redis_publisher import encode


class Colour(str, enum.Enum):
    BLUE = "BLEU"


@dataclass
class Point:
    x: int


PAYLOADS: list[Any] = [
    {"schema_version": 1, "pdl": "12345678901234", "power_va": 1830, "index_wh": {"EASF01": 12_000_345}},
    {"label": " HEURE  CREUSE ", "accents": "Électricité, été, ½ € — \u2028", "ctrl": "a\x01\n\t\"\\b"},
    {"eur": 12.34, "neg": -0.0, "big": 1e22, "round": 0.1 + 0.2, "none": None, "t": True, "f": False},
    {"nested": [{"a": [1, 2, {"b": []}]}, (3, 4)], "empty": {}, "max64": 2**63 - 1, "min64": -(2**63)},
    {"colour": Colour.BLUE},  # a str subclass: passed through to the standard library
    {"huge": 2**70},  # over 64 bits: orjson refuses, the standard library writes it
    {1: "int key"},  # a non-str key: orjson refuses, the standard library converts it
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_bytes_are_the_standard_librarys(payload: Any) -> None:
    assert payload_json.dumps(payload) == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert encode(payload) == payload_json.dumps(payload)


@pytest.mark.parametrize("value", [datetime(2026, 12, 3, tzinfo=timezone.utc), Point(1), {1, 2}])
def test_what_the_standard_library_refuses_is_still_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        json.dumps({"v": value})
    with pytest.raises(TypeError):  # orjson would have written datetimes and dataclasses
        payload_json.dumps({"v": value})


def test_bytes_pass_through_the_publisher_encoder() -> None:
    assert encode(b'{"a":1}') == b'{"a":1}' and encode(bytearray(b"x")) == b"x"


def test_payload_bytes_are_right_sized() -> None:
    """orjson's own bytes keep its whole write buffer (4 KiB and more); what we keep must not."""
    import tracemalloc

    payload = {"pdl": "12345678901234", "power_va": 1830, "series": list(range(600))}
    tracemalloc.start()
    try:
        kept = [payload_json.dumps(payload) for _ in range(200)]
        held = sum(s.size for s in tracemalloc.take_snapshot().statistics("filename")
                   if s.traceback[0].filename == payload_json.__file__)  # fmt: skip
    finally:
        tracemalloc.stop()
    assert kept[0] == json.dumps(payload, separators=(",", ":")).encode()
    assert held < 200 * (len(kept[0]) + 100), held  # the bytes and a bytes header, not a buffer each
