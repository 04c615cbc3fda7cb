"""`iact-dora dora_token NAME [--token T] [--source S] [--services A,B]`: create (or set) an API token.

The token is printed once and stored hashed. `--token` (or IACT_DORA_TOKEN) sets a known value, so
Ansible can keep the same token as in its Vault; then nothing is printed and a re-run is a no-op.

The scope is declared, not accumulated: a run sets the token's source and services to what it is
given (none: any source but github, any service, as tokens were before scopes), so the role's list
of tokens stays the truth.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from iact.dora.ingest.validate import SOURCE_MAX_LENGTH, slugify
from iact.dora.models import GITHUB_SOURCE, ApiToken, hash_token


def _slug(value: str, option: str, max_length: int) -> str:
    value = value.strip()
    if value and (slugify(value) != value or len(value) > max_length):
        raise CommandError(
            f"{option} {value!r}: use lowercase letters, digits, '-' and '_' (at most {max_length}), "
            f"e.g. {slugify(value)[:max_length]!r}"
        )
    return value


def _services(value: str) -> str:
    names = sorted({_slug(v, "--services", 100) for v in value.split(",") if v.strip()})
    return ",".join(names)


class Command(BaseCommand):
    """Create or update a named token and its scope."""

    help = "Create an API token (printed once), or set it from --token / IACT_DORA_TOKEN."

    def add_arguments(self, parser: CommandParser) -> None:
        """NAME, an optional known value, and the scope."""
        parser.add_argument("name")
        parser.add_argument("--token", help="use this value (prefer IACT_DORA_TOKEN: argv is visible in ps)")
        parser.add_argument(
            "--source", default="", help="the only source the token records (e.g. ci); empty: any but github"
        )
        parser.add_argument("--services", default="", help="comma-separated services the token may record; empty: any")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print `created`, `updated` or `unchanged` (the role's changed_when reads it)."""
        source = _slug(options["source"], "--source", SOURCE_MAX_LENGTH)
        if source == GITHUB_SOURCE:
            raise CommandError("--source github: only the signed GitHub webhook records github rows")
        services = _services(options["services"])
        value = options["token"] or os.environ.get("IACT_DORA_TOKEN", "")
        known = bool(value)
        value = value or ApiToken.generate()
        wanted = {"digest": hash_token(value), "source": source, "services": services}
        token = ApiToken.objects.filter(name=options["name"]).first()
        if token is not None and all(getattr(token, k) == v for k, v in wanted.items()):
            self.stdout.write("unchanged")
            return
        token = token or ApiToken(name=options["name"])
        state = "created" if token.pk is None else "updated"
        for k, v in wanted.items():
            setattr(token, k, v)
        try:
            token.full_clean()
        except ValidationError as exc:
            raise CommandError(f"token {options['name']!r}: {'; '.join(exc.messages)}") from exc
        token.save()
        self.stdout.write(state if known else f"{state}\n{value}")
