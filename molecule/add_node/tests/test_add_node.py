"""Growing the cluster with playbooks/cassandra_add_node.yml, while every node keeps logging.

Converge built the three-node cluster with site.yml; cass4 is a bare host in no group. The test does
what the README tells an operator: list the new host in the cassandra group (inventory/grow.yml, as
a second inventory source) and run the playbook. The promise checked here is the playbook's: the new node
bootstraps and gets the agent, the running nodes are not restarted, cleanup then runs on each of
them, and ingest goes on throughout with no line lost or stored twice.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from conftest import (
    NODES,
    Writers,
    agent_status,
    playbook,
    podman,
    recap,
    ring_up,
    secret,
    unit_started,
    wait_until,
    written,
)

GROW = Path(__file__).resolve().parents[1] / "inventory" / "grow.yml"
NEW = "cass4"
# `nodetool status logging`: "UN  10.89.0.5  1.2 MiB  16  75.3%  <host id>  rack1"
OWNS = re.compile(r"^UN\s+(\S+)\s.*?\s(\d+(?:\.\d+)?)%\s", re.MULTILINE)


def ownership() -> dict[str, float]:
    """Effective ownership of the logging keyspace (RF 3) per node address, as cass1 sees it."""
    out = podman("exec", "cass1", "nodetool", "status", "logging").stdout
    return {address: float(owns) for address, owns in OWNS.findall(out)}


def test_a_new_host_among_the_seeds_is_refused_before_anything_changes():
    """A seed never bootstraps: listed among the seeds, the new host would join with no data and
    serve reads for ranges it does not hold. Preflight refuses it, naming the fix, before any node
    is touched or started (issue 16)."""
    started = {node: unit_started(node) for node in NODES}
    run = playbook(
        "playbooks/cassandra_add_node.yml",
        "-i",
        str(GROW),
        "-e",
        f"new_nodes={NEW}",
        "-e",
        "cassandra_cluster_seed_count=4",
    )
    assert run.returncode != 0, "the add was refused"
    assert f"{NEW} would be a seed" in run.stdout and "Remove it from the seeds" in run.stdout, run.stdout[-3000:]
    assert podman("exec", NEW, "systemctl", "is-active", "cassandra", check=False).stdout.strip() != "active"
    assert {node: unit_started(node) for node in NODES} == started, "no running node was restarted"
    assert ring_up(3), "the ring is as it was"


def test_a_fourth_node_joins_under_ingest_and_the_others_are_cleaned_up(connect):
    assert ring_up(3), "converge left three nodes UN"
    assert list(ownership().values()) == [100.0] * 3, "with 3 nodes and RF 3 every node holds all the data"
    started = {node: unit_started(node) for node in NODES}

    writers = Writers(uuid.uuid4().hex[:8], program="growtest")
    writers.start()
    t0 = time.monotonic()
    try:
        grow = playbook("playbooks/cassandra_add_node.yml", "-i", str(GROW), "-e", f"new_nodes={NEW}")
    finally:
        counts = writers.stop()
    cleanups = re.findall(r"cass\d: cleanup finished in [\d:.]+", grow.stdout)
    print(f"\ncassandra_add_node.yml took {time.monotonic() - t0:.0f} s; {'; '.join(cleanups)}")

    assert grow.returncode == 0, grow.stdout[-4000:] + grow.stderr[-2000:]
    assert all(h["failed"] == 0 and h["unreachable"] == 0 for h in recap(grow.stdout).values())
    for node in NODES:
        assert f"{node}: cleanup finished in" in grow.stdout, f"cleanup ran on {node} and reported its time"
    assert f"{NEW}: cleanup" not in grow.stdout, "no cleanup on the node that just joined"
    assert "Assert no node of the ring is joining" in grow.stdout, "the join was gated on no other node joining"
    assert {node: unit_started(node) for node in NODES} == started, "the running nodes were not restarted"

    assert ring_up(4), "four nodes UN"
    shares = ownership()
    assert len(shares) == 4 and abs(sum(shares.values()) - 300.0) < 1.0, shares
    assert all(0 < share < 100 for share in shares.values()), f"cass4 took a share of every node's ranges: {shares}"

    reader = connect("iact_reader", secret("cassandra_reader_password"))
    assert writers.stored_once(reader, counts), "no line written during the change stored twice"

    # The new node runs the agent too, and its lines are stored.
    wait_until(lambda: agent_status(NEW).get("healthy") or None, 60, f"a healthy agent on {NEW}")
    mark = written(NEW)
    newcomer = Writers(uuid.uuid4().hex[:8], nodes=(NEW,), program="growtest")
    newcomer.start()
    try:
        wait_until(lambda: written(NEW) > mark + 40 or None, 60, f"{NEW}'s agent to write its new lines")
    finally:
        counts = newcomer.stop()
    assert newcomer.stored_once(reader, counts), f"{NEW}'s lines stored once"
