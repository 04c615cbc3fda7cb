"""The chart endpoints the dashboard's Chart.js code fetches (and anyone with a token can)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from iact.dora.auth import session_or_token
from iact.dora.metrics.report import Report
from iact.dora.views.params import BadFilter, Filters


def _chart(series: Callable[[Report], dict]) -> Callable[[HttpRequest], JsonResponse]:
    @require_GET
    @session_or_token
    def view(request: HttpRequest) -> JsonResponse:
        try:
            filters = Filters.from_request(request)
        except BadFilter as exc:
            return JsonResponse(exc.as_json(), status=400)
        return JsonResponse({"period_days": filters.period, "service": filters.service} | series(filters.report()))

    return view


deployment_frequency = _chart(Report.deployment_frequency_series)
lead_time_trends = _chart(Report.lead_time_series)
change_failure_rate = _chart(Report.change_failure_rate_series)
mttr = _chart(Report.recovery_series)
