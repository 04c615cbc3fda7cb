"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the add_node scenario's test."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403
