"""Loads the rows a window needs from the database, as the plain rows definitions.py takes.

Few queries with only the columns needed: the page must stay fast with tens of thousands of
deployments, so nothing here walks model instances, and the rows loaded are kept (per process)
until the data version changes (metrics/version.py).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from iact.dora.metrics import version
from iact.dora.metrics.definitions import FAILED_STATUSES, DeploymentRow, FailureRow
from iact.dora.metrics.period import Window
from iact.dora.models import Commit, Deployment, Incident

# How an incident that names no deployment counts toward change failure rate.
ATTRIBUTIONS = ("latest_deployment", "none")


@dataclass(frozen=True)
class _Snapshot:
    """Every row a window starting at or after `since` can need, as loaded under one data version."""

    token: str
    since: datetime
    deployments: list[DeploymentRow]  # finished at or after `since`, oldest first, with no upper bound
    incidents: list[FailureRow]  # opened at or after `since`


_snapshots: dict[tuple[str | None, tuple[str, ...], str], _Snapshot] = {}
_lock = threading.Lock()
# A window's previous period reaches back at most its own length (the window is aligned to whole
# buckets, so up to a week more): one snapshot serves a page's current and previous windows.
_REACH = timedelta(days=8)


def load(
    window: Window,
    environments: tuple[str, ...],
    service: str | None = None,
    attribution: str = "latest_deployment",
) -> tuple[list[DeploymentRow], list[FailureRow]]:
    """Production deployments finishing in the window, and the failures starting in it.

    Served from the rows loaded under the current data version (metrics/version.py) when they
    reach back far enough; otherwise loaded again, from the window's start less its length, so
    that the previous period of "vs previous" is served by the same snapshot.
    """
    token = version.current()
    key = (service, tuple(environments), attribution)
    with _lock:
        snap = _snapshots.get(key)
    if snap is None or snap.token != token or snap.since > window.start:
        since = window.start - timedelta(days=window.days) - _REACH
        snap = _Snapshot(token, since, *_load_since(since, environments, service, attribution))
        with _lock:
            _snapshots[key] = snap
    rows = [d for d in snap.deployments if window.contains(d.finished_at)]
    failures = [f for f in snap.incidents if window.contains(f.started_at)]
    failures += _failed_deployments_without_incident(rows)
    return rows, failures


def _load_since(
    since: datetime, environments: tuple[str, ...], service: str | None, attribution: str
) -> tuple[list[DeploymentRow], list[FailureRow]]:
    """The rows of every window starting at `since` or later (none of them ends before now).

    A deployment's `caused_incident` is the same as a load of its own window would find: an
    incident without a deployment, opened before that window, is attributed to a deployment that
    finished before it opened, so before the window too.
    """
    deployments = Deployment.objects.filter(environment__in=environments, finished_at__gte=since)
    incidents = Incident.objects.filter(opened_at__gte=since)
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
        unlinked = Incident.objects.filter(deployment__isnull=True, opened_at__gte=since)
        caused |= set(attributed(unlinked, environments).values_list("attributed", flat=True)) - {None}
    rows = [
        DeploymentRow(pk, name, finished, status, tuple(sorted(commit_times.get(pk, ()))), pk in caused)
        for pk, name, finished, status in window_deployments
    ]
    failures = [
        FailureRow(name, opened, restored, incident_id=pk)
        for pk, name, opened, restored in incidents.values_list("pk", "service__name", "opened_at", "restored_at")
    ]
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
