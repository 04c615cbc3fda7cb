"""The add-node guard in every CI run: a host that has never joined is refused as a seed.

The add_node scenario grows the cluster for real (on demand, 15 minutes); this test pins its first
guard here, cheaply: the app host, which runs no Cassandra, is listed as a fourth node and, with
cassandra_cluster_seed_count=4, would be a seed. Preflight must refuse it before anything changes.
"""

from __future__ import annotations

from pathlib import Path

from conftest import NODES, playbook, podman, ring_up, unit_started

JOINS = Path(__file__).resolve().parents[1] / "inventory" / "app1_joins.yml"


def test_a_host_that_never_joined_is_refused_as_a_seed_before_anything_changes():
    started = {node: unit_started(node) for node in NODES}
    seeds = "cassandra_cluster_seed_count=4"
    run = playbook("playbooks/cassandra_add_node.yml", "-i", str(JOINS), "-e", "new_nodes=app1", "-e", seeds)
    assert run.returncode != 0, "the add was refused"
    assert "app1 would be a seed" in run.stdout and "Remove it from the seeds" in run.stdout, run.stdout[-3000:]
    assert podman("exec", "app1", "systemctl", "is-active", "cassandra", check=False).stdout.strip() != "active"
    assert {node: unit_started(node) for node in NODES} == started, "no running node was restarted"
    assert ring_up(3), "the ring is as it was"
