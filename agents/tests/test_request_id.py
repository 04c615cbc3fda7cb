"""X-Request-ID through the dashboard's real middleware stack: made when absent, kept when sane, echoed.

The id ties a user's report ("it failed at 10:02, id 3f2a...") to the log records of that request,
so the echoed id and the id on the records must be the same one. A client chooses the header, so a
value that is not a plain token (too long, control characters, spaces, anything beyond
[A-Za-z0-9._:-]) is never trusted: it is replaced by a fresh id, and never reaches a response header
or a log record. Replacing rather than trimming keeps one rule an operator can grep for.
"""

from __future__ import annotations

import logging
import re
from ipaddress import ip_network

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path

from iact.applog import RequestContextFilter

pytestmark = pytest.mark.django_db
GENERATED = re.compile(r"^[0-9a-f]{32}\Z")
LOGGER = "iact.test.request_id"


class _Records(logging.Handler):
    """Keeps the request id each record carries once the context filter has stamped it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestContextFilter())
        self.ids: list[str | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.ids.append(record.request_id)  # type: ignore[attr-defined]


def _view_that_logs(request):
    logging.getLogger(LOGGER).warning("inside the request")
    return HttpResponse("ok")


def _view_that_fails(request):
    logging.getLogger(LOGGER).warning("about to fail")
    raise RuntimeError("boom")


urlpatterns = [
    path("test/logs/", _view_that_logs),
    path("test/fails/", _view_that_fails),
    path("", include("iact.dora.urls")),
]


@pytest.fixture
def records(settings):
    settings.ROOT_URLCONF = __name__
    handler = _Records()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_an_id_is_made_when_the_client_sends_none_and_is_the_one_on_the_records(client, records):
    first = client.get("/test/logs/")
    second = client.get("/test/logs/")
    assert first.status_code == second.status_code == 200
    assert GENERATED.match(first["X-Request-ID"]), first["X-Request-ID"]
    assert first["X-Request-ID"] != second["X-Request-ID"], "each request gets its own id"
    assert records.ids == [first["X-Request-ID"], second["X-Request-ID"]]


@pytest.mark.parametrize("sent", ["3f2a9c1e-7b4d-4e0a-9f1b-2c3d4e5f6a7b", "lb.req:42_a", "x", "A" * 128])
def test_a_sane_id_from_the_client_is_passed_through_and_echoed(client, records, sent):
    response = client.get("/test/logs/", HTTP_X_REQUEST_ID=sent)
    assert response.status_code == 200
    assert response["X-Request-ID"] == sent
    assert records.ids == [sent]


@pytest.mark.parametrize(
    "hostile",
    [
        "A" * 129,  # longer than the 128 characters the log row keeps
        "x" * 10_000,
        "abc\n",  # a trailing newline: must not match "end of string" and then break the response header
        "abc\r\nSet-Cookie: sessionid=forged",  # header injection
        "abc\x00def",
        "abc\x1b[31mred",  # terminal escape into whoever tails the log
        "abc def",
        "café",
        "",
    ],
    ids=[
        "129-chars",
        "10k-chars",
        "trailing-newline",
        "crlf-injection",
        "nul",
        "escape",
        "space",
        "non-ascii",
        "empty",
    ],
)
def test_a_hostile_id_is_replaced_never_echoed_nor_logged(client, records, hostile):
    response = client.get("/test/logs/", HTTP_X_REQUEST_ID=hostile)
    assert response.status_code == 200
    echoed = response["X-Request-ID"]
    assert GENERATED.match(echoed), f"{hostile[:40]!r} came back as {echoed[:60]!r}; a fresh id was expected"
    assert b"forged" not in response.serialize_headers(), "a client's header must not add headers of its own"
    assert records.ids == [echoed], "the records carry the replacement, not the client's value"


def test_the_id_is_echoed_on_the_apps_own_pages_and_errors(client, records):
    health = client.get("/healthz", HTTP_X_REQUEST_ID="probe-1")
    assert health.status_code == 200 and health["X-Request-ID"] == "probe-1"
    missing = client.get("/no/such/page/", HTTP_X_REQUEST_ID="probe-2")
    assert missing.status_code == 404 and missing["X-Request-ID"] == "probe-2"


def test_a_failing_view_still_echoes_its_id_and_its_records_carry_it(records):
    browser = Client(raise_request_exception=False)
    response = browser.get("/test/fails/", HTTP_X_REQUEST_ID="incident-7")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "incident-7", "the id a user quotes from an error page must find its records"
    assert records.ids == ["incident-7"]


def test_the_context_ends_with_the_request(client, records):
    client.get("/test/logs/", HTTP_X_REQUEST_ID="one-request")
    logging.getLogger(LOGGER).warning("after the request")
    assert records.ids == ["one-request", None], "a record made outside a request must not inherit the last id"


def test_the_admin_networks_refusal_echoes_the_id_too(client, records, settings):
    settings.DORA_ADMIN_NETWORKS = (ip_network("10.0.0.0/8"),)
    refused = client.get("/admin/login/", REMOTE_ADDR="198.51.100.1", HTTP_X_REQUEST_ID="gate-1")
    assert refused.status_code == 403
    assert refused.get("X-Request-ID") == "gate-1", "a refusal an operator is asked about must carry its id"
