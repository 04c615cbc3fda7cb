"""Login forms that lock a user name out from an address after repeated failures.

Used by the dashboard's login page and by the admin's (admin.site.login_form). The lock is checked
before the password is, so a locked pair costs no password hashing and reveals nothing about the
password; it keys on name *and* address, so an attacker cannot lock the real admin out from
everywhere by failing on purpose.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from iact.dora import throttle
from iact.dora.clientip import client_ip

log = logging.getLogger("iact.dora.login")


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _locked_error(seconds: int) -> forms.ValidationError:
    return forms.ValidationError(
        f"Too many failed logins for this user name from your address. Try again in {_minutes(seconds)}, "
        "or ask an administrator to run `iact-dora dora_unlock`.",
        code="locked",
    )


class ThrottledLoginMixin:
    """clean(): refuse a locked name+address, count failures, clear the count on success."""

    request: Any
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        """Check the lock first, then the credentials."""
        username = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request) if self.request is not None else ""
        key = throttle.login_key(username, ip)
        locked = throttle.blocked_for(key)
        if locked:
            raise _locked_error(locked)
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            lockout = throttle.record_failure(
                key, settings.DORA_LOGIN_MAX_FAILURES, settings.DORA_LOGIN_WINDOW, settings.DORA_LOGIN_LOCKOUT
            )
            if lockout:
                # A warning, not an error: anyone can cause one, and errors page the operators.
                log.warning("login locked for %d s after repeated failures from %s", lockout, ip or "unknown")
                raise _locked_error(lockout) from None
            raise
        throttle.clear(key)
        return cleaned


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The dashboard's login form."""


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's login form (staff only, as Django's)."""
