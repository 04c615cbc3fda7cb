"""The four keys on hand-built histories with answers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from iact.dora.metrics import benchmarks, classify
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
from iact.dora.metrics.report import Report, versus_previous

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def window(days=7, now=NOW, tz=UTC):
    return Window.last(days, now, tz)


def dep(i, ago, status="success", lead=None, incident=False, service="api"):
    finished = NOW - ago
    return DeploymentRow(i, service, finished, status, (finished - lead,) if lead else (), incident)


def test_no_deployments_is_no_data_not_zero():
    w = window()
    assert deployment_frequency([], w).deployments == 0
    assert lead_time_for_changes([], w).median_seconds is None
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
    w = window()  # today's 12 hours and the 6 whole days before: 6.5 days, back to 156 h ago
    freq = deployment_frequency(deps, w)
    assert freq.deployments == 14  # 13 of the 14 successes (157 h ago is outside) and the rollback
    assert freq.per_day == pytest.approx(14 / 6.5)
    assert classify.level("deployment_frequency", freq.per_day) == "Elite"


def test_lead_time_is_the_median_of_first_commit_to_production():
    deps = [dep(1, H, lead=2 * H), dep(2, 2 * H, lead=4 * H), dep(3, 3 * H, lead=30 * H), dep(4, 4 * H)]
    deps.append(dep(5, 5 * H, status="failed", lead=1000 * H))  # a failed deployment shipped nothing
    assert lead_time_for_changes(deps, window()).median_seconds == 4 * 3600
    assert classify.level("lead_time", 4 * 3600) == "Elite"
    assert classify.level("lead_time", 3 * 86400) == "High"


def test_change_failure_rate_counts_failed_rolled_back_and_incident_causing():
    deps = [dep(i, i * H) for i in range(1, 8)]
    deps += [dep(8, 8 * H, status="failed"), dep(9, 9 * H, status="rolled_back"), dep(10, 10 * H, incident=True)]
    cfr = change_failure_rate(deps, window())
    assert (cfr.failed, cfr.total, cfr.rate) == (3, 10, 0.3)
    y2023 = benchmarks.get("2023")
    assert classify.level("change_failure_rate", cfr.rate, y2023) == "Medium"  # nearest to 15%, not to 64%
    assert classify.level("change_failure_rate", 0.05, y2023) == "Elite"
    assert classify.level("change_failure_rate", 0.08, y2023) == "High"  # nearer 10% than 5%


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
    for bench in benchmarks.BENCHMARKS.values():
        assert set(bench.tables) == set(benchmarks.METRICS)


def test_chart_series_show_gaps_as_null_not_zero():
    deps = [dep(1, 2 * H, lead=3 * H), dep(2, timedelta(days=3), status="failed")]
    report = Report(window(7), None, deps, [FailureRow("api", NOW - 5 * H, NOW - 4 * H)])
    lead = report.lead_time_series()["median_hours"]
    assert lead[-1] == 3.0 and lead.count(None) == len(lead) - 1
    cfr = report.change_failure_rate_series()["percent"]
    assert 100.0 in cfr and 0.0 in cfr and None in cfr
    assert report.recovery_series()["median_hours"][-1] == 1.0


# Issue 18: DORA as DORA defines it.


def test_lead_time_is_per_commit_with_percentiles_and_per_deployment_second():
    a = DeploymentRow(1, "api", NOW - H, "success", (NOW - 31 * H, NOW - 3 * H, NOW - 2 * H))  # 30 h, 2 h, 1 h
    b = DeploymentRow(2, "api", NOW - 2 * H, "success", (NOW - 6 * H,))  # 4 h
    lead = lead_time_for_changes([a, b], window())
    assert lead.commits == 4 and lead.deployments == 2
    assert lead.median_seconds == 3 * 3600  # commits: 1, 2, 4, 30 h
    assert lead.p75_seconds == pytest.approx(10.5 * 3600)  # rank 2.25: 4 + 0.25 * 26
    assert lead.p90_seconds == pytest.approx(22.2 * 3600)  # rank 2.7: 4 + 0.7 * 26
    assert lead.per_deployment_median_seconds == 17 * 3600  # oldest commits: 30 h and 4 h
    summary = Report(window(), "api", [a, b], []).summary()["lead_time"]
    assert (summary["median_seconds"], summary["per_deployment_median_seconds"]) == (3 * 3600, 17 * 3600)


def test_all_services_are_judged_per_service_not_summed():
    # 8 services deploying weekly, plus a little: each 5 times in the 30-day window.
    w = window(30, now=datetime(2026, 11, 23, tzinfo=UTC))  # 29 whole days
    deps = [dep(10 * s + i, timedelta(days=5 * i + 1), service=f"svc{s}") for s in range(8) for i in range(5)]
    summary = Report(w, None, deps, []).summary()
    assert summary["deployment_frequency"]["deployments"] == 40  # 1.38 a day summed: "Elite" before
    assert summary["deployment_frequency"]["per_day"] == pytest.approx(5 / 29, abs=1e-3)
    assert summary["deployment_frequency"]["level"] == "High"
    assert summary["classification"]["scope"] == "median service"
    assert summary["classification"]["distribution"]["High"] == 8
    assert [s["service"] for s in summary["services"]] == [f"svc{s}" for s in range(8)]
    assert {s["deployment_frequency"]["level"] for s in summary["services"]} == {"High"}
    assert "services" not in Report(w, "svc0", deps, []).summary()


def test_the_median_service_counts_services_that_did_not_deploy_as_zero():
    """A service with events in the window but no release (only failed attempts) deployed 0 times: leaving
    it out of the median made "all services" look better than its median service (found by a review)."""
    w = window(30, now=datetime(2026, 11, 23, tzinfo=UTC))
    deps = [dep(i, timedelta(days=i + 1), service="busy") for i in range(20)]  # about daily
    deps += [dep(100, timedelta(days=3), status="failed", service="stuck1")]
    deps += [dep(101, timedelta(days=4), status="failed", service="stuck2")]
    summary = Report(w, None, deps, []).summary()
    freq = summary["deployment_frequency"]
    assert (freq["per_day"], freq["services"]) == (0.0, 3), "two of three services released nothing"
    assert freq["level"] == "Low"
    stuck = next(s for s in summary["services"] if s["service"] == "stuck1")
    assert stuck["deployment_frequency"]["deployments"] == 0


def test_benchmarks_are_the_2023_and_2024_clusters_newest_by_default():
    y2023, y2024 = benchmarks.get("2023"), benchmarks.get("2024")
    assert benchmarks.NEWEST == "2024" and "2023" in y2023.citation and "State of DevOps" in y2024.citation
    for bench in (y2023, y2024):
        assert bench.tables["deployment_frequency"].level(1.0) == "High"  # once a day is not "on demand"
        assert bench.tables["deployment_frequency"].level(3.0) == "Elite"
    # Change failure rate: typical values, the nearest wins (2024's Medium 10% is below High's 20%).
    assert classify.level("change_failure_rate", 0.12, y2023) == "High"
    assert classify.level("change_failure_rate", 0.12, y2024) == "Medium"
    assert classify.level("change_failure_rate", 0.30, y2023) == "Medium"
    # Recovery: 2 days is 2023's Medium range; 2024 has no cluster between a day and a week.
    assert classify.level("recovery_time", 2 * 86400, y2023) == "Medium"
    assert classify.level("recovery_time", 2 * 86400, y2024) == "Low"
    assert classify.level("lead_time", 60 * 86400, y2024) == "Low"
    assert Report(window(), None, [], []).summary()["classification"]["benchmark"] == "2024"
    with pytest.raises(ValueError, match="2023, 2024"):
        benchmarks.get("2021")


def test_buckets_are_aligned_to_the_window_and_the_last_is_partial():
    w7 = window(7)
    starts = w7.buckets()
    assert len(starts) == 7 and starts[0] == w7.start == datetime(2026, 11, 17, tzinfo=UTC)
    assert w7.partial(starts) == [False] * 6 + [True]  # today, until noon
    assert w7.length_days == 6.5
    w90 = window(90)
    weeks = w90.buckets()
    assert len(weeks) == 13 and weeks[0] == w90.start and w90.start.weekday() == 0
    assert (weeks[1] - weeks[0]).days == 7
    series = Report(w90, None, [dep(1, H)], []).deployment_frequency_series()
    assert series["deployments"][-1] == 1 and series["partial"][-1] is True and sum(series["partial"]) == 1


def test_chart_lines_are_not_drawn_across_empty_periods():
    from pathlib import Path

    import iact.dora

    js = (Path(iact.dora.__file__).parent / "static/dora/dashboard.js").read_text()
    assert "spanGaps: false" in js and "spanGaps: true" not in js


def test_change_against_the_previous_period_on_the_same_definitions():
    """Current 7 days (6.5 days long): 4 deployments, lead 2 h, 1 of 4 failed, recovery 1 h.

    The 6.5 days before: 2 deployments, lead 4 h, 1 of 2 failed, recovery 2 h. So frequency +100%,
    lead time -50%, change failure rate -25 points, recovery -50%.
    """
    w = window()
    before = w.previous()
    assert (before.end, before.length_days) == (w.start, w.length_days)
    day = timedelta(days=1)
    current = [dep(1, day, lead=2 * H), dep(2, 2 * day, lead=2 * H), dep(3, 3 * day, lead=2 * H)]
    current.append(dep(4, 4 * day, lead=2 * H, incident=True))
    earlier = [dep(5, 8 * day, lead=4 * H), dep(6, 9 * day, lead=4 * H, incident=True)]
    failures = [
        FailureRow("api", NOW - 4 * day, NOW - 4 * day + H),
        FailureRow("api", NOW - 9 * day, NOW - 9 * day + 2 * H),
    ]
    rows = current + earlier
    versus = versus_previous(
        Report(w, "api", rows, failures).summary(), Report(before, "api", rows, failures).summary()
    )
    assert versus["deployment_frequency"]["change"] == 100
    assert versus["deployment_frequency"]["text"] == "+100% vs previous 7 days"
    assert versus["lead_time"]["previous"] == 4 * 3600
    assert versus["lead_time"]["change"] == -50
    assert versus["change_failure_rate"]["text"] == "-25 pp vs previous 7 days"
    assert versus["recovery_time"]["change"] == -50
    nothing_before = versus_previous(Report(w, "api", current, []).summary(), Report(before, "api", [], []).summary())
    assert nothing_before["deployment_frequency"]["text"] == "no comparison with the previous 7 days"


def test_incidents_are_marked_on_the_charts_at_their_open_time():
    w = window()  # buckets are days from 2026-11-17 00:00 UTC; today's bucket is 2026-11-23
    failures = [
        FailureRow("api", NOW - 6 * H, NOW - 5 * H, incident_id=7),  # 06:00 today: bucket 6, a quarter in
        FailureRow("api", NOW - 30 * H, NOW, deployment_id=3),  # a failed deployment: not marked
        FailureRow("api", NOW - 200 * H, NOW, incident_id=8),  # before the window
    ]
    series = Report(w, "api", [], failures).deployment_frequency_series()
    assert series["incidents"] == [
        {"position": 6.25, "opened_at": (NOW - 6 * H).isoformat(), "service": "api", "incident_id": 7}
    ]
    assert Report(w, "api", [], failures).recovery_series()["incidents"] == series["incidents"]
