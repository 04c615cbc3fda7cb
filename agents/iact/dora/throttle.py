"""Fixed-window counters in the database: failed logins per user name and address, requests per token.

The appliance has no Redis or memcached, and gunicorn runs several workers: a count in one
worker's memory would let an attacker spread attempts over the workers. One row per key, updated
under a row lock, is exact and cheap at the rates a login form or a CI pipeline produces.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from iact.dora.models import Throttle


@dataclass(frozen=True)
class Verdict:
    """Whether the request may go on; if not, how many seconds until it may."""

    allowed: bool
    retry_after: int = 0


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def _locked_row(key: str, now: datetime) -> Throttle:
    row, _ = Throttle.objects.select_for_update().get_or_create(key=key, defaults={"window_start": now})
    return row


def hit(key: str, limit: int, window_seconds: int) -> Verdict:
    """Count one request against `key`; refused once more than `limit` fall in the current window."""
    now = timezone.now()
    window = timedelta(seconds=window_seconds)
    with transaction.atomic():
        row = _locked_row(key, now)
        if now - row.window_start >= window:
            row.window_start, row.count = now, 0
        row.count += 1
        row.save(update_fields=["window_start", "count"])
    if row.count <= limit:
        return Verdict(True)
    return Verdict(False, _seconds(row.window_start + window - now))


def login_key(username: str, ip: str) -> str:
    """The counter of one user name from one address.

    The name is hashed: it is arbitrary input (people type passwords into the name field), and a
    bounded key keeps a long name from failing the insert.
    """
    name = hashlib.sha256(username.strip().casefold().encode("utf-8", "replace")).hexdigest()[:40]
    return f"login:{name}:{ip[:64]}"


def blocked_for(key: str) -> int:
    """Seconds left of a lockout on `key` (0: not locked)."""
    until = Throttle.objects.filter(key=key).values_list("blocked_until", flat=True).first()
    now = timezone.now()
    return _seconds(until - now) if until and until > now else 0


def record_failure(key: str, max_failures: int, window_seconds: int, lockout_seconds: int) -> int:
    """Count a failed login; returns the lockout in seconds once `max_failures` are reached (else 0)."""
    now = timezone.now()
    with transaction.atomic():
        row = _locked_row(key, now)
        if now - row.window_start >= timedelta(seconds=window_seconds):
            row.window_start, row.count = now, 0
        row.count += 1
        if row.count >= max_failures:
            row.blocked_until = now + timedelta(seconds=lockout_seconds)
            row.window_start, row.count = now, 0  # after the lockout, a fresh allowance
        row.save(update_fields=["window_start", "count", "blocked_until"])
    _prune(now, timedelta(seconds=max(window_seconds, lockout_seconds)))
    return lockout_seconds if row.blocked_until and row.blocked_until > now else 0


def clear(key: str) -> None:
    """Forget the failures of `key` (after a successful login)."""
    Throttle.objects.filter(key=key).delete()


def _prune(now: datetime, age: timedelta) -> None:
    """Drop login counters nobody has touched for a while: a spray of names must not grow the table forever."""
    Throttle.objects.filter(key__startswith="login:", window_start__lt=now - age).filter(
        Q(blocked_until__isnull=True) | Q(blocked_until__lt=now)
    ).delete()
