"""Faust agents, one module per agent; importing this package registers them on ``stream.app.app``."""

# Issue 6: contracts, virtual battery + surplus, alerts (and their HTTP routes).
from agents import alerts, battery, contracts, ticks  # noqa: E402,F401
from stream import web_battery  # noqa: E402,F401
