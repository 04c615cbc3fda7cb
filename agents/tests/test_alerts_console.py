"""The alerts page (/alerts/) against the session's real Cassandra node and MariaDB: who may see and act,
what it shows, acknowledge / silence / unsilence recorded with who and when, CSRF, and in Chromium.

The alert tables are shared by every test of the session, so each test's rules carry a tag of their own
and assertions look at those rows only.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from iact.alerting.history import Event, History
from iact.alerting.state import KeyState, StateStore
from iact.dora import conf
from iact.dora.logs.connection import set_search
from iact.dora.logs.search import LogSearch

pytestmark = pytest.mark.cassandra
PASSWORD = "correct horse battery"


def user(name, *perms):
    u = User.objects.create_user(name, password=PASSWORD)
    for p in perms:
        u.user_permissions.add(Permission.objects.get(codename=p))
    return u


def client_for(u, **kwargs):
    c = Client(**kwargs)
    c.force_login(u)
    return c


@pytest.fixture
def alerts(session):
    """A tag of its own, the stores, and the page reading the test node."""
    tag = uuid.uuid4().hex[:8]
    set_search(LogSearch(session))
    yield tag, StateStore(session, "logging"), History(session, "logging")
    set_search(None)


def fire(store, rule, key, since, **extra):
    path = f"/logs/?table=application&from={since.isoformat()}&level=ERROR"
    store.save(rule, key, KeyState(True, since, since, extra.pop("count", 12), logs_path=path, **extra))


def cell(row, name):
    """The text of the cell of class `name` in one row of HTML."""
    return re.search(rf'<td class="{name}">(.*?)</td>', row, re.S).group(1).strip()


def html(response):
    return unescape(response.content.decode())


def test_without_view_logs_the_page_and_its_actions_answer_403(db, alerts):
    c = client_for(user("plain"))
    assert c.get("/alerts/").status_code == 403
    assert c.post("/alerts/", {"action": "ack", "rule": "x", "key": "*"}).status_code == 403
    assert Client().get("/alerts/").status_code == 302, "anonymous users are sent to the login page"
    assert Client().post("/alerts/", {"action": "ack", "rule": "x"}).status_code == 302
    reader = client_for(user("reader", "view_logs"))
    assert reader.put("/alerts/").status_code == 405


def test_acting_needs_manage_alerts(db, alerts):
    tag, store, _ = alerts
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    fire(store, f"err-{tag}", "*", since)
    reader = client_for(user("reader", "view_logs"))
    page = html(reader.get("/alerts/"))
    assert f"err-{tag}" in page and 'class="ack"' not in page, "no buttons for a reader"
    for action in ("ack", "silence", "unsilence"):
        answer = reader.post("/alerts/", {"action": action, "rule": f"err-{tag}", "key": "*", "duration": "1h"})
        assert answer.status_code == 403, action
    assert store.acks(f"err-{tag}") == {} and not [
        s for s in store.silences(datetime.now(UTC)) if s.rule == f"err-{tag}"
    ]


def test_the_page_shows_firing_acks_steps_links_notifications_history_and_silences(db, alerts):
    tag, store, history = alerts
    now = datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(minutes=40)
    fire(store, f"db-{tag}", "app.db", since, step=2, notified=frozenset({"log", "slack", "email"}))
    fire(store, f"db-{tag}", "app.<b>web</b>", since + timedelta(minutes=5), count=3)
    store.save(f"db-{tag}", "app.old", KeyState(False, None, now, 0))  # resolved: not listed
    fire(store, f"err-{tag}", "*", since)
    store.ack(f"db-{tag}", "app.db", "carol", at=now - timedelta(minutes=10))
    # An ack of an earlier episode of err: the current one is not acknowledged.
    store.s.execute(
        "INSERT INTO logging.alert_acks (rule, key, since, acked_at, acked_by) VALUES (%s, '*', %s, %s, 'dave')",
        (f"err-{tag}", since - timedelta(days=1), since - timedelta(days=1)),
    )
    store.silence(f"err-{tag}", "*", now + timedelta(hours=4), "erin", at=now)
    for minutes, event, step in ((35, "firing", 0), (20, "escalation", 1), (5, "escalation", 2)):
        history.record(Event(now - timedelta(minutes=minutes), f"db-{tag}", "app.db", event, "firing", "critical", 12,
                             10, step, frozenset({"slack"}), frozenset({"email"}) if step == 2 else frozenset(),
                             since - timedelta(minutes=5), since, "/logs/?table=application"))  # fmt: skip
    old_day = datetime(2030, 3, 4, 10, tzinfo=UTC)
    history.record(Event(old_day, f"db-{tag}", "app.db", "resolved", "resolved", "critical", 0, 10, 0,
                         frozenset({"log"}), frozenset(), old_day, old_day, ""))  # fmt: skip

    c = client_for(user("reader", "view_logs"))
    answer = c.get("/alerts/")
    assert answer.status_code == 200
    page = html(answer)
    firing = page[page.index('id="firing"') : page.index('id="silences"')]
    assert f'data-rule="db-{tag}" data-key="app.db"' in firing and "app.old" not in firing
    row = firing[firing.index(f'data-rule="db-{tag}" data-key="app.db"') :].split("</tr>")[0]
    assert "by carol at" in row and "step 2" in row and "told email, log, slack" in row and "critical" in row
    assert f"{since:%Y-%m-%d %H:%M:%S}" in row and 'href="/logs/?table=application&from=' in row
    assert "<b>web</b>" not in answer.content.decode(), "keys come from log rows: escaped"
    err = firing[firing.index(f'data-rule="err-{tag}"') :].split("</tr>")[0]
    assert ">no<" in err and "by dave" not in err, "an ack of an earlier episode does not count"
    assert "by erin" in err, "the silence holding it is shown"
    silences = page[page.index('id="silences"') : page.index('id="recent"')]
    assert f'data-rule="err-{tag}" data-key="*"' in silences and "erin" in silences
    recent = page[page.index('id="recent"') : page.index('id="history"')]
    mine = [r for r in recent.split("</tr>") if f"db-{tag}" in r]
    assert [cell(r, "what") for r in mine] == ["escalation 2", "escalation 1", "firing"], "last 24 hours, newest first"
    assert (cell(mine[0], "sent"), cell(mine[0], "failed")) == ("slack", "email")

    past = html(c.get("/alerts/", {"day": "2030-03-04"}))
    days_history = past[past.index('id="history"') :]
    assert f"db-{tag}" in days_history and "resolved" in days_history and "escalation" not in days_history
    bad = c.get("/alerts/", {"day": "yesterday"})
    assert bad.status_code == 400 and "is not a date" in html(bad)


def test_the_page_reads_only_named_partitions_and_small_tables_and_answers_fast(db, alerts, session):
    tag, store, _ = alerts
    fire(store, f"err-{tag}", "*", datetime.now(UTC) - timedelta(minutes=5))
    seen = []

    class Counting:
        """The session, with every statement it runs noted."""

        def __init__(self, s):
            self._s = s

        def execute(self, query, *args, **kwargs):
            seen.append(str(query))
            return self._s.execute(query, *args, **kwargs)

        def execute_async(self, query, *args, **kwargs):
            seen.append(str(query))
            return self._s.execute_async(query, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._s, name)

    set_search(LogSearch(Counting(session)))
    c = client_for(user("reader", "view_logs"))
    c.get("/alerts/")  # warm: the Django templates, the driver's metadata
    seen.clear()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert c.get("/alerts/").status_code == 200
        times.append(time.perf_counter() - started)
    took = sorted(times)[2]
    seen[:] = seen[: len(seen) // 5]
    small = ("alert_state", "alert_silences", "alert_runs")
    for cql in seen:
        assert "ALLOW FILTERING" not in cql
        assert "WHERE rule = " in cql or "WHERE day = " in cql or any(f"logging.{t}" in cql and "WHERE" not in cql
                                                                       for t in small), cql  # fmt: skip
    print(f"/alerts/: {len(seen)} statements, median {took * 1000:.0f} ms of {[round(t * 1000) for t in times]}")
    assert took < 1.0, f"{took:.3f} s; the target is under 100 ms"


def test_ack_silence_and_unsilence_are_recorded_with_who_and_when(db, alerts, caplog):
    tag, store, _ = alerts
    rule, since = f"err-{tag}", datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    fire(store, rule, "app.db", since)
    c = client_for(user("manager", "view_logs", "manage_alerts"))
    caplog.set_level(logging.INFO, logger="iact.dora.views.alerts")

    before = datetime.now(UTC) - timedelta(seconds=1)
    answer = c.post("/alerts/", {"action": "ack", "rule": rule, "key": "app.db"})
    assert answer.status_code == 302 and answer["Location"] == "/alerts/", "POST, redirect, GET"
    ack = store.acks(rule)["app.db"]
    assert (ack.acked_by, ack.since) == ("manager", since) and before <= ack.acked_at <= datetime.now(UTC)
    page = html(c.get(answer["Location"]))
    assert f"acknowledged {rule} [app.db]" in page and "by manager" in page
    row = page[page.index(f'data-rule="{rule}" data-key="app.db"') :].split("</tr>")[0]
    assert "by manager at" in row and 'class="ack"' not in row, "acknowledged: no second button"

    answer = c.post(
        "/alerts/", {"action": "silence", "rule": rule, "key": "app.db", "duration": "4h", "day": "2030-03-04"}
    )
    assert answer["Location"] == "/alerts/?day=2030-03-04", "back to the day being looked at"
    [silence] = [s for s in store.silences(datetime.now(UTC)) if s.rule == rule]
    assert silence.created_by == "manager" and before <= silence.created_at <= datetime.now(UTC)
    assert timedelta(hours=4) - timedelta(seconds=5) < silence.until - silence.created_at <= timedelta(hours=4)
    c.post("/alerts/", {"action": "silence", "rule": rule, "key": "", "duration": "15m", "custom": "3h"})
    mine = {s.key: s for s in store.silences(datetime.now(UTC)) if s.rule == rule}
    assert set(mine) == {"app.db", "*"} and mine["*"].until - mine["*"].created_at == timedelta(hours=3)

    c.post("/alerts/", {"action": "unsilence", "rule": rule, "key": "app.db"})
    assert {s.key for s in store.silences(datetime.now(UTC)) if s.rule == rule} == {"*"}
    logged = [r.getMessage() for r in caplog.records if r.name == "iact.dora.views.alerts"]
    assert logged == [
        f"alerts: manager acknowledged {rule} [app.db] (firing since {since:%Y-%m-%d %H:%M} UTC)",
        f"alerts: manager silenced {rule} [app.db] until {silence.until:%Y-%m-%d %H:%M} UTC",
        f"alerts: manager silenced {rule} [*] until {mine['*'].until:%Y-%m-%d %H:%M} UTC",
        f"alerts: manager lifted the silence of {rule} [app.db]",
    ]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"action": "ack", "key": "nope"}, "is not firing: nothing to acknowledge"),
        (
            {"action": "silence", "duration": "2y"},
            "silence for '2y': choose 15m, 1h, 4h, 1d or write a custom duration",
        ),
        ({"action": "silence", "custom": "soon"}, "silence for: 'soon' is not a duration"),
        ({"action": "silence", "custom": "45d"}, "at most 30 days"),
        ({"action": "silence", "custom": "1000000000d"}, "at most 30 days"),
        ({"action": "ack", "key": "*", "since": "yesterday"}, "since='yesterday': not a time; reload the page"),
        ({"action": "delete"}, "action='delete': use ack, silence or unsilence"),
        ({"action": "ack", "rule": "x y"}, "rule='x y': give a rule name"),
        ({"action": "ack", "key": "k" * 501}, "the key is longer than 500 characters"),
    ],
)
def test_a_wrong_action_is_refused_saying_what_to_change(db, alerts, form, message):
    tag, store, _ = alerts
    c = client_for(user("manager", "view_logs", "manage_alerts"))
    answer = c.post("/alerts/", {"rule": f"err-{tag}", "key": "*"} | form, follow=True)
    assert answer.redirect_chain == [("/alerts/", 302)]
    assert message in html(answer)
    assert store.acks(f"err-{tag}") == {} and not [
        s for s in store.silences(datetime.now(UTC)) if s.rule == f"err-{tag}"
    ]


def test_actions_are_csrf_protected(db, alerts):
    tag, store, _ = alerts
    fire(store, f"err-{tag}", "*", datetime.now(UTC) - timedelta(minutes=5))
    c = client_for(user("manager", "view_logs", "manage_alerts"), enforce_csrf_checks=True)
    assert c.post("/alerts/", {"action": "ack", "rule": f"err-{tag}", "key": "*"}).status_code == 403
    assert store.acks(f"err-{tag}") == {}
    c.get("/alerts/")
    token = c.cookies["csrftoken"].value
    answer = c.post("/alerts/", {"action": "ack", "rule": f"err-{tag}", "key": "*", "csrfmiddlewaretoken": token})
    assert answer.status_code == 302 and store.acks(f"err-{tag}")["*"].acked_by == "manager"


def test_without_an_account_the_page_says_what_to_set(db):
    c = client_for(user("reader", "view_logs"))
    set_search(None)
    with override_settings(IACT_LOGS=conf.LogsConfig(password="")):
        answer = c.get("/alerts/")
    assert answer.status_code == 503 and "django_dora_logs_password" in html(answer)


# --- in Chromium ----------------------------------------------------------------------------------

from test_dora_browser import ARTIFACTS, browser, wait  # noqa: E402,F401  (the browser fixture)


@pytest.mark.django_db(transaction=True)
def test_in_chromium_acknowledge_a_firing_alert(live_server, browser, alerts):  # noqa: F811
    from selenium.webdriver.common.by import By

    tag, store, history = alerts
    rule, since = f"host-silent-{tag}", datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=25)
    fire(store, rule, "web2", since, step=1, notified=frozenset({"log", "email"}))
    history.record(Event(since, rule, "web2", "firing", "firing", "critical", 0, 1, 0, frozenset({"log"}),
                         frozenset(), since - timedelta(minutes=5), since, "/logs/?table=infrastructure"))  # fmt: skip
    user("dana", "view_logs", "manage_alerts")
    browser.get(f"{live_server.url}/alerts/")
    browser.find_element(By.NAME, "username").send_keys("dana")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    selector = f'#firing tr.alert[data-rule="{rule}"][data-key="web2"]'
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, selector))
    assert browser.find_element(By.CSS_SELECTOR, f"{selector} td.ack-state").text == "no"
    browser.find_element(By.CSS_SELECTOR, f"{selector} button.ack").click()
    wait(browser, lambda b: b.find_elements(By.ID, "messages"))  # the redirect's page
    assert "acked" in browser.find_element(By.CSS_SELECTOR, selector).get_attribute("class")
    assert browser.find_element(By.CSS_SELECTOR, f"{selector} td.ack-state").text.startswith("by dana at ")
    assert f"acknowledged {rule} [web2]" in browser.find_element(By.ID, "messages").text
    assert not browser.find_elements(By.CSS_SELECTOR, f"{selector} button.ack")
    assert store.acks(rule)["web2"].acked_by == "dana"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "alerts-console.png"))
    assert (ARTIFACTS / "alerts-console.png").stat().st_size > 10_000


def test_an_ack_covers_only_the_episode_the_page_showed(db, alerts):
    """The episode resolved and fired again between the page and the click: nobody has seen the new one,
    so the click must not silence its escalation."""
    tag, store, _ = alerts
    rule = f"err-{tag}"
    shown = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    fire(store, rule, "app.db", shown + timedelta(minutes=30))  # the episode firing now
    c = client_for(user("manager", "view_logs", "manage_alerts"))
    form = {"action": "ack", "rule": rule, "key": "app.db", "since": shown.isoformat()}
    answer = c.post("/alerts/", form, follow=True)
    assert "resolved and fired again" in html(answer) and store.acks(rule) == {}
    current = shown + timedelta(minutes=30)
    c.post("/alerts/", {"action": "ack", "rule": rule, "key": "app.db", "since": current.isoformat()})
    assert store.acks(rule)["app.db"].since == current
