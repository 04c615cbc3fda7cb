"""Loads the rows a window needs from the database, as the plain rows definitions.py takes.

Few queries with only the columns needed: the page must stay fast with tens of thousands of
deployments, so nothing here walks model instances.
"""

from __future__ import annotations

from django.db.models import Min, Q

from iact.dora.metrics.definitions import FAILED_STATUSES, DeploymentRow, FailureRow
from iact.dora.metrics.period import Window
from iact.dora.models import Commit, Deployment, Incident


def load(
    window: Window, environments: tuple[str, ...], service: str | None = None
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
    # Two small aggregates instead of one GROUP BY over the join: 10,000 deployments load in a
    # fraction of the time (bench/dora_bench.py).
    in_window = Q(deployment__in=deployments.values("pk"))
    first_commits = dict(
        Commit.objects.filter(in_window)
        .values("deployment")
        .annotate(first=Min("committed_at"))
        .values_list("deployment", "first")
    )
    caused = set(Incident.objects.filter(in_window).values_list("deployment", flat=True))
    rows = [
        DeploymentRow(pk, name, finished, status, first_commits.get(pk), pk in caused)
        for pk, name, finished, status in window_deployments
    ]
    failures = [
        FailureRow(name, opened, restored)
        for name, opened, restored in incidents.values_list("service__name", "opened_at", "restored_at")
    ]
    failures += _failed_deployments_without_incident(rows)
    return rows, failures


def _failed_deployments_without_incident(rows: list[DeploymentRow]) -> list[FailureRow]:
    """A failed or rolled-back deployment is restored by the service's next successful deployment."""
    out = []
    next_success: dict[str, DeploymentRow] = {}
    for row in reversed(rows):  # newest first, so next_success is the nearest later success
        if row.status in FAILED_STATUSES and not row.caused_incident:
            later = next_success.get(row.service)
            out.append(FailureRow(row.service, row.finished_at, later.finished_at if later else None))
        elif row.status == "success":
            next_success[row.service] = row
    return out
