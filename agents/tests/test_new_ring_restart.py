"""Which restart turns authentication on: all nodes at once only on a ring this same run formed.

cassandra_cluster's security.yml restarts a ring that had no data when the run began all at once
(restart_new_ring.yml), and any other ring one node at a time. The full scenario converges a new
ring, so CI's Molecule runs take the first branch against real nodes. The second (production's,
when authentication is switched on for a cluster with data) runs in the add_node scenario, not in
CI; its turns are node_cycle.yml's restarts, which every rolling playbook of the full scenario runs.
This pins the decision between the two, which a mistake would turn into a whole production cluster
restarted at once, and what the rolling loop asks of each node. The expressions are read from the
role's task file and evaluated by Ansible's own templating, as a play would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

SECURITY = Path(__file__).resolve().parents[2] / "roles" / "cassandra_cluster" / "tasks" / "security.yml"
GROUP = ["cass1", "cass2", "cass3"]


def _task(name: str) -> dict:
    tasks = yaml.safe_load(SECURITY.read_text())
    found = [t for t in tasks if t.get("name") == name]
    assert len(found) == 1, f"security.yml has no single task named {name!r}"
    return found[0]


def render(expr: str, variables: dict) -> str:
    return str(Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expr.strip())))


def new_ring(play_hosts: list[str], has_data: dict[str, bool | None]) -> bool:
    """The task's verdict for a play on `play_hosts`, each host's `_cassandra_cluster_has_data`
    as given (None: the fact was never set, e.g. a preflight that did not run)."""
    expr = _task("Learn whether this run formed the ring")["ansible.builtin.set_fact"]["_cassandra_cluster_new_ring"]
    hostvars = {h: ({} if v is None else {"_cassandra_cluster_has_data": v}) for h, v in has_data.items()}
    variables = {
        "groups": {"cassandra": GROUP},
        "cassandra_cluster_group_name": "cassandra",
        "ansible_play_hosts": play_hosts,
        "hostvars": hostvars,
    }
    out = render(expr, variables)
    assert out in {"True", "False"}, f"the expression rendered {out!r}, not a boolean"
    return out == "True"


def test_a_ring_with_no_data_anywhere_restarts_at_once():
    assert new_ring(GROUP, dict.fromkeys(GROUP, False))


@pytest.mark.parametrize("with_data", GROUP)
def test_one_node_with_data_makes_the_restart_rolling(with_data):
    assert not new_ring(GROUP, {h: h == with_data for h in GROUP})


def test_a_ring_that_had_data_restarts_rolling():
    assert not new_ring(GROUP, dict.fromkeys(GROUP, True))


def test_a_limited_play_restarts_rolling_even_on_nodes_without_data():
    """Under --limit the nodes outside the play may hold data (and serve clients): never all at once."""
    assert not new_ring(GROUP[:2], dict.fromkeys(GROUP[:2], False))


def test_a_node_whose_data_was_never_looked_at_counts_as_having_data():
    assert not new_ring(GROUP, {"cass1": False, "cass2": False, "cass3": None})


def test_each_branch_runs_only_under_its_verdict():
    at_once = _task("Restart the new ring at once with authentication on")
    rolling = _task("Restart nodes one at a time with authentication on")
    assert at_once["ansible.builtin.include_tasks"] == "restart_new_ring.yml"
    assert at_once["when"] == "_cassandra_cluster_new_ring | bool"
    assert rolling["ansible.builtin.include_tasks"] == "node_cycle.yml"
    assert rolling["when"] == "not _cassandra_cluster_new_ring | bool"


def test_the_rolling_loop_restarts_exactly_the_nodes_whose_configuration_changed():
    rolling = _task("Restart nodes one at a time with authentication on")
    assert rolling["loop"] == "{{ ansible_play_hosts }}" and rolling["run_once"] is True
    assert rolling["loop_control"]["loop_var"] == "_cassandra_cluster_node"
    action = rolling["vars"]["_cassandra_cluster_node_action"]
    needed = {"cass1": True, "cass2": False, "cass3": True}
    hostvars = {h: {"_cassandra_cluster_restart_needed": v} for h, v in needed.items()}
    got = {h: render(action, {"hostvars": hostvars, "_cassandra_cluster_node": h}) for h in GROUP}
    assert got == {"cass1": "restart", "cass2": "none", "cass3": "restart"}
