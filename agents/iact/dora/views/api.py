"""/api/dora/metrics: GET the summary; POST deployments and incidents (one event or {"events": [...]}).

Whatever the body, the answer is never a 500: a refusal is a 400 whose `errors` name each field
(`body` for the body as a whole), or a 403 when the token's scope forbids the source or service.
"""

from __future__ import annotations

import json
import logging

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from iact.dora.auth import session_or_token, token_required
from iact.dora.ingest.record import Recorded, record
from iact.dora.ingest.scope import Event, apply_scope
from iact.dora.ingest.validate import EventError, parse_event
from iact.dora.metrics.report import versus_previous
from iact.dora.models import ApiToken
from iact.dora.views.limits import body_limited
from iact.dora.views.params import BadFilter, Filters

log = logging.getLogger("iact.dora.api")


class _BadBody(ValueError):
    """The body cannot be read as JSON at all."""


@session_or_token
def _summary(request: HttpRequest) -> JsonResponse:
    try:
        filters = Filters.from_request(request)
    except BadFilter as exc:
        return JsonResponse(exc.as_json(), status=400)
    summary = filters.report().summary()
    return JsonResponse(
        summary | {"versus_previous": versus_previous(summary, filters.report(previous=True).summary())}
    )


def _json(raw: bytes) -> object:
    """The parsed body; _BadBody says what is wrong in terms the sender can act on."""
    try:
        return json.loads(raw or b"null")
    except json.JSONDecodeError as exc:
        raise _BadBody(f"not JSON ({exc}); send Content-Type: application/json with a JSON object") from exc
    except UnicodeDecodeError as exc:
        raise _BadBody("not UTF-8 text; send JSON encoded as UTF-8") from exc
    except ValueError as exc:  # an integer longer than int() will read (4300 digits)
        raise _BadBody(f"a number is too long to read ({exc.__class__.__name__}); send ids as strings") from exc
    except RecursionError as exc:
        raise _BadBody("nested too deeply to read; an event is an object of strings and a list of commits") from exc


def _field(many: bool, index: int, key: str) -> str:
    if not many:
        return key or "body"
    return f"events[{index}].{key}" if key else f"events[{index}]"


def _record_one(many: bool, index: int, event: Event) -> Recorded:
    try:
        return record(event)
    except EventError as exc:  # e.g. an incident naming a deployment nobody recorded
        raise EventError({_field(many, index, k): v for k, v in exc.errors.items()}) from exc


@token_required
@body_limited
def _record(request: HttpRequest) -> JsonResponse:
    token: ApiToken = request.api_token  # type: ignore[attr-defined]
    try:
        body = _json(request.body)
    except _BadBody as exc:
        return JsonResponse({"errors": {"body": str(exc)}}, status=400)
    many = isinstance(body, dict) and "events" in body
    raw_events = body["events"] if many else [body]  # type: ignore[index]
    if not isinstance(raw_events, list) or not raw_events:
        return JsonResponse({"errors": {"events": "expected a non-empty list of events"}}, status=400)
    events, errors = [], {}
    for i, raw in enumerate(raw_events):
        try:
            events.append(parse_event(raw))
        except EventError as exc:
            errors.update({_field(many, i, k): v for k, v in exc.errors.items()})
    if errors:
        return JsonResponse({"errors": errors}, status=400)
    for i, event in enumerate(events):
        events[i], refused = apply_scope(event, token)
        errors.update({_field(many, i, k): v for k, v in refused.items()})
    if errors:
        return JsonResponse({"errors": errors}, status=403)
    try:
        with transaction.atomic():  # all or nothing
            results = [_record_one(many, i, e) for i, e in enumerate(events)]
    except EventError as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    log.info("recorded %d event(s) from token %s", len(results), token.name)
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
