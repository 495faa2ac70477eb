"""tables/frozen.replace: the same copies as dataclasses.replace for the folds' frozen dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from tables.alerts import AlertState
from tables.battery import BatteryState
from tables.frozen import replace
from tables.ledger import LedgerState


@dataclass(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


def test_same_copy_as_dataclasses_replace() -> None:
    p = Point(1, 2, {"a": 1})
    q = replace(p, y=5)
    assert q == dataclasses.replace(p, y=5) and q is not p and type(q) is Point
    assert p == Point(1, 2, {"a": 1})  # the original is unchanged
    assert q.tags is p.tags  # a shallow copy, as dataclasses.replace
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.x = 3  # type: ignore[misc]


def test_unknown_field_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="nope"):
        replace(Point(1), nope=2)


def test_a_class_with_post_init_still_validates() -> None:
    assert replace(Checked(1), value=2) == Checked(2)
    with pytest.raises(ValueError, match="negative"):
        replace(Checked(1), value=-1)


def test_the_folds_states() -> None:
    state = LedgerState(pdl="12345678901234", battery=BatteryState(), alerts=AlertState())
    for changes in ({"pdl": "x"}, {"partition": 3}, {}):
        assert replace(state, **changes) == dataclasses.replace(state, **changes)
