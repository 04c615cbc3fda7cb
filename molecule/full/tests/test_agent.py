"""The collector agent on every node: hardened, healthy, and its lines in Cassandra within seconds."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from cassandra.query import SimpleStatement
from conftest import wait_until

AGENT = "/opt/iact/collector/venv/bin/iact-collector"


def status(host) -> dict:
    return json.loads(host.check_output(f"{AGENT} status --json"))


def test_agent_is_active_enabled_and_unprivileged(host):
    service = host.service("iact-collector")
    assert service.is_running and service.is_enabled
    procs = host.process.filter(comm="iact-collector") or [
        p for p in host.process.filter(user="iact-collector") if "iact-collector" in p.args
    ]
    assert procs and {p.user for p in procs} == {"iact-collector"}
    groups = host.user("iact-collector").groups
    assert "adm" in groups and "systemd-journal" in groups


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("WatchdogUSec", "1min"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_unit_is_hardened(host, prop, value):
    assert host.check_output(f"systemctl show -p {prop} --value iact-collector") == value


def test_config_is_private_and_valid(host):
    conf = host.file("/etc/iact/collector.yaml")
    assert (conf.user, conf.group, conf.mode) == ("root", "iact-collector", 0o640)
    assert host.run(f"{AGENT} check-config").rc == 0
    assert host.file("/etc/logrotate.d/iact-collector").contains("create 0640 iact-collector adm")


def test_status_healthy_and_caught_up(host):
    s = wait_until(lambda: (st := status(host)) and st["healthy"] and st["lag_bytes"] == 0 and st, 60, "caught up")
    assert set(s["files"]) >= {"/var/log/syslog", "/var/log/auth.log"}
    assert s["spool_bytes"] == 0
    assert s["journal"]["enabled"] and s["journal"]["entries_read"] > 0
    # Real entries all carry the fields the agent expects journald to write (else each is re-read, and logged).
    assert s["journal"]["entries_incomplete"] == 0, s["journal"]


def test_logger_line_is_queryable_within_seconds(host, connect):
    from conftest import secret

    marker = f"molecule-{uuid.uuid4()}"
    hostname = host.check_output("hostname -s")
    host.run(f"logger -p user.err -t iacttest {marker}")
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    # The SAI indexes on day and program answer this without ALLOW FILTERING.
    query = SimpleStatement(
        "SELECT host, source, severity, message FROM logging.infrastructure_logs "
        "WHERE day = %s AND program = 'iacttest'"
    )
    inventory_name = host.backend.get_hostname()

    def found():
        today = datetime.now(UTC).date()
        rows = [r for r in reader.execute(query, (today,)) if r.message == marker and r.host == inventory_name]
        return {r.source for r in rows} >= {"journal", "syslog"} and rows

    rows = wait_until(found, 30, f"{marker} from {inventory_name} ({hostname}) in Cassandra", interval=1)
    assert {r.severity for r in rows if r.source == "journal"} == {"err"}


def test_host_metrics_are_stored(host, connect):
    from conftest import secret

    reader = connect("iact_reader", secret("cassandra_reader_password"))
    query = SimpleStatement(
        "SELECT host, message, fields FROM logging.infrastructure_logs WHERE day = %s AND source = 'metrics'"
    )
    name = host.backend.get_hostname()

    def found():
        return [r for r in reader.execute(query, (datetime.now(UTC).date(),)) if r.host == name]

    rows = wait_until(found, 90, f"a host metrics entry from {name}", interval=3)
    assert {"cpu_percent", "mem_percent", "load1", "disk_percent:/"} <= set(rows[0].fields)
