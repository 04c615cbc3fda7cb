"""The log console: /logs/ (search, JSON for the live tail), its volume chart's counts, one row with
its context, a request's trace.

Log rows hold auth.log lines and user ids: every view needs the `dora.view_logs` permission (403
without it), not only a login.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from cassandra import OperationTimedOut, ReadFailure, ReadTimeout
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from iact.cassandra.session import CassandraAuthFailed, CassandraUnavailable
from iact.dora.logs import tokens
from iact.dora.logs import volume as volume_
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


def _shorten(text: str, size: int) -> str:
    """Django's truncatechars: `size` characters at most, the last an ellipsis when cut."""
    return text if len(text) <= size else text[: size - 1] + "…"


def _listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with their links and texts made here: per row, template tags and filters ({% url %},
    urlencode, date, truncatechars) cost most of the page's server time. Times are shown in UTC, as
    the column says and the live tail shows them."""
    row_url, trace_url = reverse("log-row"), reverse("log-trace", args=["-"])[: -len("-/")]
    listed = []
    for r in rows:
        rid = r.get("request_id") or ""
        link = urlencode({"table": r["table"], "host": r["host"], "ts": r["ts"].isoformat(), "id": r["id"]})
        listed.append(r | {"link": f"{row_url}?{link}", "when": r["ts"].strftime("%Y-%m-%d %H:%M:%S.%f")[:23],
                           "short": _shorten(r.get("message") or "", 400),
                           "trace": f"{trace_url}{quote(rid, safe='')}/" if rid else "",
                           "trace_label": _shorten(rid, 14)})  # fmt: skip
    return listed


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
        "rows": _listed(page.rows),
        "next_url": next_url,
        "tables": TABLES,
        "filters": FILTERS[query.table],
        "filter_values": [(c, dict(query.filters).get(c, "")) for c in FILTERS[query.table]],
        "indexed": INDEXED[query.table],
        "ranges": RANGES,
        "scan_limit": get_search().scan_limit,
        "tail_url": "?" + urlencode({k: v for k, v in fixed.items() if k not in ("from", "to")} | {"format": "json"}),
        "volume_query": urlencode({k: v for k, v in fixed.items() if k != "format"}),
        "split": volume_.SPLIT[query.table],
    }
    return render(request, "dora/logs.html", context)


def _volume_note(counted: volume_.Volume) -> str:
    """What the chart says under it: always how much was read, and when the limit cut it, from where on it counts."""
    read = f"{counted.scanned:,} rows read"
    if not counted.capped:
        return f"{counted.total:,} rows; {read}."
    return (f"Partial: the count stopped at its limit of {counted.limit:,} rows read; buckets before "
            f"{counted.counted_from:%Y-%m-%d %H:%M} UTC are not counted. Narrow the range, or choose a host or an "
            "indexed filter.")  # fmt: skip


@require_GET
@login_required
@permission_required("dora.view_logs", raise_exception=True)
def volume(request: HttpRequest) -> JsonResponse:
    """Rows per minute or hour of the same search (same query string), per level or severity, as JSON.

    Buckets are oldest first; a count is 0 for an empty bucket and null for one the limit left
    uncounted, so the chart never draws a guess.
    """
    try:
        query = parse(request.GET, timezone.now().astimezone(UTC))
    except SearchError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    try:
        counted = volume_.count(get_search(), query)
    except (ConsoleOff, CassandraUnavailable, CassandraAuthFailed) as exc:
        message = str(exc) if isinstance(exc, ConsoleOff) else f"Cassandra did not answer the console: {exc}"
        return JsonResponse({"error": message}, status=503)
    except (ReadTimeout, ReadFailure, OperationTimedOut) as exc:  # a count reads more than a page: it may
        return JsonResponse({"error": f"Cassandra took too long to count ({exc}): narrow the range"}, status=503)
    return JsonResponse({
        "table": query.table, "split": volume_.SPLIT[query.table], "plan": query.plan,
        "from": query.start.isoformat(), "to": query.end.isoformat(),
        "bucket": "minute" if counted.width == volume_.MINUTE else "hour",
        "bucket_seconds": int(counted.width.total_seconds()),
        "labels": [s.isoformat() for s in counted.starts],
        "series": [{"name": name, "counts": counts} for name, counts in counted.series()],
        "total": counted.total, "scanned": counted.scanned, "limit": counted.limit, "capped": counted.capped,
        "counted_from": counted.counted_from.isoformat(), "note": _volume_note(counted),
    })  # fmt: skip


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
