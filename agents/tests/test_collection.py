"""The appliance as the Ansible collection iact.observability: built, installed offline, run by FQCN.

The clone is tested everywhere else; this proves the other way in (README: Two ways to run it) from a
directory that is not the repository, with no ansible.cfg, so nothing resolves through the clone's
roles_path or plugin paths. One version for the wheel, the dashboard and the collection is checked here
too, and the changelog's release dry run (antsibull-changelog in a scratch copy) proves CHANGELOG.md can be
produced from the fragments.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
# The tarball's top level: what the roles need (the agents' source for the wheelhouse, cql/ for the schema
# CLI), the collection's own directories, and the documents. Anything else is a build_ignore omission.
TOP_LEVEL = {
    "CHANGELOG.md",
    "FILES.json",
    "MANIFEST.json",
    "README.md",
    "agents",
    "changelogs",
    "cql",
    "docs",
    "meta",
    "playbooks",
    "plugins",
    "pyproject.toml",
    "roles",
    "scripts",
    "site.yml",
}
INVENTORY = """\
all:
  children:
    cassandra:
      hosts:
        cass1:
    collectors:
      hosts:
        cass1:
        app1:
    dora:
      hosts:
        app1:
    alerting:
      hosts:
        app1:
"""


def package_version() -> str:
    """The version the wheel gets: pyproject.toml reads iact.__version__ from agents/iact/__init__.py."""
    return re.search(r'^__version__ = "([^"]+)"$', (ROOT / "agents/iact/__init__.py").read_text(), re.M)[1]


def pinned(name: str) -> str:
    """A dev dependency's pinned version in pyproject.toml."""
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    return next(spec.split("==")[1] for spec in dev if spec.split("==")[0] == name)


def test_wheel_dashboard_and_collection_share_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # The wheel (agents and dashboard are one package, iact.dora inside it) takes its version from iact.__version__,
    # which roles/iact_common also reads to install that exact version on the hosts.
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "iact.__version__"}
    assert "agents/iact/__init__.py" in (ROOT / "roles/iact_common/tasks/main.yml").read_text()
    assert str(GALAXY["version"]) == package_version(), "bump galaxy.yml and agents/iact/__init__.py together"


def test_requires_ansible_is_the_pinned_release_line():
    core = Version(pinned("ansible-core"))
    runtime = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())
    spec = SpecifierSet(runtime["requires_ansible"])
    assert core in spec, f"meta/runtime.yml requires_ansible {spec} excludes the pinned ansible-core {core}"
    lower = Version(next(s.version for s in spec if s.operator == ">="))
    assert (lower.major, lower.minor) == (core.major, core.minor), "requires_ansible starts at the tested release line"


def test_galaxy_dependencies_are_requirements_yml_entries():
    wanted = {c["name"]: c["version"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    for name, spec in GALAXY["dependencies"].items():
        assert wanted.get(name) == spec, f"{name}: galaxy.yml says {spec}, requirements.yml {wanted.get(name)}"


def clean_env(collections: Path) -> dict[str, str]:
    """Ansible as a collection user has it: no project ansible.cfg, only the installed collection (and the
    collections of the `ansible` package) on the search path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(collections.parent / "ansible-home"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the tarball from the working tree and install it offline into a scratch collections path."""
    work = tmp_path_factory.mktemp("collection")
    env = clean_env(work / "collections")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(work / "dist")],
        check=True, capture_output=True, text=True, cwd=work, env=env,
    )  # fmt: skip
    (tarball,) = (work / "dist").glob("*.tar.gz")
    subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", str(work / "collections"), str(tarball)],
        check=True, capture_output=True, text=True, cwd=work, env=env,
    )  # fmt: skip
    elsewhere = work / "elsewhere"  # not the repository: no ansible.cfg, no roles/ next to the playbook
    elsewhere.mkdir()
    (elsewhere / "hosts.yml").write_text(INVENTORY)
    root = work / "collections" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    print(f"\n{tarball.name}: {tarball.stat().st_size / 1024:.0f} KiB")
    return {"tarball": tarball, "root": root, "cwd": elsewhere, "env": env}


def playbook(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "ansible-playbook", "-i", "hosts.yml", *args],
        capture_output=True, text=True, cwd=installed["cwd"], env=installed["env"], check=False,
    )  # fmt: skip


def test_tarball_holds_the_collection_and_nothing_secret(installed):
    with tarfile.open(installed["tarball"]) as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == TOP_LEVEL
    assert f"{FQCN.replace('.', '-')}-{GALAXY['version']}.tar.gz" == installed["tarball"].name
    for name in names:
        assert not re.search(r"vault[^/]*\.ya?ml$|\.secrets|\.sqlite3$|__pycache__|\.egg-info", name), name
    assert not [n for n in names if n.startswith(("agents/tests", "molecule", "inventories", "lab"))]
    assert installed["tarball"].stat().st_size < 2 * 1024 * 1024, "the collection should stay small"


def test_installed_collection_is_a_source_tree_the_roles_can_build_from(installed):
    # roles/iact_common builds the wheelhouse from iact_common_source_dir, "{{ role_path }}/../..": the collection's
    # root once installed. It hashes pyproject.toml and agents/iact, runs scripts/fetch-vendor and pip wheel.
    root = installed["root"]
    assert (root / "roles/iact_common/../..").resolve() == root.resolve()
    for needed in ("pyproject.toml", "README.md", "scripts/fetch-vendor", "agents/iact/__init__.py", "cql"):
        assert (root / needed).exists(), needed
    assert os.access(root / "scripts/fetch-vendor", os.X_OK)

    def sources(base: Path) -> set[str]:
        suffixes = {".py", ".cql", ".toml", ".html", ".js", ".css", ".json"}
        return {
            str(p.relative_to(base))
            for p in (base / "agents/iact").rglob("*")
            if p.is_file() and p.suffix in suffixes and "__pycache__" not in p.parts and "vendor" not in p.parts
        }

    assert sources(root) == sources(ROOT), "the wheelhouse built from the collection would differ from the clone's"
    assert sorted(p.name for p in (root / "cql").iterdir()) == sorted(p.name for p in (ROOT / "cql").iterdir())


def test_site_runs_by_fqcn_from_another_directory(installed):
    done = playbook(installed, f"{FQCN}.site", "--syntax-check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/ansible_collections/iact/observability/playbooks/site.yml" in done.stdout
    # Every play of site.yml, its roles resolved inside the collection (short names in the collection's playbooks).
    listed = playbook(installed, f"{FQCN}.site", "--list-tasks")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for role in ("iact_pki", "cassandra_cluster", "collector_agent", "django_dora", "alerting"):
        assert f"{FQCN}.{role} : " in listed.stdout, role


def test_every_playbook_parses_by_fqcn(installed):
    names = sorted(p.stem for p in (installed["root"] / "playbooks").glob("*.yml"))
    assert {"site", "upgrade_agents", "upgrade_dora", "cassandra_upgrade", "backup", "restore"} <= set(names)
    done = playbook(installed, *(f"{FQCN}.{name}" for name in names), "--syntax-check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_roles_and_plugins_resolve_by_fqcn(installed):
    (installed["cwd"] / "roles.yml").write_text(
        "- name: The collection's roles by FQCN\n"
        "  hosts: cassandra\n"
        "  gather_facts: false\n"
        "  roles:\n"
        f"    - {FQCN}.iact_pki\n"
        f"    - {FQCN}.cassandra_cluster\n"
        f"    - {FQCN}.collector_agent\n"
    )
    done = playbook(installed, "roles.yml", "--syntax-check")
    assert done.returncode == 0, done.stdout + done.stderr
    for kind, plugin in (("callback", "iact_dora"), ("connection", "iact_podman")):
        doc = subprocess.run(
            [BIN / "ansible-doc", "-t", kind, f"{FQCN}.{plugin}"],
            capture_output=True, text=True, cwd=installed["cwd"], env=installed["env"], check=False,
        )  # fmt: skip
        assert doc.returncode == 0 and str(installed["root"]) in doc.stdout, doc.stderr


def test_dynamic_includes_inside_the_collection_use_its_own_roles(installed):
    # collector_agent includes iact_common by its short name at run time. A local play that stops at iact_common's
    # first assert (nothing else runs, no host is touched) shows which copy Ansible found.
    (installed["cwd"] / "dynamic.yml").write_text(
        "- name: Dynamic include by short name\n"
        "  hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: The collector's install step\n"
        "      ansible.builtin.include_role:\n"
        f"        name: {FQCN}.collector_agent\n"
        "        tasks_from: install.yml\n"
        "      vars:\n"
        "        collector_agent_install_dir: not-an-absolute-path\n"
    )
    done = subprocess.run(
        [BIN / "ansible-playbook", "-i", "localhost,", "dynamic.yml"],
        capture_output=True, text=True, cwd=installed["cwd"], env=installed["env"], check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "iact_common: iact_common_install_dir must be an absolute path" in done.stdout
    assert f"{installed['root']}/roles/iact_common/tasks/main.yml" in done.stdout


PROBE_BACKUP_DIR = """- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [vars/backup_dir.yml]
  tasks:
    - ansible.builtin.debug:
        msg: "BACKUPS={{ _backup_default_dir }}"
"""


def test_backups_land_in_the_project_not_inside_the_installed_collection(installed):
    """backup.yml's default backup_dir was the playbooks' ../backups: inside the collection once installed,
    where an upgrade of the collection would delete every set."""
    probe = installed["root"] / "playbooks" / "probe_backup_dir.yml"
    probe.write_text(PROBE_BACKUP_DIR)

    def probe_with(env: dict) -> str:
        done = subprocess.run(
            [BIN / "ansible-playbook", "-i", "hosts.yml", str(probe)], capture_output=True, text=True,
            cwd=installed["cwd"], env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    env = {k: v for k, v in installed["env"].items() if k != "PWD"}
    try:
        from_shell = probe_with({**env, "PWD": str(installed["cwd"])})  # a shell sets PWD to where it runs
        without = probe_with(env)  # sudo with env_reset, systemd, a runner: no PWD
        from_root = probe_with({**env, "PWD": "/"})
    finally:
        probe.unlink()
    assert f'BACKUPS={installed["cwd"]}/backups"' in from_shell, from_shell
    assert '"BACKUPS="' in without and '"BACKUPS="' in from_root, "no default: the playbooks ask for backup_dir"
    clone = subprocess.run(
        [BIN / "ansible-playbook", "-i", "localhost,", str(ROOT / "playbooks" / "vars" / ".." / "backup.yml"),
         "--list-tasks"], capture_output=True, text=True, cwd=installed["cwd"], env=installed["env"], check=False,
    )  # fmt: skip
    assert clone.returncode == 0, clone.stdout + clone.stderr


def test_clone_site_yml_imports_the_collection_playbook():
    # One list of plays: the clone's site.yml and iact.observability.site cannot drift apart.
    plays = yaml.safe_load((ROOT / "site.yml").read_text())
    assert [p["ansible.builtin.import_playbook"] for p in plays] == ["playbooks/site.yml"]


def test_changelog_release_dry_run_writes_changelog_md(tmp_path):
    scratch = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".venv", ".git", ".hypothesis", ".*cache", "build", "artifacts", "__pycache__")
    shutil.copytree(ROOT, scratch, ignore=ignore, symlinks=True)
    (scratch / "CHANGELOG.md").unlink(missing_ok=True)
    fragments = sorted((scratch / "changelogs/fragments").glob("*.yml"))
    assert fragments, "nothing to release"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [BIN / "antsibull-changelog", "release", "--date", "2000-01-01"],
        capture_output=True, text=True, cwd=scratch, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    changelog = (scratch / "CHANGELOG.md").read_text()
    assert f"v{GALAXY['version']}".replace(".", "\\.") in changelog
    released = yaml.safe_load((scratch / "changelogs/changelog.yaml").read_text())["releases"][str(GALAXY["version"])]
    assert sorted(released["fragments"]) == sorted(p.name for p in fragments)
    assert not list((scratch / "changelogs/fragments").glob("*.yml")), "a release consumes its fragments"
    for section in ("Major Changes", "Minor Changes", "Security Fixes", "Bugfixes"):
        assert f"### {section}" in changelog
