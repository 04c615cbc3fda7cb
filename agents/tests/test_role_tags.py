"""Phase tags of the Python roles (collector_agent, django_dora, alerting) select their phases in site.yml.

`ansible-playbook site.yml --tags configure` must reach these roles' configuration and nothing of
their install or service phases; preflight (`always`) comes along, since it loads the values the
other phases read. `--list-tasks` needs no host, so this runs without the lab.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# Each role's phase tag -> the includes of tasks/main.yml it selects (by task name).
PHASES: dict[str, dict[str, set[str]]] = {
    "collector_agent": {
        "install": {"Build the package on the controller and install it offline"},
        "configure": {
            "Configure the agent",
            "Make rsyslog write each line's severity and facility (collector_agent_rsyslog_severity)",
        },
        "service": {"Run the agent under systemd"},
    },
    "django_dora": {
        "install": {"Install MariaDB, nginx and the iact package with its dora extra"},
        "configure": {
            "Create the database and its least-privilege user",
            "Configure Django, migrate, collect static files, create the admin and tokens",
        },
        "service": {"Run gunicorn behind nginx"},
        "maintenance": {"Install the maintenance jobs (session cleanup, health check, backup)"},
    },
    "alerting": {
        "install": {"Install the iact package into the alerting virtualenv"},
        "configure": {"Configure rules, channels and the alert log"},
        "service": {"Schedule the evaluation"},
    },
}
TAGS = sorted({tag for phases in PHASES.values() for tag in phases})


@cache
def listed(tag: str) -> dict[str, set[str]]:
    """Task names per role that `site.yml --tags <tag> --list-tasks` shows against the lab inventory."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "site.yml", "-i", "inventories/lab"]
    run = subprocess.run(
        [*argv, "--list-tasks", "--tags", tag],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out: dict[str, set[str]] = {}
    for line in run.stdout.splitlines():
        role, sep, rest = line.strip().partition(" : ")
        if sep and role in PHASES:
            out.setdefault(role, set()).add(rest.split("\tTAGS:")[0].strip())
    return out


@pytest.mark.parametrize("role", sorted(PHASES))
def test_every_phase_is_tagged_and_hands_its_tags_to_its_tasks(role):
    # Without `apply`, --tags configure would select the include and then skip every task inside it.
    for task in yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text()):
        include = task["ansible.builtin.include_tasks"]
        assert isinstance(include, dict) and include["apply"]["tags"] == task["tags"], task["name"]
        assert task["tags"][0] in {"always", *TAGS}, f"{role}: '{task['name']}' has no phase tag: {task['tags']}"
        assert {f"{role}_{t}" for t in task["tags"]} & set(task["tags"]), f"{task['name']}: no role-prefixed tag"


@pytest.mark.parametrize("tag", TAGS)
def test_a_phase_tag_selects_that_phase_of_each_role_and_no_other(tag):
    shown = listed(tag)
    for role, phases in PHASES.items():
        names = shown.get(role, set())
        assert phases.get(tag, set()) <= names, f"--tags {tag} misses {role}'s {phases.get(tag, set()) - names}"
        assert "Preflight checks" in names, f"--tags {tag} skips {role}'s preflight"
        others = set().union(*(n for t, n in phases.items() if t != tag))
        assert not others & names, f"--tags {tag} also selects {role}'s {others & names}"


@pytest.mark.parametrize("role", sorted(PHASES))
def test_the_internal_phase_list_restricts_each_phase_like_its_tag(role):
    # playbooks/cassandra_enable_tls.yml runs only [configure, service] of these roles through it.
    for task in yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text()):
        phase = task["tags"][0]
        if phase == "always":
            assert "when" not in task, f"{role}: preflight runs whatever the phases"
            continue
        assert task["when"] == f"_{role}_phases is not defined or '{phase}' in _{role}_phases", task["name"]


def test_the_tls_migration_installs_a_client_only_where_it_is_not_this_checkouts_version():
    plays = yaml.safe_load((REPO / "playbooks" / "cassandra_enable_tls.yml").read_text())
    clients = {p["roles"][0]["role"]: p for p in plays if p.get("roles") and p["roles"][0]["role"] in PHASES}
    assert set(clients) == set(PHASES), "each client role reconnects over TLS"
    for role, play in clients.items():
        assert play["vars"][f"_{role}_phases"] == "{{ _client_phases }}", role
        (include,) = play["pre_tasks"]
        assert include["ansible.builtin.include_tasks"] == "tasks/client_phases.yml", role
        assert include["vars"]["_client_install_dir"] == f"{{{{ {role}_install_dir }}}}", role

    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    init_plugin_loader()  # the expression reads the checkout's version through the file lookup

    tasks = yaml.safe_load((REPO / "playbooks" / "tasks" / "client_phases.yml").read_text())
    choose = tasks[-1]
    ours = re.search(r'__version__ = "([^"]+)"', (REPO / "agents" / "iact" / "__init__.py").read_text()).group(1)

    def phases(installed: dict) -> list[str]:
        variables = {"playbook_dir": str(REPO / "playbooks"), "_client_installed": installed}
        templar = Templar(loader=DataLoader(), variables=variables)
        variables |= {k: templar.template(trust_as_template(v)) for k, v in choose["vars"].items()}
        expr = choose["ansible.builtin.set_fact"]["_client_phases"]
        return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expr))

    assert phases({"rc": 0, "stdout": ours}) == ["configure", "service"]
    assert phases({"rc": 0, "stdout": ours + ".post1"}) == ["install", "configure", "service"]
    assert phases({"rc": 2, "stdout": ""}) == ["install", "configure", "service"], "no virtualenv: install"
