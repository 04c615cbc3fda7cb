"""The host-side checks of playbooks/compliance.yml and health.yml, on inputs with known answers."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[2] / "playbooks" / "files"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compliance = load("compliance_check")
health = load("health_check")


@pytest.mark.parametrize(
    "name",
    ["redis-server", "redis", "prometheus-node-exporter", "grafana-server", "python3-celery", "celery@worker1",
     "kombu", "prometheus_client", "django_redis"],
)  # fmt: skip
def test_forbidden_names_are_caught(name):
    assert compliance.FORBIDDEN.search(name)


@pytest.mark.parametrize(
    "name", ["libhiredis0.14", "cassandra", "iact-collector", "nginx", "mariadb-server", "celerity"]
)
def test_innocent_names_pass(name):
    assert not compliance.FORBIDDEN.search(name)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["/usr/bin/redis-server", "*:6379"], ["redis-server"]),
        (["/usr/bin/python3", "-m", "celery", "worker"], ["python3", "celery"]),
        (["python3", "/opt/app/bin/celery", "-A", "proj"], ["python3", "celery"]),
        (["/usr/bin/java", "-Xmx1g", "org.apache.cassandra.service.CassandraDaemon"],
         ["java", "org.apache.cassandra.service.CassandraDaemon"]),
        ([], []),
    ],
)  # fmt: skip
def test_program_names_see_through_interpreters(argv, names):
    assert compliance.program_names(argv) == names


def test_ring_states_come_from_nodetool_status(monkeypatch):
    status = """Datacenter: dc1
===============
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load      Tokens  Owns (effective)  Host ID  Rack
UN  10.89.0.2  1.7 MiB   16      100.0%            5ff8  rack1
DN  10.89.0.3  1.3 MiB   16      100.0%            c628  rack1
"""

    def fake_run(*cmd, timeout=60):
        out = status if cmd[-1] == "status" else "This node does not have any pending hints\n"
        return health.subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(health, "run", fake_run)
    rows = {r["check"]: r for r in health.cassandra_node("nodetool", "10.89.0.2")}
    assert rows["Cassandra node is UN"]["ok"]
    assert not rows["Cassandra ring all UN"]["ok"] and "10.89.0.3" in rows["Cassandra ring all UN"]["detail"]
    assert rows["Cassandra pending hints"]["detail"] == "0 endpoints with hints"


def test_a_missing_tool_is_a_failed_row_not_a_crash():
    assert compliance.run("/nonexistent/tool").returncode == 127
    assert health.agent(["/nonexistent/iact-collector", "status"], 1024)[0]["ok"] is False


def agent_status(updated_ago=1.0, lag=0, healthy=True, **extra):
    """A status document as the running agent writes it (the fields `iact-collector status` judges)."""
    now = time.time()
    return {
        "version": "9.9", "pid": 1, "host": "h", "started_at": stamp(now - 3600),
        "updated_at": stamp(now - updated_ago), "healthy": healthy, "files": {}, "lag_bytes": lag, "spool_bytes": 0,
        "queues": {"lines": 0, "batches": 0},
        "journal": {"enabled": False, "acked_cursor": None, "entries_read": 0}, "counters": {},
        "dead_letter": {"file": "/x", "count": 0, "last_reason": None}, "last_ack_at": stamp(now - 1),
        "lag_history": [], "last_error": None, "crash_restarts": [], **extra,
    }  # fmt: skip


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def test_agent_fails_on_a_non_zero_exit_whatever_healthy_says(monkeypatch):
    problems = "PROBLEM: 2 restart(s) after a crash in the last 10 min\nPROBLEM: lag has not shrunk for 6.0 min\n"

    def fake_run(*cmd, timeout=60):
        return health.subprocess.CompletedProcess(cmd, 1, json.dumps(agent_status()), problems)

    monkeypatch.setattr(health, "run", fake_run)
    rows = health.agent(["iact-collector", "status"], 1024)
    assert [(r["check"], r["ok"], r["detail"]) for r in rows if r["check"] == "agent status"] == [
        ("agent status", False, "2 restart(s) after a crash in the last 10 min"),
        ("agent status", False, "lag has not shrunk for 6.0 min"),
    ]
    assert {r["check"]: r["ok"] for r in rows}["agent lag"] is True, "the other rows are still judged"


def test_agent_fails_on_an_exit_code_without_problem_lines(monkeypatch):
    def fake_run(*cmd, timeout=60):
        return health.subprocess.CompletedProcess(cmd, 3, "", "no status at /var/lib/iact/collector/status.json")

    monkeypatch.setattr(health, "run", fake_run)
    [row] = health.agent(["iact-collector", "status"], 1024)
    assert not row["ok"] and row["detail"].startswith("iact-collector status failed (exit 3): no status at")


@pytest.fixture
def collector(tmp_path):
    """The real `iact-collector status` (this checkout's) on a status file the test writes."""
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"cassandra: {{hosts: [127.0.0.1]}}\nsources: {{files: [/var/log/syslog]}}\nstate_dir: {tmp_path}\n"
    )

    def _status(**fields) -> list[str]:
        (tmp_path / "status.json").write_text(json.dumps(agent_status(**fields)))
        return [sys.executable, "-m", "iact.collector.cli", "status", "--config", str(config)]

    return _status


def test_agent_thresholds_reach_the_real_status_command(collector):
    """health.yml's thresholds are flags of this checkout's `iact-collector status`; each one moves the verdict."""
    now = time.time()
    ok = health.agent(collector(), 1024)
    assert ok[0] == {"check": "agent status", "ok": True, "detail": "version 9.9, no problems"}

    stale = collector(updated_ago=90)
    assert not health.agent(stale, 1024)[0]["ok"], "a status 90 s old: the agent is not running"
    assert health.agent(stale, 1024, max_age=120)[0]["ok"]

    crashed = collector(crash_restarts=[now - 300])
    [row] = [r for r in health.agent(crashed, 1024) if r["check"] == "agent status"]
    assert not row["ok"] and "restart(s) after a crash" in row["detail"]
    assert health.agent(crashed, 1024, restart_window=120)[0]["ok"]

    history = [[now - 600 + 10 * i, 5 << 20] for i in range(61)]  # 5 MiB behind, not shrinking for 10 minutes
    stuck = collector(lag=5 << 20, lag_history=history, last_ack_at=stamp(now - 1))
    [row] = [r for r in health.agent(stuck, 10 << 20) if r["check"] == "agent status"]
    # The command reads the clock a moment after `now`: on a saturated runner that moment is seconds.
    assert not row["ok"] and re.match(r"lag has not shrunk for 10\.\d min \(5242880 bytes behind\)", row["detail"]), row
    assert health.agent(stuck, 10 << 20, max_stall=900)[0]["ok"]
    assert health.agent(stuck, 10 << 20, stall_floor_bytes=6 << 20)[0]["ok"], "below the floor counts as caught up"

    unacked = collector(lag=100, last_ack_at=stamp(now - 400))
    [row] = [r for r in health.agent(unacked, 1024) if r["check"] == "agent status"]
    assert not row["ok"] and re.match(r"nothing acknowledged for 6\.\d min while lines wait", row["detail"]), row
    assert health.agent(unacked, 1024, max_stall=600)[0]["ok"]


def test_health_playbook_passes_every_threshold_and_the_inventories_document_them():
    """Each threshold health.yml reads is set, with its default, in the prod and lab operations.yml."""
    root = FILES.parents[1]
    play = (root / "playbooks" / "health.yml").read_text()
    knobs = set(re.findall(r"\b(health_\w+) \| default\(", play))
    assert {"health_agent_max_stall_minutes", "health_agent_restart_window_minutes",
            "health_agent_status_max_age_seconds", "health_agent_stall_floor_bytes"} <= knobs  # fmt: skip
    for inventory in ("prod", "lab"):
        text = (root / "inventories" / inventory / "group_vars" / "all" / "operations.yml").read_text()
        documented = set(re.findall(r"^#? ?(health_\w+):", text, re.M))
        assert knobs == documented, f"{inventory}: {sorted(knobs ^ documented)}"
