"""POST /api/dora/webhooks/github: GitHub's push, deployment_status and issues events.

Order of checks: body size, signature, delivery id. A delivery is remembered only once it was
processed, in the same transaction: GitHub's "Redeliver" of a failed delivery (same id) still works,
and a replay of a processed one changes nothing.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from iact.dora.ingest import github
from iact.dora.ingest.record import Recorded
from iact.dora.models import WebhookDelivery
from iact.dora.views.limits import body_limited

log = logging.getLogger("iact.dora.webhooks")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
# GitHub keeps deliveries for redelivery for a few days; a month of ids is plenty and stays small.
DELIVERY_RETENTION = timedelta(days=30)


class _Replay(Exception):
    """The delivery was processed before."""


def _ignored(event: str, reason: str) -> JsonResponse:
    return JsonResponse({"event": event, "ignored": True, "reason": reason}, status=202)


def _dispatch(event: str, payload: dict) -> JsonResponse:
    if event == "push":
        return JsonResponse({"event": event, "new_commits": github.handle_push(payload)})
    handler = {"deployment_status": github.handle_deployment_status, "issues": github.handle_issues}.get(event)
    if handler is None:
        return _ignored(event, f"{event or 'unnamed'} events are not used")
    recorded: Recorded | None = handler(payload)
    if recorded is None:
        return _ignored(event, "not a finished deployment or an incident")
    if recorded.stale:
        return _ignored(event, "older than the state already stored (a replay or a late delivery)")
    return JsonResponse({"event": event} | recorded.as_json(), status=201 if recorded.created else 200)


def _remember(delivery: str, event: str) -> None:
    """Note the delivery (inside the caller's transaction); _Replay if it was seen."""
    _, new = WebhookDelivery.objects.get_or_create(delivery_id=delivery, defaults={"event": event[:64]})
    if not new:
        raise _Replay(delivery)
    WebhookDelivery.objects.filter(received_at__lt=timezone.now() - DELIVERY_RETENTION).delete()


@csrf_exempt  # authenticated by the HMAC signature instead
@require_POST
@body_limited
def github_webhook(request: HttpRequest) -> JsonResponse:
    """Check the signature and the delivery, then map the event; unknown events are acknowledged and ignored."""
    secret = settings.DORA_GITHUB_WEBHOOK_SECRET
    if not secret:
        return JsonResponse({"error": "webhooks are off: set github_webhook_secret in dora.yaml"}, status=503)
    if not github.signature_ok(secret, request.body, request.headers.get("X-Hub-Signature-256")):
        return JsonResponse(
            {"error": "bad or missing X-Hub-Signature-256; use the same secret on both sides"}, status=403
        )
    event = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if delivery and not _DELIVERY_ID.match(delivery):
        return JsonResponse({"error": "X-GitHub-Delivery: expected GitHub's delivery GUID"}, status=400)
    try:
        with transaction.atomic():
            if delivery:
                _remember(delivery, event)
            return _dispatch(event, json.loads(request.body))
    except _Replay:
        return _ignored(event, f"delivery {delivery} was processed already")
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # Signed by the holder of the secret, so not an attack: a payload shape this code does not know.
        log.warning("GitHub %s event not understood: %r", event, exc)
        return JsonResponse({"error": f"{event} payload not understood: missing or bad {exc}"}, status=400)
