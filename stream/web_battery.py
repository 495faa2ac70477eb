"""HTTP queries of the battery and alerts agents, on the worker's web server.

- ``GET /pdl/{pdl}/battery``: the live battery payload (level, percent, estimate, anchor, today
  and this month), ``months`` (every kept monthly row: opening / credited / used_hp / used_hc /
  overflow / closing, fees, subscription) and ``surplus`` (the surplus payload and its months);
- ``GET /pdl/{pdl}/alerts``: ``{"schema_version", "pdl", "open": [{"kind", "since", "details"}]}``.

Both answer from the worker that holds the PDL's partition: ``app.table_route`` forwards the
request there (Kafka's default partitioner on the PDL, as the readings are keyed). An unknown
PDL is a 404 with a JSON error; a partition being rebalanced is a 503.
"""

from __future__ import annotations

from faust.web import Request, Response, View

from agents import alerts as alerts_agent
from agents import battery as battery_agent
from stream.app import app


@app.page("/pdl/{pdl}/battery")
class BatteryView(View):
    @app.table_route(table=battery_agent.ledger, match_info="pdl")
    async def get(self, request: Request, pdl: str) -> Response:
        doc = battery_agent.http_document(pdl)
        if doc is None:
            return self.json({"error": f"no battery data for PDL {pdl}", "pdl": pdl}, status=404)
        return self.json(doc)


@app.page("/pdl/{pdl}/alerts")
class AlertsView(View):
    @app.table_route(table=battery_agent.ledger, match_info="pdl")
    async def get(self, request: Request, pdl: str) -> Response:
        doc = alerts_agent.http_document(pdl)
        if doc is None:
            return self.json({"error": f"no readings for PDL {pdl}", "pdl": pdl}, status=404)
        return self.json(doc)
