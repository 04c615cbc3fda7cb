"""What a token may write: its own source's rows, for its services, and never GitHub's.

Rows are keyed by (source, external_id). If the caller could pick the source freely, any token
could rewrite any sender's history, GitHub's included. So the source comes from the token when it
has one, a different one is refused, and `github` is reserved for the signed webhook.
"""

from __future__ import annotations

from dataclasses import replace

from iact.dora.ingest.validate import DEFAULT_SOURCE, DeploymentEvent, IncidentEvent
from iact.dora.models import GITHUB_SOURCE, ApiToken

Event = DeploymentEvent | IncidentEvent


def apply_scope(event: Event, token: ApiToken) -> tuple[Event, dict[str, str]]:
    """The event with its source settled, and the scope errors (field -> why), if any."""
    errors: dict[str, str] = {}
    source = event.source or token.source or DEFAULT_SOURCE
    if source == GITHUB_SOURCE:
        errors["source"] = (
            "'github' rows come only from the signed GitHub webhook; leave source out or name your own, e.g. 'ci'"
        )
    elif token.source and source != token.source:
        errors["source"] = f"this token records source {token.source!r} only; leave source out or send {token.source!r}"
    allowed = token.service_names
    if allowed and event.service not in allowed:
        errors["service"] = (
            f"this token may record only the services {', '.join(allowed)}; use a token made for {event.service!r}"
        )
    return replace(event, source=source), errors
