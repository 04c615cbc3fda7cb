"""Repair and cleanup for real: the playbooks' jobs, and the cluster-wide lock that keeps two nodes' jobs apart.

The lock is a row of logging.maintenance_lock taken with a lightweight transaction by
/usr/local/sbin/cassandra-maintenance (roles/cassandra_cluster, README "Maintenance"). These tests start
jobs on several nodes at once and hold the lock from outside to show that only one job runs at a time,
that a refused job names the holder, that a waiting job runs once the holder's TTL expires, and that
every job releases the lock when it ends.
"""

import itertools
import re
import subprocess

import pytest
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement
from conftest import NODES, ROOT, inventory, operator_env, podman, recap, wait_until

JOB = "/usr/local/sbin/cassandra-maintenance"
LOG = "/var/log/cassandra/maintenance.log"
BUSY = 75  # EX_TEMPFAIL: refused because another job holds the lock
LOCK = "SELECT holder, node, job, since FROM logging.maintenance_lock WHERE name = 'cluster'"
STAMP = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"


def lock_row(admin):
    """The lock as a linearizable (SERIAL) read sees it: None when free."""
    return admin.execute(SimpleStatement(LOCK, consistency_level=ConsistencyLevel.SERIAL)).one()


def log_lines(node: str) -> list[str]:
    return podman("exec", node, "sh", "-c", f"cat {LOG} 2>/dev/null || true").stdout.splitlines()


def new_lines(before: dict[str, int]) -> dict[str, list[str]]:
    """Each node's maintenance log lines written since `before` (line counts)."""
    return {node: log_lines(node)[count:] for node, count in before.items()}


def holding_intervals(lines: list[str]) -> list[tuple[str, str]]:
    """(took, released) times of each job in these lines, from the script's own log lines."""
    took = [
        m.group(1) for line in lines if (m := re.match(STAMP + r" \S+ \S+ took the cluster maintenance lock", line))
    ]
    released = [m.group(1) for line in lines if (m := re.match(STAMP + r" \S+ \S+ released the cluster", line))]
    assert len(took) == len(released), lines
    return list(zip(took, released, strict=True))


def assert_disjoint(intervals: list[tuple[str, str]]) -> None:
    """No job took the lock before the previous one had released it."""
    ordered = sorted(intervals)
    for (_, released), (took, _) in itertools.pairwise(ordered):
        assert released <= took, ordered


@pytest.fixture
def lock_free(admin):
    """Start and end each test with the lock free (a failed test must not block the next one)."""
    wait_until(lambda: lock_row(admin) is None, 30, "the maintenance lock to be free")
    yield
    wait_until(lambda: lock_row(admin) is None, 30, "the maintenance lock to be released")


def start_playbook(name: str) -> subprocess.Popen:
    """Start one of the maintenance playbooks as an operator would (polling its async job every 2 s)."""
    return subprocess.Popen(
        [
            "ansible-playbook",
            f"playbooks/cassandra_{name}.yml",
            "-i",
            str(inventory()),
            "-e",
            "cassandra_maintenance_poll_seconds=2",
        ],
        cwd=ROOT,
        env=operator_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish_playbook(proc: subprocess.Popen, before: dict[str, int]) -> tuple[str, dict[str, list[str]]]:
    """Wait for the playbook; every node ran its job once and nothing failed."""
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-5000:]
    counts = recap(out)
    assert set(counts) == set(NODES) and all(c["failed"] == 0 and c["changed"] == 1 for c in counts.values()), counts
    return out, new_lines(before)


def test_repair_playbook_repairs_every_node_one_at_a_time(admin, lock_free):
    before = {node: len(log_lines(node)) for node in NODES}
    out, lines = finish_playbook(start_playbook("repair"), before)
    for node in NODES:
        text = "\n".join(lines[node])
        assert "repair start: nodetool repair -pr -full" in text, text
        assert "repair end: exit 0" in text, text
        assert f"{node} repair released the cluster maintenance lock" in text, text
    assert_disjoint([i for node in NODES for i in holding_intervals(lines[node])])
    assert lock_row(admin) is None
    # Each node's job ran detached (async) and was polled: a dropped SSH connection would not have killed it.
    for node in NODES:
        assert f"ASYNC OK on {node}: jid=" in out, out[-3000:]


def test_cleanup_playbook_waits_for_the_lock_then_cleans_every_node(admin, lock_free):
    """An operator's cleanup meets the lock held by another job: the first node waits, saying who holds
    it, and runs once the holder releases it; then every node cleans up, one at a time."""
    taken = admin.execute(
        "INSERT INTO logging.maintenance_lock (name, holder, node, job, since) "
        "VALUES ('cluster', 'ghost/1/1', 'ghost', 'repair', '2026-01-01T00:00:00Z') IF NOT EXISTS USING TTL 300"
    ).one()
    assert taken.applied
    before = {node: len(log_lines(node)) for node in NODES}
    proc = start_playbook("cleanup")
    try:
        waiting = "cleanup waiting: the cluster maintenance lock is held by ghost (repair since 2026-01-01T00:00:00Z"
        wait_until(lambda: any(waiting in line for line in new_lines(before)[NODES[0]]), 120, "cass1 to wait")
        assert not any(" start: nodetool" in line for n in NODES for line in new_lines(before)[n])
    finally:
        admin.execute("DELETE FROM logging.maintenance_lock WHERE name = 'cluster' IF holder = 'ghost/1/1'")
    _, lines = finish_playbook(proc, before)
    for node in NODES:
        text = "\n".join(lines[node])
        assert "cleanup start: nodetool cleanup" in text and "cleanup end: exit 0" in text, text
    assert_disjoint([i for node in NODES for i in holding_intervals(lines[node])])
    assert lock_row(admin) is None


def test_the_lock_of_a_dead_holder_expires(admin, lock_free):
    """A holder that died (no renewal, no release) blocks the others only until its TTL runs out."""
    admin.execute(
        "INSERT INTO logging.maintenance_lock (name, holder, node, job, since) "
        "VALUES ('cluster', 'dead/1/1', 'dead', 'repair', '2026-01-01T00:00:00Z') IF NOT EXISTS USING TTL 10"
    )
    refused = podman("exec", "cass2", JOB, "cleanup", check=False)
    assert refused.returncode == BUSY and "held by dead (repair since" in refused.stdout, refused
    wait_until(lambda: lock_row(admin) is None, 30, "the dead holder's lock to expire")
    ran = podman("exec", "cass2", JOB, "cleanup", check=False)
    assert ran.returncode == 0 and "released the cluster maintenance lock" in ran.stdout, ran


def test_two_repairs_started_at_once_never_overlap(admin, lock_free):
    """cass1 and cass2 start a repair at the same moment: exactly one runs, the other refuses and names it."""
    before = {node: len(log_lines(node)) for node in NODES[:2]}
    procs = {
        node: subprocess.Popen(
            ["podman", "exec", node, JOB, "repair"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for node in NODES[:2]
    }
    outs = {node: proc.communicate(timeout=300)[0] for node, proc in procs.items()}
    codes = {node: proc.returncode for node, proc in procs.items()}
    assert sorted(codes.values()) == [0, BUSY], (codes, outs)
    winner = next(node for node, rc in codes.items() if rc == 0)
    loser = next(node for node, rc in codes.items() if rc == BUSY)
    assert f"refused: the cluster maintenance lock is held by {winner} (repair since" in outs[loser], outs[loser]
    lines = new_lines(before)
    assert not any(" start: nodetool" in line for line in lines[loser]), lines[loser]
    assert "repair end: exit 0" in "\n".join(lines[winner])
    assert lock_row(admin) is None


def test_a_killed_job_releases_the_lock(admin, lock_free):
    """SIGTERM (systemd stopping cron, an operator's kill) still releases the lock through the trap, once
    nodetool has returned (the repair goes on in Cassandra even if nodetool goes, so the lock waits for it)."""
    proc = subprocess.Popen(
        ["podman", "exec", "cass3", "sh", "-c", f"exec {JOB} repair"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    row = wait_until(lambda: lock_row(admin), 30, "cass3's job to take the lock", interval=0.5)
    assert row.node == "cass3" and row.job == "repair"
    pid = row.holder.split("/")[1]
    podman("exec", "cass3", "kill", "-TERM", pid)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, out
    assert "stopped by SIGTERM" in out and "released the cluster maintenance lock" in out, out
    assert lock_row(admin) is None


def test_the_maintenance_role_reaches_only_its_lock(node1):
    """The credentials kept on every node (root only) open the lock table and nothing else."""
    creds = node1.file("/etc/iact/cassandra-maintenance/credentials")
    assert (creds.user, creds.mode) == ("root", 0o600)
    cqlsh = "/opt/cassandra/bin/cqlsh --cqlshrc=/etc/iact/cassandra-maintenance/cqlshrc --no-color -e"
    own = node1.run(f'{cqlsh} "SELECT * FROM logging.maintenance_lock"')
    assert own.rc == 0, own.stdout + own.stderr
    logs = node1.run(f'{cqlsh} "SELECT * FROM logging.application_logs LIMIT 1"')
    assert logs.rc != 0 and "Unauthorized" in logs.stdout + logs.stderr, logs.stdout + logs.stderr


def test_a_bad_wait_is_a_usage_error():
    """A mistyped `--wait` must not silently become a run that refuses or waits forever."""
    bad = podman("exec", "cass1", JOB, "repair", "--wait", "soon", check=False)
    assert bad.returncode == 2 and "SECONDS" in bad.stderr, bad
