"""The rows behind each figure: what the CSV export and the charts' drill-down list.

A number nobody can check is a number nobody trusts. These rows are selected by the same
definitions as the figures (definitions.py, report.py), so the figure can be recomputed from them:
the count of `deployments` rows is the deployment count, the median of `lead_time_seconds` is the
lead time, `failed` over the rows is the change failure rate, the median of `recovery_seconds`
over restored rows is the recovery time. Each row carries the ids and URL to find the event again.
"""

from __future__ import annotations

from datetime import datetime

from iact.dora.metrics import data
from iact.dora.metrics.definitions import median
from iact.dora.metrics.report import Report

METRICS = ("deployments", "lead_time", "change_failure", "recovery")

COLUMNS = {
    "deployments": (
        "bucket",
        "service",
        "deployment_id",
        "external_id",
        "environment",
        "version",
        "sha",
        "status",
        "started_at",
        "finished_at",
        "url",
    ),
    "lead_time": (
        "bucket",
        "service",
        "sha",
        "committed_at",
        "deployment_id",
        "external_id",
        "finished_at",
        "lead_time_seconds",
        "url",
    ),
    "change_failure": (
        "bucket",
        "service",
        "deployment_id",
        "external_id",
        "environment",
        "status",
        "caused_incident",
        "failed",
        "finished_at",
        "url",
    ),
    "recovery": (
        "bucket",
        "service",
        "kind",
        "incident_id",
        "deployment_id",
        "external_id",
        "title",
        "started_at",
        "restored_at",
        "recovery_seconds",
        "url",
    ),
}


class BadBucket(ValueError):
    """A bucket that is not one of the window's: the message lists the ones that are."""


def bucket_index(report: Report, label: str | None) -> int | None:
    """The index of the bucket labelled `label` (its first day, YYYY-MM-DD), or None for the whole window."""
    if not label:
        return None
    labels = [s.date().isoformat() for s in report.window.buckets()]
    if label not in labels:
        raise BadBucket(f"bucket={label!r}: use the first day of one of the chart's buckets: {', '.join(labels)}")
    return labels.index(label)


def rows(report: Report, metric: str, bucket: int | None = None) -> list[dict]:
    """The rows behind `metric` over the window, or over one chart bucket (index from bucket_index)."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: use one of {', '.join(METRICS)}")
    window = report.window
    starts = window.buckets()

    def label(moment: datetime) -> str:
        return starts[window.bucket_of(moment, starts)].date().isoformat()

    def wanted(moment: datetime) -> bool:
        return window.contains(moment) and (bucket is None or window.bucket_of(moment, starts) == bucket)

    if metric == "recovery":
        failures = [f for f in report.failures if wanted(f.started_at)]
        incidents = data.incident_details([f.incident_id for f in failures if f.incident_id is not None])
        deployments = data.deployment_details([f.deployment_id for f in failures if f.deployment_id is not None])
        out = []
        for f in sorted(failures, key=lambda f: f.started_at):
            ref = incidents.get(f.incident_id, {}) if f.incident_id else deployments.get(f.deployment_id, {})
            restored = f.restored_at
            out.append(
                {
                    "bucket": label(f.started_at),
                    "service": f.service,
                    "kind": "incident" if f.incident_id else "failed_deployment",
                    "incident_id": f.incident_id,
                    "deployment_id": f.deployment_id,
                    "external_id": ref.get("external_id", ""),
                    "title": ref.get("title", ""),
                    "started_at": f.started_at.isoformat(),
                    "restored_at": restored.isoformat() if restored else None,
                    "recovery_seconds": (restored - f.started_at).total_seconds() if restored else None,
                    "url": ref.get("url", ""),
                }
            )
        return out

    selected = [d for d in report.deployments if wanted(d.finished_at)]
    if metric == "deployments":
        selected = [d for d in selected if d.status != "failed"]
    elif metric == "lead_time":
        selected = [d for d in selected if d.shipped]
    details = data.deployment_details([d.id for d in selected])
    if metric == "lead_time":
        by_id = {d.id: d for d in selected}
        out = []
        for pk, sha, committed in data.shipped_commits(list(by_id)):
            d = by_id[pk]
            out.append(
                {
                    "bucket": label(d.finished_at),
                    "service": d.service,
                    "sha": sha,
                    "committed_at": committed.isoformat(),
                    "deployment_id": d.id,
                    "external_id": details[pk]["external_id"],
                    "finished_at": d.finished_at.isoformat(),
                    "lead_time_seconds": (d.finished_at - committed).total_seconds(),
                    "url": details[pk]["url"],
                }
            )
        return out
    out = []
    for d in selected:
        info = details[d.id]
        row = {
            "bucket": label(d.finished_at),
            "service": d.service,
            "deployment_id": d.id,
            "external_id": info["external_id"],
            "environment": info["environment"],
            "version": info["version"],
            "sha": info["sha"],
            "status": d.status,
            "caused_incident": d.caused_incident,
            "failed": d.needed_remediation,
            "started_at": info["started_at"].isoformat(),
            "finished_at": d.finished_at.isoformat(),
            "url": info["url"],
        }
        out.append({k: row[k] for k in COLUMNS[metric]})
    return out


def figure(metric: str, selected: list[dict]) -> float | int | None:
    """The chart's value recomputed from its rows, in the chart's unit (count, hours, percent)."""
    if metric == "deployments":
        return len(selected)
    if metric == "change_failure":
        return round(100 * sum(r["failed"] for r in selected) / len(selected), 2) if selected else None
    key = "lead_time_seconds" if metric == "lead_time" else "recovery_seconds"
    value = median([r[key] for r in selected if r[key] is not None])
    return None if value is None else round(value / 3600, 2)
