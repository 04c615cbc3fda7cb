"""Records validated events, idempotently: the sender's own id decides insert or update.

An event that carries the sender's time of its state (GitHub's updated_at) never overwrites a newer
state already stored: replayed or reordered webhooks cannot roll a row back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction

from iact.dora.ingest.validate import DeploymentEvent, EventError, IncidentEvent
from iact.dora.models import Commit, Deployment, Incident, Service


@dataclass(frozen=True)
class Recorded:
    """What happened to one event."""

    kind: str
    id: int
    created: bool
    stale: bool = False  # an older state than the stored one: nothing was written

    def as_json(self) -> dict:
        """The API's answer for this event."""
        return {"type": self.kind, "id": self.id, "created": self.created}


def _older(new: datetime | None, stored: datetime | None) -> bool:
    return new is not None and stored is not None and new < stored


def _sender_time(event: DeploymentEvent | IncidentEvent) -> dict:
    return {"sender_updated_at": event.sender_updated_at} if event.sender_updated_at else {}


def _service(name: str) -> Service:
    service, _ = Service.objects.get_or_create(name=name)
    return service


@transaction.atomic
def record_deployment(event: DeploymentEvent) -> Recorded:
    """Insert or update the deployment and attach its commits.

    A commit belongs to the first successful production deployment that shipped it: a redeploy
    listing the same sha later does not restart its lead-time clock, and a failed attempt does not
    keep it from the successful retry (until one succeeds, the first deployment listing it holds
    it). Limit: a deployment that holds commits and is later updated to failed keeps them until
    another successful deployment lists them again.
    """
    stored = Deployment.objects.select_for_update().filter(source=event.source, external_id=event.external_id).first()
    if stored is not None and _older(event.sender_updated_at, stored.sender_updated_at):
        return Recorded("deployment", stored.pk, False, stale=True)
    service = _service(event.service)
    deployment, created = Deployment.objects.update_or_create(
        source=event.source,
        external_id=event.external_id,
        defaults=_sender_time(event)
        | {
            "service": service,
            "environment": event.environment,
            "version": event.version,
            "sha": event.sha,
            "started_at": event.started_at,
            "finished_at": event.finished_at,
            "status": event.status,
            "url": event.url,
        },
    )
    for c in event.commits:
        commit, made = Commit.objects.get_or_create(
            service=service, sha=c.sha, defaults={"committed_at": c.committed_at, "deployment": deployment}
        )
        if not made and (commit.deployment_id is None or _ships_earlier(deployment, commit.deployment)):
            commit.deployment = deployment
            commit.save(update_fields=["deployment"])
    return Recorded("deployment", deployment.pk, created)


def _ships_earlier(candidate: Deployment, current: Deployment | None) -> bool:
    """Does the candidate take the commit: a success in production beats anything else, then the earlier one."""
    if current is None:
        return True
    return (not _shipped(candidate), candidate.finished_at) < (not _shipped(current), current.finished_at)


def _shipped(deployment: Deployment) -> bool:
    return deployment.status == Deployment.SUCCESS and deployment.environment in settings.DORA_PRODUCTION_ENVIRONMENTS


@transaction.atomic
def record_incident(event: IncidentEvent) -> Recorded:
    """Insert or update the incident, linked to the deployment that caused it when named."""
    service = _service(event.service)
    deployment = None
    if event.deployment_id:
        deployment = Deployment.objects.filter(source=event.source, external_id=event.deployment_id).first()
        if deployment is None:
            raise EventError(
                {
                    "deployment_id": f"no deployment {event.deployment_id!r} from source {event.source!r}; "
                    "record the deployment first, or leave deployment_id out"
                }
            )
    stored = Incident.objects.select_for_update().filter(source=event.source, external_id=event.external_id).first()
    if stored is not None and _older(event.sender_updated_at, stored.sender_updated_at):
        return Recorded("incident", stored.pk, False, stale=True)
    incident, created = Incident.objects.update_or_create(
        source=event.source,
        external_id=event.external_id,
        defaults=_sender_time(event)
        | {
            "service": service,
            "deployment": deployment,
            "title": event.title,
            "opened_at": event.opened_at,
            "restored_at": event.restored_at,
            "url": event.url,
        },
    )
    return Recorded("incident", incident.pk, created)


def record(event: DeploymentEvent | IncidentEvent) -> Recorded:
    """Record either kind of event."""
    if isinstance(event, DeploymentEvent):
        return record_deployment(event)
    return record_incident(event)
