"""The host-side checks of playbooks/compliance.yml and health.yml, on inputs with known answers."""

from __future__ import annotations

import importlib.util
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
