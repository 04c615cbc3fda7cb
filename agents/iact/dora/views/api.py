"""/api/dora/metrics: GET the summary; POST deployments and incidents (one event or {"events": [...]})."""

from __future__ import annotations

import json
import logging

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from iact.dora.auth import session_or_token, token_required
from iact.dora.ingest.record import record
from iact.dora.ingest.validate import EventError, parse_event
from iact.dora.views.params import BadFilter, Filters

log = logging.getLogger("iact.dora.api")


@session_or_token
def _summary(request: HttpRequest) -> JsonResponse:
    try:
        filters = Filters.from_request(request)
    except BadFilter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(filters.report().summary())


@token_required
def _record(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return JsonResponse({"error": f"the body is not JSON ({exc}); send Content-Type: application/json"}, status=400)
    many = isinstance(body, dict) and "events" in body
    raw_events = body["events"] if many else [body]
    if not isinstance(raw_events, list) or not raw_events:
        return JsonResponse({"errors": {"events": "expected a non-empty list of events"}}, status=400)
    events, errors = [], {}
    for i, raw in enumerate(raw_events):
        try:
            events.append(parse_event(raw))
        except EventError as exc:
            errors.update({(f"events[{i}].{k}" if many else k): v for k, v in exc.errors.items()})
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    try:
        with transaction.atomic():
            results = [record(e) for e in events]
    except EventError as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    log.info(
        "recorded %d event(s) from token %s",
        len(results),
        request.api_token.name,  # type: ignore[attr-defined]
    )
    answer = [r.as_json() for r in results]
    status = 201 if any(r.created for r in results) else 200
    return JsonResponse({"events": answer} if many else answer[0], status=status)


@csrf_exempt  # POST is authenticated by token only, never by the session cookie
def metrics(request: HttpRequest) -> HttpResponse:
    """GET: the four keys for ?period=&service=; POST: record events."""
    if request.method == "GET":
        return _summary(request)
    if request.method == "POST":
        return _record(request)
    return JsonResponse({"error": "use GET or POST"}, status=405)
