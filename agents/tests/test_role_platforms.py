"""The Python roles claim, and accept, only Debian 12.

Their virtualenvs run the host's python3 and install wheels built by the controller's Python of the
same minor version; pyproject.toml needs 3.11, Debian 12's. Ubuntu 22.04 (Python 3.10) was claimed
in meta/main.yml and the READMEs but could not work, so the preflight now refuses it with a message
that says why, before anything is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = ("collector_agent", "django_dora", "alerting", "iact_common")
PREFLIGHTED = ("collector_agent", "django_dora", "alerting")
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: "{{ role }}"
        tasks_from: preflight
"""


@pytest.mark.parametrize("role", ROLES)
def test_meta_claims_debian_12_only(role):
    meta = yaml.safe_load((REPO / "roles" / role / "meta" / "main.yml").read_text())
    assert meta["galaxy_info"]["platforms"] == [{"name": "Debian", "versions": ["bookworm"]}]


def preflight(tmp_path: Path, role: str, facts: dict[str, str]) -> subprocess.CompletedProcess:
    """The role's preflight on localhost, with the distribution facts a host would report."""
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PLAYBOOK)
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-e", f"role={role}"]
    return subprocess.run(
        [*argv, "-e", json.dumps({"ansible_facts": facts})],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=os.environ | {"ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_FORCE_COLOR": "0"},
    )


@pytest.mark.parametrize("role", PREFLIGHTED)
def test_preflight_refuses_ubuntu_saying_why(tmp_path, role):
    run = preflight(
        tmp_path,
        role,
        {"distribution": "Ubuntu", "distribution_major_version": "22", "distribution_version": "22.04"}
        | {"os_family": "Debian"},
    )
    assert run.returncode != 0
    said = " ".join(run.stdout.split())
    assert f"{role} supports Debian 12 (bookworm) only" in said, run.stdout[-2000:]
    assert "runs Ubuntu 22.04" in said and "Python 3.11" in said


@pytest.mark.parametrize("role", PREFLIGHTED)
def test_preflight_accepts_debian_12(tmp_path, role):
    run = preflight(
        tmp_path,
        role,
        {"distribution": "Debian", "distribution_major_version": "12", "distribution_version": "12.15"}
        | {"os_family": "Debian"},
    )
    # Later assertions want this role's inputs (passwords, hosts); the distribution check must pass.
    after = run.stdout.split(f"TASK [{role} : Assert the host runs Debian 12]", 1)
    assert len(after) == 2, run.stdout[-2000:]
    assert after[1].split("\n", 1)[1].lstrip().startswith("ok: [localhost]"), after[1][:500]
    if (REPO / "roles" / role / "vars" / "Debian.yml").exists():
        assert f"roles/{role}/vars/Debian.yml" in run.stdout, "first_found did not load vars/Debian.yml"
