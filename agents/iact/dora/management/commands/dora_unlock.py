"""`iact-dora dora_unlock [USERNAME]`: lift login lockouts (all of them, or a user name's).

For the operator whose admin locked themselves out: the lock otherwise lifts by itself after
login.lockout_seconds.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from iact.dora import throttle
from iact.dora.models import Throttle


class Command(BaseCommand):
    """Delete login counters."""

    help = "Lift login lockouts: every one, or those of USERNAME (from any address)."

    def add_arguments(self, parser: CommandParser) -> None:
        """An optional user name."""
        parser.add_argument("username", nargs="?", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print how many counters were removed."""
        prefix = throttle.login_key(options["username"], "") if options["username"] else "login:"
        removed, _ = Throttle.objects.filter(key__startswith=prefix).delete()
        self.stdout.write(f"removed {removed} login counter(s)")
