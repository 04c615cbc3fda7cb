"""Shared lab helpers and fixtures (molecule/shared/lab.py), for the dashboard scenario's tests."""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from lab import *  # noqa: F403

# The scenario's one host, as molecule.yml names it (not app1: CI runs this scenario beside `full`).
_SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "molecule.yml").read_text())
APP_HOST: str = _SCENARIO["verifier"]["options"]["hosts"].removeprefix("podman://")
