"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the appliance's tests.

The scenario converges the appliance as a fresh install gets it (TLS, the current Cassandra
release). The appliance's tests run first; the failure drills, which stop nodes, come last. (The
TLS migration, the Cassandra upgrade and site.yml's second run are molecule/migrate's.)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403

LAST = ("test_failover", "test_ring_gate", "test_hostile_host")


def _rank(nodeid: str) -> int:
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return 1 + LAST.index(module) if module in LAST else 0


def pytest_collection_modifyitems(items):
    """The other modules first, then LAST in that order (a stable sort)."""
    items.sort(key=lambda item: _rank(item.nodeid))
