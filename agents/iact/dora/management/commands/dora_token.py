"""`iact-dora dora_token NAME [--token T]`: create (or set) an API token for CI/CD tooling.

The token is printed once and stored hashed. `--token` (or IACT_DORA_TOKEN) sets a known value, so
Ansible can keep the same token as in its Vault; then nothing is printed and a re-run is a no-op.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from iact.dora.models import ApiToken, hash_token


class Command(BaseCommand):
    """Create or update a named token."""

    help = "Create an API token (printed once), or set it from --token / IACT_DORA_TOKEN."

    def add_arguments(self, parser: CommandParser) -> None:
        """NAME and an optional known value."""
        parser.add_argument("name")
        parser.add_argument("--token", help="use this value (prefer IACT_DORA_TOKEN: argv is visible in ps)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print `created`, `updated` or `unchanged` (the role's changed_when reads it)."""
        value = options["token"] or os.environ.get("IACT_DORA_TOKEN", "")
        known = bool(value)
        value = value or ApiToken.generate()
        digest = hash_token(value)
        token = ApiToken.objects.filter(name=options["name"]).first()
        if token is not None and token.digest == digest:
            self.stdout.write("unchanged")
            return
        if token is None:
            ApiToken.objects.create(name=options["name"], digest=digest)
            state = "created"
        else:
            token.digest = digest
            token.save(update_fields=["digest"])
            state = "updated"
        self.stdout.write(state if known else f"{state}\n{value}")
