"""The dashboard page: six widgets rendered on the server, four charts drawn by Chart.js."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

import iact
from iact.dora.metrics import classify
from iact.dora.metrics.period import PERIODS
from iact.dora.models import Service
from iact.dora.views.params import DEFAULT_PERIOD, BadFilter, Filters


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The page; a bad filter falls back to the default period with a notice."""
    notice = ""
    try:
        filters = Filters.from_request(request)
    except BadFilter as exc:
        notice, filters = str(exc), Filters(DEFAULT_PERIOD, request.GET.get("service") or None)
    report = filters.report()
    context = {
        "summary": report.summary(),
        # The four series ride along in the page (json_script, CSP-safe): one computation per
        # page view instead of five. The chart endpoints serve the same data to API clients.
        "charts": {
            "deployments": report.deployment_frequency_series(),
            "lead": report.lead_time_series(),
            "cfr": report.change_failure_rate_series(),
            "mttr": report.recovery_series(),
        },
        "filters": filters,
        "periods": PERIODS,
        "services": list(Service.objects.values_list("name", flat=True)),
        "thresholds": classify.THRESHOLDS,
        "report_name": classify.REPORT,
        "notice": notice,
    }
    return render(request, "dora/dashboard.html", context)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For nginx, health checks and rolling upgrades: the app answers, reaches its database, and says its version."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return JsonResponse({"status": "error", "database": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok", "version": iact.__version__})
