"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the dashboard scenario's tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403
