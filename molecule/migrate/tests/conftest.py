"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the migration's tests.

The scenario converges in plaintext on the previous Cassandra patch release (converge.yml). The
TLS migration runs first, then the upgrade to the current release, then site.yml again (it must
change nothing, and check mode must predict nothing) on the result.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403

ORDER = ("test_tls_migration", "test_cassandra_upgrade", "test_converged")


def _rank(nodeid: str) -> int:
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return ORDER.index(module) if module in ORDER else len(ORDER)


def pytest_collection_modifyitems(items):
    """The migration, then the upgrade, then site.yml again (a stable sort)."""
    items.sort(key=lambda item: _rank(item.nodeid))
