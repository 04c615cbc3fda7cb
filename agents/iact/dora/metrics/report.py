"""The dashboard's numbers and chart series for one window and service filter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from iact.dora.metrics import classify
from iact.dora.metrics.definitions import (
    DeploymentRow,
    FailureRow,
    change_failure_rate,
    deployment_frequency,
    failed_deployment_recovery_time,
    lead_time_for_changes,
    median,
)
from iact.dora.metrics.period import Window


@dataclass(frozen=True)
class Report:
    """The rows of one window and everything computed from them."""

    window: Window
    service: str | None
    deployments: list[DeploymentRow]
    failures: list[FailureRow]

    def summary(self) -> dict:
        """The four keys with their levels, overall level and total cycles (JSON-ready)."""
        freq = deployment_frequency(self.deployments, self.window)
        lead = lead_time_for_changes(self.deployments, self.window)
        cfr = change_failure_rate(self.deployments, self.window)
        rec = failed_deployment_recovery_time(self.failures, self.window)
        levels = {
            "deployment_frequency": classify.level("deployment_frequency", freq.per_day if freq.deployments else None),
            "lead_time": classify.level("lead_time", lead),
            "change_failure_rate": classify.level("change_failure_rate", cfr.rate),
            "recovery_time": classify.level("recovery_time", rec.median_seconds),
        }
        return {
            "period_days": self.window.days,
            "service": self.service,
            "start": self.window.start.isoformat(),
            "end": self.window.end.isoformat(),
            "classification": {"overall": classify.overall(levels), "per_metric": levels, "source": classify.REPORT},
            "deployment_frequency": {
                "deployments": freq.deployments,
                "per_day": round(freq.per_day, 3),
                "per_week": round(freq.per_week, 2),
                "level": levels["deployment_frequency"],
            },
            "lead_time": {"median_seconds": lead, "median_hours": _hours(lead), "level": levels["lead_time"]},
            "change_failure_rate": {
                "failed": cfr.failed,
                "total": cfr.total,
                "rate": None if cfr.rate is None else round(cfr.rate, 4),
                "level": levels["change_failure_rate"],
            },
            "recovery_time": {
                "median_seconds": rec.median_seconds,
                "median_hours": _hours(rec.median_seconds),
                "restored": rec.restored,
                "unrestored": rec.unrestored,
                "level": levels["recovery_time"],
            },
            "total_cycles": cfr.total,
        }

    def _labels(self, starts: list[datetime]) -> list[str]:
        return [s.date().isoformat() for s in starts]

    def deployment_frequency_series(self) -> dict:
        """Deployments per bucket (bar chart)."""
        starts = self.window.buckets()
        counts = [0] * len(starts)
        for d in self.deployments:
            if self.window.contains(d.finished_at) and d.status != "failed":
                counts[self.window.bucket_of(d.finished_at, starts)] += 1
        return {"labels": self._labels(starts), "bucket_days": self.window.bucket_days, "deployments": counts}

    def lead_time_series(self) -> dict:
        """Median lead time in hours per bucket; null where nothing shipped commits."""
        starts = self.window.buckets()
        values: list[list[float]] = [[] for _ in starts]
        for d in self.deployments:
            if self.window.contains(d.finished_at) and d.status == "success" and d.first_commit_at is not None:
                values[self.window.bucket_of(d.finished_at, starts)].append(
                    (d.finished_at - d.first_commit_at).total_seconds()
                )
        return {"labels": self._labels(starts), "median_hours": [_hours(median(v)) for v in values]}

    def change_failure_rate_series(self) -> dict:
        """Change failure rate in percent per bucket; null where nothing was deployed."""
        starts = self.window.buckets()
        total, failed = [0] * len(starts), [0] * len(starts)
        for d in self.deployments:
            if self.window.contains(d.finished_at):
                i = self.window.bucket_of(d.finished_at, starts)
                total[i] += 1
                failed[i] += d.needed_remediation
        rates = [round(100 * f / t, 2) if t else None for f, t in zip(failed, total, strict=True)]
        return {"labels": self._labels(starts), "percent": rates, "deployments": total}

    def recovery_series(self) -> dict:
        """Median recovery time in hours per bucket of failure start; null where nothing was restored."""
        starts = self.window.buckets()
        values: list[list[float]] = [[] for _ in starts]
        for f in self.failures:
            if self.window.contains(f.started_at) and f.restored_at is not None:
                values[self.window.bucket_of(f.started_at, starts)].append(
                    (f.restored_at - f.started_at).total_seconds()
                )
        return {"labels": self._labels(starts), "median_hours": [_hours(median(v)) for v in values]}


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)
