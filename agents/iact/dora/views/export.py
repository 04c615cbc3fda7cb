"""The rows behind the figures: /api/dora/export.csv (a spreadsheet) and /api/dora/drilldown (a chart bucket).

Same login or token and the same period and service checks as the charts, so whoever can see a
figure can see what it is made of, and nobody else.
"""

from __future__ import annotations

import csv

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from iact.dora.auth import session_or_token
from iact.dora.metrics import drill
from iact.dora.views.params import BadFilter, Filters


def _cell(value: object) -> object:
    """A sender's text that a spreadsheet would run as a formula (=, +, -, @) is prefixed with '.

    Titles and ids come from CI systems and issue trackers; opening the export must not run them.
    """
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _metric(request: HttpRequest) -> str:
    metric = request.GET.get("metric", "")
    if metric not in drill.METRICS:
        raise BadFilter(f"metric={metric!r}: use one of {', '.join(drill.METRICS)}", metrics=list(drill.METRICS))
    return metric


@require_GET
@session_or_token
def export_csv(request: HttpRequest) -> HttpResponse:
    """?metric=&period=&service=[&bucket=]: one CSV row per deployment, commit or failure behind the figure."""
    try:
        filters, metric = Filters.from_request(request), _metric(request)
        report = filters.report()
        selected = drill.rows(report, metric, drill.bucket_index(report, request.GET.get("bucket")))
    except BadFilter as exc:
        return JsonResponse(exc.as_json(), status=400)
    except drill.BadBucket as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"dora-{metric}-{filters.period}d{'-' + filters.service if filters.service else ''}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.DictWriter(response, fieldnames=drill.COLUMNS[metric], extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in selected)
    return response


@require_GET
@session_or_token
def drilldown(request: HttpRequest) -> JsonResponse:
    """?metric=&period=&service=&bucket=YYYY-MM-DD: the rows of one chart bucket and the value they give."""
    try:
        filters, metric = Filters.from_request(request), _metric(request)
        report = filters.report()
        bucket = drill.bucket_index(report, request.GET.get("bucket"))
        selected = drill.rows(report, metric, bucket)
    except BadFilter as exc:
        return JsonResponse(exc.as_json(), status=400)
    except drill.BadBucket as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {
            "metric": metric,
            "period_days": filters.period,
            "service": filters.service,
            "bucket": request.GET.get("bucket") or None,
            "value": drill.figure(metric, selected),
            "columns": list(drill.COLUMNS[metric]),
            "rows": selected,
        }
    )
