"""/health/: the fleet snapshot against a real Cassandra node, and the page that reads it."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from iact.dora import fleet

pytestmark = pytest.mark.cassandra


def test_the_snapshot_judges_nodes_collectors_and_alert_runs(session):
    now = datetime(2033, 1, 1, 12, tzinfo=UTC) + timedelta(days=random.SystemRandom().randrange(2000))
    insert = session.prepare(
        "INSERT INTO logging.infrastructure_logs (host, day, hour, ts, line_id, source, severity, program, message, "
        "fields) VALUES (?, ?, ?, ?, ?, 'metrics', 'info', 'iact-collector', 'cpu 1%', ?)"
    )
    started = (now - timedelta(hours=2)).isoformat()
    agent = {"agent_version": "9.9", "agent_started_at": started, "agent_lag_bytes": "0", "agent_spool_bytes": "0"}
    hosts = {  # host: (minutes since its last metrics row, fields)
        "fl-ok": (0.5, agent),
        "fl-late": (5, agent),
        "fl-gone": (30, agent),
        "fl-spool": (0.5, agent | {"agent_spool_bytes": "4096"}),
        "fl-restarted": (0.5, agent | {"agent_started_at": (now - timedelta(minutes=2)).isoformat()}),
    }
    for host, (minutes, fields) in hosts.items():
        for back in (minutes, minutes + 1, minutes + 2):
            ts = now - timedelta(minutes=back)
            session.execute(insert, (host, ts.date(), ts.hour, ts, uuid.uuid4(), fields))
    run = f"fleet-{uuid.uuid4().hex[:6]}"
    session.execute("INSERT INTO logging.alert_runs (name, last_run_at, last_status) VALUES (%s, %s, 'ok')",
                    (run, now - timedelta(minutes=4)))  # fmt: skip
    session.execute("INSERT INTO logging.alert_runs (name, last_run_at, last_status) VALUES (%s, %s, 'ok')",
                    (run + "-stuck", now - timedelta(hours=2)))  # fmt: skip

    data = fleet.snapshot(session, "logging", now)
    states = {(i["kind"], i["name"]): (i["state"], i["reason"]) for i in data["items"]}
    assert states[("collector", "fl-ok")] == ("green", "reporting")
    late = states[("collector", "fl-late")]
    assert late[0] == "amber" and "no metrics for 5 min" in late[1]
    assert states[("collector", "fl-gone")][0] == "red"
    assert states[("collector", "fl-spool")][0] == "amber" and "spooling 4096" in states[("collector", "fl-spool")][1]
    assert states[("collector", "fl-restarted")][0] == "amber"
    assert states[("alerting", run)][0] == "green" and states[("alerting", run + "-stuck")][0] == "red"
    node_states = [s for (kind, _), (s, _) in states.items() if kind == "node"]
    assert node_states == ["green"], "the one loopback node is up and holds no hints"
    assert data["state"] == "red", "the fleet is as bad as its worst item"
    ok = next(i for i in data["items"] if i["name"] == "fl-ok")
    assert ok["details"]["version"] == "9.9"


@pytest.mark.django_db
def test_the_page_shows_the_snapshot_and_the_dashboards_checks_and_says_when_it_is_stale(tmp_path):
    status = tmp_path / "health.json"
    status.write_text('{"ok": true, "checked_at": "2026-11-29T10:00:00Z", '
                      '"checks": {"database": {"ok": true, "detail": "ok"}}}')  # fmt: skip
    item = fleet.Item("collector", "web1", "amber", "spooling 10 bytes", {"version": "1.0"})
    fleet.write(tmp_path / "fleet.json", {"taken_at": datetime.now(UTC).isoformat(), "state": "amber",
                                          "items": [dataclasses.asdict(item)]})  # fmt: skip
    client = Client()
    client.force_login(User.objects.create_user("ops", password="correct horse battery"))
    with override_settings(DORA_HEALTH=dataclasses.replace(settings.DORA_HEALTH, status_file=str(status))):
        html = client.get("/health/").content.decode()
        assert 'id="fleet-state">amber' in html and 'data-name="web1" data-state="amber"' in html
        assert 'data-name="database" data-state="green"' in html and 'id="notice"' not in html
        fleet.write(tmp_path / "fleet.json", {"taken_at": "2026-01-01T00:00:00+00:00", "state": "green", "items": []})
        assert "has not run since" in client.get("/health/").content.decode()
    assert Client().get("/health/").status_code == 302, "signed-in users only"
