"""The dashboard's numbers and chart series for one window and service filter.

Levels belong to services: a benchmark describes how one team ships one thing, and the sum of
eight services deploying weekly is not an Elite team. So "all services" reports each service
apart (`services`), how many services sit at each level (`classification.distribution`), and as
headline the median service: the median over services of each key, judged like one service.
Counts (deployments, commits, failures) and the lead-time percentiles stay over all services'
rows, and the page says so.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from iact.dora.metrics import classify
from iact.dora.metrics.benchmarks import NEWEST, Benchmark, get
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

KEYS = ("deployment_frequency", "lead_time", "change_failure_rate", "recovery_time")


@dataclass(frozen=True)
class Report:
    """The rows of one window and everything computed from them."""

    window: Window
    service: str | None
    deployments: list[DeploymentRow]
    failures: list[FailureRow]
    benchmark: Benchmark = field(default_factory=lambda: get(NEWEST))
    # Every service known (not only those with events in the window): one that released nothing is a service
    # deploying 0 times, and counts so in the median service and the distribution.
    services: tuple[str, ...] = ()

    def summary(self) -> dict:
        """The four keys with their levels, overall level and total cycles (JSON-ready)."""
        keys = _keys(self.deployments, self.failures, self.window, self.benchmark)
        out = {
            "period_days": self.window.days,
            "service": self.service,
            "start": self.window.start.isoformat(),
            "end": self.window.end.isoformat(),
            "length_days": round(self.window.length_days, 3),
            **keys,
            "total_cycles": keys["change_failure_rate"]["total"],
        }
        classification = {"scope": "service", "benchmark": self.benchmark.year, "source": self.benchmark.citation}
        if self.service is None:
            services = self.per_service()
            out["services"] = services
            median_keys = _median_service(services, self.benchmark)
            for key in KEYS:
                out[key] |= median_keys[key]
            out["levels"] = {k: median_keys[k]["level"] for k in KEYS}
            classification |= {
                "scope": "median service",
                "services": len(services),
                "distribution": classify.distribution([s["overall"] for s in services]),
            }
        levels = out.pop("levels")
        out["classification"] = classification | {"overall": classify.overall(levels), "per_metric": levels}
        return out

    def per_service(self) -> list[dict]:
        """The four keys and levels of every known service and any with events in the window, by name."""
        deployments: dict[str, list[DeploymentRow]] = defaultdict(list)
        failures: dict[str, list[FailureRow]] = defaultdict(list)
        for d in self.deployments:  # grouped in one pass: a page with many services stays linear
            deployments[d.service].append(d)
        for f in self.failures:
            failures[f.service].append(f)
        names = sorted(set(deployments) | set(failures) | set(self.services))
        rows = []
        for name in names:
            keys = _keys(deployments[name], failures[name], self.window, self.benchmark)
            rows.append({"service": name, "overall": classify.overall(keys.pop("levels")), **keys})
        return rows

    def _axis(self) -> tuple[list[datetime], dict]:
        starts = self.window.buckets()
        return starts, {
            "labels": [s.date().isoformat() for s in starts],
            "bucket_days": self.window.bucket_days,
            "partial": self.window.partial(starts),
            "incidents": self.incident_marks(starts),
        }

    def incident_marks(self, starts: list[datetime]) -> list[dict]:
        """Incidents opened in the window, placed on the charts' axis, so a dip can be read against them.

        `position` is the bucket's index plus how far into the bucket the incident opened (0..1):
        a category axis knows buckets, not times. Failed deployments without an incident are not
        marked: the change failure rate chart shows them already.
        """
        ends = [*starts[1:], starts[-1] + timedelta(days=self.window.bucket_days)] if starts else []
        marks = []
        for f in sorted(self.failures, key=lambda f: f.started_at):
            if f.incident_id is None or not self.window.contains(f.started_at):
                continue
            i = self.window.bucket_of(f.started_at, starts)
            into = (f.started_at - starts[i]) / (ends[i] - starts[i])
            marks.append(
                {
                    "position": round(i + into, 4),
                    "opened_at": f.started_at.isoformat(),
                    "service": f.service,
                    "incident_id": f.incident_id,
                }
            )
        return marks

    def deployment_frequency_series(self) -> dict:
        """Deployments per bucket (bar chart), summed over the services shown."""
        starts, axis = self._axis()
        counts = [0] * len(starts)
        for d in self.deployments:
            if self.window.contains(d.finished_at) and d.status != "failed":
                counts[self.window.bucket_of(d.finished_at, starts)] += 1
        return axis | {"deployments": counts}

    def lead_time_series(self) -> dict:
        """Median lead time per commit in hours per bucket of deployment; null where nothing shipped commits."""
        starts, axis = self._axis()
        values: list[list[float]] = [[] for _ in starts]
        for d in self.deployments:
            if d.shipped and d.commit_times and self.window.contains(d.finished_at):
                values[self.window.bucket_of(d.finished_at, starts)].extend(d.lead_seconds)
        return axis | {"median_hours": [_hours(median(v)) for v in values]}

    def change_failure_rate_series(self) -> dict:
        """Change failure rate in percent per bucket; null where nothing was deployed."""
        starts, axis = self._axis()
        total, failed = [0] * len(starts), [0] * len(starts)
        for d in self.deployments:
            if self.window.contains(d.finished_at):
                i = self.window.bucket_of(d.finished_at, starts)
                total[i] += 1
                failed[i] += d.needed_remediation
        rates = [round(100 * f / t, 2) if t else None for f, t in zip(failed, total, strict=True)]
        return axis | {"percent": rates, "deployments": total}

    def recovery_series(self) -> dict:
        """Median recovery time in hours per bucket of failure start; null where nothing was restored."""
        starts, axis = self._axis()
        values: list[list[float]] = [[] for _ in starts]
        for f in self.failures:
            if self.window.contains(f.started_at) and f.restored_at is not None:
                values[self.window.bucket_of(f.started_at, starts)].append(
                    (f.restored_at - f.started_at).total_seconds()
                )
        return axis | {"median_hours": [_hours(median(v)) for v in values]}


def versus_previous(current: dict, previous: dict) -> dict[str, dict]:
    """Per key: the previous window's headline value and the change to it, from two summary() results.

    Both summaries come from the same definitions and the same scope (one service, or the median
    service), so the change is a change in delivery, not in counting. Rates and durations change
    by a relative percentage; change failure rate, itself a percentage, by percentage points (25%
    to 50% is "+25 pp", not "+100%"). No previous value (or a zero to divide by): no change.
    """
    days = current["period_days"]
    out = {}
    for key, field_name in _HEADLINE.items():
        now, before = current[key].get(field_name), previous[key].get(field_name)
        if key == "deployment_frequency" and not previous[key].get("level"):
            before = None  # nothing deployed before: "no data", not a rise from zero
        block: dict = {"previous": before, "change": None, "unit": "pp" if key == "change_failure_rate" else "%"}
        if now is not None and before is not None:
            if key == "change_failure_rate":
                block["change"] = round(100 * (now - before), 1) + 0.0  # + 0.0: never "-0 pp"
            elif before:
                # Whole percent: the summary's rates are rounded, and "+99.7%" would claim a precision they lack.
                block["change"] = round(100 * (now - before) / before)
        if block["change"] is None:
            block["text"] = f"no comparison with the previous {days} days"
        else:
            block["text"] = (
                f"{block['change']:+g}{'' if block['unit'] == '%' else ' '}{block['unit']} vs previous {days} days"
            )
        out[key] = block
    return out


def _keys(deployments: list[DeploymentRow], failures: list[FailureRow], window: Window, bench: Benchmark) -> dict:
    """The four metric blocks of one set of rows, plus `levels` (popped by the callers)."""
    freq = deployment_frequency(deployments, window)
    lead = lead_time_for_changes(deployments, window)
    cfr = change_failure_rate(deployments, window)
    rec = failed_deployment_recovery_time(failures, window)
    per_day = freq.per_day  # no release in the window is a rate of 0, not a missing value
    levels = {
        "deployment_frequency": classify.level("deployment_frequency", per_day, bench),
        "lead_time": classify.level("lead_time", lead.median_seconds, bench),
        "change_failure_rate": classify.level("change_failure_rate", cfr.rate, bench),
        "recovery_time": classify.level("recovery_time", rec.median_seconds, bench),
    }
    return {
        "deployment_frequency": {
            "deployments": freq.deployments,
            "per_day": round(freq.per_day, 3),
            "per_week": round(freq.per_week, 2),
            "level": levels["deployment_frequency"],
        },
        "lead_time": {
            "median_seconds": lead.median_seconds,
            "median_hours": _hours(lead.median_seconds),
            "p75_seconds": lead.p75_seconds,
            "p90_seconds": lead.p90_seconds,
            "commits": lead.commits,
            "per_deployment_median_seconds": lead.per_deployment_median_seconds,
            "deployments": lead.deployments,
            "level": levels["lead_time"],
        },
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
        "levels": levels,
    }


# The value of each key the median service is judged on, and where it sits in a service's block.
_HEADLINE = {
    "deployment_frequency": "per_day",
    "lead_time": "median_seconds",
    "change_failure_rate": "rate",
    "recovery_time": "median_seconds",
}


def _median_service(services: list[dict], bench: Benchmark) -> dict[str, dict]:
    """Per key: the median over services that have a value, its level, and how many services it spans.

    Deployment frequency has a value for every service: one that released nothing deployed 0 times,
    and leaving it out would make the median service look busier than it is.
    """
    out = {}
    for key, field_name in _HEADLINE.items():
        values = [s[key][field_name] for s in services if s[key]["level"] is not None]
        value = statistics.median(values) if values else None
        block: dict = {"services": len(values), "level": classify.level(key, value, bench)}
        if key == "deployment_frequency":
            block |= {"per_day": round(value, 3) if values else 0.0, "per_week": round(7 * value, 2) if values else 0.0}
        elif key == "change_failure_rate":
            block["rate"] = None if value is None else round(value, 4)
        else:
            block |= {"median_seconds": value, "median_hours": _hours(value)}
        out[key] = block
    return out


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)
