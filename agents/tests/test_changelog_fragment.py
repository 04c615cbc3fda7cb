"""scripts/check-changelog-fragment: which changes need a fragment, which base is compared, and its verdicts.

The logic is tested on its own, then the script end to end on throwaway git repositories: a branch against
origin/main, main itself (the last commit), an explicit base, a release, and uncommitted work.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-changelog-fragment"


def load_script():
    loader = importlib.machinery.SourceFileLoader("check_changelog_fragment", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


ccf = load_script()
SECTIONS = ccf.configured_sections(ROOT)


@pytest.mark.parametrize(
    ("path", "needed"),
    [
        ("roles/cassandra_cluster/tasks/main.yml", True),
        ("playbooks/upgrade_agents.yml", True),
        ("playbooks/files/backup_set.py", True),
        ("plugins/callback/iact_dora.py", True),
        ("agents/iact/collector/cli.py", True),
        ("site.yml", True),
        ("meta/runtime.yml", True),
        ("agents/tests/test_collection.py", False),
        ("roles/cassandra_cluster/README.md", False),
        ("README.md", False),
        ("docs/upgrading.md", False),
        ("molecule/full/converge.yml", False),
        ("scripts/test", False),
        ("changelogs/fragments/x.yml", False),
        ("rolesx/a.yml", False),
    ],
)
def test_what_needs_a_fragment(path, needed):
    assert ccf.needs_fragment(path) is needed


def test_classify_counts_fragments_but_not_deleted_ones_and_a_release_only_when_modified():
    verdict = ccf.classify([("M", "roles/a/tasks/main.yml"), ("D", "changelogs/fragments/old.yml")])
    assert verdict.shipped == ["roles/a/tasks/main.yml"] and verdict.fragments == [] and not verdict.ok
    verdict = ccf.classify([("M", "roles/a/tasks/main.yml"), ("A", "changelogs/fragments/new.yaml")])
    assert verdict.fragments == ["changelogs/fragments/new.yaml"] and verdict.ok
    assert ccf.classify([("M", "agents/iact/__init__.py"), ("M", "changelogs/changelog.yaml")]).ok  # a release
    assert not ccf.classify([("M", "agents/iact/x.py"), ("A", "changelogs/changelog.yaml")]).ok  # set-up, not one
    assert not ccf.classify([("M", "agents/iact/x.py"), ("A", "changelogs/fragments/notes.txt")]).ok
    assert not ccf.classify([("M", "agents/iact/x.py"), ("A", "changelogs/fragments/sub/x.yml")]).ok
    assert ccf.classify([("M", "agents/tests/test_x.py"), ("M", "README.md")]).ok  # nothing shipped changed
    assert ccf.classify([]).ok


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("minor_changes:\n  - collector_agent - a change.\n", None),
        ("trivial:\n  - tests only.\n", None),
        ("release_summary: The first release.\n", None),
        ("minor_change:\n  - typo in the section.\n", "unknown section 'minor_change'"),
        ("bugfixes: one text, not a list\n", "bugfixes must be a list"),
        ("bugfixes: []\n", "bugfixes must be a list"),
        ("release_summary:\n  - a list\n", "release_summary is one text"),
        ("- just a list\n", "a mapping"),
        ("", "a mapping"),
        ("bugfixes: [\n", "not YAML"),
    ],
)
def test_fragment_problems(text, problem):
    found = ccf.fragment_problems(text, SECTIONS)
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found


def test_the_repository_fragments_are_valid():
    for path in sorted((ROOT / "changelogs/fragments").glob("*.y*ml")):
        assert ccf.fragment_problems(path.read_text(), SECTIONS) == [], path.name


# --- end to end on throwaway repositories ----------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def write(repo: Path, path: str, text: str = "x: 1\n") -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, ".gitignore", "ignored/\n")
    write(repo, "changelogs/config.yaml", (ROOT / "changelogs/config.yaml").read_text())
    write(repo, "changelogs/changelog.yaml", "ancestor: null\nreleases: {}\n")
    write(repo, "roles/r/tasks/main.yml")
    write(repo, "changelogs/fragments/first.yml", "major_changes:\n  - r - the first role.\n")
    commit(repo, "first")
    return repo


def run_script(**env: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True, text=True, check=False,
        env={**{k: v for k, v in os.environ.items() if k != "IACT_CHANGELOG_BASE"}, **env},
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def check(repo: Path, **env: str) -> tuple[int, str]:
    # The script checks the repository it lives in; run the module's main() on the throwaway one instead.
    environ = {k: v for k, v in os.environ.items() if k != "IACT_CHANGELOG_BASE"} | env
    return ccf.main(repo, environ)


def test_first_commit_is_compared_with_the_empty_tree(repo, capsys):
    assert check(repo) == 0
    assert "the empty tree" in capsys.readouterr().out


def test_on_main_the_last_commit_must_carry_its_fragment(repo, capsys):
    write(repo, "agents/iact/x.py", "X = 1\n")
    commit(repo, "code without a fragment")
    assert check(repo) == 1
    err = capsys.readouterr().err
    assert "agents/iact/x.py" in err and "changelogs/fragments/" in err
    write(repo, "changelogs/fragments/x.yml", "minor_changes:\n  - x - added.\n")
    commit(repo, "the fragment, one commit late")
    assert check(repo) == 0  # HEAD~1: only the last commit is compared on main
    assert "HEAD~1" in capsys.readouterr().out


def test_a_branch_is_compared_with_its_merge_base_with_origin_main(repo, capsys):
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, "playbooks/p.yml")
    commit(repo, "code")
    write(repo, "README.md", "docs\n")
    commit(repo, "docs")
    assert check(repo) == 1  # the code commit is not the last one, but the branch as a whole has no fragment
    assert "merge-base with origin/main" in capsys.readouterr().out
    write(repo, "changelogs/fragments/p.yml", "bugfixes:\n  - p - fixed.\n")
    commit(repo, "fragment")
    assert check(repo) == 0
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    assert check(repo) == 0  # CI on main after the merge: the merge's first parent is the base


def test_uncommitted_and_untracked_work_counts_but_ignored_files_do_not(repo):
    write(repo, "README.md", "docs\n")
    commit(repo, "docs")
    write(repo, "roles/r/tasks/main.yml", "x: 2\n")
    git(repo, "add", "roles")  # staged, not committed
    assert check(repo) == 1
    write(repo, "changelogs/fragments/wip.yml", "minor_changes:\n  - r - work in progress.\n")  # untracked
    assert check(repo) == 0
    write(repo, "changelogs/fragments/wip.yml", "minor_change:\n  - r - misspelt.\n")
    assert check(repo) == 1
    write(repo, "changelogs/fragments/wip.yml", "minor_changes:\n  - r - fixed.\n")
    write(repo, "ignored/roles/r.yml")
    assert check(repo) == 0


def test_an_explicit_base_and_a_release(repo, capsys):
    first = git(repo, "rev-parse", "HEAD").strip()
    write(repo, "agents/iact/__init__.py", '__version__ = "0.3.0"\n')
    (repo / "changelogs/fragments/first.yml").unlink()
    write(repo, "changelogs/changelog.yaml", "ancestor: null\nreleases:\n  0.3.0: {}\n")
    commit(repo, "release 0.3.0")
    assert check(repo, IACT_CHANGELOG_BASE=first) == 0  # the release consumed the fragments: no new one needed
    assert "IACT_CHANGELOG_BASE" in capsys.readouterr().out
    assert check(repo, IACT_CHANGELOG_BASE="no-such-ref") == 2


def test_the_script_runs_on_this_repository():
    # What CI runs. It compares this checkout's work; its verdict depends on that work, its answer must be one.
    code, out = run_script()
    if code == 2:  # a shallow CI clone without HEAD's parent: the script says so instead of guessing
        assert "shallow clone" in out or "IACT_CHANGELOG_BASE" in out, out
    else:
        assert code in (0, 1), out
        assert "check-changelog-fragment: working tree against" in out


def test_a_shallow_clone_without_the_base_is_an_error_not_a_pass(repo, tmp_path):
    write(repo, "roles/r/tasks/main.yml", "x: 2\n")
    commit(repo, "second")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    assert check(shallow) == 2
    assert check(shallow, IACT_CHANGELOG_BASE="HEAD") == 0  # nothing since HEAD; CI can name a base it fetched
