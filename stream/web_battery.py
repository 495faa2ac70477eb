"""HTTP queries of the battery and alerts agents, on the worker's web server.

- ``GET /pdl/{pdl}/battery``: the live battery payload (level, percent, estimate, anchor, today
  and this month), ``months`` (every kept monthly row: opening / credited / used_hp / used_hc /
  overflow / closing, fees, subscription) and ``surplus`` (the surplus payload and its months);
- ``GET /pdl/{pdl}/alerts``: ``{"schema_version", "pdl", "open": [{"kind", "since", "details"}],
  "recent": [{"kind", "since", "until"}]}`` (kinds the household switched off left out);
- ``GET /pdl/{pdl}/alert-settings``: the household's alert preferences (tables/alerts.py
  ``preferences_to_dict``; the defaults when never set). The portal writes them (topic
  ``linky.alert-settings``, stream/alert_settings.py).

Both answer from the worker that holds the PDL's partition: ``app.table_route`` forwards the
request there (Kafka's default partitioner on the PDL, as the readings are keyed). An unknown
PDL is a 404 with a JSON error; a partition being rebalanced is a 503.
"""

from __future__ import annotations

from faust.web import Request, Response, View

from agents import alerts as alerts_agent
from agents import battery as battery_agent
from agents import preferences as preferences_agent
from tables.alerts import AlertPreferences, preferences_to_dict
from stream.app import app
from stream.state import state_table


@app.page("/pdl/{pdl}/battery")
class BatteryView(View):
    @app.table_route(table=state_table, match_info="pdl")
    async def get(self, request: Request, pdl: str) -> Response:
        doc = battery_agent.http_document(pdl)
        if doc is None:
            return self.json({"error": f"no battery data for PDL {pdl}", "pdl": pdl}, status=404)
        return self.json(doc)


@app.page("/pdl/{pdl}/alerts")
class AlertsView(View):
    @app.table_route(table=state_table, match_info="pdl")
    async def get(self, request: Request, pdl: str) -> Response:
        doc = alerts_agent.http_document(pdl)
        if doc is None:
            return self.json({"error": f"no readings for PDL {pdl}", "pdl": pdl}, status=404)
        return self.json(doc)


@app.page("/pdl/{pdl}/alert-settings")
class AlertSettingsView(View):
    @app.table_route(table=preferences_agent.preferences, match_info="pdl")
    async def get(self, request: Request, pdl: str) -> Response:
        prefs = preferences_agent.preferences_for(pdl) or AlertPreferences()
        return self.json({"pdl": pdl, **preferences_to_dict(prefs)})
