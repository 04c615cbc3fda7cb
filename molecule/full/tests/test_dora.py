"""The dashboard beside the cluster: what the `default` scenario (the dashboard alone) cannot show."""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import testinfra
from conftest import node_ip, secret, wait_until


def test_health_check_probes_every_cassandra_node():
    app = testinfra.get_host("podman://app1")
    out = app.run("runuser -u iact-dora -- /usr/local/bin/iact-dora dora_health")
    assert out.rc == 0, out.stdout + out.stderr
    status = json.loads(app.file("/var/lib/iact/dora/health.json").content_string)
    assert status["checks"]["cassandra"] == {"ok": True, "detail": "3/3 reachable"}


def test_the_dashboard_ships_its_own_logs_to_cassandra(admin):
    """Recording an event logs at INFO; the line reaches application_logs with app='dora', host='app1'."""
    finished = datetime.now(UTC).isoformat()
    event = {"type": "deployment", "id": f"ships-logs-{uuid.uuid4()}", "service": "e2e", "status": "success",
             "started_at": finished, "finished_at": finished}  # fmt: skip
    post = urllib.request.Request(
        f"https://{node_ip('app1')}/api/dora/metrics",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {secret('dora_ci_token')}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(post, timeout=30, context=ssl._create_unverified_context()) as response:
        assert response.status == 201

    # Through the SAI indexes on day and app: a plain LIMIT scan comes back in token order, and the
    # drills' large partitions (written before this test) can hide the dashboard's rows behind them.
    today = datetime.now(UTC).date()

    def shipped():
        rows = [r for day in (today - timedelta(days=1), today) for r in admin.execute(
            "SELECT host, message FROM logging.application_logs WHERE day = %s AND app = 'dora'", (day,))]  # fmt: skip
        return [r.message for r in rows if r.host == "app1" and "recorded" in r.message]

    assert wait_until(shipped, 120, "the dashboard's 'recorded N event(s)' log line in application_logs")
