"""`iact-dora`: Django's manage.py as a console entry point, so the venv's bin/ has one command."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run a management command with the dashboard's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iact.dora.settings")
    from iact.yamlconfig import ConfigError

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        print(f"iact-dora: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
