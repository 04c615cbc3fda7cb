"""The log console: /logs/ (search, JSON for the live tail), one row with its context, a request's trace.

Log rows hold auth.log lines and user ids: every view needs the `dora.view_logs` permission (403
without it), not only a login.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from iact.cassandra.session import CassandraAuthFailed, CassandraUnavailable
from iact.dora.logs import tokens
from iact.dora.logs.connection import ConsoleOff, get_search
from iact.dora.logs.search import FILTERS, INDEXED, TABLES, Query, SearchError

RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6),
          "24h": timedelta(days=1), "7d": timedelta(days=7)}  # fmt: skip
DEFAULT_RANGE = "1h"
MAX_SPAN = timedelta(days=7)
MAX_FIELD = 200


def _when(raw: str, name: str) -> datetime:
    try:
        at = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SearchError(f"{name}={raw!r} is not a time: write e.g. 2026-11-29T10:00 (UTC) or use a range") from exc
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def parse(params: Any, now: datetime) -> Query:
    """The query string as a Query: absolute times, so every page of a search reads the same range."""
    table = params.get("table") or "application"
    if table not in TABLES:
        raise SearchError(f"table={table!r}: use application or infrastructure")
    if params.get("from") or params.get("to"):
        end = _when(params["to"], "to") if params.get("to") else now
        start = _when(params["from"], "from") if params.get("from") else end - RANGES[DEFAULT_RANGE]
    else:
        span = params.get("range") or DEFAULT_RANGE
        if span not in RANGES:
            raise SearchError(f"range={span!r}: use one of {', '.join(RANGES)}, or from/to")
        end, start = now, now - RANGES[span]
    if end - start > MAX_SPAN:
        raise SearchError("the time range is longer than 7 days: narrow from/to")
    values = {c: (params.get(c) or "").strip() for c in (*FILTERS[table], "host", "q")}
    too_long = [c for c, v in values.items() if len(v) > MAX_FIELD]
    if too_long:
        raise SearchError(f"{too_long[0]} is longer than {MAX_FIELD} characters")
    filters = tuple(sorted((c, values[c]) for c in FILTERS[table] if values[c]))
    return Query(table, start, end, host=values["host"], filters=filters, text=values["q"])


def _unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    message = str(exc) if isinstance(exc, ConsoleOff) else f"Cassandra did not answer the console: {exc}"
    if request.GET.get("format") == "json":
        return JsonResponse({"error": message}, status=503)
    return render(request, "dora/logs.html", {"error": message, "tables": TABLES}, status=503)


def _bad(request: HttpRequest, message: str) -> HttpResponse:
    if request.GET.get("format") == "json":
        return JsonResponse({"error": message}, status=400)
    return render(request, "dora/logs.html", {"error": message, "tables": TABLES}, status=400)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v if isinstance(v, (int, str, type(None))) else str(v))
            for k, v in row.items()}  # fmt: skip


@require_GET
@login_required
@permission_required("dora.view_logs", raise_exception=True)
def search(request: HttpRequest) -> HttpResponse:
    """The search page; `format=json` answers the same search as JSON (the live tail polls it)."""
    try:
        query = parse(request.GET, timezone.now().astimezone(UTC))
    except SearchError as exc:
        return _bad(request, str(exc))
    cursor = None
    if request.GET.get("page"):
        try:
            cursor = tokens.load(request.GET["page"], query.digest())
        except tokens.BadToken as exc:
            return _bad(request, str(exc))
    try:
        page = get_search().search(query, cursor)
    except (ConsoleOff, CassandraUnavailable, CassandraAuthFailed) as exc:
        return _unavailable(request, exc)
    # The next page's link carries the absolute range, so "last hour" pages stay on the same hour.
    fixed = {k: v for k, v in request.GET.items() if k not in ("page", "range", "from", "to") and v}
    fixed |= {"from": query.start.isoformat(), "to": query.end.isoformat()}
    next_url = ""
    if page.cursor is not None:
        next_url = "?" + urlencode(fixed | {"page": tokens.dump(query.digest(), page.cursor)})
    if request.GET.get("format") == "json":
        return JsonResponse({"rows": [_json_row(r) for r in page.rows], "next": next_url, "plan": query.plan,
                             "scanned": page.scanned, "scan_limited": page.scan_limited})  # fmt: skip
    context = {
        "query": query,
        "params": request.GET,
        "page": page,
        "next_url": next_url,
        "tables": TABLES,
        "filters": FILTERS[query.table],
        "filter_values": [(c, dict(query.filters).get(c, "")) for c in FILTERS[query.table]],
        "indexed": INDEXED[query.table],
        "ranges": RANGES,
        "scan_limit": get_search().scan_limit,
        "tail_url": "?" + urlencode({k: v for k, v in fixed.items() if k not in ("from", "to")} | {"format": "json"}),
    }
    return render(request, "dora/logs.html", context)


@require_GET
@login_required
@permission_required("dora.view_logs", raise_exception=True)
def row(request: HttpRequest) -> HttpResponse:
    """One record in full (?table=&host=&ts=&id=), with the lines around it on the same host."""
    table, host, row_id = (request.GET.get(k, "") for k in ("table", "host", "id"))
    try:
        at = _when(request.GET.get("ts", ""), "ts")
        if table not in TABLES:
            raise SearchError(f"unknown table {table!r}")
        search_ = get_search()
        found = search_.row(table, host, at, row_id)
        context = search_.context(table, host, at) if found else []
    except (SearchError, ValueError) as exc:
        return _bad(request, str(exc))
    except (ConsoleOff, CassandraUnavailable, CassandraAuthFailed) as exc:
        return _unavailable(request, exc)
    if found is None:
        return render(request, "dora/logs.html", {"error": "no such log row (expired, or a wrong link)",
                                                  "tables": TABLES}, status=404)  # fmt: skip
    fields = sorted((k, v) for k, v in found.items() if k not in ("message", "exception") and v not in (None, "", {}))
    return render(request, "dora/log_row.html", {"row": found, "fields": fields, "context": context})


@require_GET
@login_required
@permission_required("dora.view_logs", raise_exception=True)
def trace(request: HttpRequest, request_id: str) -> HttpResponse:
    """Every application row of one request, across hosts, in time order."""
    if len(request_id) > MAX_FIELD:
        return _bad(request, f"request id is longer than {MAX_FIELD} characters")
    try:
        rows = get_search().trace(request_id)
    except (ConsoleOff, CassandraUnavailable, CassandraAuthFailed) as exc:
        return _unavailable(request, exc)
    return render(request, "dora/log_trace.html", {"request_id": request_id, "rows": rows})
