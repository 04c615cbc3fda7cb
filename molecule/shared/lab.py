"""Helpers and fixtures shared by the Molecule scenarios' tests: addresses, lab secrets, playbook runs.

Each scenario's conftest.py imports everything from here, so pytest sees the fixtures there.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

NODES = ("cass1", "cass2", "cass3")
ROOT = Path(__file__).resolve().parents[2]


def secrets_dir() -> Path:
    """Where the lab's group_vars generated the passwords (the inventory Molecule ran with)."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    candidates = [Path(ephemeral) / "inventory" / ".secrets"] if ephemeral else []
    candidates.append(ROOT / "inventories" / "lab" / ".secrets")
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    raise RuntimeError(f"no lab secrets in {candidates}: run converge first")


def secret(name: str) -> str:
    return (secrets_dir() / name).read_text().strip()


def node_ip(name: str) -> str:
    out = subprocess.run(
        ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0]


def wait_until(predicate, timeout: float, what: str, interval: float = 2.0):
    """Poll until predicate() is truthy; fail naming what did not happen."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def node1():
    return testinfra.get_host("podman://cass1")


@pytest.fixture(scope="session")
def ips():
    return {n: node_ip(n) for n in NODES}


@pytest.fixture(scope="session")
def connect(ips):
    """connect(user, password) -> driver session; clusters are shut down at the end."""
    clusters = []

    def _connect(user: str, password: str):
        cluster = Cluster(list(ips.values()), auth_provider=PlainTextAuthProvider(user, password), connect_timeout=15)
        clusters.append(cluster)
        return cluster.connect()

    yield _connect
    for cluster in clusters:
        cluster.shutdown()


@pytest.fixture(scope="session")
def admin(connect):
    return connect("iact_admin", secret("cassandra_superuser_password"))


def inventory() -> Path:
    """The inventory Molecule converged with, or the lab's when run by hand against `scripts/lab up`."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    return Path(ephemeral) / "inventory" if ephemeral else ROOT / "inventories" / "lab"


def operator_env() -> dict[str, str]:
    """This process's environment without Molecule's ANSIBLE_CONFIG: the repository's ansible.cfg applies,
    as when an operator runs a playbook (Molecule's generated one does not enable the iact_dora callback).
    """
    return {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"} | {"ANSIBLE_FORCE_COLOR": "0"}


def playbook(path: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one of the repository's playbooks against the lab, as an operator would."""
    return subprocess.run(
        ["ansible-playbook", path, "-i", str(inventory()), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=operator_env() | (env or {}),
    )


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP as {host: {ok: n, changed: n, ...}}."""
    hosts = {}
    for line in stdout.split("PLAY RECAP", 1)[-1].splitlines()[1:]:
        if ":" in line and "=" in line:
            name, counts = line.split(":", 1)
            hosts[name.strip()] = {k: int(v) for k, v in (kv.split("=") for kv in counts.split())}
    return hosts
