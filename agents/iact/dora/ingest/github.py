"""GitHub webhooks mapped onto the same events the JSON API takes.

- `push` to the default branch: commits and their times (the start of lead time).
- `deployment_status` success/failure/error: a deployment, shipping the pushed commits not yet
  shipped up to the deployed sha.
- `issues` labelled `incident`: an incident, restored when the issue is closed.
Signatures (X-Hub-Signature-256, HMAC-SHA256 of the body) are checked before anything is parsed.
The signature covers the body only, not the X-GitHub-Delivery header: replays are caught by the
delivery id (views/webhooks.py) and, whatever the id, by the state's own time (updated_at), which
must not be older than the stored one.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from iact.dora.ingest.record import Recorded, record_deployment, record_incident
from iact.dora.ingest.validate import DeploymentEvent, IncidentEvent, slugify
from iact.dora.metrics import version
from iact.dora.models import Commit, Deployment, Service

INCIDENT_LABEL = "incident"
_DEPLOY_STATES = {"success": "success", "failure": "failed", "error": "failed"}


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of GitHub's sha256= signature.

    Compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError), and a
    header is whatever the sender wrote. Non-ASCII input simply does not match.
    """
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    given = header.removeprefix("sha256=").encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _service(payload: dict) -> str:
    return slugify(payload["repository"]["name"])


@transaction.atomic
def handle_push(payload: dict) -> int:
    """Store the commits of a push to the default branch; returns how many were new."""
    repo = payload["repository"]
    if payload.get("ref") != f"refs/heads/{repo.get('default_branch', 'main')}":
        return 0
    service, _ = Service.objects.get_or_create(name=_service(payload))
    new = 0
    for c in payload.get("commits") or []:
        _, made = Commit.objects.get_or_create(
            service=service, sha=c["id"], defaults={"committed_at": _time(c["timestamp"])}
        )
        new += made
    return new


@transaction.atomic
def handle_deployment_status(payload: dict) -> Recorded | None:
    """A finished deployment (pending and in-progress states are ignored)."""
    status = _DEPLOY_STATES.get(payload["deployment_status"]["state"])
    if status is None:
        return None
    deployment = payload["deployment"]
    service = _service(payload)
    finished = _time(payload["deployment_status"].get("updated_at") or payload["deployment_status"]["created_at"])
    if finished.tzinfo is None:
        raise ValueError("deployment_status.updated_at has no UTC offset")
    sha = deployment.get("sha", "")
    deployment_environment = deployment.get("environment") or "production"
    recorded = record_deployment(
        DeploymentEvent(
            external_id=str(deployment["id"]),
            service=service,
            environment=deployment_environment,
            started_at=_time(deployment["created_at"]),
            finished_at=finished,
            status=status,
            source="github",
            version=deployment.get("ref", "")[:128],
            sha=sha,
            url=payload["deployment_status"].get("target_url") or payload["deployment_status"].get("log_url") or "",
            sender_updated_at=finished,
        )
    )
    if not recorded.stale and status == "success" and deployment_environment in settings.DORA_PRODUCTION_ENVIRONMENTS:
        _ship_pushed_commits(service, sha, recorded.id, finished)
    return recorded


def _ship_pushed_commits(service: str, sha: str, deployment_id: int, finished: datetime) -> None:
    """Pushed commits not in production yet, up to the deployed one, belong to this production deployment.

    Only a successful production deployment ships: a staging success or a failed attempt would
    otherwise end the commits' lead time before they reached production.
    """
    # Held already by a successful production deployment that finished no later than this one: theirs. One that
    # finished later loses them to this one (its delivery arrived first).
    shipped_first = Q(
        deployment__status=Deployment.SUCCESS,
        deployment__environment__in=settings.DORA_PRODUCTION_ENVIRONMENTS,
        deployment__finished_at__lte=finished,
    )
    commits = Commit.objects.filter(service__name=service).exclude(shipped_first)
    deployed = Commit.objects.filter(service__name=service, sha=sha).first()
    limit = deployed.committed_at if deployed else finished
    if commits.filter(committed_at__lte=limit).update(deployment_id=deployment_id):
        version.bump()  # a queryset update sends no signal


def handle_issues(payload: dict) -> Recorded | None:
    """Issues carrying the incident label open and restore incidents."""
    issue = payload["issue"]
    labels = {label.get("name", "").lower() for label in issue.get("labels") or []}
    if INCIDENT_LABEL not in labels:
        return None
    closed = issue.get("closed_at") if issue.get("state") == "closed" else None
    # updated_at changes with every edit of the issue; without it, the latest of the times we know.
    updated = issue.get("updated_at") or closed or issue["created_at"]
    return record_incident(
        IncidentEvent(
            external_id=str(issue["id"]),
            service=_service(payload),
            opened_at=_time(issue["created_at"]),
            restored_at=_time(closed) if closed else None,
            source="github",
            title=issue.get("title", "")[:300],
            url=issue.get("html_url", ""),
            sender_updated_at=_time(updated),
        )
    )
