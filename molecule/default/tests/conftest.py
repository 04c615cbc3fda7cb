"""Fixtures shared by the cluster tests: node addresses and lab credentials."""

import os
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

NODES = ("cass1", "cass2", "cass3")


def secrets_dir() -> Path:
    """Where the lab's group_vars generated the passwords (the inventory Molecule ran with)."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    candidates = [Path(ephemeral) / "inventory" / ".secrets"] if ephemeral else []
    candidates.append(Path(__file__).resolve().parents[3] / "inventories" / "lab" / ".secrets")
    for candidate in candidates:
        if (candidate / "cassandra_superuser_password").is_file():
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
