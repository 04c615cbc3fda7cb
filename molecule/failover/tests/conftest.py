"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the failover drill's tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403


def pytest_collection_modifyitems(items):
    """The TLS migration runs first: the scenario converges in plaintext and the drill runs on TLS."""
    items.sort(key=lambda item: 0 if "test_tls_migration" in item.nodeid else 1)
