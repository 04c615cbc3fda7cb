"""Repository-wide checks of the Ansible roles' conventions."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    # A required input (iact_common_install_dir) has no default: Ansible refuses one with `required`.
    required = {name for name, spec in specs.items() if spec.get("required")}
    assert not required & set(defaults), f"required options with a default: {sorted(required & set(defaults))}"
    specs = {name: spec for name, spec in specs.items() if name not in required}
    assert set(specs) == set(defaults), (
        f"only in defaults: {sorted(set(defaults) - set(specs))}; only in specs: {sorted(set(specs) - set(defaults))}"
    )
    for name, value in defaults.items():
        assert specs[name].get("default") == value, f"{name}: spec default {specs[name].get('default')!r} != {value!r}"
        assert specs[name].get("description"), f"{name} has no description in argument_specs"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_public_variables_are_role_prefixed_and_documented(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    readme = (role / "README.md").read_text()
    for name in defaults:
        assert name.startswith(f"{role.name}_"), f"{name} lacks the {role.name}_ prefix"
        assert f"`{name}`" in readme, f"{name} is not documented in {role.name}/README.md"
    internal = yaml.safe_load((role / "vars" / "main.yml").read_text()) or {}
    for name in internal:
        assert name.startswith(f"_{role.name}_"), f"internal variable {name} lacks the _{role.name}_ prefix"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_templates_open_with_ansible_managed(role):
    for template in (role / "templates").glob("*.j2"):
        head = "\n".join(template.read_text().splitlines()[:3])
        assert "{{ ansible_managed }}" in head, f"{template.name} does not say it is managed"


def _options(role: Path) -> dict:
    return yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def _plain(text: str) -> str:
    """Markdown and YAML spell the same sentence differently (backticks, wrapping); compare the words."""
    return " ".join(text.replace("`", "").replace("\\|", "|").split())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_two_options_share_a_description(role):
    # A description copied from the option above reads plausibly and says something false
    # (issue 16: cassandra_cluster_name was "System account that owns the data").
    seen: dict[str, str] = {}
    for name, spec in _options(role).items():
        text = _plain(str(spec.get("description", "")))
        assert text not in seen, f"{role.name}: {name} repeats the description of {seen.get(text)}: {text!r}"
        seen[text] = name


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_readme_rows_say_what_the_specs_say(role):
    # The README's variable table is what operators read; it must carry the spec's description
    # (it may add a pointer after it), so the two cannot drift apart again.
    rows: dict[str, str] = {}
    in_table = False
    for line in (role / "README.md").read_text().splitlines():
        if line.startswith("| Variable |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and line.startswith("| `"):
            # Cells split on pipes outside code spans (a default may hold a Jinja `| filter`).
            cells = re.findall(r"(?:`[^`]*`|\\\||[^|`])+", line.strip().strip("|"))
            rows[cells[0].strip().strip("`")] = cells[-1].strip()
    drift = [
        f"{name}: README says {rows.get(name)!r}, the spec says {spec['description']!r}"
        for name, spec in _options(role).items()
        if not _plain(rows.get(name, "")).startswith(_plain(str(spec["description"])))
    ]
    assert not drift, f"{role.name}/README.md differs from meta/argument_specs.yml:\n" + "\n".join(drift)


REPO = Path(__file__).resolve().parents[2]
# Phase tags of the roles' tasks/main.yml, and the include each one must select (by task name).
PHASES = {
    "cassandra_cluster": {
        "install": "Install Java and Cassandra",
        "configure": "Configure Cassandra",
        "service": "Start nodes one at a time, restart changed ones one at a time",
        "security": "Enable authentication without locking anyone out",
        "schema": "Apply the logging schema",
        "maintenance": "Schedule repair and cleanup",
    },
    "iact_pki": {
        "pki_ca": "Create or read the CA on the controller",
        "pki_certs": "Issue this host's node certificate on the controller",
        "pki_trust": "Install the CA certificate on the host",
    },
}


@pytest.mark.parametrize("role", sorted(PHASES))
def test_phase_includes_hand_their_tags_to_the_included_tasks(role):
    # A tag on a dynamic include selects the include but not the tasks it pulls in: without
    # `apply`, `--tags configure` would run the include and then skip every task inside it.
    for task in yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text()):
        include = task["ansible.builtin.include_tasks"]
        assert isinstance(include, dict), f"{role}: '{task['name']}' has no apply: tags"
        assert include["apply"]["tags"] == task["tags"], f"{role}: '{task['name']}' applies other tags than it has"


@pytest.mark.parametrize(("role", "tag"), [(role, tag) for role, tags in PHASES.items() for tag in tags])
def test_a_phase_tag_selects_that_phase_alone(role, tag):
    # --list-tasks needs no host up: it shows what `ansible-playbook site.yml --tags <tag>` would run
    # against the lab inventory (the first play deploys both roles on the cassandra group).
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "site.yml",
            "-i",
            "inventories/lab",
            "--list-tasks",
            "--tags",
            tag,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    listed = [
        line.split(":", 1)[1].split("\tTAGS:")[0].strip()
        for line in run.stdout.splitlines()
        if line.strip().startswith(f"{role} : ")
    ]
    assert PHASES[role][tag] in listed, f"--tags {tag} does not select '{PHASES[role][tag]}': {listed}"
    others = {name for other, name in PHASES[role].items() if other != tag}
    assert not others & set(listed), f"--tags {tag} also selects {others & set(listed)}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_roles_claim_only_debian_12(role):
    # Ubuntu 22.04's Python 3.10 cannot run the agents (3.11+): claiming it promised what fails.
    platforms = yaml.safe_load((role / "meta" / "main.yml").read_text())["galaxy_info"]["platforms"]
    assert platforms == [{"name": "Debian", "versions": ["bookworm"]}], f"{role.name} claims {platforms}"


PREFLIGHT = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: cassandra_cluster
        tasks_from: preflight.yml
"""


@pytest.mark.parametrize(
    ("distribution", "major", "version", "refused"),
    [("Ubuntu", "22", "22.04", True), ("Debian", "11", "11.9", True), ("Debian", "12", "12.7", False)],
)
def test_cassandra_preflight_refuses_anything_but_debian_12(tmp_path, distribution, major, version, refused):
    facts = {"distribution": distribution, "distribution_major_version": major, "distribution_version": version}
    (tmp_path / "pb.yml").write_text(PREFLIGHT)
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            str(tmp_path / "pb.yml"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps({"ansible_facts": facts}),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=os.environ | {"ANSIBLE_ROLES_PATH": str(REPO / "roles")},
    )
    assert run.returncode != 0, "localhost is in no cassandra group: preflight stops either way"
    assert ("supports Debian 12 (bookworm) only" in run.stdout) == refused, run.stdout[-3000:]
    if not refused:
        # Past the platform check, the distribution's values load and the next assert is reached.
        assert "Load the distribution's values" in run.stdout and "is not in the inventory group" in run.stdout
