"""Who may call the JSON endpoints: a logged-in user (the page's own fetches) or a bearer token (CI).

Every request made with a token counts against that token's budget (api.rate_limit per
api.rate_window_seconds, kept in the database): a leaked or runaway token cannot flood the database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from iact.dora import throttle
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


def over_budget(token: ApiToken) -> JsonResponse | None:
    """429 with Retry-After once the token has used its requests for the current window."""
    limit, window = settings.DORA_API_RATE_LIMIT, settings.DORA_API_RATE_WINDOW
    verdict = throttle.hit(f"api:{token.pk}", limit, window)
    if verdict.allowed:
        return None
    response = JsonResponse(
        {
            "error": f"rate limit: at most {limit} requests per {window} s per token; retry after "
            f"{verdict.retry_after} s, or send events in batches ('events': [...])"
        },
        status=429,
    )
    response["Retry-After"] = str(verdict.retry_after)
    return response


def token_required(view: View) -> View:
    """Writes need a token: a browser session alone cannot record events (no CSRF surface)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        request.api_token = token = bearer_token(request)  # type: ignore[attr-defined]
        if token is None:
            return unauthorized("send 'Authorization: Bearer <token>'; create one with `iact-dora dora_token NAME`")
        return over_budget(token) or view(request, *args, **kwargs)

    return wrapped


def session_or_token(view: View) -> View:
    """Reads: the logged-in user, or a token (which then counts against its budget)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        token = bearer_token(request)
        if token is None:
            return unauthorized("log in, or send 'Authorization: Bearer <token>'")
        return over_budget(token) or view(request, *args, **kwargs)

    return wrapped
