"""Request bodies above api.max_body_bytes get a 413 before anything reads them.

Django would refuse them too (DATA_UPLOAD_MAX_MEMORY_SIZE), but as a SuspiciousOperation: a 400
and an ERROR record that anyone could produce to fire the `errors` alert. Checking Content-Length
first costs nothing; gunicorn never hands Django more than Content-Length bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

View = Callable[..., HttpResponse]


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse(
        {"error": f"the body is larger than {limit} bytes; send fewer events per request (api.max_body_bytes)"},
        status=413,
    )


def body_limited(view: View) -> View:
    """Refuse an oversized body with 413, whether announced by Content-Length or found on reading."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        limit = settings.DORA_API_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads such a body as empty
        if length > limit:
            return _too_large(limit)
        try:
            request.body  # noqa: B018 - read now, inside the try, so the limit cannot fire later as a 400
        except RequestDataTooBig:
            return _too_large(min(limit, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or limit))
        return view(request, *args, **kwargs)

    return wrapped
