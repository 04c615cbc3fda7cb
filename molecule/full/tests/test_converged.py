"""site.yml on the migrated and upgraded appliance: a second run changes nothing, and check mode
predicts nothing and fails nothing.

These are Molecule's idempotence and check steps, run here because the scenario converges the
appliance as it was before TLS and before the current Cassandra release: only after the TLS
migration and the upgrade (the tests that run first) is the appliance in the inventory's state. It
also proves those playbooks leave nothing for site.yml to redo: an operator's next site.yml run
after a migration restarts nothing.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import playbook, recap

HOSTS = {"cass1", "cass2", "cass3", "app1"}


def changed_tasks(stdout: str) -> list[str]:
    """The tasks a run reported changed, as `host: task` (for the assertion's message)."""
    out, task = [], ""
    for line in stdout.splitlines():
        if m := re.match(r"TASK \[(.*)\]", line):
            task = m.group(1)
        elif m := re.match(r"changed: \[([^\]]+)\]", line):
            out.append(f"{m.group(1)}: {task}")
    return out


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    """site.yml and `site.yml --check`, at the same time: on a converged appliance the real run writes
    nothing, so the check run sees the same state it would see alone, and the two share the minutes
    they spend waiting on hosts (one after the other they cost about 280 s in CI). Should the real run
    change something, its own test fails and names it."""
    with ThreadPoolExecutor(2) as pool:
        again, check = pool.submit(playbook, "site.yml"), pool.submit(playbook, "site.yml", "--check")
        return {"again": again.result(), "check": check.result()}


def test_site_again_changes_nothing(runs):
    run = runs["again"]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = recap(run.stdout)
    assert set(counts) == HOSTS, counts
    assert all(c["changed"] == 0 for c in counts.values()), changed_tasks(run.stdout)


def test_site_in_check_mode_predicts_no_change(runs):
    run = runs["check"]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = recap(run.stdout)
    assert set(counts) == HOSTS and all(c["failed"] == 0 for c in counts.values()), counts
    assert all(c["changed"] == 0 for c in counts.values()), changed_tasks(run.stdout)
