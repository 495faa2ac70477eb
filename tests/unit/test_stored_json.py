"""tables/stored_json.py: the standard library's compact bytes, whatever the value (the table
values and records must keep their bytes), with orjson where it gives the same."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tables import stored_json

finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | finite | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def standard(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@settings(max_examples=400)
@given(values)
def test_same_bytes_as_the_standard_library(obj: Any) -> None:
    assert stored_json.dumps(obj) == standard(obj)


class Offer(str, Enum):
    BATTERY = "virtual_battery"


def test_edge_cases_take_the_standard_librarys_path() -> None:
    cases: list[Any] = [
        {"small": 1e-05, "neg": -2.5e-07, "ok": 0.0001, "big": 1e16},  # orjson spells the first two 0.0000...
        {"label": "Heures creuses d'été", "euro": "€"},  # escaped as \\uXXXX
        {"offer": Offer.BATTERY},  # a str enum: orjson refuses subclasses here
        {"big": 2**64 + 1, "ctl": "\x00\x1f\x7f", "quote": '"\\/'},
        {"s": "0.0000 inside a string"},
        {"\x7f": "del\x7f"},  # DEL: escaped by the standard library only (found by the property test)
    ]
    for obj in cases:
        assert stored_json.dumps(obj) == standard(obj)


def test_what_neither_can_encode_is_the_standard_librarys_error() -> None:
    for obj in ({1: "non-str key is fine for json"}, {"d": object()}):
        try:
            expected: bytes | type = standard(obj)
        except TypeError:
            expected = TypeError
        try:
            got: bytes | type = stored_json.dumps(obj)
        except TypeError:
            got = TypeError
        assert got == expected


def test_the_bytes_are_a_right_sized_copy() -> None:
    import sys

    raw = stored_json.dumps({"k": "v" * 10})
    assert sys.getsizeof(raw) < 200  # orjson's own bytes keep at least 4 KiB
