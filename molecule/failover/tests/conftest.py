"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the failover drill's tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403

# The scenario converges in plaintext on the previous Cassandra patch release: the TLS migration
# runs first, then the upgrade to the current release, then the drill on the upgraded TLS cluster.
ORDER = ("test_tls_migration", "test_cassandra_upgrade")


def pytest_collection_modifyitems(items):
    """Run the modules named in ORDER first, in that order; the others after them."""
    items.sort(key=lambda item: next((i for i, name in enumerate(ORDER) if name in item.nodeid), len(ORDER)))
