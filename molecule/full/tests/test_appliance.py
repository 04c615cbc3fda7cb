"""The appliance end to end: every host's logs, site.yml re-run and recorded, the day-2 playbooks."""

from __future__ import annotations

import http.cookiejar
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest
import testinfra
from cassandra.query import SimpleStatement
from conftest import node_ip, playbook, recap, secret, wait_until

ALL_HOSTS = ("cass1", "cass2", "cass3", "app1")
UNVERIFIED = ssl._create_unverified_context()  # the lab's self-signed certificate


def appliance_deployments() -> int:
    """Production deployments of the appliance in the last 7 days, from the JSON API (0 before the first)."""
    request = urllib.request.Request(
        f"https://{node_ip('app1')}/api/dora/metrics?service=iact-appliance&period=7",
        headers={"Authorization": f"Bearer {secret('dora_ci_token')}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=UNVERIFIED) as response:
            return json.loads(response.read())["deployment_frequency"]["deployments"]
    except urllib.error.HTTPError as exc:
        if exc.code == 400:  # the service does not exist yet
            return 0
        raise


def dashboard_page(query: str) -> str:
    """The dashboard as a signed-in user sees it (Django's login form, CSRF and session cookie)."""
    response = signed_in(f"/api/dora/dashboard/?{query}")
    assert "/api/dora/dashboard/" in response.geturl(), "signed in and sent on to the dashboard"
    return response.read().decode()


def signed_in(next_path: str):
    """The response to `next_path` after signing in as the dashboard's admin through nginx; its
    `opener` attribute keeps the session for further requests."""
    base = f"https://{node_ip('app1')}"
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=UNVERIFIED), urllib.request.HTTPCookieProcessor(jar)
    )
    form = opener.open(f"{base}/accounts/login/", timeout=30).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode(
        {"username": "admin", "password": secret("dora_admin_password"), "csrfmiddlewaretoken": csrf,
         "next": next_path}
    ).encode()  # fmt: skip
    login = urllib.request.Request(f"{base}/accounts/login/", data=body, headers={"Referer": f"{base}/accounts/login/"})
    response = opener.open(login, timeout=30)
    response.opener = opener
    return response


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_a_logger_line_from_every_host_is_stored(name, connect):
    marker = f"e2e-{uuid.uuid4()}"
    testinfra.get_host(f"podman://{name}").run(f"logger -t e2etest {marker}")
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    query = SimpleStatement(
        "SELECT host, source, message FROM logging.infrastructure_logs WHERE day = %s AND program = 'e2etest'"
    )

    def stored():
        rows = [r for r in reader.execute(query, (datetime.now(UTC).date(),)) if r.message == marker]
        return rows if {r.source for r in rows} >= {"journal", "syslog"} else None

    rows = wait_until(stored, 60, f"{marker} from {name}, via the journal and syslog", interval=1)
    assert {r.host for r in rows} == {name}
    assert len(rows) == 2, "each source stores the line once"


def test_site_rerun_on_one_host_changes_nothing_and_records_itself_on_the_dashboard():
    """An operator's `site.yml --limit` redeploy, with the callback on.

    test_converged has already re-run site.yml on every host and found no change; this
    run, limited to the app host and its configure phase (an operator's quick config push, the
    tags every role shares), checks that the callback records it.
    """
    before = appliance_deployments()
    run = playbook(
        "site.yml",
        "--limit",
        "app1",
        "--tags",
        "configure",
        env={
            "IACT_DORA_URL": f"https://{node_ip('app1')}",
            "IACT_DORA_TOKEN": secret("dora_ci_token"),
            "IACT_DORA_CA_FILE": "insecure",
        },
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = recap(run.stdout)
    assert set(counts) == {"app1"} and counts["app1"]["ok"] > 20, counts
    assert counts["app1"]["changed"] == 0, "re-running site.yml changes nothing"
    assert "iact_dora: recorded this run as deployment" in run.stdout
    assert appliance_deployments() == before + 1
    page = dashboard_page("service=iact-appliance&period=7")
    assert '<option value="iact-appliance" selected>' in page
    assert "no data" not in page.split("Deployment frequency", 1)[-1][:400]


def test_compliance_passes_and_catches_a_forbidden_process():
    run = playbook("playbooks/compliance.yml")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "0 failed" in run.stdout and "Cassandra authentication on" in run.stdout
    assert "default superuser cassandra cannot log in" in run.stdout
    for line in (
        "Cassandra client TLS on, TLS only",
        "Cassandra internode TLS on, mutual, hostname verified",
        "Cassandra audit log on (AUTH, DDL, DCL)",
        "plaintext refused by cass2 on its native port 9042",
        "plaintext refused by cass3 on its storage port 7000",
        "JMX of cass1 not reachable from here",
        "JMX refuses nodetool without credentials",
        "valid for 30+ days",
    ):
        assert line in run.stdout, line
    # From app1, another host: every node refused plaintext and hid its JMX.
    assert re.search(r"app1\s+plaintext refused by cass1 on its native port 9042\s+PASS", run.stdout), run.stdout[
        -3000:
    ]

    cass2 = testinfra.get_host("podman://cass2")
    fake = "/usr/local/bin/redis-server"
    cass2.check_output(f"cp /bin/sleep {fake} && ({fake} 600 >/dev/null 2>&1 &)")
    try:
        caught = playbook("playbooks/compliance.yml")
    finally:
        cass2.run(f"pkill -f {fake}; rm -f {fake}")
    assert caught.returncode != 0
    row = re.compile(r"cass2\s+no Redis/Prometheus/Grafana/Celery processes\s+FAIL\s+\d+:/usr/local/bin/redis-server")
    assert row.search(caught.stdout), caught.stdout[-3000:]
    assert re.search(r"\b1 failed\b", caught.stdout), "only that check fails"


def test_health_reports_every_host():
    run = playbook("playbooks/health.yml")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    for line in (
        "Cassandra ring all UN",
        "agent spool empty",
        "last alert run",
        "dashboard HTTP check",
        "certificate on 9042",
    ):
        assert line in run.stdout
    assert "0 failed" in run.stdout
