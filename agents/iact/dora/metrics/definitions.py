"""The four keys, as DORA defines them (https://dora.dev/guides/dora-metrics-four-keys/).

Pure functions over plain rows, so each definition can be checked against a hand-built history.
Typical values are medians, not means: one week-long outage must not hide a hundred fast fixes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from iact.dora.metrics.period import Window

FAILED_STATUSES = ("failed", "rolled_back")


@dataclass(frozen=True)
class DeploymentRow:
    """A production deployment as the metrics see it."""

    id: int
    service: str
    finished_at: datetime
    status: str
    # When each commit this deployment was the first successful production deployment of was made.
    commit_times: tuple[datetime, ...] = ()
    caused_incident: bool = False

    @cached_property
    def lead_seconds(self) -> tuple[float, ...]:
        """Seconds from each commit to this deployment (kept: the rows outlive a request, metrics/data.py)."""
        return tuple((self.finished_at - t).total_seconds() for t in self.commit_times)

    @property
    def shipped(self) -> bool:
        """Reached production and stayed: the only deployments that end a commit's lead time."""
        return self.status == "success"

    @property
    def needed_remediation(self) -> bool:
        """Failed, rolled back, or the cause of an incident."""
        return self.status in FAILED_STATUSES or self.caused_incident


@dataclass(frozen=True)
class FailureRow:
    """A failure in production: an incident, or a failed deployment without one."""

    service: str
    started_at: datetime
    restored_at: datetime | None
    # Which event it is, so a drill-down or export can link to it: one of the two is set.
    incident_id: int | None = None
    deployment_id: int | None = None


@dataclass(frozen=True)
class Frequency:
    """How often changes reached production in the window."""

    deployments: int
    per_day: float
    per_week: float


@dataclass(frozen=True)
class FailureRate:
    """Deployments needing remediation over all deployments."""

    failed: int
    total: int

    @property
    def rate(self) -> float | None:
        """None when nothing was deployed: "no data", not 0%."""
        return self.failed / self.total if self.total else None


@dataclass(frozen=True)
class Recovery:
    """Typical time to restore, and how many failures are not restored yet."""

    median_seconds: float | None
    restored: int
    unrestored: int


@dataclass(frozen=True)
class LeadTime:
    """Lead time per commit (DORA's definition, the headline) and per deployment (its oldest commit)."""

    commits: int
    median_seconds: float | None
    p75_seconds: float | None
    p90_seconds: float | None
    deployments: int
    per_deployment_median_seconds: float | None


def median(values: list[float]) -> float | None:
    """The median, or None for no values (shown as "no data")."""
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def commit_lead_times(deployments: list[DeploymentRow], window: Window) -> list[float]:
    """Seconds from each commit to the deployment that first shipped it, for deployments in the window."""
    return [seconds for d in deployments if d.shipped and window.contains(d.finished_at) for seconds in d.lead_seconds]


def deployment_frequency(deployments: list[DeploymentRow], window: Window) -> Frequency:
    """Deployment frequency: how often an organization successfully releases to production (DORA).

    Counts deployments that finished inside the window and reached production (status `success`,
    or `rolled_back`: it ran before it was taken back); a deployment that failed to go out is not
    a release. Rate = count / the days the window covers.
    """
    count = sum(1 for d in deployments if window.contains(d.finished_at) and d.status != "failed")
    per_day = count / window.length_days
    return Frequency(count, per_day, per_day * 7)


def lead_time_for_changes(deployments: list[DeploymentRow], window: Window) -> LeadTime:
    """Lead time for changes: the time it takes a commit to get into production (DORA).

    One sample per commit (as DORA's Four Keys compute it): the finish of the first successful
    production deployment that shipped the commit, minus the commit's time; median, p75 and p90
    in seconds. A deployment that shipped many old commits weighs as much as those commits, which
    is the point: each of them waited that long. The per-deployment figure (finish minus its
    oldest commit, one sample per deployment) is kept as a second view.
    """
    per_commit = commit_lead_times(deployments, window)
    # the oldest commit waited longest
    per_deployment = [
        max(d.lead_seconds) for d in deployments if d.shipped and d.commit_times and window.contains(d.finished_at)
    ]
    return LeadTime(
        len(per_commit),
        median(per_commit),
        percentile(per_commit, 75),
        percentile(per_commit, 90),
        len(per_deployment),
        median(per_deployment),
    )


def change_failure_rate(deployments: list[DeploymentRow], window: Window) -> FailureRate:
    """Change failure rate: the percentage of deployments causing a failure in production (DORA).

    Denominator: every production deployment that finished in the window. Numerator: those that
    failed, were rolled back, or are linked to an incident (each needed remediation).
    """
    inside = [d for d in deployments if window.contains(d.finished_at)]
    return FailureRate(sum(1 for d in inside if d.needed_remediation), len(inside))


def failed_deployment_recovery_time(failures: list[FailureRow], window: Window) -> Recovery:
    """Failed deployment recovery time: how long it takes to recover from a failed deployment (DORA).

    For each failure that started in the window: restored_at minus started_at (an incident's open
    time, or a failed deployment's finish). The median in seconds over restored failures; failures
    not restored yet are counted apart, since their duration is not known.
    """
    inside = [f for f in failures if window.contains(f.started_at)]
    durations = [(f.restored_at - f.started_at).total_seconds() for f in inside if f.restored_at is not None]
    return Recovery(median(durations), len(durations), len(inside) - len(durations))
