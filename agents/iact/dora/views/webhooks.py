"""POST /api/dora/webhooks/github: GitHub's push, deployment_status and issues events."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from iact.dora.ingest import github

log = logging.getLogger("iact.dora.webhooks")


@csrf_exempt  # authenticated by the HMAC signature instead
@require_POST
def github_webhook(request: HttpRequest) -> JsonResponse:
    """Check the signature, then map the event; unknown events are acknowledged and ignored."""
    secret = settings.DORA_GITHUB_WEBHOOK_SECRET
    if not secret:
        return JsonResponse({"error": "webhooks are off: set github_webhook_secret in dora.yaml"}, status=503)
    if not github.signature_ok(secret, request.body, request.headers.get("X-Hub-Signature-256")):
        return JsonResponse(
            {"error": "bad or missing X-Hub-Signature-256; use the same secret on both sides"}, status=403
        )
    event = request.headers.get("X-GitHub-Event", "")
    try:
        payload = json.loads(request.body)
        if event == "push":
            return JsonResponse({"event": event, "new_commits": github.handle_push(payload)})
        handler = {"deployment_status": github.handle_deployment_status, "issues": github.handle_issues}.get(event)
        if handler is None:
            return JsonResponse({"event": event, "ignored": True}, status=202)
        recorded = handler(payload)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("GitHub %s event not understood: %r", event, exc)
        return JsonResponse({"error": f"{event} payload not understood: missing or bad {exc}"}, status=400)
    if recorded is None:
        return JsonResponse({"event": event, "ignored": True}, status=202)
    return JsonResponse({"event": event} | recorded.as_json(), status=201 if recorded.created else 200)
