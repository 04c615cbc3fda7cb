"""The dashboard's HTTP surface against a real MariaDB: auth, validation, idempotent ingestion, webhooks."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from iact.dora import conf
from iact.dora.models import ApiToken, Commit, Deployment, Incident, Service, hash_token
from iact.yamlconfig import ConfigError

pytestmark = pytest.mark.django_db
TOKEN = "dora_test_token_value"


@pytest.fixture
def token():
    ApiToken.objects.create(name="ci", digest=hash_token(TOKEN))
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture
def logged_in(django_user_model):
    django_user_model.objects.create_superuser("admin", "", "correct horse battery")
    browser = Client()
    assert browser.login(username="admin", password="correct horse battery")
    return browser


def iso(moment):
    return moment.isoformat()


def deployment(eid="run-1", ago=timedelta(hours=1), **extra):
    finished = timezone.now() - ago
    body = {
        "type": "deployment",
        "id": eid,
        "service": "api",
        "environment": "production",
        "version": "1.2.3",
        "sha": "abc123",
        "started_at": iso(finished - timedelta(minutes=5)),
        "finished_at": iso(finished),
        "status": "success",
        "commits": [{"sha": f"c-{eid}", "committed_at": iso(finished - timedelta(hours=3))}],
    }
    return body | extra


def post(client, body, headers):
    return client.post("/api/dora/metrics", json.dumps(body), content_type="application/json", **headers)


def test_posting_needs_a_token(client):
    response = post(client, deployment(), {})
    assert response.status_code == 401
    assert "Bearer" in response["WWW-Authenticate"]
    assert post(client, deployment(), {"HTTP_AUTHORIZATION": "Bearer wrong"}).status_code == 401
    assert Deployment.objects.count() == 0


def test_a_session_alone_cannot_record_events(logged_in):
    assert post(logged_in, deployment(), {}).status_code == 401


def test_recording_is_idempotent_on_the_events_own_id(client, token):
    first = post(client, deployment(), token)
    assert first.status_code == 201, first.content
    again = post(client, deployment(status="rolled_back"), token)
    assert again.status_code == 200
    assert again.json() == {"type": "deployment", "id": first.json()["id"], "created": False}
    assert Deployment.objects.count() == 1
    assert Deployment.objects.get().status == "rolled_back"
    assert Commit.objects.get().deployment_id == first.json()["id"]


def test_validation_errors_name_each_field(client, token):
    body = deployment(status="done", finished_at="2026-11-23T10:00:00", service="My Service!")
    body["commits"] = [{"sha": "x"}]
    del body["id"]
    errors = post(client, body, token).json()["errors"]
    assert "no UTC offset" in errors["finished_at"]
    assert "success, failed, rolled_back" in errors["status"]
    assert errors["id"] == "required"
    assert "lowercase" in errors["service"]
    assert "required" in errors["commits[0].committed_at"]
    assert Deployment.objects.count() == 0


def test_a_batch_with_one_bad_event_records_nothing(client, token):
    body = {"events": [deployment("ok-1"), deployment("bad", finished_at="yesterday")]}
    response = post(client, body, token)
    assert response.status_code == 400
    assert "events[1].finished_at" in response.json()["errors"]
    assert Deployment.objects.count() == 0
    body["events"][1] = deployment("ok-2")
    assert post(client, body, token).status_code == 201
    assert Deployment.objects.count() == 2


def test_incident_links_to_its_deployment_and_counts_as_a_failure(client, token):
    post(client, deployment("run-7"), token)
    opened = timezone.now() - timedelta(minutes=50)
    incident = {"type": "incident", "id": "INC-1", "service": "api", "opened_at": iso(opened), "deployment_id": "run-7"}
    assert post(client, incident, token).status_code == 201
    summary = client.get("/api/dora/metrics?period=7", **token).json()
    # All services: the median service's rate over the one service that deployed.
    assert summary["change_failure_rate"] == {"failed": 1, "total": 1, "rate": 1.0, "level": "Low", "services": 1}
    assert summary["recovery_time"]["unrestored"] == 1
    incident["restored_at"] = iso(opened + timedelta(minutes=30))
    assert post(client, incident, token).status_code == 200
    summary = client.get("/api/dora/metrics?period=7", **token).json()
    assert summary["recovery_time"]["median_seconds"] == 1800
    assert summary["recovery_time"]["level"] == "Elite"
    missing = incident | {"id": "INC-2", "deployment_id": "nope"}
    assert "record the deployment first" in post(client, missing, token).json()["errors"]["deployment_id"]


def test_summary_and_charts_need_login_or_token(client, logged_in, token):
    for path in ("/api/dora/metrics", "/api/dora/charts/deployment-frequency/", "/api/dora/charts/mttr/"):
        assert client.get(path).status_code == 401
        assert logged_in.get(path).status_code == 200
    assert client.get("/api/dora/charts/lead-time-trends/", **token).status_code == 200
    assert client.get("/api/dora/dashboard/").status_code == 302
    bad = logged_in.get("/api/dora/charts/change-failure-rate/?period=14")
    assert bad.status_code == 400 and "7, 30, 60, 90" in bad.json()["error"]


def test_dashboard_renders_no_data_on_an_empty_database(logged_in):
    page = logged_in.get("/api/dora/dashboard/?period=7").content.decode()
    assert page.count("no data") >= 4
    # Offline appliance: every script, stylesheet and link is served by the app itself. Checking the
    # attributes, not the whole page, because the page also carries a random CSRF token.
    urls = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert "/static/dora/vendor/chart.umd.min.js" in urls
    assert [u for u in urls if not u.startswith(("/", "?", "#")) or u.startswith("//")] == []
    for canvas in ("chart-deployment-frequency", "chart-lead-time", "chart-change-failure-rate", "chart-mttr"):
        assert f'id="{canvas}"' in page


def test_dashboard_filters_by_period_and_service(logged_in, client, token):
    post(client, deployment("recent", ago=timedelta(days=1)), token)
    post(client, deployment("older", ago=timedelta(days=20)), token)
    post(client, deployment("other", ago=timedelta(days=1), service="web"), token)
    assert logged_in.get("/api/dora/metrics?period=7").json()["total_cycles"] == 2
    assert logged_in.get("/api/dora/metrics?period=30").json()["total_cycles"] == 3
    assert logged_in.get("/api/dora/metrics?period=30&service=web").json()["total_cycles"] == 1
    chart = logged_in.get("/api/dora/charts/deployment-frequency/?period=30&service=api").json()
    assert sum(chart["deployments"]) == 2 and len(chart["labels"]) == len(chart["deployments"])


def test_sessions_are_stored_in_the_database_and_headers_are_safe(logged_in):
    assert Session.objects.count() == 1
    response = logged_in.get("/api/dora/dashboard/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def _signed(body, secret="test-webhook-secret"):
    raw = json.dumps(body).encode()
    return raw, "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def github(client, event, body, secret="test-webhook-secret"):
    raw, signature = _signed(body, secret)
    return client.post(
        "/api/dora/webhooks/github",
        raw,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT=event,
        HTTP_X_HUB_SIGNATURE_256=signature,
    )


def test_github_webhooks_push_deploy_and_incident(client):
    repo = {"name": "Shop.API", "default_branch": "main"}
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    push = {
        "ref": "refs/heads/main",
        "repository": repo,
        "commits": [{"id": "aaa", "timestamp": iso(t0)}, {"id": "bbb", "timestamp": iso(t0 + timedelta(hours=2))}],
    }
    assert github(client, "push", push, secret="wrong").status_code == 403
    assert github(client, "push", push).json()["new_commits"] == 2
    assert github(client, "push", push | {"ref": "refs/heads/feature"}).json()["new_commits"] == 0
    status = {
        "repository": repo,
        "deployment": {
            "id": 42,
            "sha": "bbb",
            "environment": "production",
            "created_at": iso(t0 + timedelta(hours=3)),
            "ref": "main",
        },
        "deployment_status": {"state": "in_progress", "created_at": iso(t0 + timedelta(hours=3))},
    }
    assert github(client, "deployment_status", status).status_code == 202
    status["deployment_status"] = {"state": "success", "created_at": iso(t0 + timedelta(hours=4))}
    assert github(client, "deployment_status", status).status_code == 201
    assert github(client, "deployment_status", status).status_code == 200  # redelivery
    dep = Deployment.objects.get(source="github")
    assert dep.service.name == "shop-api" and dep.status == "success"
    assert sorted(dep.commits.values_list("sha", flat=True)) == ["aaa", "bbb"]
    issue = {
        "repository": repo,
        "action": "labeled",
        "issue": {
            "id": 7,
            "title": "checkout down",
            "labels": [{"name": "incident"}],
            "created_at": iso(t0 + timedelta(hours=5)),
            "state": "open",
        },
    }
    assert github(client, "issues", issue).status_code == 201
    issue["issue"] |= {"state": "closed", "closed_at": iso(t0 + timedelta(hours=6))}
    assert github(client, "issues", issue).status_code == 200
    assert Incident.objects.get().restored_at == t0 + timedelta(hours=6)
    issue["issue"] |= {"id": 8, "labels": [{"name": "bug"}]}
    assert github(client, "issues", issue).status_code == 202
    assert github(client, "ping", {"zen": "hi"}).status_code == 202


def test_github_commits_go_to_the_first_successful_production_deployment_not_a_staging_one(client):
    """A staging success took every pushed commit, so the production deployment after it had none and
    lead time ended at staging (found by a review)."""
    repo = {"name": "shop", "default_branch": "main"}
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    push = {"ref": "refs/heads/main", "repository": repo, "commits": [{"id": "c1", "timestamp": iso(t0)}]}
    assert github(client, "push", push).json()["new_commits"] == 1

    def deploy(ident, environment, state, hours):
        body = {
            "repository": repo,
            "deployment": {"id": ident, "sha": "c1", "environment": environment, "ref": "main",
                           "created_at": iso(t0 + timedelta(hours=hours))},
            "deployment_status": {"state": state, "created_at": iso(t0 + timedelta(hours=hours, minutes=5))},
        }  # fmt: skip
        assert github(client, "deployment_status", body).status_code == 201

    deploy(1, "staging", "success", 1)
    deploy(2, "production", "failure", 2)
    assert Commit.objects.get(sha="c1").deployment is None, "neither shipped it to production"
    deploy(3, "production", "success", 3)
    assert Commit.objects.get(sha="c1").deployment.external_id == "3"
    deploy(4, "production", "success", 4)  # a redeploy of the same sha keeps the first one's clock
    assert Commit.objects.get(sha="c1").deployment.external_id == "3"
    # Deliveries out of order: the earlier production deployment, delivered last, still takes the commit.
    deploy(5, "production", "success", 2.5)
    assert Commit.objects.get(sha="c1").deployment.external_id == "5"


def test_token_and_admin_commands_are_idempotent(monkeypatch, capsys):
    monkeypatch.setenv("IACT_DORA_TOKEN", "dora_known_value")
    call_command("dora_token", "ansible")
    call_command("dora_token", "ansible")
    assert capsys.readouterr().out.split() == ["created", "unchanged"]
    monkeypatch.setenv("IACT_DORA_ADMIN_PASSWORD", "a long admin password")
    call_command("dora_ensure_admin", "admin")
    call_command("dora_ensure_admin", "admin")
    monkeypatch.setenv("IACT_DORA_ADMIN_PASSWORD", "another long password")
    call_command("dora_ensure_admin", "admin")
    assert capsys.readouterr().out.split() == ["created", "unchanged", "updated"]


def test_seeded_history_loads_through_the_real_queries(logged_in):
    call_command("dora_seed", "--deployments", "300", "--days", "30", "--services", "3")
    summary = logged_in.get("/api/dora/metrics?period=90").json()
    assert summary["total_cycles"] == 300
    assert summary["lead_time"]["median_seconds"] > 0
    assert 0 < summary["change_failure_rate"]["rate"] < 0.5
    assert summary["classification"]["overall"] in classify_levels()


def classify_levels():
    from iact.dora.metrics.classify import LEVELS

    return LEVELS


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"database\.engine: must be one of mysql, sqlite"):
        conf.from_mapping({"debug": True, "database": {"engine": "oracle"}})
    with pytest.raises(ConfigError, match="secret_key: required when debug is off"):
        conf.from_mapping({})
    with pytest.raises(ConfigError, match="secret_key_file: cannot read"):
        conf.from_mapping({"secret_key_file": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="emial: unknown key"):
        conf.from_mapping({"debug": True, "emial": {}})
    c = conf.from_mapping({"secret_key": "x" * 50})
    assert (c.debug, c.email.backend, c.cache) == (False, "console", "locmem")


def test_healthz_answers_without_login_and_names_the_version(client):
    """Rolling upgrades wait on this: the new version must answer before the next host goes."""
    import iact

    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": iact.__version__}


def test_a_commit_belongs_to_the_first_successful_deployment_not_a_failed_attempt(logged_in, client, token):
    shared = [{"sha": "c-shared", "committed_at": iso(timezone.now() - timedelta(hours=10))}]
    post(client, deployment("try-1", ago=timedelta(hours=4), status="failed", commits=shared), token)
    post(client, deployment("try-2", ago=timedelta(hours=2), commits=shared), token)
    post(client, deployment("redeploy", ago=timedelta(hours=1), commits=shared), token)  # does not restart it
    assert Commit.objects.get(sha="c-shared").deployment.external_id == "try-2"
    lead = logged_in.get("/api/dora/metrics?period=7&service=api").json()["lead_time"]
    assert lead["commits"] == 1 and lead["median_seconds"] == pytest.approx(8 * 3600, abs=1)


def test_an_incident_without_a_deployment_counts_against_the_latest_one(logged_in, client, token, settings):
    post(client, deployment("before", ago=timedelta(hours=5), commits=[]), token)
    post(client, deployment("latest", ago=timedelta(hours=3), commits=[]), token)
    opened = timezone.now() - timedelta(hours=2)
    body = {"type": "incident", "id": "GH-9", "service": "api", "opened_at": iso(opened)}
    assert post(client, body, token).status_code == 201
    cfr = logged_in.get("/api/dora/metrics?period=7&service=api").json()["change_failure_rate"]
    assert (cfr["failed"], cfr["total"]) == (1, 2)
    listing = logged_in.get("/admin/dora/incident/").content.decode()
    latest = Deployment.objects.get(external_id="latest").pk
    assert f"deployment {latest} (latest before it opened)" in listing
    settings.DORA_INCIDENT_ATTRIBUTION = "none"
    cfr = logged_in.get("/api/dora/metrics?period=7&service=api").json()["change_failure_rate"]
    assert (cfr["failed"], cfr["total"]) == (0, 2)


def test_an_unknown_service_is_refused_with_the_list_of_services(logged_in, client, token):
    post(client, deployment("one"), token)
    answer = logged_in.get("/api/dora/metrics?service=apii")
    assert answer.status_code == 400
    assert answer.json()["services"] == ["api"] and "use one of api" in answer.json()["error"]
    assert logged_in.get("/api/dora/charts/lead-time-trends/?service=apii").status_code == 400
    page = logged_in.get("/api/dora/dashboard/?service=apii")
    assert page.status_code == 400 and "no such service" in page.content.decode()
    assert 'id="services"' in page.content.decode()  # the page shows all services, as its dropdown says
    assert logged_in.get("/api/dora/dashboard/?service=api").status_code == 200


def test_benchmark_and_attribution_are_configured_and_checked():
    c = conf.from_mapping({"secret_key": "x" * 50})
    assert (c.benchmark, c.incident_attribution) == ("2024", "latest_deployment")
    assert conf.from_mapping({"secret_key": "x" * 50, "benchmark": "2023"}).benchmark == "2023"
    with pytest.raises(ConfigError, match="benchmark: must be one of 2023, 2024"):
        conf.from_mapping({"secret_key": "x" * 50, "benchmark": "2022"})
    with pytest.raises(ConfigError, match="incident_attribution: must be one of latest_deployment, none"):
        conf.from_mapping({"secret_key": "x" * 50, "incident_attribution": "nearest"})


def known_history():
    """Four deployments of `api` in the last week and one of `web` long ago, answers worked out by hand.

    d1 success 2 days ago (commits 1 h and 3 h old), d2 success 3 days ago (commit 5 h old, caused an
    incident restored in 1 h), d3 failed 4 days ago, d4 rolled back 5 days ago (its commit was not
    shipped). Deployments 3 (d1, d2, d4); lead time per commit 1, 3, 5 h: median 3 h; change failure
    rate 3 of 4 (d2, d3, d4); recovery 1 h (the incident), 24 h (d3 until d2), 48 h (d4 until d2):
    median 24 h.
    """
    now = timezone.now()
    api, web = Service.objects.create(name="api"), Service.objects.create(name="web")

    def make(name, days, status, commit_hours=(), service=api):
        finished = now - timedelta(days=days)
        d = Deployment.objects.create(
            service=service,
            started_at=finished - timedelta(minutes=5),
            finished_at=finished,
            status=status,
            external_id=name,
            url=f"https://ci.example/{name}",
        )
        for h in commit_hours:
            Commit.objects.create(
                service=service, sha=f"{name}-{h}", committed_at=finished - timedelta(hours=h), deployment=d
            )
        return d

    make("d1", 2, "success", (1, 3))
    d2 = make("d2", 3, "success", (5,))
    make("d3", 4, "failed")
    make("d4", 5, "rolled_back", (2,))
    make("w1", 80, "success", (1,), service=web)
    Incident.objects.create(
        service=api,
        deployment=d2,
        opened_at=d2.finished_at + timedelta(minutes=10),
        restored_at=d2.finished_at + timedelta(minutes=70),
        external_id="i1",
        title='=HYPERLINK("https://evil.example")',
        url="https://tracker.example/i1",
    )


def export(browser, metric, query="period=7&service=api"):
    response = browser.get(f"/api/dora/export.csv?metric={metric}&{query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_csv_export_reproduces_each_figure(logged_in):
    known_history()
    summary = logged_in.get("/api/dora/metrics?period=7&service=api").json()
    deployments = export(logged_in, "deployments")
    assert len(deployments) == summary["deployment_frequency"]["deployments"] == 3
    assert {r["external_id"] for r in deployments} == {"d1", "d2", "d4"}
    assert all(r["url"].startswith("https://ci.example/") and r["environment"] == "production" for r in deployments)

    commits = export(logged_in, "lead_time")
    assert len(commits) == summary["lead_time"]["commits"] == 3
    seconds = [float(r["lead_time_seconds"]) for r in commits]
    assert statistics.median(seconds) == summary["lead_time"]["median_seconds"] == 3 * 3600

    changes = export(logged_in, "change_failure")
    failed = [r for r in changes if r["failed"] == "True"]
    assert (len(failed), len(changes)) == (
        summary["change_failure_rate"]["failed"],
        summary["change_failure_rate"]["total"],
    )
    assert (len(failed), len(changes)) == (3, 4)

    failures = export(logged_in, "recovery")
    restored = [float(r["recovery_seconds"]) for r in failures if r["restored_at"]]
    assert statistics.median(restored) == summary["recovery_time"]["median_seconds"] == 24 * 3600
    assert {r["kind"] for r in failures} == {"incident", "failed_deployment"}
    assert "https://tracker.example/i1" in {r["url"] for r in failures}
    assert '\'=HYPERLINK("https://evil.example")' in {r["title"] for r in failures}  # not run as a formula

    assert summary["versus_previous"]["deployment_frequency"]["text"] == "no comparison with the previous 7 days"
    page = logged_in.get("/api/dora/dashboard/?period=7&service=api").content.decode()
    assert "no comparison with the previous 7 days" in page
    assert "/api/dora/export.csv?metric=lead_time&amp;period=7&amp;service=api" in page

    # All services over 90 days: the counts are over every service's rows, as the page says.
    assert len(export(logged_in, "deployments", "period=90")) == 4


def test_drilldown_rows_give_each_bucket_its_chart_value(logged_in):
    known_history()
    charts = {
        "deployments": ("deployment-frequency", "deployments"),
        "lead_time": ("lead-time-trends", "median_hours"),
        "change_failure": ("change-failure-rate", "percent"),
        "recovery": ("mttr", "median_hours"),
    }
    for metric, (path, key) in charts.items():
        for period in (7, 90):
            series = logged_in.get(f"/api/dora/charts/{path}/?period={period}").json()
            for label, value in zip(series["labels"], series[key], strict=True):
                got = logged_in.get(f"/api/dora/drilldown?metric={metric}&period={period}&bucket={label}").json()
                assert got["value"] == value, (metric, period, label, got)
                if metric == "deployments":
                    assert len(got["rows"]) == value


def test_export_and_drilldown_check_login_and_parameters(client, logged_in, token):
    known_history()
    for path in ("/api/dora/export.csv?metric=deployments", "/api/dora/drilldown?metric=recovery"):
        assert client.get(path).status_code == 401
        assert client.get(path, **token).status_code == 200
        assert logged_in.get(path).status_code == 200
    bad = logged_in.get("/api/dora/export.csv?metric=mttr")
    assert bad.status_code == 400 and "deployments, lead_time, change_failure, recovery" in bad.json()["error"]
    assert logged_in.get("/api/dora/export.csv?metric=deployments&period=14").status_code == 400
    assert "no such service" in logged_in.get("/api/dora/drilldown?metric=lead_time&service=nope").json()["error"]
    bucket = logged_in.get("/api/dora/drilldown?metric=deployments&period=7&bucket=1999-01-01")
    assert bucket.status_code == 400 and "first day of one of the chart's buckets" in bucket.json()["error"]


# -- the rows kept between requests (metrics/data.py, metrics/version.py) ---------------------------------


def _commit_queries(fn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    return result, sum("dora_commit" in q["sql"] for q in ctx.captured_queries)


@pytest.fixture
def frozen_now(monkeypatch):
    """The dashboard's clock stopped, so that two requests compute over the same window."""
    from iact.dora.views import params

    now = timezone.now()
    monkeypatch.setattr(params.timezone, "now", lambda: now)
    return now


def test_kept_rows_are_reused_until_any_write_and_every_write_shows_at_once(logged_in, client, token, frozen_now):
    def summary():
        return logged_in.get("/api/dora/metrics?period=30").json()

    assert post(client, deployment("k1", timedelta(days=2)), token).status_code == 201
    first, loads = _commit_queries(summary)
    assert first["deployment_frequency"]["deployments"] == 1 and loads == 1
    again, loads = _commit_queries(summary)
    assert again == first and loads == 0, "nothing changed: the rows kept are used"
    # Every way the events change is seen by the next request.
    post(client, deployment("k2", timedelta(days=1)), token)  # the API
    assert summary()["deployment_frequency"]["deployments"] == 2
    post(client, deployment("k2", timedelta(days=1), status="failed"), token)  # an update of a row
    assert summary()["change_failure_rate"]["failed"] == 1
    Deployment.objects.get(external_id="k1").delete()  # the admin
    assert summary()["deployment_frequency"]["deployments"] == 0
    call_command("dora_seed", "--deployments", "5", "--days", "7", "--services", "1")  # bulk inserts
    assert summary()["deployment_frequency"]["deployments"] >= 4  # 5 seeded, a few failed or rolled back


def test_kept_rows_give_the_same_figures_as_a_fresh_load_for_every_period_and_service(logged_in, frozen_now):
    from iact.dora.metrics import data

    call_command("dora_seed", "--deployments", "400", "--days", "200", "--services", "3", "--seed", "7")
    paths = [f"/api/dora/metrics?period={p}" + (f"&service={s}" if s else "")
             for p in (7, 30, 60, 90) for s in (None, "service-1", "service-3")]  # fmt: skip
    kept = [logged_in.get(p).json() for p in reversed(paths)]  # the longest first: the shorter ones reuse its rows
    fresh = []
    for p in reversed(paths):
        data._snapshots.clear()
        fresh.append(logged_in.get(p).json())
    assert kept == fresh


def test_a_service_that_released_nothing_rates_the_same_alone_and_in_the_median(logged_in, client, token, frozen_now):
    post(client, deployment("q1", timedelta(days=2), status="failed", service="quiet"), token)
    alone = logged_in.get("/api/dora/metrics?period=30&service=quiet").json()["deployment_frequency"]
    assert (alone["deployments"], alone["level"]) == (0, "Low")
    for i in range(20):
        post(client, deployment(f"b{i}", timedelta(days=i + 1), service="busy"), token)
    Service.objects.get_or_create(name="idle")  # known, no event in the window
    summary = logged_in.get("/api/dora/metrics?period=30").json()
    assert summary["deployment_frequency"]["services"] == 3, "busy, quiet and idle: two of them at 0"
    assert summary["deployment_frequency"]["per_day"] == 0.0
    assert sorted(s["service"] for s in summary["services"]) == ["busy", "idle", "quiet"]


@pytest.mark.django_db(transaction=True)
def test_two_writers_do_not_wait_for_each_other_on_the_data_version(token):
    """The version was one row every write updated: a writer held it until its commit, and two writers taking
    their locks in different orders deadlocked (found by a review). Changes are inserts now."""
    import threading

    from django.db import connection, transaction

    from iact.dora.ingest.record import record_deployment
    from iact.dora.ingest.validate import DeploymentEvent

    def event(eid):
        now = timezone.now()
        return DeploymentEvent(external_id=eid, service="api", environment="production", started_at=now,
                               finished_at=now, status="success", source="api", version="1", sha="s",
                               url="", sender_updated_at=None)  # fmt: skip

    Service.objects.get_or_create(name="api")
    first_open, done = threading.Event(), threading.Event()
    errors = []

    def first():
        try:
            with transaction.atomic():
                record_deployment(event("w1"))
                first_open.set()
                done.wait(30)  # still open while the second writer writes
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    t = threading.Thread(target=first)
    t.start()
    assert first_open.wait(30)
    finished = threading.Event()

    def second():
        try:
            with transaction.atomic():
                record_deployment(event("w2"))
            finished.set()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    t2 = threading.Thread(target=second)
    t2.start()
    wrote = finished.wait(10)
    done.set()
    t.join(30)
    t2.join(30)
    assert wrote and not errors, f"the second writer waited for the first one's commit: {errors}"
