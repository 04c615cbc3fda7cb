"""The four keys on hand-built histories with answers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from iact.dora.metrics import classify
from iact.dora.metrics.data import _failed_deployments_without_incident
from iact.dora.metrics.definitions import (
    DeploymentRow,
    FailureRow,
    change_failure_rate,
    deployment_frequency,
    failed_deployment_recovery_time,
    lead_time_for_changes,
)
from iact.dora.metrics.period import Window
from iact.dora.metrics.report import Report

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def window(days=7, now=NOW, tz=UTC):
    return Window.last(days, now, tz)


def dep(i, ago, status="success", lead=None, incident=False, service="api"):
    finished = NOW - ago
    return DeploymentRow(i, service, finished, status, finished - lead if lead else None, incident)


def test_no_deployments_is_no_data_not_zero():
    w = window()
    assert deployment_frequency([], w).deployments == 0
    assert lead_time_for_changes([], w) is None
    assert change_failure_rate([], w).rate is None
    rec = failed_deployment_recovery_time([], w)
    assert (rec.median_seconds, rec.restored, rec.unrestored) == (None, 0, 0)
    summary = Report(w, None, [], []).summary()
    assert summary["classification"]["overall"] is None
    assert summary["deployment_frequency"]["level"] is None
    assert summary["change_failure_rate"]["rate"] is None
    assert summary["total_cycles"] == 0


def test_deployment_frequency_counts_releases_in_the_window():
    deps = [dep(i, timedelta(hours=12 * i + 1)) for i in range(14)]  # 14 within 7 days
    deps.append(dep(99, 2 * H, status="failed"))  # never released
    deps.append(dep(98, 3 * H, status="rolled_back"))  # released, then taken back
    freq = deployment_frequency(deps, window())
    assert freq.deployments == 15
    assert freq.per_day == pytest.approx(15 / 7)
    assert classify.level("deployment_frequency", freq.per_day) == "Elite"


def test_lead_time_is_the_median_of_first_commit_to_production():
    deps = [dep(1, H, lead=2 * H), dep(2, 2 * H, lead=4 * H), dep(3, 3 * H, lead=30 * H), dep(4, 4 * H)]
    deps.append(dep(5, 5 * H, status="failed", lead=1000 * H))  # a failed deployment shipped nothing
    assert lead_time_for_changes(deps, window()) == 4 * 3600
    assert classify.level("lead_time", 4 * 3600) == "Elite"
    assert classify.level("lead_time", 3 * 86400) == "High"


def test_change_failure_rate_counts_failed_rolled_back_and_incident_causing():
    deps = [dep(i, i * H) for i in range(1, 8)]
    deps += [dep(8, 8 * H, status="failed"), dep(9, 9 * H, status="rolled_back"), dep(10, 10 * H, incident=True)]
    cfr = change_failure_rate(deps, window())
    assert (cfr.failed, cfr.total, cfr.rate) == (3, 10, 0.3)
    assert classify.level("change_failure_rate", cfr.rate) == "Low"
    assert classify.level("change_failure_rate", 0.05) == "Elite"  # the report's "5%" includes 5%
    assert classify.level("change_failure_rate", 0.051) == "High"


def test_recovery_time_median_and_failures_not_restored_yet():
    start = NOW - 10 * H
    failures = [
        FailureRow("api", start, start + timedelta(minutes=30)),
        FailureRow("api", start, start + 2 * H),
        FailureRow("api", start, start + 5 * H),
        FailureRow("api", start, None),  # still broken
    ]
    rec = failed_deployment_recovery_time(failures, window())
    assert rec.median_seconds == 2 * 3600
    assert (rec.restored, rec.unrestored) == (3, 1)
    assert classify.level("recovery_time", rec.median_seconds) == "High"


def test_failed_deployment_is_restored_by_the_next_success_of_that_service():
    rows = sorted(
        [dep(1, 10 * H, status="failed"), dep(2, 9 * H, service="web"), dep(3, 7 * H), dep(4, 6 * H, "rolled_back")],
        key=lambda d: d.finished_at,
    )
    failures = {f.started_at: f.restored_at for f in _failed_deployments_without_incident(rows)}
    assert failures[NOW - 10 * H] == NOW - 7 * H  # web's success at 9 h does not restore api
    assert failures[NOW - 6 * H] is None


def test_period_boundaries_start_included_end_excluded():
    w = window(7)
    at_start = DeploymentRow(1, "api", w.start, "success")
    at_end = DeploymentRow(2, "api", w.end, "success")
    eight_days = dep(3, timedelta(days=8))
    assert deployment_frequency([at_start, at_end, eight_days], w).deployments == 1
    assert deployment_frequency([at_start, eight_days], window(30)).deployments == 2
    with pytest.raises(ValueError, match="7, 30, 60, 90"):
        Window.last(14, NOW, UTC)


def test_buckets_follow_the_local_day_in_the_configured_time_zone():
    ny = ZoneInfo("America/New_York")
    # 2026-03-10 03:30 UTC is 23:30 on 9 March in New York (EDT began on 8 March).
    late = DeploymentRow(1, "api", datetime(2026, 3, 10, 3, 30, tzinfo=UTC), "success")
    now = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
    series = Report(Window.last(7, now, ny), None, [late], []).deployment_frequency_series()
    assert series["deployments"][series["labels"].index("2026-03-09")] == 1
    assert "2026-03-08" in series["labels"]  # the 23-hour day still has its own bucket
    series_utc = Report(Window.last(7, now, UTC), None, [late], []).deployment_frequency_series()
    assert series_utc["deployments"][series_utc["labels"].index("2026-03-10")] == 1


def test_weekly_buckets_for_long_periods():
    w = window(90)
    starts = w.buckets()
    assert all(s.weekday() == 0 for s in starts)  # Mondays
    assert starts[0] <= w.start < starts[1]
    assert len(starts) in (13, 14)


def test_overall_level_is_the_rounded_down_mean_of_known_levels():
    assert classify.overall({"a": "Elite", "b": "Elite", "c": "High", "d": None}) == "High"  # 3.67 -> High
    assert classify.overall({"a": "Elite", "b": "Low"}) == "Medium"  # 2.5 -> Medium
    assert classify.overall({"a": None}) is None
    assert set(classify.THRESHOLDS) == {"deployment_frequency", "lead_time", "change_failure_rate", "recovery_time"}


def test_chart_series_show_gaps_as_null_not_zero():
    deps = [dep(1, 2 * H, lead=3 * H), dep(2, timedelta(days=3), status="failed")]
    report = Report(window(7), None, deps, [FailureRow("api", NOW - 5 * H, NOW - 4 * H)])
    lead = report.lead_time_series()["median_hours"]
    assert lead[-1] == 3.0 and lead.count(None) == len(lead) - 1
    cfr = report.change_failure_rate_series()["percent"]
    assert 100.0 in cfr and 0.0 in cfr and None in cfr
    assert report.recovery_series()["median_hours"][-1] == 1.0
