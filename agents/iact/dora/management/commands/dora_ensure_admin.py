"""`iact-dora dora_ensure_admin USER`: the admin account exists with the password from the environment.

Reads IACT_DORA_ADMIN_PASSWORD (never argv) and prints `created`, `updated` or `unchanged`, so the
role stays idempotent: an unchanged password does not rewrite the row.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    """Create or update a superuser."""

    help = "Create or update the admin user; password from IACT_DORA_ADMIN_PASSWORD."

    def add_arguments(self, parser: CommandParser) -> None:
        """USER and an optional e-mail."""
        parser.add_argument("username")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        """Ensure the user, superuser, active, with this password."""
        password = os.environ.get("IACT_DORA_ADMIN_PASSWORD", "")
        if len(password) < 12:
            raise CommandError("set IACT_DORA_ADMIN_PASSWORD to a password of at least 12 characters")
        users = get_user_model()
        user = users.objects.filter(username=options["username"]).first()
        try:  # the same validators as a password change in the admin (AUTH_PASSWORD_VALIDATORS)
            validate_password(password, user or users(username=options["username"], email=options["email"]))
        except ValidationError as exc:
            raise CommandError(
                f"IACT_DORA_ADMIN_PASSWORD is refused: {' '.join(exc.messages)} Choose another one."
            ) from exc
        if user is None:
            users.objects.create_superuser(options["username"], options["email"], password)
            self.stdout.write("created")
            return
        if user.check_password(password) and user.is_superuser and user.is_active:
            self.stdout.write("unchanged")
            return
        user.set_password(password)
        user.is_superuser = user.is_staff = user.is_active = True
        user.save()
        self.stdout.write("updated")
