"""Paging tokens: the cursor of the next page, opaque and signed, bound to the query it pages.

A token carries a Cassandra paging state or a position in time; a client that could forge one
could make the server read from anywhere, so it is signed (Django's signing, keyed by SECRET_KEY)
and refused when altered, when it belongs to another query, or when older than a day.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

SALT = "iact.dora.logs.page"
MAX_AGE = 24 * 3600


class BadToken(ValueError):
    """The token was altered, expired or made for another query."""


def dump(digest: str, cursor: dict[str, Any]) -> str:
    """The signed token for `cursor`, bound to the query whose digest is given."""
    return signing.dumps({"q": digest, "c": cursor}, salt=SALT, compress=True)


def load(token: str, digest: str) -> dict[str, Any]:
    """The cursor in `token`, if it is intact, young enough and made for this query (else BadToken)."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature as exc:  # SignatureExpired is one
        raise BadToken("this paging link was altered or has expired: start the search again") from exc
    if not isinstance(data, dict) or data.get("q") != digest or not isinstance(data.get("c"), dict):
        raise BadToken("this paging link belongs to another search: start the search again")
    return data["c"]
