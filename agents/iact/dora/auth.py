"""Who may call the JSON endpoints: a logged-in user (the page's own fetches) or a bearer token (CI)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from iact.dora.models import ApiToken, hash_token

View = Callable[..., HttpResponse]


def bearer_token(request: HttpRequest) -> ApiToken | None:
    """The token named by `Authorization: Bearer ...` (or `Token ...`), if it exists."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not value.strip():
        return None
    token = ApiToken.objects.filter(digest=hash_token(value.strip())).first()
    if token is not None and (token.last_used_at is None or timezone.now() - token.last_used_at > timedelta(minutes=1)):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token


def unauthorized(message: str) -> JsonResponse:
    """401 with a hint, and the header that tells clients which scheme to use."""
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="dora"'
    return response


def token_required(view: View) -> View:
    """Writes need a token: a browser session alone cannot record events (no CSRF surface)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        request.api_token = bearer_token(request)  # type: ignore[attr-defined]
        if request.api_token is None:  # type: ignore[attr-defined]
            return unauthorized("send 'Authorization: Bearer <token>'; create one with `iact-dora dora_token NAME`")
        return view(request, *args, **kwargs)

    return wrapped


def session_or_token(view: View) -> View:
    """Reads: the logged-in user, or a token."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated and bearer_token(request) is None:
            return unauthorized("log in, or send 'Authorization: Bearer <token>'")
        return view(request, *args, **kwargs)

    return wrapped
