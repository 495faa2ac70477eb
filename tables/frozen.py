"""``replace`` for the frozen dataclasses of the folds, without ``dataclasses.replace``'s cost.

The folds never mutate their state: each step returns a copy with a few fields changed, about 19
copies per reading (bench/stream_agents.py). ``dataclasses.replace`` walks the class's fields and
calls the generated ``__init__``, which sets every field through ``object.__setattr__`` (frozen
classes): it was the largest self-time function of the readings agent (docs/performance.md). This
one copies the instance's ``__dict__`` and sets the changed fields: the same result for a frozen
dataclass without ``__post_init__`` (nothing to validate or derive) and whose fields all take part
in ``__init__``; any other class goes through ``dataclasses.replace``, and an unknown field name is
a ``TypeError`` as there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["replace"]

_FIELDS: dict[type, frozenset[str] | None] = {}  # class -> its field names, None: not a plain copy


def _plain_fields(cls: type) -> frozenset[str] | None:
    names = _FIELDS.get(cls, ())
    if names != ():
        return names  # type: ignore[return-value]
    params = getattr(cls, "__dataclass_params__", None)
    declared = getattr(cls, "__dataclass_fields__", {})  # fields, ClassVars and InitVars
    fields = dataclasses.fields(cls) if params is not None else ()  # fields only
    plain = (
        params is not None
        and params.frozen
        and not hasattr(cls, "__post_init__")
        and not hasattr(cls, "__slots__")
        and len(fields) == len(declared)
        and all(f.init for f in fields)
    )
    result = frozenset(f.name for f in fields) if plain else None
    _FIELDS[cls] = result
    return result


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the frozen dataclass instance ``obj`` with ``changes`` (as ``dataclasses.replace``)."""
    cls = obj.__class__
    names = _FIELDS.get(cls, ())
    if names == ():
        names = _plain_fields(cls)
    if names is None:
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    if not names.issuperset(changes):  # type: ignore[union-attr]
        unknown = next(name for name in changes if name not in names)  # type: ignore[operator]
        raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {unknown!r}")
    new = object.__new__(cls)
    state = new.__dict__
    state.update(obj.__dict__)
    state.update(changes)
    return new
