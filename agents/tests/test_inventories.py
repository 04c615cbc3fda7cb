"""The production inventory is an example an operator can use as it is, once the vault is filled in.

The lab inventory is exercised by every Molecule run; nothing else runs `inventories/prod`, so these
checks stand in for its first use: the vault example covers every secret the group_vars ask for,
nothing in it depends on the lab, and every playbook parses and resolves its secrets against it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROD = ROOT / "inventories" / "prod"
EXAMPLE = PROD / "group_vars" / "all" / "vault.yml.example"
PLAYBOOKS = ["site.yml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "playbooks").glob("*.yml"))]


def prod_var_files() -> list[Path]:
    return sorted((PROD / "group_vars").rglob("*.yml"))


def test_vault_example_defines_exactly_the_secrets_the_group_vars_use():
    used = {name for p in prod_var_files() for name in re.findall(r"\bvault_\w+", p.read_text())}
    defined = set(yaml.safe_load(EXAMPLE.read_text()))
    assert used - defined == set(), "add these to vault.yml.example"
    assert defined - used == set(), "these vault.yml.example entries are never used"


def test_prod_inventory_does_not_depend_on_the_lab():
    for path in [PROD / "hosts.yml", EXAMPLE, *prod_var_files()]:
        text = path.read_text()
        for lab_only in ("iact_lab_", ".secrets", "podman", "inventories/lab"):
            assert lab_only not in text, f"{path.relative_to(ROOT)} mentions {lab_only!r}, which exists only in the lab"


@pytest.fixture(scope="module")
def filled_in(tmp_path_factory) -> Path:
    """The prod inventory as an operator has it after step 2 of the README (vault.yml from the example)."""
    inventory = tmp_path_factory.mktemp("inventory") / "prod"
    shutil.copytree(PROD, inventory)
    shutil.copy(EXAMPLE, inventory / "group_vars" / "all" / "vault.yml")
    return inventory


def test_groups_are_the_documented_ones(filled_in):
    listing = subprocess.run(
        ["ansible-inventory", "-i", str(filled_in), "--list"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    groups = json.loads(listing)

    def hosts(group: str) -> set[str]:
        entry = groups.get(group, {})
        return set(entry.get("hosts", [])) | {h for child in entry.get("children", []) for h in hosts(child)}

    assert len(hosts("cassandra")) >= 3, "RF 3 needs three nodes"
    assert len(hosts("dora")) == 1 and hosts("alerting") <= hosts("dora")
    assert hosts("collectors") >= hosts("cassandra") | hosts("dora"), "every appliance host ships its logs"


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_every_playbook_parses_against_the_prod_inventory(filled_in, playbook):
    run = subprocess.run(
        ["ansible-playbook", "--syntax-check", "-i", str(filled_in), playbook], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_each_hosts_secrets_resolve_from_the_vault(filled_in):
    """Templated per host without connecting (debug runs on the controller), as a real run would see them."""
    secrets = {
        "cassandra": ["cassandra_cluster_superuser_password", "cassandra_cluster_writer_password"],
        "collectors": ["collector_agent_cassandra_password"],
        "dora": [
            "django_dora_db_password",
            "django_dora_admin_password",
            "django_dora_api_tokens[0].token",
            "django_dora_logs_password",
        ],
        "alerting": ["alerting_cassandra_password", "alerting_slack_webhook_url"],
    }
    vault = yaml.safe_load(EXAMPLE.read_text())
    for group, names in secrets.items():
        values = "{{ [" + ", ".join(names) + "] | to_json }}"
        run = subprocess.run(
            ["ansible", group, "-i", str(filled_in), "-o", "-m", "ansible.builtin.debug", "-a", f"msg={values}"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        lines = [line for line in run.stdout.splitlines() if "SUCCESS" in line]
        assert lines, run.stdout
        for line in lines:
            resolved = json.loads(json.loads(line.split("=>", 1)[1])["msg"])
            assert all(v in vault.values() for v in resolved), f"{group}: {names} -> {resolved}"
