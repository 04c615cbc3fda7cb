"""DORA events alert too (issue 17): notices through the alerter's channels, against a real MariaDB,
a loopback HTTP server standing in for Slack and an aiosmtpd relay standing in for the mail relay.

"Nothing more was sent" is proved without sleeping: a sentinel incident is posted afterwards and
waited for; each channel delivers in order, so anything queued before it has arrived by then.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller
from django.test import Client
from django.utils import timezone

from iact.dora import conf
from iact.dora.models import ApiToken, Deployment, hash_token
from iact.dora.notices import outbox
from iact.dora.notices.config import AlertsConfig
from iact.yamlconfig import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dora_notices_test_token"
# The API must answer within this whatever Slack does; a blocking send would take the Slack timeout (20 s).
FAST = 2.0
transactional = pytest.mark.django_db(transaction=True)  # on_commit runs only when a transaction commits


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# --- stand-ins ---------------------------------------------------------------------------------


class Slack(http.server.ThreadingHTTPServer):
    """Records every POSTed text on arrival; answers `status`, or hangs while `hang` is set (until released)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.status = 200
        self.hang = False
        self.released = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.texts.append(body["text"])
                if outer.hang:
                    outer.released.wait(30)
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *_args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, name="slack-stand-in")
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/T000/B000/secret"

    def stop(self) -> None:
        self.hang = False
        self.released.set()
        self.shutdown()
        self.server_close()
        self.thread.join()


class Mailbox:
    """aiosmtpd handler recording each message."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, _server, _session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd checks its own port on start, so it needs a real one
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class World:
    """The API client with a token, the two stand-ins and the alert log, for one test."""

    client: Client
    slack: Slack
    mailbox: Mailbox
    log_file: Path
    headers: dict[str, str] = field(default_factory=dict)
    sentinels: int = 0

    def post(self, body: dict) -> tuple[int, float]:
        started = time.perf_counter()
        response = self.client.post("/api/dora/metrics", json.dumps(body), "application/json", **self.headers)
        return response.status_code, time.perf_counter() - started

    def settled(self) -> tuple[list[str], list[email.message.EmailMessage], list[dict]]:
        """What each channel received so far, sentinels left out, once a fresh sentinel has reached all three."""
        self.sentinels += 1
        name = f"sentinel-{self.sentinels}"
        assert self.post(incident(name, title=name))[0] == 201
        wait_for(lambda: any(name in t for t in self.slack.texts), f"{name} on Slack")
        wait_for(lambda: any(name in str(m["Subject"]) for m in self.mailbox.messages), f"{name} by e-mail")
        wait_for(lambda: name in self.log_file.read_text() if self.log_file.exists() else False, f"{name} logged")
        lines = [json.loads(line) for line in self.log_file.read_text().splitlines()]
        return (
            [t for t in self.slack.texts if "sentinel-" not in t],
            [m for m in self.mailbox.messages if "sentinel-" not in str(m["Subject"])],
            [r for r in lines if not str(r.get("incident_id", "")).startswith("sentinel-")],
        )


def alerts_config(**alerts: object) -> AlertsConfig:
    """Through the dashboard's own configuration parser, as dora.yaml would give it."""
    return conf.from_mapping({"secret_key": "test-only", "alerts": alerts}).alerts


@pytest.fixture
def world(transactional_db, settings, tmp_path) -> Iterator[Callable[..., World]]:
    """world(**alerts keys): alerts on, to the stand-ins; afterwards every thread it started has ended."""
    before = set(threading.enumerate())
    started: list[object] = []

    def make(slack_timeout: float = 10.0, **alerts: object) -> World:
        slack, mailbox = Slack(), Mailbox()
        relay = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
        relay.start()
        started.extend([slack, relay])
        log_file = tmp_path / "dora_alerts.log"
        channels = {
            "slack": {"webhook_url": slack.url, "timeout": slack_timeout},
            "email": {"host": "127.0.0.1", "port": relay.port, "from": "dora@lab", "to": ["ops@lab"],
                      "security": "none"},
            "log": {"path": str(log_file)},
        }  # fmt: skip
        settings.DORA_ALERTS = alerts_config(
            enabled=True, dashboard_url="https://dora.lab/api/dora/dashboard/", channels=channels,
            retry_backoff=0.01, **alerts,
        )  # fmt: skip
        ApiToken.objects.create(name="ci", digest=hash_token(TOKEN))
        return World(Client(), slack, mailbox, log_file, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})

    yield make
    for server in started:
        if isinstance(server, Slack):
            server.hang = False
            server.released.set()  # a hung request answers, so the Slack worker can end
    assert outbox.shutdown(timeout=15), "a DORA alert worker did not end"
    for server in started:
        server.stop()
    wait_for(lambda: set(threading.enumerate()) <= before, "the test's threads to end")


def deployment(eid: str, status: str = "failed", environment: str = "production", **extra: object) -> dict:
    finished = timezone.now() - timedelta(minutes=5)
    return {
        "type": "deployment", "id": eid, "service": "checkout", "environment": environment, "version": "2.4.1",
        "sha": "0123456789abcdef", "started_at": (finished - timedelta(minutes=3)).isoformat(),
        "finished_at": finished.isoformat(), "status": status, "url": f"https://ci.lab/runs/{eid}",
    } | extra  # fmt: skip


def incident(eid: str, **extra: object) -> dict:
    opened = timezone.now() - timedelta(minutes=2)
    return {"type": "incident", "id": eid, "service": "checkout", "opened_at": opened.isoformat()} | extra


# --- when a notice is sent ---------------------------------------------------------------------


@transactional
def test_a_failed_production_deployment_sends_one_slack_message_one_email_and_one_log_line(world):
    w = world()
    assert w.post(deployment("run-41"))[0] == 201
    texts, mails, logged = w.settled()
    assert len(texts) == 1 and len(mails) == 1 and len(logged) == 1
    subject = "[DORA] Deployment failed: checkout 2.4.1 to production"
    assert texts[0].splitlines()[0] == subject and mails[0]["Subject"] == subject
    body = mails[0].get_content()
    for fact in ("Service: checkout", "Environment: production", "Deployment: run-41 (source api)",
                 "Version: 2.4.1", "Status: failed", "Details: https://ci.lab/runs/run-41",
                 "Dashboard: https://dora.lab/api/dora/dashboard/?service=checkout"):  # fmt: skip
        assert fact in body and fact in texts[0]
    assert logged[0]["type"] == "dora" and logged[0]["event"] == "deployment_failed"
    assert logged[0]["deployment_id"] == "run-41" and logged[0]["environment"] == "production"

    # The same failed deployment again (a retried CI step): recorded, not news.
    assert w.post(deployment("run-41"))[0] == 200
    texts, mails, logged = w.settled()
    assert (len(texts), len(mails), len(logged)) == (1, 1, 1)


@transactional
def test_a_success_or_a_staging_failure_sends_nothing(world):
    w = world()
    assert w.post(deployment("ok-1", status="success"))[0] == 201
    assert w.post(deployment("stg-1", environment="staging"))[0] == 201
    assert w.post(deployment("stg-2", status="rolled_back", environment="staging"))[0] == 201
    assert w.settled() == ([], [], [])


@transactional
def test_only_the_transition_into_failed_or_rolled_back_notifies(world):
    w = world()
    assert w.post(deployment("run-7", status="success"))[0] == 201
    assert w.post(deployment("run-7", status="rolled_back"))[0] == 200
    assert w.post(deployment("run-7", status="rolled_back"))[0] == 200
    texts, mails, _ = w.settled()
    assert [m["Subject"] for m in mails] == ["[DORA] Deployment rolled back: checkout 2.4.1 to production"]
    assert len(texts) == 1 and "Status: rolled back" in texts[0]
    assert Deployment.objects.get(external_id="run-7").status == "rolled_back"


@transactional
def test_a_batch_rolled_back_sends_nothing(world):
    w = world()
    batch = {"events": [deployment("run-9"), incident("INC-9", deployment_id="never-recorded")]}
    assert w.post(batch)[0] == 400
    assert Deployment.objects.count() == 0
    assert w.settled() == ([], [], [])


@transactional
def test_an_incident_opened_sends_one_and_its_updates_none(world):
    w = world()
    assert w.post(deployment("run-12", status="success"))[0] == 201
    opened = incident("INC-12", title="Checkout answers 500 <!channel>", deployment_id="run-12",
                      url="https://pager.lab/INC-12")  # fmt: skip
    assert w.post(opened)[0] == 201
    texts, mails, logged = w.settled()
    assert [m["Subject"] for m in mails] == ["[DORA] Incident opened: checkout: Checkout answers 500 <!channel>"]
    assert "Caused by: deployment run-12 to production, 2.4.1" in mails[0].get_content()
    # Slack gets the title escaped: a recorded title does not page the whole channel.
    assert len(texts) == 1 and "&lt;!channel>" in texts[0] and "<!channel>" not in texts[0]
    assert logged[0]["event"] == "incident_opened" and logged[0]["incident_id"] == "INC-12"

    restored = opened | {"restored_at": timezone.now().isoformat()}
    assert w.post(restored)[0] == 200
    assert [len(x) for x in w.settled()] == [1, 1, 1]


@transactional
def test_a_hanging_slack_neither_slows_the_api_nor_holds_back_the_email(world, caplog):
    caplog.set_level(logging.INFO, logger="iact.dora.notices")
    w = world(slack_timeout=20.0, queue_size=1, retry_attempts=1)
    w.slack.hang = True
    took = []

    status, seconds = w.post(deployment("hang-1", version="1.0.1"))
    assert status == 201
    took.append(seconds)
    wait_for(lambda: len(w.slack.texts) == 1, "the first notice to reach the hanging Slack")
    wait_for(lambda: len(w.mailbox.messages) == 1, "the first e-mail, while Slack hangs")

    status, seconds = w.post(deployment("hang-2", version="1.0.2"))  # waits in Slack's queue (1 of 1)
    assert status == 201
    took.append(seconds)
    wait_for(lambda: len(w.mailbox.messages) == 2, "the second e-mail")

    status, seconds = w.post(deployment("hang-3", version="1.0.3"))  # Slack's queue is full: dropped for Slack alone
    assert status == 201
    took.append(seconds)
    wait_for(lambda: len(w.mailbox.messages) == 3, "the third e-mail")
    assert max(took) < FAST, f"the API waited on Slack: {took}"
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and "checkout 1.0.3 to production' dropped for slack" in dropped[0]
    assert "alerts.queue_size" in dropped[0]

    # Slack comes back: the notice it was holding and the queued one are delivered, the dropped one never.
    w.slack.hang = False
    w.slack.released.set()
    wait_for(lambda: len(w.slack.texts) == 2, "the queued notice to reach Slack")
    wait_for(lambda: sum("sent through slack" in r.getMessage() for r in caplog.records) == 2, "both Slack sends")
    assert "hang-1" in w.slack.texts[0] and "hang-2" in w.slack.texts[1]
    assert not any("hang-3" in t for t in w.slack.texts)


@transactional
def test_a_failing_slack_is_retried_then_reported_and_the_others_still_deliver(world, caplog):
    w = world(retry_attempts=2)
    w.slack.status = 500
    assert w.post(deployment("run-50"))[0] == 201
    wait_for(lambda: any("not sent through slack" in r.getMessage() for r in caplog.records), "the Slack failure")
    failure = next(r.getMessage() for r in caplog.records if "not sent through slack" in r.getMessage())
    assert "after 2 attempt(s): Slack webhook answered HTTP 500" in failure
    assert "secret" not in failure, "the webhook URL (its secret part) is never logged"
    assert len(w.slack.texts) == 2 and len(w.mailbox.messages) == 1


@transactional
def test_alerts_are_off_by_default_and_start_no_thread(client):
    ApiToken.objects.create(name="ci", digest=hash_token(TOKEN))
    body = json.dumps(deployment("run-1"))
    response = client.post("/api/dora/metrics", body, "application/json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 201
    assert not [t for t in threading.enumerate() if t.name.startswith(outbox.THREAD_PREFIX)]


# --- configuration -----------------------------------------------------------------------------


def test_the_alerts_section_is_off_by_default_and_reads_the_alerters_channel_keys(tmp_path):
    assert conf.from_mapping({"secret_key": "x"}).alerts == AlertsConfig()
    on = alerts_config(
        enabled=True,
        dashboard_url="https://dora.example/api/dora/dashboard/",
        channels={
            "slack": {"webhook_url": "https://hooks.slack.com/services/T/B/x"},
            "email": {"host": "relay", "from": "dora@x", "to": "ops@x", "username": "u", "password": "p"},
            "log": {"path": str(tmp_path / "a.log")},
        },
        queue_size=5,
    )
    assert on.channel_names() == ("slack", "email", "log")
    assert on.email is not None and on.email.security == "starttls" and on.email.to == ("ops@x",)
    assert "hooks.slack.com" not in repr(on) and "'p'" not in repr(on), "secrets stay out of reprs"
    assert on.queue_size == 5 and on.attempts == 3


@pytest.mark.parametrize(
    ("alerts", "error"),
    [
        ({"enabled": True, "channels": {"log": {"enabled": False}}}, r"alerts\.enabled: true, but every channel"),
        ({"channels": {"slack": {"webhook_url": "hooks.slack.com/x"}}}, r"alerts\.channels\.slack\.webhook_url: give"),
        ({"channels": {"email": {"from": "a@x", "to": ["b@x"]}}}, r"alerts\.channels\.email\.host: name your SMTP"),
        (
            {"channels": {"email": {"host": "r", "from": "a@x", "to": ["b@x"], "security": "none", "username": "u"}}},
            r"alerts\.channels\.email\.username: the relay password would cross the network in clear",
        ),
        ({"enabled": True, "channels": {"log": {"path": "/nonexistent/dir/a.log"}}}, r"alerts\.channels\.log\.path: "),
        ({"dashboard_url": "dora.example/dashboard"}, r"alerts\.dashboard_url: 'dora.example/dashboard' is not an"),
        ({"chanels": {}}, r"alerts\.chanels: unknown key"),
        ({"queue_size": 0}, r"alerts\.queue_size: must be at least 1"),
    ],
)
def test_a_wrong_alerts_section_fails_at_start_naming_the_key(alerts, error):
    with pytest.raises(ConfigError, match=error):
        alerts_config(**alerts)


def test_a_missing_log_directory_is_no_error_while_alerts_are_off():
    assert alerts_config(channels={"log": {"path": "/nonexistent/dir/a.log"}}).enabled is False


@pytest.mark.parametrize(("server", "logged"), [("1", True), ("", False)])
def test_only_the_server_process_writes_the_alert_log(tmp_path, server, logged):
    # A command run by root would create the log root-owned in the service's directory, and the service
    # could no longer append to it; Slack and e-mail stay, as for the dashboard's own logs.
    config = tmp_path / "dora.yaml"
    alerts = {"enabled": True, "channels": {"log": {"path": str(tmp_path / "a.log")},
                                            "slack": {"webhook_url": "https://hooks.example/x"}}}  # fmt: skip
    config.write_text(json.dumps({"secret_key": "x", "alerts": alerts}))
    env = os.environ | {"IACT_DORA_CONFIG": str(config), "IACT_DORA_SERVER": server}
    probe = "import iact.dora.settings as s; print(s.DORA_ALERTS.channel_names())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(("slack", "log") if logged else ("slack",))


# --- the role's template -----------------------------------------------------------------------

ROLE = ROOT / "roles" / "django_dora"
PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{defaults}, {vars}]
  tasks:
    - ansible.builtin.template: {{src: {template}, dest: {dest}, mode: "0600"}}
"""


def render_dora_yaml(tmp_path: Path, **role_vars: object) -> dict:
    """dora.yaml.j2 rendered by Ansible with the role's defaults and these variables."""
    (tmp_path / "secret_key").write_text("test-only-secret\n")
    play, out = tmp_path / "play.yml", tmp_path / "dora.yaml"
    play.write_text(PLAY.format(defaults=ROLE / "defaults/main.yml", vars=ROLE / "vars/main.yml",
                                template=ROLE / "templates/dora.yaml.j2", dest=out))  # fmt: skip
    extra = {"django_dora_config_dir": str(tmp_path), "_django_dora_mysql_socket": "/run/mysqld/mysqld.sock",
             "ansible_python_interpreter": sys.executable}  # fmt: skip
    (tmp_path / "extra.json").write_text(json.dumps(extra | role_vars))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IACT_DORA_")}  # the callback stays quiet
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    run = subprocess.run(
        [playbook, "-i", "localhost,", str(play), "-e", f"@{tmp_path / 'extra.json'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return yaml.safe_load(out.read_text())


def test_the_role_writes_alerts_off_by_default(tmp_path):
    assert conf.from_mapping(render_dora_yaml(tmp_path)).alerts.enabled is False


def test_the_role_writes_an_alerts_section_the_dashboard_accepts(tmp_path):
    data = render_dora_yaml(
        tmp_path,
        django_dora_log_dir=str(tmp_path),
        django_dora_allowed_hosts=["dora.example.internal", "localhost"],
        django_dora_tls_port=8443,
        django_dora_alerts_enabled=True,
        django_dora_alerts_slack_webhook_url="https://hooks.slack.com/services/T/B/secret",
        django_dora_alerts_email_host="relay.example.internal",
        django_dora_alerts_email_from="dora@example.internal",
        django_dora_alerts_email_to=["ops@example.internal"],
        django_dora_alerts_email_username="dora",
        django_dora_alerts_email_password="relay-secret",
        django_dora_alerts_queue_size=7,
    )
    alerts = conf.from_mapping(data).alerts
    assert alerts.enabled and alerts.channel_names() == ("slack", "email", "log")
    assert alerts.slack is not None and alerts.slack.webhook_url == "https://hooks.slack.com/services/T/B/secret"
    assert alerts.email is not None and alerts.email.password == "relay-secret" and alerts.email.port == 25
    assert alerts.log_path == str(tmp_path / "dora_alerts.log")
    assert alerts.dashboard_url == "https://dora.example.internal:8443/api/dora/dashboard/"
    assert (alerts.queue_size, alerts.attempts) == (7, 3)
