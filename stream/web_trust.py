"""``GET /quarantine?limit=N``: the review list of this worker's PDLs (every quarantined and
refused reading kept, newest first; each worker answers for its own partitions).

``GET /pdl/{pdl}/quarantine`` on the worker's web server (docs/security.md): the PDL's recent
refused and quarantined readings, its open trust alerts, its plausibility baseline and its
gateways (key ids and dates, never secrets). Forwarded to the worker holding the PDL's partition
like the other routes (stream/web.py ``routed``: 503 JSON while partitions move); 404 for a PDL
with neither a gateway nor a judged reading.
"""

from __future__ import annotations

from faust.web import Request, Response, View

from agents import gateways
from stream.app import app
from stream.web import routed


@app.page("/pdl/{pdl}/quarantine")
class QuarantineView(View):
    @routed(gateways.trust_table)
    async def get(self, request: Request, pdl: str) -> Response:
        doc = gateways.http_document(pdl)
        if doc is None:
            return self.json({"error": f"nothing known of PDL {pdl}", "pdl": pdl}, status=404)
        return self.json(doc)


@app.page("/quarantine")
class ReviewView(View):
    async def get(self, request: Request) -> Response:
        try:
            limit = int(request.query.get("limit", "200"))
            if not 1 <= limit <= 10_000:
                raise ValueError
        except ValueError:
            return self.json({"error": "limit must be an integer from 1 to 10000"}, status=400)
        return self.json(gateways.review_document(limit))
