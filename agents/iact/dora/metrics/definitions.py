"""The four keys, as DORA defines them (https://dora.dev/guides/dora-metrics-four-keys/).

Pure functions over plain rows, so each definition can be checked against a hand-built history.
Typical values are medians, not means: one week-long outage must not hide a hundred fast fixes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

from iact.dora.metrics.period import Window

FAILED_STATUSES = ("failed", "rolled_back")


@dataclass(frozen=True)
class DeploymentRow:
    """A production deployment as the metrics see it."""

    id: int
    service: str
    finished_at: datetime
    status: str
    first_commit_at: datetime | None = None
    caused_incident: bool = False

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


def median(values: list[float]) -> float | None:
    """The median, or None for no values (shown as "no data")."""
    return statistics.median(values) if values else None


def deployment_frequency(deployments: list[DeploymentRow], window: Window) -> Frequency:
    """Deployment frequency: how often an organization successfully releases to production (DORA).

    Counts deployments that finished inside the window and reached production (status `success`,
    or `rolled_back`: it ran before it was taken back); a deployment that failed to go out is not
    a release. Rate = count / window length in days.
    """
    count = sum(1 for d in deployments if window.contains(d.finished_at) and d.status != "failed")
    per_day = count / window.days
    return Frequency(count, per_day, per_day * 7)


def lead_time_for_changes(deployments: list[DeploymentRow], window: Window) -> float | None:
    """Lead time for changes: the time it takes a commit to get into production (DORA).

    Per successful deployment in the window that shipped commits: finished_at minus its first
    (oldest) commit's time. Returns the median in seconds; None when no deployment carried commits.
    """
    return median(
        [
            (d.finished_at - d.first_commit_at).total_seconds()
            for d in deployments
            if window.contains(d.finished_at) and d.status == "success" and d.first_commit_at is not None
        ]
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
