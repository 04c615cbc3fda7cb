"""The rolling restart's ring gate waits for hints: a node is not stopped while any node still holds
hints for another, and the run says so when they never drain.

Hints are made to pile up on purpose: handoff paused on cass1 and cass2, cass3 stopped, rows written
at ONE, cass3 started again. Until handoff resumes, cass1 and cass2 keep those hints.
"""

import re
import threading
import time
from datetime import UTC, datetime

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement
from conftest import playbook, podman, ring_up, secret, wait_until

KEYSPACE = "ring_gate_drill"
HOLDERS = ("cass1", "cass2")


def started_at(node: str) -> float:
    """When systemd last started the node's Cassandra (epoch seconds)."""
    out = podman(
        "exec", node, "systemctl", "show", "--timestamp=us+utc", "-p", "ExecMainStartTimestamp", "--value", "cassandra"
    ).stdout.strip()  # fmt: skip
    return datetime.strptime(out, "%a %Y-%m-%d %H:%M:%S.%f %Z").replace(tzinfo=UTC).timestamp()


def pending_hints(node: str) -> bool:
    """Whether the node holds hints: rows of `nodetool listpendinghints`, or hints files (named by the
    target's host id) that Cassandra has not closed yet and so does not list: with handoff paused,
    the hints of this drill stay in such a file.
    """
    script = "nodetool listpendinghints; ls /var/lib/cassandra/hints"
    out = podman("exec", node, "sh", "-c", script, check=False).stdout
    return bool(re.search(r"(?m)^[0-9a-f]{8}-[0-9a-f]{4}-", out))


def handoff(action: str) -> None:
    for node in HOLDERS:
        podman("exec", node, "nodetool", f"{action}handoff", check=False)


@pytest.fixture
def hints_held_for_cass3(connect):
    # A session of its own: the shared one went through the drill's full outage, and the driver may
    # still be backing off its reconnections.
    admin = connect("iact_admin", secret("cassandra_superuser_password"))
    dc = admin.execute("SELECT data_center FROM system.local").one().data_center
    admin.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = {{'class': 'NetworkTopologyStrategy', '{dc}': 3}}"
    )
    admin.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.rows (id int PRIMARY KEY, body text)")
    handoff("pause")
    try:
        podman("exec", "cass3", "systemctl", "stop", "cassandra")
        wait_until(lambda: ring_up(2) or None, 120, "cass3 seen down by cass1")
        insert = SimpleStatement(
            f"INSERT INTO {KEYSPACE}.rows (id, body) VALUES (%s, %s)", consistency_level=ConsistencyLevel.ONE
        )
        for i in range(300):
            admin.execute(insert, (i, f"row {i} written while cass3 was down"))
        podman("exec", "cass3", "systemctl", "start", "cassandra")
        wait_until(lambda: ring_up(3) or None, 300, "cass3 back UN", interval=3)
        # Hints reach their file on the hints flush period (10 s).
        wait_until(lambda: any(pending_hints(n) for n in HOLDERS), 60, "hints for cass3 pending on cass1 or cass2")
        yield
    finally:
        handoff("resume")
        podman("exec", "cass3", "systemctl", "start", "cassandra", check=False)
        wait_until(lambda: ring_up(3) or None, 300, "all three nodes UN after the drill", interval=3)
        wait_until(lambda: not any(pending_hints(n) for n in HOLDERS), 120, "the drill's hints delivered")
        admin.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")


def test_rolling_restart_waits_for_pending_hints_and_stops_when_they_never_drain(hints_held_for_cass3):
    before = started_at("cass2")
    refused = playbook(
        "playbooks/cassandra_rolling_restart.yml", "--limit", "cass2", "-e", "cassandra_cluster_ring_gate_timeout=10"
    )
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert "hints pending for" in refused.stdout, refused.stdout[-3000:]
    assert started_at("cass2") == before, "cass2 was stopped although hints were pending"

    resumed_at: list[float] = []

    def resume_later() -> None:
        time.sleep(15)
        resumed_at.append(time.time())
        handoff("resume")

    resumer = threading.Thread(target=resume_later)
    resumer.start()
    run = playbook("playbooks/cassandra_rolling_restart.yml", "--limit", "cass2")
    resumer.join()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert started_at("cass2") > resumed_at[0], "cass2 was restarted before the hints it waited on could drain"
