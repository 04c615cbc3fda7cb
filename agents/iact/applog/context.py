"""Request context (request id, user id, session id) stamped onto every record of a request.

A contextvar carries it, so it follows the request through threads started with
contextvars.copy_context() and through async views, and never leaks between requests.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

_request_context: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "iact_request_context", default=None
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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
    """Django middleware: take X-Request-ID (or make one), note user and session, echo the id."""

    header = "HTTP_X_REQUEST_ID"

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        """Set the context for the request's duration."""
        incoming = request.META.get(self.header, "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        token = _request_context.set(
            {
                "request_id": request_id,
                "user_id": str(user.pk) if user is not None and getattr(user, "is_authenticated", False) else None,
                "session_id": getattr(session, "session_key", None),
            }
        )
        try:
            response = self.get_response(request)
        finally:
            _request_context.reset(token)
        response["X-Request-ID"] = request_id
        return response
