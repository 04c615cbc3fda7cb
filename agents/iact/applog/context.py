"""Request context (request id, user id, session id) stamped onto every record of a request.

A contextvar carries it, so it follows the request through threads started with
contextvars.copy_context() and through async views, and never leaks between requests.

The session id in a record is a keyed hash of the session key, never the key: whoever reads the
logs (the reader role, a log console) must not be able to take over a logged-in session, yet the
records of one session must still be findable together.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any

_request_context: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "iact_request_context", default=None
)
# A client's X-Request-ID is kept only when it is a plain token. fullmatch, not "^...$": "$" also
# matches before a trailing newline, and "abc\n" echoed into a response header is a 500.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SESSION_ID_CHARS = 16
_SESSION_HASH_SALT = b"iact.applog.session_id"
# Without a configured secret (a non-Django app, tests): a key of this process only, so ids still
# correlate within the process and never reveal the session key.
_process_key = secrets.token_bytes(32)


def session_hash_key(secret: str | bytes | None) -> bytes:
    """The HMAC key for session ids, derived from an application secret (Django's SECRET_KEY).

    Derived rather than the secret itself, so a session id can never be used to test guesses of
    the secret against Django's own signatures.
    """
    if not secret:
        return _process_key
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(_SESSION_HASH_SALT + b"\0" + raw).digest()


def session_hash(session_key: str | None, secret: str | bytes | None = None) -> str | None:
    """A 16-hex-character keyed hash of a session key (None for no session).

    64 bits tell the sessions of one deployment apart; without the secret they cannot be turned
    back into the key, nor forged to point at another session.
    """
    if not session_key:
        return None
    digest = hmac.new(session_hash_key(secret), session_key.encode(), hashlib.sha256).hexdigest()
    return digest[:SESSION_ID_CHARS]


def _django_secret() -> str | None:
    """Django's SECRET_KEY when Django is configured; the middleware only runs under Django."""
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - the middleware is Django's
        return None
    return getattr(settings, "SECRET_KEY", None) if settings.configured else None


class RequestContextFilter(logging.Filter):
    """Add request_id, user_id and session_id to records (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record; never filters anything out."""
        ctx = _request_context.get() or {}
        for key in ("request_id", "user_id", "session_id"):
            if not hasattr(record, key):
                setattr(record, key, ctx.get(key))
        return True


class RequestContextMiddleware:
    """Django middleware: take X-Request-ID (or make one), note user and session, echo the id.

    A client's id that is not a plain token (over 128 characters, control characters, spaces,
    non-ASCII) is replaced by a fresh one rather than trimmed, so it never reaches a response
    header or a log record.

    The session is noted as session_hash(key) under a key derived from SECRET_KEY.
    """

    header = "HTTP_X_REQUEST_ID"

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._secret = _django_secret()

    def __call__(self, request: Any) -> Any:
        """Set the context for the request's duration."""
        incoming = request.META.get(self.header, "")
        request_id = incoming if _SAFE_ID.fullmatch(incoming) else uuid.uuid4().hex
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        token = _request_context.set(
            {
                "request_id": request_id,
                "user_id": str(user.pk) if user is not None and getattr(user, "is_authenticated", False) else None,
                "session_id": session_hash(getattr(session, "session_key", None), self._secret),
            }
        )
        try:
            response = self.get_response(request)
        finally:
            _request_context.reset(token)
        response["X-Request-ID"] = request_id
        return response
