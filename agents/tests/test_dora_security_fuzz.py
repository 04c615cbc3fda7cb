"""Hostile bodies for POST /api/dora/metrics: never a 500, and every refusal names the field.

Bodies mix plausible events (so validation gets past `type` and reaches the database) with arbitrary
JSON, wrong types, numbers beyond what int() may print, lone surrogates, far years and missing fields.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iact.dora.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db
TOKEN = "dora_fuzz_token_value_1234"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}

# Keys of a refusal: `body`, `events`, `events[2]`, `commits[0]`, `commits[0].sha`, `events[1].commits[0].sha`.
FIELD = re.compile(r"^(body|(events\[\d+\]\.)?(commits\[\d+\]\.?)?[a-z_]*|events(\[\d+\])?)$")

text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)  # surrogates included
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.builds(lambda digits, sign: sign * (10**digits - 1), st.integers(4000, 6000), st.sampled_from([1, -1])),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
    st.text(max_size=1).map(lambda c: c * 700),  # longer than any column
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
offsets = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439))
recent = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=offsets)
far = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
naive = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))
edges = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "1000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"]
hostile_times = st.one_of(
    st.sampled_from(edges), far.map(datetime.isoformat), naive.map(datetime.isoformat), json_values
)
slugs = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True),
    st.integers(20, 120).map(lambda n: "s" * n),  # around the columns' widths (32 for source, 100 for service)
)
unicode_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), min_size=1, max_size=300)
surrogates = st.tuples(st.text(max_size=5), st.characters(categories=["Cs"])).map("".join)  # JSON's "\ud800"
hostile = st.one_of(json_values, unicode_text, surrogates, st.text(min_size=180, max_size=520), hostile_times, slugs)


@st.composite
def commits(draw, finished):
    ago = draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
    return {"sha": draw(st.text(min_size=1, max_size=64)), "committed_at": (finished - ago).isoformat()}


@st.composite
def events(draw):
    """A plausible event (so the body gets past validation to the database) with a few fields spoiled."""
    finished = draw(recent)
    kind = draw(st.sampled_from(["deployment", "incident"]))
    event = {
        "type": kind,
        "id": draw(st.one_of(st.text(min_size=1, max_size=40), st.integers())),
        "service": draw(slugs),
        "source": draw(st.one_of(st.just(""), st.sampled_from(["ci", "ansible", "github"]), slugs)),
        "url": draw(st.text(max_size=40)),
    }
    if kind == "deployment":
        took = draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=5)))
        event |= {
            "started_at": (finished - took).isoformat(),
            "finished_at": finished.isoformat(),
            "status": draw(st.sampled_from(["success", "failed", "rolled_back"])),
            "environment": draw(st.text(max_size=20)),
            "version": draw(st.text(max_size=20)),
            "sha": draw(st.text(max_size=64)),
            "commits": draw(st.lists(commits(finished), max_size=3)),
        }
    else:
        event |= {"opened_at": finished.isoformat(), "title": draw(st.text(max_size=40))}
        if draw(st.booleans()):
            event["restored_at"] = (finished + draw(st.timedeltas(timedelta(0), timedelta(days=2)))).isoformat()
    spoil = draw(st.dictionaries(st.sampled_from([*event, *FIELDS]), hostile, max_size=2))
    drop = draw(st.sets(st.sampled_from(list(event)), max_size=1))
    return {k: v for k, v in (event | spoil).items() if k not in drop}


FIELDS = ["restored_at", "deployment_id", "title", "commits", "started_at", "environment"]
bodies = st.one_of(
    events(),
    st.fixed_dictionaries({"events": st.lists(st.one_of(events(), json_values), min_size=1, max_size=3)}),
    st.fixed_dictionaries({"events": json_values}),
    json_values,
)


def encode(body: object) -> bytes:
    """JSON with the huge integers written out (the encoder needs the print limit lifted; the app does not get it)."""
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(body).encode()
    finally:
        sys.set_int_max_str_digits(limit)


def check(client, raw: bytes) -> int:
    response = client.post("/api/dora/metrics", raw, content_type="application/json", **AUTH)
    assert response.status_code in (200, 201, 400, 403), response.content[:500]
    answer = response.json()
    if response.status_code in (400, 403):
        # 403 is the token-scope refusal (source github); everything else the client must fix is a 400.
        errors = answer["errors"]
        assert errors and all(FIELD.match(k) and isinstance(v, str) and v for k, v in errors.items()), errors
        if response.status_code == 403:
            assert all(k.endswith(("source", "service")) for k in errors), errors
    return response.status_code


@pytest.fixture
def token(settings):
    settings.DORA_API_RATE_LIMIT = 1_000_000
    ApiToken.objects.create(name="fuzz", digest=hash_token(TOKEN))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_hostile_bodies_never_cause_a_500(client, token, body):
    event(f"HTTP {check(client, encode(body))}")  # --hypothesis-show-statistics: how many reach the database


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON decoder's recursion
        b"1" * 5000,  # more digits than int() accepts
        b'{"type": "deployment", "id": ' + b"9" * 5000 + b"}",
        b"\xff\xfe\x00garbage",
        b"",
        b"NaN",
        b'{"type": "deployment", "id": "\\ud800", "service": "api", "finished_at": "2026-01-01T00:00:00Z"}',
    ],
)
def test_bodies_the_decoder_chokes_on(client, token, raw):
    check(client, raw)
