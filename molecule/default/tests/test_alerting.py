"""Alerting on the lab: scheduled on cass1 only, and a burst of ERROR lines reaches the alert log."""

import json
import uuid

import testinfra
from conftest import NODES, wait_until

ALERT = "/opt/iact/alerting/venv/bin/iact-alert --config /etc/iact/alerting.yaml"


def test_scheduled_on_the_first_alerting_host_only():
    for name in NODES:
        host = testinfra.get_host(f"podman://{name}")
        assert host.file("/etc/cron.d/iact-alert").exists == (name == "cass1")
    cass1 = testinfra.get_host("podman://cass1")
    conf = cass1.file("/etc/iact/alerting.yaml")
    assert (conf.user, conf.group, conf.mode) == ("root", "iact-alert", 0o640)
    assert cass1.run(f"{ALERT} check-config").rc == 0
    assert "iact-alert" in cass1.file("/etc/cron.d/iact-alert").content_string


def test_error_burst_reaches_the_alert_log_once():
    cass1 = testinfra.get_host("podman://cass1")
    cass2 = testinfra.get_host("podman://cass2")
    marker = uuid.uuid4().hex[:8]
    for i in range(15):
        cass2.run(f"logger -p user.err -t burst 'burst {marker} {i}'")

    def alerted():
        lines = cass1.file("/var/log/iact/log_alerts.log").content_string.splitlines()
        hits = [json.loads(x) for x in lines if x.strip()]
        hits = [h for h in hits if h["rule"] == "infra-errors" and h["status"] == "firing"]
        return [h for h in hits if any(marker in s for s in h["samples"]) or h["count"] >= 15] or None

    hits = wait_until(alerted, 180, "the burst in /var/log/iact/log_alerts.log", interval=5)
    assert hits[0]["count"] > 10 and "SELECT" in hits[0]["query"]
    status = cass1.run(f"sudo -u iact-alert {ALERT} status")
    assert status.rc == 0 and "infra-errors" in status.stdout, status.stderr
