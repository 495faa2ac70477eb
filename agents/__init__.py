"""Faust agents, one module per agent; importing this package registers them on ``stream.app.app``."""

# Issue 5: live ("Ma Conso en Direct") and consumption buckets (tables in stream/state.py).
from agents import consumption, live  # noqa: E402,F401

# Issue 6: contracts, virtual battery + surplus, alerts (and their HTTP routes).
from agents import alerts, battery, contracts, ticks  # noqa: E402,F401
from stream import web_battery  # noqa: E402,F401
