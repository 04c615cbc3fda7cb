"""The DORA dashboard alone on its app host: through nginx, the API, the jobs, backup and restore.

The same role runs in the `full` scenario beside Cassandra; its tests there check what needs the
cluster (the dashboard's own logs, the health check's Cassandra probe).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import testinfra
from conftest import node_ip, secret

UNVERIFIED = ssl._create_unverified_context()  # the lab's self-signed certificate


@pytest.fixture(scope="module")
def dora():
    return testinfra.get_host("podman://app1")


@pytest.fixture(scope="module")
def base_url():
    return f"https://{node_ip('app1')}"


def request(url, body=None, token=None, method=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30, context=UNVERIFIED) as response:
            headers = dict(response.headers) | {"final-url": response.geturl()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def mariadb(host, sql, database="dora"):
    return host.check_output(f"mariadb -N -B {database} -e {sql!r}")


def test_services_run_hardened_and_as_their_users(dora):
    for name in ("mariadb", "nginx", "iact-dora"):
        assert dora.service(name).is_running and dora.service(name).is_enabled, name
    workers = dora.process.filter(comm="gunicorn")
    assert workers and {p.user for p in workers} == {"iact-dora"}
    show = dora.check_output("systemctl show iact-dora -p NoNewPrivileges -p ProtectSystem -p PrivateTmp -p User")
    assert "NoNewPrivileges=yes" in show and "ProtectSystem=strict" in show and "PrivateTmp=yes" in show
    assert "User=iact-dora" in show
    listening = dora.check_output("ss -Htlnp")
    assert "127.0.0.1:3306" in listening and "0.0.0.0:3306" not in listening
    assert "127.0.0.1:8000" in listening


def test_database_user_has_privileges_on_its_database_only(dora):
    grants = mariadb(dora, "SHOW GRANTS FOR 'dora'@'localhost'", database="mysql")
    assert "ON `dora`.*" in grants
    assert "ON *.*" not in grants.replace("GRANT USAGE ON *.*", "")
    config = dora.file("/etc/iact/dora/dora.yaml")
    assert config.mode == 0o640 and config.group == "iact-dora"
    assert dora.file("/etc/iact/dora/secret_key").mode == 0o640
    assert "debug: false" in config.content_string


def test_site_answers_through_nginx_with_tls_and_headers(base_url):
    status, headers, body = request(f"{base_url}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, headers, _ = request(f"{base_url}/api/dora/dashboard/")
    assert status == 200 and "/accounts/login/?next=" in headers["final-url"]  # the page needs a login
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, headers, body = request(f"{base_url}/static/dora/vendor/chart.umd.min.js")
    assert status == 200 and b"Chart" in body[:2000]
    assert headers["Server"] == "nginx"  # served from disk by nginx, not by Django


def test_http_redirects_to_https():
    ip = node_ip("app1")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as exc:
        opener.open(f"http://{ip}/api/dora/dashboard/", timeout=10)
    assert exc.value.code == 301 and exc.value.headers["Location"].startswith("https://")


def test_api_records_a_deployment_once(base_url, dora):
    token = secret("dora_ci_token")
    finished = datetime.now(UTC) - timedelta(minutes=5)
    event = {
        "type": "deployment",
        "id": "molecule-run-1",
        "service": "checkout",
        "started_at": (finished - timedelta(minutes=3)).isoformat(),
        "finished_at": finished.isoformat(),
        "status": "success",
        "commits": [{"sha": "0123abc", "committed_at": (finished - timedelta(hours=2)).isoformat()}],
    }
    assert request(f"{base_url}/api/dora/metrics", event)[0] == 401
    first, _, body = request(f"{base_url}/api/dora/metrics", event, token)
    assert first in (200, 201), body
    assert request(f"{base_url}/api/dora/metrics", event, token)[0] == 200
    assert mariadb(dora, "SELECT COUNT(*) FROM dora_deployment WHERE external_id='molecule-run-1'") == "1"
    status, _, body = request(f"{base_url}/api/dora/metrics?period=7&service=checkout", token=token)
    summary = json.loads(body)
    assert status == 200 and summary["total_cycles"] == 1
    assert summary["lead_time"]["median_hours"] == pytest.approx(2.0, abs=0.01)


def test_jobs_are_installed_and_the_health_check_passes(dora):
    cron = dora.file("/etc/cron.d/iact-dora").content_string
    assert "*/6 * * * iact-dora iact-dora clearsessions" in cron
    assert "*/5 * * * * iact-dora iact-dora dora_health" in cron
    assert "0 2 * * * root iact-dora-backup" in cron
    out = dora.run("runuser -u iact-dora -- /usr/local/bin/iact-dora dora_health")
    assert out.rc == 0, out.stdout + out.stderr
    status = json.loads(dora.file("/var/lib/iact/dora/health.json").content_string)
    assert status["ok"] is True
    assert set(status["checks"]) == {"database", "cassandra", "disk", "http"}
    assert status["checks"]["cassandra"]["detail"] == "not configured"  # no cassandra group here


def test_health_check_fails_and_says_why_when_the_app_is_down(dora):
    dora.check_output("systemctl stop iact-dora")
    try:
        out = dora.run("runuser -u iact-dora -- /usr/local/bin/iact-dora dora_health")
        status = json.loads(dora.file("/var/lib/iact/dora/health.json").content_string)
    finally:
        dora.check_output("systemctl start iact-dora")
    assert out.rc != 0 and "unhealthy" in out.stderr, out.stdout + out.stderr
    assert status["ok"] is False
    assert status["checks"]["http"]["ok"] is False and status["checks"]["database"]["ok"] is True


def test_backup_restores_into_a_scratch_database(dora):
    dump = dora.check_output("iact-dora-backup").splitlines()[-1]
    assert dora.file(dump).mode == 0o600
    dora.check_output(f"iact-dora-restore {dump} --database dora_scratch")
    try:
        for table in ("dora_deployment", "dora_commit", "auth_user", "dora_apitoken"):
            live = mariadb(dora, f"SELECT COUNT(*) FROM {table}")
            restored = mariadb(dora, f"SELECT COUNT(*) FROM {table}", database="dora_scratch")
            assert restored == live, table
        assert int(mariadb(dora, "SELECT COUNT(*) FROM dora_deployment", database="dora_scratch")) >= 1
        refused = dora.run(f"iact-dora-restore {dump} --database dora")
        assert refused.rc == 2 and "--live" in refused.stderr
    finally:
        dora.run("mariadb -e 'DROP DATABASE IF EXISTS dora_scratch'")
