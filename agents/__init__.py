"""Faust agents, one module per concern; importing this package registers them on ``stream.app.app``.

The readings topic has ONE agent, agents/readings.py, which calls the live, consumption and
battery handlers for each reading (one delivery per reading instead of one per concern:
docs/performance.md). The contracts and ticks topics have their own agents.
"""

# The app first: importing ``agents`` before ``stream.app`` (bench/, tests) must load the app, its
# tables and HTTP views in the same order as ``faust -A stream.app`` does (stream/app.py imports
# this package at its end; here it is then already in sys.modules).
import stream.app  # noqa: E402,F401

# Issue 5: live ("Ma Conso en Direct") and consumption buckets (tables in stream/state.py).
from agents import consumption, live  # noqa: E402,F401

# Issue 6: contracts, virtual battery + surplus, alerts (and their HTTP routes).
from agents import alerts, battery, contracts, preferences, ticks  # noqa: E402,F401

# Issue 16: gateways registry and the trust checks the readings agent runs first.
from agents import gateways  # noqa: E402,F401

# The one agent of the readings topic (after the handlers it dispatches to).
from agents import readings  # noqa: E402,F401
from stream import web_battery, web_trust  # noqa: E402,F401
