"""The grants of the alerts page and iact-alert on a real Cassandra node that enforces passwords and
permissions, set up the way roles/cassandra_cluster does it: `iact-schema auth bootstrap`, `apply`,
`auth roles`.

The dashboard acknowledges and silences with the reader role: MODIFY on alert_acks and alert_silences
only, everything else read-only. A dashboard whose account lacks the grant says what to run, not 500.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from cassandra import Unauthorized
from cassandra_node import CassandraNode
from django.contrib.auth.models import Permission, User
from django.test import Client

from iact.alerting.history import Event, History
from iact.alerting.state import KeyState, StateStore
from iact.cassandra.session import open_session
from iact.cassandra.settings import ConnectionSettings
from iact.dora.logs.connection import set_search
from iact.dora.logs.search import LogSearch
from iact.schema import auth
from iact.schema.cli import main as iact_schema

pytestmark = pytest.mark.cassandra
SECRETS = {"IACT_SUPERUSER_PASSWORD": "superuser-secret-1", "IACT_WRITER_PASSWORD": "writer-secret-12",
           "IACT_READER_PASSWORD": "reader-secret-12", "IACT_ALERTER_PASSWORD": "alerter-secret-1"}  # fmt: skip
ROLES = ["auth", "roles", "--keyspace", "logging", "--writer", "iact_writer", "--reader", "iact_reader",
         "--alerter", "iact_alerter"]  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    """A node with PasswordAuthenticator and CassandraAuthorizer, its superuser, schema and roles."""
    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-auth-")), auth=True)
    mp = pytest.MonkeyPatch()
    try:
        node.start()
        for name, value in SECRETS.items():
            mp.setenv(name, value)
        where = ["--contact-points", "127.0.0.1", "--port", str(node.port)]
        assert iact_schema([*where, "auth", "bootstrap", "--superuser", "admin"]) == 0
        mp.setenv("IACT_CASSANDRA_USERNAME", "admin")
        mp.setenv("IACT_CASSANDRA_PASSWORD", SECRETS["IACT_SUPERUSER_PASSWORD"])
        assert iact_schema([*where, "apply", "--rf", "dc1:1"]) == 0
        assert iact_schema([*where, *ROLES]) == 0
        yield where, ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)
    finally:
        mp.undo()
        node.cleanup()


def as_role(base, role):
    password = {"admin": "IACT_SUPERUSER_PASSWORD", "iact_reader": "IACT_READER_PASSWORD",
                "iact_alerter": "IACT_ALERTER_PASSWORD"}.get(role, "IACT_READER_PASSWORD")  # fmt: skip
    return open_session(base.with_credentials(role, SECRETS[password]))


def test_the_reader_may_write_acks_and_silences_and_nothing_else(cluster):
    _, base = cluster
    with as_role(base, "admin") as admin:
        granted = {(r.resource, r.permission) for r in admin.execute("LIST ALL PERMISSIONS OF iact_reader")}
    assert granted == {
        ("<keyspace logging>", "SELECT"),
        ("<table system_views.pending_hints>", "SELECT"),
        ("<table logging.alert_acks>", "MODIFY"),
        ("<table logging.alert_silences>", "MODIFY"),
    }
    now = datetime.now(UTC)
    with as_role(base, "iact_reader") as reader:
        store = StateStore(reader, "logging")
        store.silence("errors", "*", now + timedelta(hours=1), "carol")
        assert [s.created_by for s in store.silences(now)] == ["carol"]
        store.unsilence("errors", "*")
        reader.execute(
            "INSERT INTO logging.alert_acks (rule, key, since, acked_at, acked_by) VALUES ('errors', '*', %s, %s, 'c')",
            (now, now),
        )
        reader.execute("SELECT * FROM logging.application_logs LIMIT 1")
        refused = [
            "INSERT INTO logging.alert_state (rule, key, firing) VALUES ('errors', '*', true)",
            "INSERT INTO logging.alert_events (day, ts, id, rule) VALUES ('2030-01-01', 0, now(), 'x')",
            "INSERT INTO logging.alert_runs (name) VALUES ('watermark:x')",
            "INSERT INTO logging.application_logs (host, day, hour, ts, log_id) VALUES ('h', '2030-01-01', 0, 0, "
            "uuid())",
            "DROP TABLE logging.alert_acks",
        ]
        for cql in refused:
            with pytest.raises(Unauthorized):
                reader.execute(cql)


def test_the_alerter_writes_its_state_acks_and_history(cluster):
    _, base = cluster
    now = datetime.now(UTC).replace(microsecond=0)
    with as_role(base, "iact_alerter") as alerter:
        store = StateStore(alerter, "logging")
        store.save("errors", "app.db", KeyState(True, now, now, 3, 1, frozenset({"log"}), "/logs/?table=application"))
        assert store.ack("errors", "app.db", "dave").since == now
        History(alerter, "logging").record(
            Event(now, "errors", "app.db", "firing", "firing", channels=frozenset({"log"}))
        )
        assert [e.rule for e in History(alerter, "logging").day(now.date())] == ["errors"]
        with pytest.raises(Unauthorized):
            alerter.execute("INSERT INTO logging.application_logs (host, day, hour, ts, log_id) "
                            "VALUES ('h', '2030-01-01', 0, 0, uuid())")  # fmt: skip


def test_running_the_roles_again_changes_nothing(cluster, capsys):
    where, _ = cluster
    capsys.readouterr()
    assert iact_schema([*where, *ROLES]) == 0
    assert "result: unchanged" in capsys.readouterr().out


def test_the_page_acknowledges_as_the_reader_and_says_what_to_run_without_the_grant(cluster, db):
    _, base = cluster
    tag = uuid.uuid4().hex[:8]
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with as_role(base, "admin") as admin:
        StateStore(admin, "logging").save(f"err-{tag}", "*", KeyState(True, since, since, 4))
        auth.ensure_login_role(admin, base, "iact_readonly", SECRETS["IACT_READER_PASSWORD"], lambda _: None)
        auth.ensure_grants(admin, "iact_readonly", "logging", auth.READER_PERMISSIONS, lambda _: None)
    manager = User.objects.create_user("manager", password="correct horse battery")
    for codename in ("view_logs", "manage_alerts"):
        manager.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(manager)
    form = {"action": "ack", "rule": f"err-{tag}", "key": "*"}
    try:
        with as_role(base, "iact_readonly") as readonly:
            set_search(LogSearch(readonly))
            assert client.get("/alerts/").status_code == 200, "reading needs SELECT only"
            answer = client.post("/alerts/", form, follow=True)
            page = unescape(answer.content.decode())
            assert answer.status_code == 200 and answer.redirect_chain == [("/alerts/", 302)]
            assert "may not write alert_acks" in page and "iact-schema auth roles" in page, page
            silence = client.post("/alerts/", {**form, "action": "silence", "duration": "1h"}, follow=True)
            assert "may not write alert_silences" in unescape(silence.content.decode())
        with as_role(base, "iact_reader") as reader:
            set_search(LogSearch(reader))
            assert client.post("/alerts/", form).status_code == 302
            assert StateStore(reader, "logging").acks(f"err-{tag}")["*"].acked_by == "manager"
    finally:
        set_search(None)
