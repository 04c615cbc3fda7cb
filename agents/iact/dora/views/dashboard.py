"""The dashboard page: six widgets rendered on the server, four charts drawn by Chart.js."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

import iact
from iact.dora.metrics.benchmarks import LEVELS
from iact.dora.metrics.period import PERIODS
from iact.dora.metrics.report import versus_previous
from iact.dora.models import Service
from iact.dora.views.params import DEFAULT_PERIOD, BadFilter, Filters


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The page; a bad filter falls back to the default period with a notice."""
    notice, status = "", 200
    try:
        filters = Filters.from_request(request)
    except BadFilter as exc:
        # The page shows what its filters say: the default period, all services unless the service is known.
        service = request.GET.get("service") or None
        known = service is not None and Service.objects.filter(name=service).exists()
        notice, status, filters = str(exc), 400, Filters(DEFAULT_PERIOD, service if known else None)
    report = filters.report()
    summary = report.summary()
    context = {
        "summary": summary,
        "versus": versus_previous(summary, filters.report(previous=True).summary()),
        # The four series ride along in the page (json_script, CSP-safe): one computation per
        # page view instead of five. The chart endpoints serve the same data to API clients.
        "charts": {
            "deployments": report.deployment_frequency_series(),
            "lead": report.lead_time_series(),
            "cfr": report.change_failure_rate_series(),
            "mttr": report.recovery_series(),
        },
        "filters": filters,
        # The filters as a query string, for the widgets' CSV links.
        "query": urlencode({"period": filters.period} | ({"service": filters.service} if filters.service else {})),
        "periods": PERIODS,
        "services": list(Service.objects.values_list("name", flat=True)),
        "benchmark": report.benchmark,
        "levels": LEVELS,
        "notice": notice,
    }
    return render(request, "dora/dashboard.html", context, status=status)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For nginx, health checks and rolling upgrades: the app answers, reaches its database, and says its version."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return JsonResponse({"status": "error", "database": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok", "version": iact.__version__})
