"""Loads the rows a window needs from the database, as the plain rows definitions.py takes.

Few queries with only the columns needed: the page must stay fast with tens of thousands of
deployments, so nothing here walks model instances.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from iact.dora.metrics.definitions import FAILED_STATUSES, DeploymentRow, FailureRow
from iact.dora.metrics.period import Window
from iact.dora.models import Commit, Deployment, Incident

# How an incident that names no deployment counts toward change failure rate.
ATTRIBUTIONS = ("latest_deployment", "none")


def load(
    window: Window,
    environments: tuple[str, ...],
    service: str | None = None,
    attribution: str = "latest_deployment",
) -> tuple[list[DeploymentRow], list[FailureRow]]:
    """Production deployments finishing in the window, and the failures starting in it."""
    deployments = Deployment.objects.filter(
        environment__in=environments, finished_at__gte=window.start, finished_at__lt=window.end
    )
    incidents = Incident.objects.filter(opened_at__gte=window.start, opened_at__lt=window.end)
    if service:
        deployments = deployments.filter(service__name=service)
        incidents = incidents.filter(service__name=service)
    window_deployments = deployments.values_list("pk", "service__name", "finished_at", "status").order_by("finished_at")
    commit_times: dict[int, list[datetime]] = defaultdict(list)
    for deployment, committed in Commit.objects.filter(deployment__in=deployments.values("pk")).values_list(
        "deployment", "committed_at"
    ):
        commit_times[deployment].append(committed)
    caused = set(Incident.objects.filter(deployment__in=deployments.values("pk")).values_list("deployment", flat=True))
    if attribution == "latest_deployment":
        unlinked = Incident.objects.filter(deployment__isnull=True, opened_at__gte=window.start)
        caused |= set(attributed(unlinked, environments).values_list("attributed", flat=True)) - {None}
    rows = [
        DeploymentRow(pk, name, finished, status, tuple(sorted(commit_times.get(pk, ()))), pk in caused)
        for pk, name, finished, status in window_deployments
    ]
    failures = [
        FailureRow(name, opened, restored, incident_id=pk)
        for pk, name, opened, restored in incidents.values_list("pk", "service__name", "opened_at", "restored_at")
    ]
    failures += _failed_deployments_without_incident(rows)
    return rows, failures


def attributed(incidents: QuerySet[Incident], environments: tuple[str, ...]) -> QuerySet[Incident]:
    """Annotate `attributed`: the deployment an incident counts against.

    The linked deployment when the sender named one; otherwise the service's latest production
    deployment that went out (not `failed`) at or before the incident opened, as DevLake does. A
    GitHub issue labelled `incident` names no deployment, and without this would never count as a
    change failure.
    """
    latest = (
        Deployment.objects.filter(
            service=OuterRef("service"), environment__in=environments, finished_at__lte=OuterRef("opened_at")
        )
        .filter(~Q(status="failed"))
        .order_by("-finished_at", "-pk")
        .values("pk")[:1]
    )
    return incidents.annotate(attributed=Coalesce(F("deployment"), Subquery(latest)))


def _failed_deployments_without_incident(rows: list[DeploymentRow]) -> list[FailureRow]:
    """A failed or rolled-back deployment is restored by the service's next successful deployment."""
    out = []
    next_success: dict[str, DeploymentRow] = {}
    for row in reversed(rows):  # newest first, so next_success is the nearest later success
        if row.status in FAILED_STATUSES and not row.caused_incident:
            later = next_success.get(row.service)
            out.append(
                FailureRow(row.service, row.finished_at, later.finished_at if later else None, deployment_id=row.id)
            )
        elif row.status == "success":
            next_success[row.service] = row
    return out


def deployment_details(pks: list[int]) -> dict[int, dict]:
    """What a person needs to find each deployment again (its CI run), by primary key."""
    fields = ("pk", "external_id", "environment", "version", "sha", "started_at", "url")
    return {row["pk"]: row for row in Deployment.objects.filter(pk__in=pks).values(*fields)}


def incident_details(pks: list[int]) -> dict[int, dict]:
    """What a person needs to find each incident again (its tracker page), by primary key."""
    fields = ("pk", "external_id", "title", "deployment", "url")
    return {row["pk"]: row for row in Incident.objects.filter(pk__in=pks).values(*fields)}


def shipped_commits(pks: list[int]) -> list[tuple[int, str, datetime]]:
    """(deployment, sha, committed_at) of the commits the deployments shipped: the lead time's samples."""
    rows = Commit.objects.filter(deployment__in=pks).values_list("deployment", "sha", "committed_at")
    return list(rows.order_by("deployment", "committed_at", "sha"))
