"""The dashboard under attack (issue 15): logged session keys, webhook signatures and replays, token
scope, login brute force, admin by network, body size and per-token rate limits.

Each test drives the real app through Django's test client against the throwaway MariaDB.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import include, path
from django.utils import timezone

from iact.applog import JsonFormatter, RequestContextFilter
from iact.dora import conf
from iact.dora.clientip import client_ip
from iact.dora.models import ApiToken, Deployment, Incident, Throttle, WebhookDelivery, hash_token
from iact.yamlconfig import ConfigError

pytestmark = pytest.mark.django_db
TOKEN = "dora_security_test_token"
PASSWORD = "correct horse battery"


def make_token(name="ci", value=TOKEN, source="", services=""):
    ApiToken.objects.create(name=name, digest=hash_token(value), source=source, services=services)
    return {"HTTP_AUTHORIZATION": f"Bearer {value}"}


def post(client, body, headers):
    return client.post("/api/dora/metrics", json.dumps(body), content_type="application/json", **headers)


def deployment(eid="run-1", **extra):
    finished = timezone.now() - timedelta(hours=1)
    body = {
        "type": "deployment",
        "id": eid,
        "service": "api",
        "started_at": (finished - timedelta(minutes=5)).isoformat(),
        "finished_at": finished.isoformat(),
    }
    return body | extra


# --- 1. session keys never reach the logs ---------------------------------------------------------


class _Capture(logging.Handler):
    """Formats records the way the file handler does (JsonFormatter after the context filter)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestContextFilter())
        self.setFormatter(JsonFormatter(app="dora"))
        self.lines: list[str] = []
        self.session_ids: list[str | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.session_ids.append(record.session_id)  # type: ignore[attr-defined]


def _view_that_logs(request):
    """Any record made while a request runs (a view's warning, Django's 500 report) gets the context."""
    logging.getLogger("iact.test.view").warning("something worth a look")
    return HttpResponse("ok")


urlpatterns = [path("test/logs/", _view_that_logs), path("", include("iact.dora.urls"))]


def test_log_records_carry_a_keyed_hash_of_the_session_key_never_the_key(django_user_model, settings):
    settings.ROOT_URLCONF = __name__
    django_user_model.objects.create_user("alice", "", PASSWORD)
    browser = Client()
    assert browser.login(username="alice", password=PASSWORD)
    key = browser.cookies["sessionid"].value
    capture = _Capture()
    logger = logging.getLogger("iact.test.view")
    logger.addHandler(capture)
    try:
        assert browser.get("/test/logs/").status_code == 200
        assert browser.get("/test/logs/").status_code == 200
    finally:
        logger.removeHandler(capture)
    assert len(capture.lines) == 2
    assert all(key not in line for line in capture.lines), "the live session key was logged"
    first, second = capture.session_ids
    assert first == second, "records of one session must share the session id"
    assert first is not None and len(first) == 16 and int(first, 16) >= 0


# --- 2. GitHub signatures and replays -------------------------------------------------------------


def _signed(raw: bytes, secret: str = "test-webhook-secret") -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def github(client, event, body, delivery=None, signature=None):
    raw = json.dumps(body).encode()
    headers = {"HTTP_X_GITHUB_EVENT": event, "HTTP_X_HUB_SIGNATURE_256": signature or _signed(raw)}
    if delivery:
        headers["HTTP_X_GITHUB_DELIVERY"] = delivery
    return client.post("/api/dora/webhooks/github", raw, content_type="application/json", **headers)


T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
REPO = {"name": "shop", "default_branch": "main"}


def deployment_status(state, at):
    return {
        "repository": REPO,
        "deployment": {"id": 42, "sha": "bbb", "environment": "production", "created_at": T0.isoformat()},
        "deployment_status": {"state": state, "created_at": at.isoformat(), "updated_at": at.isoformat()},
    }


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + "0" * 64,  # well-formed, wrong
        "sha256=" + "é" * 64,  # non-ASCII: hmac.compare_digest raised TypeError (a 500 with a traceback)
        "sha256=\u2603",
        "sha1=" + "0" * 40,
        "",
    ],
)
def test_a_bad_signature_is_refused_with_403(client, signature):
    response = github(client, "deployment_status", deployment_status("success", T0), signature=signature or " ")
    assert response.status_code == 403
    assert "X-Hub-Signature-256" in response.json()["error"]
    assert Deployment.objects.count() == 0


def test_a_replayed_delivery_is_ignored(client):
    body = deployment_status("success", T0 + timedelta(hours=1))
    assert github(client, "deployment_status", body, delivery="d-1").status_code == 201
    Deployment.objects.update(status="failed")  # so a replay that re-applied would show
    replay = github(client, "deployment_status", body, delivery="d-1")
    assert replay.status_code == 202
    assert replay.json()["ignored"] is True and "d-1" in replay.json()["reason"]
    assert Deployment.objects.get().status == "failed"
    assert WebhookDelivery.objects.filter(delivery_id="d-1").count() == 1


def test_a_failed_delivery_can_be_redelivered(client):
    """GitHub's "Redeliver" reuses the delivery id: only deliveries that were processed count as seen."""
    broken = {"repository": REPO, "deployment": {}, "deployment_status": {"state": "success"}}
    assert github(client, "deployment_status", broken, delivery="d-9").status_code == 400
    assert not WebhookDelivery.objects.filter(delivery_id="d-9").exists()
    good = deployment_status("success", T0 + timedelta(hours=1))
    assert github(client, "deployment_status", good, delivery="d-9").status_code == 201


def test_an_older_state_does_not_overwrite_a_newer_one(client):
    """The delivery header is not signed: a captured old payload under a new delivery id is refused by age."""
    old = deployment_status("failure", T0 + timedelta(hours=1))
    new = deployment_status("success", T0 + timedelta(hours=2))
    assert github(client, "deployment_status", old, delivery="d-1").status_code == 201
    assert github(client, "deployment_status", new, delivery="d-2").status_code == 200
    stale = github(client, "deployment_status", old, delivery="d-3")
    assert stale.status_code == 202 and "older" in stale.json()["reason"]
    row = Deployment.objects.get()
    assert (row.status, row.finished_at) == ("success", T0 + timedelta(hours=2))

    issue = {
        "repository": REPO,
        "issue": {
            "id": 7,
            "title": "down",
            "labels": [{"name": "incident"}],
            "created_at": T0.isoformat(),
            "updated_at": T0.isoformat(),
            "state": "open",
        },
    }
    closed = json.loads(json.dumps(issue))
    closed["issue"] |= {"state": "closed", "closed_at": (T0 + timedelta(hours=1)).isoformat()}
    closed["issue"]["updated_at"] = closed["issue"]["closed_at"]
    assert github(client, "issues", issue, delivery="i-1").status_code == 201
    assert github(client, "issues", closed, delivery="i-2").status_code == 200
    assert github(client, "issues", issue, delivery="i-3").status_code == 202
    assert Incident.objects.get().restored_at == T0 + timedelta(hours=1)


def test_a_malformed_delivery_id_is_refused(client):
    response = github(client, "ping", {"zen": "hi"}, delivery="x" * 300)
    assert response.status_code == 400 and "X-GitHub-Delivery" in response.json()["error"]


# --- 3. token scope -------------------------------------------------------------------------------


def test_the_api_never_writes_github_rows(client):
    token = make_token()
    assert github(client, "deployment_status", deployment_status("success", T0)).status_code == 201
    forged = deployment(eid="42", source="github", status="failed")
    response = post(client, forged, token)
    assert response.status_code == 403
    assert "webhook" in response.json()["errors"]["source"]
    batch = post(client, {"events": [deployment("ok"), forged]}, token)
    assert batch.status_code == 403 and "events[1].source" in batch.json()["errors"]
    assert Deployment.objects.get(source="github").status == "success"
    assert not Deployment.objects.filter(external_id="ok").exists()


def test_a_token_is_tied_to_its_source_and_services(client):
    token = make_token(source="ci", services="api,web")
    created = post(client, deployment("r-1"), token)
    assert created.status_code == 201, created.content
    assert Deployment.objects.get(external_id="r-1").source == "ci"
    assert post(client, deployment("r-2", source="ci", service="web"), token).status_code == 201
    other = post(client, deployment("r-3", source="jenkins"), token)
    assert other.status_code == 403 and "'ci'" in other.json()["errors"]["source"]
    billing = post(client, deployment("r-4", service="billing"), token)
    assert billing.status_code == 403 and "api, web" in billing.json()["errors"]["service"]
    assert sorted(Deployment.objects.values_list("external_id", flat=True)) == ["r-1", "r-2"]


def test_tokens_of_different_sources_cannot_touch_each_others_rows(client):
    ci = make_token("ci", "dora_token_for_ci_tool", source="ci")
    pager = make_token("pager", "dora_token_for_pager_tool", source="pager")
    assert post(client, deployment("run-1", status="success"), ci).status_code == 201
    assert post(client, deployment("run-1", status="failed"), pager).status_code == 201  # its own row
    assert Deployment.objects.get(source="ci", external_id="run-1").status == "success"
    assert post(client, deployment("run-1", source="ci", status="failed"), pager).status_code == 403


def test_unscoped_tokens_keep_working_as_before(client):
    """Tokens created before scopes existed (and role items without `source`): any source but github."""
    token = make_token()
    assert post(client, deployment("a"), token).status_code == 201
    assert post(client, deployment("b", source="ansible"), token).status_code == 201
    assert sorted(Deployment.objects.values_list("source", flat=True)) == ["ansible", "api"]


def test_dora_token_sets_and_keeps_the_scope(monkeypatch):
    monkeypatch.setenv("IACT_DORA_TOKEN", "dora_known_value_1234")
    out = io.StringIO()
    call_command("dora_token", "ci", "--source", "ci", "--services", "web, api", stdout=out)
    call_command("dora_token", "ci", "--source", "ci", "--services", "api,web", stdout=out)
    call_command("dora_token", "ci", stdout=out)  # the item lost its scope: the token follows
    assert out.getvalue().split() == ["created", "unchanged", "updated"]
    assert (ApiToken.objects.get().source, ApiToken.objects.get().services) == ("", "")
    with pytest.raises(CommandError, match="github"):
        call_command("dora_token", "ci", "--source", "github")
    with pytest.raises(CommandError, match="--services"):
        call_command("dora_token", "ci", "--services", "Not A Slug")


# --- 4. logins ------------------------------------------------------------------------------------


def _login(client, path, username, password, ip="192.0.2.10", **extra):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_logins_lock_after_repeated_failures(client, django_user_model, settings, path):
    settings.DORA_LOGIN_MAX_FAILURES = 3
    django_user_model.objects.create_superuser("admin", "", PASSWORD)
    for _ in range(3):
        assert _login(client, path, "admin", "wrong password").status_code == 200
    locked = _login(client, path, "admin", PASSWORD)
    assert locked.status_code == 200 and "_auth_user_id" not in client.session
    assert "Too many failed logins" in locked.content.decode()
    other = Client()
    assert _login(other, path, "admin", PASSWORD, ip="192.0.2.99").status_code == 302, "another address is not locked"
    Throttle.objects.update(blocked_until=timezone.now() - timedelta(seconds=1))  # the lockout has passed
    assert _login(client, path, "admin", PASSWORD).status_code == 302
    assert not Throttle.objects.filter(key__startswith="login:").exists(), "a successful login clears the count"


def test_dora_unlock_lifts_a_users_lockout(client, django_user_model, settings):
    settings.DORA_LOGIN_MAX_FAILURES = 2
    django_user_model.objects.create_user("bob", "", PASSWORD)
    for _ in range(2):
        _login(client, "/accounts/login/", "bob", "wrong password")
    _login(client, "/accounts/login/", "carol", "wrong password")
    assert "Too many" in _login(client, "/accounts/login/", "bob", PASSWORD).content.decode()
    out = io.StringIO()
    call_command("dora_unlock", "bob", stdout=out)
    assert out.getvalue().strip() == "removed 1 login counter(s)"
    assert _login(client, "/accounts/login/", "bob", PASSWORD).status_code == 302
    assert Throttle.objects.filter(key__startswith="login:").count() == 1, "carol's count is not bob's"


def test_client_ip_comes_from_the_header_nginx_appends_only_behind_a_trusted_proxy(settings):
    settings.DORA_TRUSTED_PROXIES = (ip_network("127.0.0.1/32"),)
    rf = RequestFactory()
    # nginx: X-Forwarded-For = $proxy_add_x_forwarded_for ("<what the client sent>, <client address>")
    via_nginx = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert client_ip(via_nginx) == "203.0.113.7"
    direct = rf.get("/", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert client_ip(direct) == "198.51.100.1", "a header from an untrusted peer is ignored"
    garbage = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="not-an-address")
    assert client_ip(garbage) == "127.0.0.1"


def test_admin_can_be_restricted_to_networks(client, settings):
    assert client.get("/admin/login/", REMOTE_ADDR="198.51.100.1").status_code == 200  # default: anywhere
    settings.DORA_ADMIN_NETWORKS = (ip_network("10.0.0.0/8"), ip_network("2001:db8::/32"))
    refused = client.get("/admin/login/", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403 and b"admin_networks" in refused.content
    assert client.get("/admin/login/", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/admin/login/", REMOTE_ADDR="2001:db8::1").status_code == 200
    proxied = client.get("/admin/login/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert proxied.status_code == 200
    assert client.get("/api/dora/dashboard/", REMOTE_ADDR="198.51.100.1").status_code == 302  # only /admin/


def test_password_validators_refuse_weak_passwords(monkeypatch):
    for weak in ("short", "password1234", "123456789012"):
        with pytest.raises(ValidationError):
            validate_password(weak)
    validate_password("a long admin password")
    monkeypatch.setenv("IACT_DORA_ADMIN_PASSWORD", "password1234")
    with pytest.raises(CommandError, match="too common"):
        call_command("dora_ensure_admin", "admin")


def test_new_options_are_validated_at_start():
    base = {"secret_key": "x" * 50}
    c = conf.from_mapping(base)
    assert c.admin_networks == () and c.api.max_body_bytes == 2 * 1024**2 and c.login.max_failures == 5
    with pytest.raises(ConfigError, match=r"admin_networks: 'ten\.0/8' is not a network"):
        conf.from_mapping(base | {"admin_networks": ["ten.0/8"]})
    with pytest.raises(ConfigError, match=r"trusted_proxies: '10\.0\.0\.1/8' is not a network"):
        conf.from_mapping(base | {"trusted_proxies": ["10.0.0.1/8"]})
    with pytest.raises(ConfigError, match=r"api\.rate_limit: must be at least 1"):
        conf.from_mapping(base | {"api": {"rate_limit": 0}})
    with pytest.raises(ConfigError, match=r"login\.lockout_seconds"):
        conf.from_mapping(base | {"login": {"lockout_seconds": -1}})
    c = conf.from_mapping(base | {"admin_networks": "10.0.0.0/8, 192.168.1.7", "api": {"max_body_bytes": "64k"}})
    assert [str(n) for n in c.admin_networks] == ["10.0.0.0/8", "192.168.1.7/32"]
    assert c.api.max_body_bytes == 65536


def test_the_dashboards_cassandra_ca_file_is_checked_at_start(tmp_path):
    base = {"secret_key": "x" * 50, "cassandra": {"hosts": ["cass1"]}}
    with pytest.raises(ConfigError, match=r"cassandra\.ca_file: .*/nope does not exist"):
        conf.from_mapping(base | {"cassandra": {"hosts": ["cass1"], "ca_file": str(tmp_path / "nope")}})
    (tmp_path / "ca.pem").write_text("x")
    c = conf.from_mapping(base | {"cassandra": {"hosts": ["cass1"], "ca_file": str(tmp_path / "ca.pem")}})
    assert c.cassandra.ca_file == str(tmp_path / "ca.pem")


# --- 5. hostile bodies and floods -----------------------------------------------------------------


def test_an_oversized_body_is_refused_with_413(client, settings):
    settings.DORA_API_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    token = make_token()
    big = deployment(title="x" * 2000)
    response = post(client, big, token)
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["error"]
    hook = github(client, "ping", {"zen": "x" * 2000})
    assert hook.status_code == 413
    assert Deployment.objects.count() == 0


def test_api_requests_are_rate_limited_per_token(client, settings):
    settings.DORA_API_RATE_LIMIT, settings.DORA_API_RATE_WINDOW = 3, 60
    first = make_token("a", "dora_token_number_one")
    second = make_token("b", "dora_token_number_two")
    for i in range(3):
        assert post(client, deployment(f"r-{i}"), first).status_code == 201
    refused = post(client, deployment("r-9"), first)
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert "3 requests per 60 s" in refused.json()["error"]
    assert client.get("/api/dora/metrics", **first).status_code == 429, "reads count too"
    assert post(client, deployment("s-1"), second).status_code == 201, "another token has its own budget"
    Throttle.objects.update(window_start=timezone.now() - timedelta(seconds=61))
    assert post(client, deployment("r-9"), first).status_code == 201


def test_models_and_migrations_agree():
    call_command("makemigrations", "dora", "--check", "--dry-run", verbosity=0)
