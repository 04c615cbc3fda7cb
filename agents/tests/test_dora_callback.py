"""The Ansible callback records site.yml runs on a live dashboard (real ansible-playbook, real HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iact.dora.models import ApiToken, Deployment, hash_token

ROOT = Path(__file__).resolve().parents[2]
PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.command: {command}
      changed_when: false
"""


def run(tmp_path, name, url, command="/bin/true", check=False):
    (tmp_path / name).write_text(PLAY.format(command=command))
    env = os.environ | {
        "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "plugins" / "callback"),
        "ANSIBLE_CALLBACKS_ENABLED": "iact_dora",
        "IACT_DORA_URL": url,
        "IACT_DORA_TOKEN": "a-token-for-the-callback",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    args = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        name,
    ] + (["--check"] if check else [])
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.django_db(transaction=True)
def test_each_site_yml_run_becomes_one_deployment(live_server, tmp_path):
    ApiToken.objects.create(name="ansible", digest=hash_token("a-token-for-the-callback"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "README").write_text("x")
    subprocess.run([*git, "-C", str(tmp_path), "add", "README"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "first"], check=True)

    ok = run(tmp_path, "site.yml", live_server.url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "iact_dora: recorded this run" in ok.stdout
    failed = run(tmp_path, "site.yml", live_server.url, command="/bin/false")
    assert failed.returncode == 2
    assert run(tmp_path, "site.yml", live_server.url, check=True).returncode == 0  # check mode: not a deployment
    assert run(tmp_path, "other.yml", live_server.url).returncode == 0  # not site.yml
    unreachable = run(tmp_path, "site.yml", "http://127.0.0.1:9")  # nothing listens: a warning, not a failure
    assert unreachable.returncode == 0 and "could not reach" in unreachable.stderr + unreachable.stdout

    runs = list(Deployment.objects.filter(source="ansible").order_by("finished_at"))
    assert [d.status for d in runs] == ["success", "failed"]
    assert {d.service.name for d in runs} == {"iact-appliance"}
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert runs[0].sha == head and runs[0].commits.get().sha == head
