"""The metric names a PromQL expression selects (to check them against what is exported).

A small lexer, not a full parser: string literals, label matchers ``{...}``, range/offset
``[...]``, grouping clauses (``by (...)``, ``without``, ``on``, ``ignoring``, ``group_left``,
``group_right``) are removed; what is left that looks like an identifier and is neither a
function call, a keyword nor a number is a metric name (recording-rule names with ``:`` included).
"""

from __future__ import annotations

import re

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "atan2", "start", "end"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")
_NUMBER_SUFFIX = re.compile(r"(?<![\w:])\d+(ms|s|m|h|d|w|y)\b")


def metric_names(expr: str) -> set[str]:
    """``sum(rate(a_total{x="y"}[5m])) / b`` -> ``{"a_total", "b"}``."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER_SUFFIX.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names
