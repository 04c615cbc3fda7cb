"""playbooks/upgrade_dora.yml run for real: what it promises, checked on the host it upgraded.

A copy of the repository with the next version number and one new (empty) migration is rolled out
to the scenario's app host; then the repository's own version is put back, so the host is left
as converged (unless IACT_LAB_DESTROYED_AFTER_VERIFY=1 says Molecule removes it next). The host is
the one this scenario's verifier tests (molecule.yml), which is also
the lab's app host when the test is run by hand against `scripts/lab up`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import APP_HOST, ROOT, node_ip, playbook, podman, recap, unit_started

MANAGE = "/usr/local/bin/iact-dora"
VENV_PYTHON = "/opt/iact/dora/venv/bin/python"
UNVERIFIED = ssl._create_unverified_context()  # the lab's self-signed certificate
JSON_OUTPUT = {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}


def bumped_source(tmp_path: Path, probe: str) -> tuple[Path, str]:
    """The package with the next version and a migration `probe` that only records itself."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "scripts", src / "scripts")  # the build fetches the dashboard's Chart.js with it
    shutil.copytree(
        ROOT / "agents", src / "agents", ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info")
    )
    init = src / "agents" / "iact" / "__init__.py"
    old = re.search(r'__version__ = "([^"]+)"', init.read_text()).group(1)
    new = f"{old}.post{uuid.uuid4().int % 1000 + 1}"
    init.write_text(init.read_text().replace(old, new))
    migrations = src / "agents" / "iact" / "dora" / "migrations"
    leaf = max(p.stem for p in migrations.glob("[0-9][0-9][0-9][0-9]_*.py"))
    (migrations / f"{probe}.py").write_text(
        "from django.db import migrations\n\n\n"
        "class Migration(migrations.Migration):\n"
        f"    dependencies = [('dora', {leaf!r})]\n"
        "    operations = [migrations.RunSQL('SELECT 1', reverse_sql=migrations.RunSQL.noop)]\n"
    )
    return src, new


def upgrade(src: Path) -> subprocess.CompletedProcess:
    return playbook(
        "playbooks/upgrade_dora.yml", "-e", f"iact_common_source_dir={src}", "--limit", APP_HOST, env=JSON_OUTPUT
    )


def applied_migrations() -> set[str]:
    out = podman("exec", APP_HOST, MANAGE, "showmigrations", "dora").stdout
    return {line.split("]", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("[X]")}


def installed_version() -> str:
    return podman("exec", APP_HOST, VENV_PYTHON, "-c", "import iact; print(iact.__version__)").stdout.strip()


def health() -> tuple[int, dict]:
    with urllib.request.urlopen(f"https://{node_ip(APP_HOST)}/healthz", timeout=30, context=UNVERIFIED) as r:
        return r.status, json.loads(r.read())


@pytest.fixture
def probe():
    """A migration name unique to this run; its record is removed afterwards so no later run finds it applied."""
    name = f"9000_upgrade_probe_{uuid.uuid4().hex[:8]}"
    yield name
    podman(
        "exec", APP_HOST, MANAGE, "shell", "-c",
        f"from django.db.migrations.recorder import MigrationRecorder as R; "
        f"R.Migration.objects.filter(app='dora', name={name!r}).delete()",
        check=False,
    )  # fmt: skip


@pytest.fixture
def restore_repository_version():
    """The repository's own version back on the host after the test, through the same playbook.

    Skipped when the host is destroyed right after the verify (`scripts/test` sets
    IACT_LAB_DESTROYED_AFTER_VERIFY for `molecule test -s default`): CI's run spent 196 s of the
    two cores, beside `full`'s converge, rebuilding a dashboard nobody would look at again.
    """
    yield
    if os.environ.get("IACT_LAB_DESTROYED_AFTER_VERIFY") == "1":
        return
    run = upgrade(ROOT)
    assert run.returncode == 0, "restoring the repository's dashboard failed:\n" + run.stdout[-3000:]


def test_upgrade_dora_migrates_restarts_and_answers_with_the_new_version(tmp_path, probe, restore_repository_version):
    src, version = bumped_source(tmp_path, probe)
    before_version, before_start = installed_version(), unit_started(APP_HOST, "iact-dora")
    assert probe not in applied_migrations()
    assert health()[1]["version"] == before_version != version

    run = upgrade(src)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert recap(run.stdout)[APP_HOST]["failed"] == 0
    assert probe in applied_migrations(), "the new version's migration was not applied"
    assert unit_started(APP_HOST, "iact-dora") != before_start, "gunicorn was not restarted on the new package"
    assert installed_version() == version
    status, body = health()
    assert status == 200 and body == body | {"status": "ok", "version": version}, body
    assert f"{APP_HOST}: iact-dora {version} answers through nginx" in run.stdout, "the version is reported"
