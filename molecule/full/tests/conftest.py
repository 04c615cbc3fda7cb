"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the appliance's tests.

The scenario converges in plaintext on the previous Cassandra patch release (converge.yml). The
TLS migration runs first, then the upgrade to the current release, then site.yml again (it must
change nothing, and check mode must predict nothing) on the result; the appliance's tests follow,
and the failure drills, which stop nodes, come last.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403

FIRST = ("test_tls_migration", "test_cassandra_upgrade", "test_converged")
LAST = ("test_failover", "test_ring_gate", "test_hostile_host")


def _rank(nodeid: str) -> int:
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    if module in FIRST:
        return FIRST.index(module)
    if module in LAST:
        return len(FIRST) + 1 + LAST.index(module)
    return len(FIRST)


def pytest_collection_modifyitems(items):
    """FIRST in that order, then the other modules, then LAST in that order (a stable sort)."""
    items.sort(key=lambda item: _rank(item.nodeid))


@pytest.fixture
def closing():
    """closing(thing) -> thing, closed at the test's end whatever happened: an application's logging
    handler left open by a failed test would keep retrying against the nodes the next tests stop."""
    things = []

    def _closing(thing):
        things.append(thing)
        return thing

    yield _closing
    for thing in reversed(things):
        thing.close()
