"""HTTP queries of the live and consumption state, on the worker's web server (docs/stream.md).

- ``GET /pdl/{pdl}/live``: the live payload (the same JSON as ``linky:{pdl}:live``);
- ``GET /pdl/{pdl}/consumption?granularity=hour|day|month&from=...&to=...``:
  ``{"pdl", "granularity", "buckets": [{"start", "end", "import_wh", "export_wh", "by_period"}]}``
  in time order, the open bucket included. ``from``/``to`` are ISO-8601 dates (local midnight,
  Europe/Paris) or datetimes (with an offset, or local time without one); buckets overlapping
  ``[from, to)`` are returned; either may be omitted. ``granularity`` defaults to ``day``.

Errors are JSON ``{"error": ..., "pdl": ...}``: 404 for a PDL this stream has never seen, 400 for
a bad parameter. Both views are routed like ``app.table_route``: the request is forwarded to the
worker holding the PDL's partition (Kafka's default partitioner on the PDL, as the readings are
keyed), so any worker answers for any PDL; 503 (JSON) while partitions are being (re)assigned.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from functools import wraps
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from faust.exceptions import SameNode
from faust.types import CollectionT
from faust.web import Request, Response, View

from agents.contracts import contract_for
from stream.app import app, settings
from tables.bill import bill_document
from stream.state import consumption_config, history_loader, live_table, load_consumption, state_table, writeback
from tables.calendar import local_midnight
from tables.consumption import GRANULARITIES, index_csv, query_buckets, query_index


log = logging.getLogger(__name__)
Handler = Callable[[Any, Request, str], Awaitable[Response]]


class BadParameter(ValueError):
    pass


def routed(table: CollectionT) -> Callable[[Handler], Handler]:
    """``app.table_route(table, match_info="pdl")`` that answers 503 JSON instead of a 500 when
    the owner is not known yet (start-up, rebalance) or cannot be reached (a worker just died)."""

    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def get(view: Any, request: Request, pdl: str) -> Response:
            try:
                return await app.router.route_req(table.name, pdl, view.web, request)
            except SameNode:
                return await handler(view, request, pdl)
            except Exception as exc:  # ServiceUnavailable, unknown partition, owner unreachable
                log.info("routing %s for %s failed: %r", request.path, pdl, exc)
                return view.json({"error": "partition owner not available, retry", "pdl": pdl}, status=503)

        return get

    return decorator


@app.page("/pdl/{pdl}/live")
class LiveView(View):
    @routed(state_table)
    async def get(self, request: Request, pdl: str) -> Response:
        raw = writeback.read(live_table, pdl.encode())
        if raw is None:
            return self.json({"error": f"unknown PDL {pdl}", "pdl": pdl}, status=404)
        return self.bytes(raw, content_type="application/json")


@app.page("/pdl/{pdl}/consumption")
class ConsumptionView(View):
    @routed(state_table)
    async def get(self, request: Request, pdl: str) -> Response:
        query = request.query
        granularity = query.get("granularity", "day")
        try:
            if granularity not in GRANULARITIES:
                raise BadParameter(f"granularity must be one of {'|'.join(GRANULARITIES)}, got {granularity!r}")
            start = parse_bound(query.get("from"), consumption_config.tz, "from")
            end = parse_bound(query.get("to"), consumption_config.tz, "to")
        except BadParameter as exc:
            return self.json({"error": str(exc), "pdl": pdl}, status=400)
        state = load_consumption(pdl)
        if state is None:
            return self.json({"error": f"unknown PDL {pdl}", "pdl": pdl}, status=404)
        contract = contract_for(pdl)
        versions = contract.versions if contract is not None else ()
        buckets = query_buckets(state, granularity, start, end, history_loader(pdl), consumption_config, versions)
        return self.json({"pdl": pdl, "granularity": granularity, "buckets": buckets})


@app.page("/pdl/{pdl}/index")
class IndexView(View):
    """Index statements ("relevés"): ``?granularity=day|month&from=&to=&format=json|csv``."""

    @routed(state_table)
    async def get(self, request: Request, pdl: str) -> Response:
        query = request.query
        granularity = query.get("granularity", "day")
        fmt = query.get("format", "json")
        try:
            if granularity not in ("day", "month"):
                raise BadParameter(f"granularity must be one of day|month, got {granularity!r}")
            if fmt not in ("json", "csv"):
                raise BadParameter(f"format must be json or csv, got {fmt!r}")
            start = parse_bound(query.get("from"), consumption_config.tz, "from")
            end = parse_bound(query.get("to"), consumption_config.tz, "to")
        except BadParameter as exc:
            return self.json({"error": str(exc), "pdl": pdl}, status=400)
        state = load_consumption(pdl)
        if state is None:
            return self.json({"error": f"unknown PDL {pdl}", "pdl": pdl}, status=404)
        contract = contract_for(pdl)
        versions = contract.versions if contract is not None else ()
        rows = query_index(state, granularity, start, end, history_loader(pdl), consumption_config, versions)
        if fmt == "csv":
            return self.bytes(index_csv(rows).encode(), content_type="text/csv")
        return self.json({"pdl": pdl, "granularity": granularity, "statements": rows})


@app.page("/pdl/{pdl}/bill")
class BillView(View):
    """The month's estimated bill: ``?month=YYYY-MM`` (default: the PDL's current month)."""

    @routed(state_table)
    async def get(self, request: Request, pdl: str) -> Response:
        from agents.battery import load as load_ledger

        raw = request.query.get("month")
        state = load_consumption(pdl)
        try:
            month = parse_month(raw) if raw else None
        except BadParameter as exc:
            return self.json({"error": str(exc), "pdl": pdl}, status=400)
        if state is None or state.day is None:
            return self.json({"error": f"unknown PDL {pdl}", "pdl": pdl}, status=404)
        month = month or state.day.replace(day=1)
        contract = contract_for(pdl)
        versions = contract.versions if contract is not None else ()
        doc = bill_document(pdl, month, consumption=state, load=history_loader(pdl), ledger=load_ledger(pdl),
                            versions=versions, deduct_cagnotte=settings.bill_deduct_cagnotte)  # fmt: skip
        return self.json(doc)


def parse_month(raw: str) -> date:
    """``2027-01`` -> 2027-01-01; BadParameter otherwise."""
    text = raw.strip()
    try:
        if len(text) != 7 or text[4] != "-":
            raise ValueError
        return date(int(text[:4]), int(text[5:]), 1)
    except ValueError:
        raise BadParameter(f"month={raw!r} is not YYYY-MM") from None


def parse_bound(raw: str | None, tz: ZoneInfo, name: str) -> datetime | None:
    """``2026-10-25`` -> local midnight; a datetime with an offset as is; without one, local time.

    A ``+`` in an unescaped query string arrives as a space: ``...T00:00:00 02:00`` is accepted.
    """
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if len(text) > 19 and text[-6] == " ":
        text = f"{text[:-6]}+{text[-5:]}"
    try:
        if len(text) == 10:
            return local_midnight(date.fromisoformat(text), tz)
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(f"{name}={raw!r} is not an ISO-8601 date or datetime") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)
