"""iact-alert against a real Cassandra node, with rows written at chosen times, and real HTTP and
SMTP servers on loopback standing in for Slack and the mail relay."""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socket
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from alerting_slots import SLOTS
from hypothesis import given, settings
from hypothesis import strategies as st

from iact.alerting.cli import channels as build_channels
from iact.alerting.config import AlertConfig, EmailConfig, SlackConfig
from iact.alerting.engine import Evaluator
from iact.alerting.query import Span, WindowQuery
from iact.alerting.rules import parse_rules
from iact.alerting.state import StateStore
from iact.cassandra.session import open_session

pytestmark = pytest.mark.cassandra


class Slack(http.server.ThreadingHTTPServer):
    """Records every POST body; answers `status` (500 to simulate an outage)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.status == 200:
                    outer.received.append(json.loads(body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *_args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/T000/B000/secret"


class Mailbox:
    """aiosmtpd handler recording messages and their envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, _server, _session, envelope):
        self.messages.append(envelope.content.decode())
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def slack():
    server = Slack()
    yield server
    server.shutdown()


@pytest.fixture
def smtp():
    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd checks its own port on start, so it needs a real one
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


class World:
    """One test's isolated slice: its own day far from the others, rule names and watermark."""

    def __init__(self, session, cassandra_settings, slack, smtp, tmp_path) -> None:
        self.session = session
        self.tag, self.base = SLOTS.take()  # a day and names no other test of this session has
        self.insert = session.prepare(
            "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, app, level, logger, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.insert_infra = session.prepare(
            "INSERT INTO logging.infrastructure_logs (host, day, hour, ts, line_id, source, severity, program, "
            "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.alert_log = tmp_path / "log_alerts.log"
        self.conf = AlertConfig(
            connection=cassandra_settings, rules=(), name=f"test-{self.tag}", interval=300, query_delay=60,
            slack=SlackConfig(slack.url),
            email=EmailConfig("127.0.0.1", smtp.port, "alerts@lab", ("ops@lab",), security="none"),
            log_path=str(self.alert_log), attempts=2, backoff=0.01,
        )  # fmt: skip
        self.now = self.base

    def rules(self, *items):
        rules = parse_rules(list(items), include_builtin=False)
        self.conf = replace(self.conf, rules=tuple(replace(r, name=f"{r.name}-{self.tag}") for r in rules))

    def builtin(self, name):
        rule = next(r for r in parse_rules([]) if r.name == name)
        self.conf = replace(self.conf, rules=(replace(rule, name=f"{name}-{self.tag}"),))

    def write(self, n, at, level="ERROR", logger="app.db", host="web1"):
        for i in range(n):
            ts = at + timedelta(milliseconds=i)
            self.session.execute(
                self.insert,
                (
                    host,
                    ts.date(),
                    ts.hour,
                    ts,
                    uuid.uuid4(),
                    "shop",
                    level,
                    logger,
                    f"{level} {i}",
                ),
            )

    def infra(self, host, at, source="metrics", program="iact-collector", message="cpu 3.0% mem 41.0%"):
        """One infrastructure_logs row; by default a metrics row as every collector writes each minute."""
        self.session.execute(self.insert_infra, (host, at.date(), at.hour, at, uuid.uuid4(), source, "info", program,
                                                 message))  # fmt: skip

    def metrics(self, host, start, end):
        """A metrics row each minute in [start, end), like a healthy collector."""
        at = start
        while at < end:
            self.infra(host, at)
            at += timedelta(minutes=1)

    def run(self, at, dry_run=False, **channels):
        """One evaluation at `at`, through the configured channels (keyword arguments replace some)."""
        self.now = at
        store = StateStore(self.session, "logging", self.conf.name)
        ev = Evaluator(self.conf, WindowQuery(self.session, "logging"), store,
                       {**build_channels(self.conf), **channels}, dry_run, clock=lambda: at)  # fmt: skip
        return ev.run()

    def logged(self):
        if not self.alert_log.exists():
            return []
        return [json.loads(line) for line in self.alert_log.read_text().splitlines()]


@pytest.fixture
def world(session, cassandra_settings, slack, smtp, tmp_path):
    return World(session, cassandra_settings, slack, smtp, tmp_path)


# The window [10:00, 10:05) is evaluated by a run at 10:06 (query delay 60 s).
def window(world, minutes=0):
    return world.base.replace(hour=10, minute=0) + timedelta(minutes=minutes)


@pytest.mark.parametrize(("rule", "level", "threshold"), [("errors", "ERROR", 10), ("criticals", "CRITICAL", 5)])
def test_builtin_level_rules_fire_above_threshold_not_at_it(world, slack, smtp, rule, level, threshold):
    world.builtin(rule)
    world.write(threshold, window(world, 1), level=level)
    report = world.run(window(world, 6))
    assert report.notifications == [], f"{threshold} {level} records equal the threshold: no alert"
    world.write(1, window(world, 2), level=level)
    report = world.run(window(world, 6))
    assert [(n.status, n.count) for n in report.notifications] == [("firing", threshold + 1)]
    assert len(slack.received) == 1 and len(smtp.messages) == 1 and len(world.logged()) == 1
    assert f"{threshold + 1} records" in slack.received[0]["text"] and f"> {threshold}" in slack.received[0]["text"]
    assert "secret" not in world.alert_log.read_text()


def test_logger_loop_is_per_logger(world):
    world.builtin("logger-loop")
    world.write(101, window(world, 1), level="INFO", logger="app.loop")
    world.write(100, window(world, 1), level="INFO", logger="app.busy")
    report = world.run(window(world, 6))
    assert [(n.key, n.count) for n in report.notifications] == [("app.loop", 101)]


def test_notice_samples_the_newest_rows_across_hosts(world, slack):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 5})
    for minute, host in enumerate(("web1", "web2", "web3", "web4")):  # partitions come back in token order
        world.write(3, window(world, minute), host=host)
    report = world.run(window(world, 6))
    [notice] = report.notifications
    assert notice.count == 12 and [s.split()[2] for s in notice.samples] == ["web4:"] * 3, notice.samples


def test_dedup_renotify_and_resolved(world, slack):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 2, "renotify": "1h"})
    for m in (0, 5, 10):  # three windows in a row above threshold
        world.write(3, window(world, m + 1))
    assert len(world.run(window(world, 6)).notifications) == 1
    assert world.run(window(world, 11)).notifications == [], "still firing: no second message"
    assert world.run(window(world, 16)).notifications == []
    report = world.run(window(world, 21))  # window 10:15-10:20 is empty
    assert [n.status for n in report.notifications] == ["resolved"]
    assert [json.loads(json.dumps(x))["status"] for x in world.logged()] == ["firing", "resolved"]
    assert "RESOLVED" in slack.received[-1]["text"]


def test_renotify_after_interval(world):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 0, "renotify": "10m"})
    for m in range(0, 30, 5):
        world.write(1, window(world, m + 1))
    statuses = [[n.renotify for n in world.run(window(world, m + 6)).notifications] for m in range(0, 25, 5)]
    assert statuses == [[False], [], [True], [], [True]]


def test_silence_holds_notifications(world, slack):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 0})
    name = world.conf.rules[0].name
    store = StateStore(world.session, "logging", world.conf.name)
    store.silence(name, "*", datetime.now(UTC) + timedelta(hours=2), "test")
    world.write(5, window(world, 1))
    report = world.run(window(world, 6))
    assert report.notifications == [] and len(report.silenced) == 1 and slack.received == []
    store.unsilence(name, "*")
    assert store.silences(datetime.now(UTC)) == [] or all(s.rule != name for s in store.silences(datetime.now(UTC)))


def test_flatline_host_gone_silent(world):
    world.rules({"name": "quiet", "kind": "flatline", "group_by": "host", "window": "5m", "threshold": 1,
                 "lookback": "30m"})  # fmt: skip
    world.write(5, window(world, -20), level="INFO", host="web1")
    world.write(5, window(world, -20), level="INFO", host="web2")
    world.write(3, window(world, 2), level="INFO", host="web1")  # web2 says nothing in 10:00-10:05
    report = world.run(window(world, 6))
    assert [(n.key, n.count) for n in report.notifications] == [("web2", 0)]


def test_builtin_host_silent_fires_for_the_host_whose_metrics_stop_and_resolves_when_they_return(world):
    world.builtin("host-silent")
    [rule] = world.conf.rules
    assert (rule.window, rule.lookback, rule.severity) == (300, 3600, "critical")
    world.metrics("web1", window(world, -60), window(world, 30))  # healthy all along
    world.metrics("web2", window(world, -60), window(world, -1))  # its agent dies at 09:59
    world.metrics("old1", window(world, -120), window(world, -61))  # gone before the lookback: not expected
    # web2's other logs still arrive (e.g. its agent's metrics thread is stuck, or another writer): still silent.
    world.infra("web2", window(world, 2), source="syslog", program="cron", message="CRON[12]: session opened")
    world.infra("web2", window(world, 3), source="metrics", program="something-else")

    report = world.run(window(world, 6))  # window 10:00-10:05
    assert [(n.key, n.status, n.count, n.severity) for n in report.notifications] == [("web2", "firing", 0, "critical")]
    assert [e["key"] for e in world.logged()] == ["web2"]
    assert world.run(window(world, 11)).notifications == [], "still silent: no second message before renotify"

    world.metrics("web2", window(world, 12), window(world, 30))  # the agent is back
    report = world.run(window(world, 16))  # window 10:10-10:15 holds 10:12, 10:13, 10:14
    assert [(n.key, n.status, n.count) for n in report.notifications] == [("web2", "resolved", 3)]
    assert world.run(window(world, 21)).notifications == []


def test_missed_runs_are_caught_up(world):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 2})
    world.run(window(world, 1))  # watermark 10:00
    world.write(3, window(world, 6))  # burst in 10:05-10:10; the 10:11 and 10:16 runs never happen
    report = world.run(window(world, 21))
    assert len(report.windows) == 5  # 10:00 again, then 10:05, 10:10, 10:15, 10:20
    assert [(n.status, n.window_end[11:16]) for n in report.notifications] == [
        ("firing", "10:10"),
        ("resolved", "10:15"),
    ]


def test_late_rows_are_counted_on_the_next_run(world):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 2})
    world.write(2, window(world, 1))
    assert world.run(window(world, 6)).notifications == []
    world.write(1, window(world, 4))  # arrives late (a spool replayed) into the evaluated window
    report = world.run(window(world, 11))
    assert [(n.status, n.window_end[11:16]) for n in report.notifications][:1] == [("firing", "10:05")]


def test_failing_channel_does_not_block_the_others(world, slack, smtp):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 0})
    slack.status = 500
    world.write(1, window(world, 1))
    report = world.run(window(world, 6))
    assert report.failures and report.failures[0].startswith("slack: Slack webhook answered HTTP 500")
    assert "secret" not in " ".join(report.failures)
    assert len(smtp.messages) == 1 and len(world.logged()) == 1


EVIL = "app.evil\r\nBcc: victim@elsewhere\x00\x1b[31m\u2028end"


def test_control_characters_in_a_key_neither_abort_the_run_nor_reach_a_header(world, slack, smtp):
    world.rules({"name": "loop", "window": "5m", "threshold": 0, "group_by": "logger"})
    world.write(1, window(world, 1), logger=EVIL)
    world.write(1, window(world, 1), logger="app.db")
    report = world.run(window(world, 6))
    assert sorted(n.key for n in report.notifications) == sorted([EVIL, "app.db"]) and not report.failures
    messages = [email.message_from_string(m, policy=email.policy.default) for m in smtp.messages]
    assert smtp.recipients == [["ops@lab"], ["ops@lab"]] and not any("Bcc" in m for m in messages)
    # Folding depends on the subject's length (the rule's name), so compare unfolded and by content, not position.
    subjects = sorted(str(m["Subject"]).strip() for m in messages)
    assert subjects == [
        f"[WARNING] {world.conf.rules[0].name} [app.db]",
        f"[WARNING] {world.conf.rules[0].name} " + r"[app.evil\r\nBcc: victim@elsewhere\x00\x1b[31m\u2028end]",
    ], subjects
    assert len(slack.received) == 2 and sorted(e["key"] for e in world.logged()) == sorted([EVIL, "app.db"])
    store = StateStore(world.session, "logging", world.conf.name)
    assert store.watermark() == window(world, 5), "the run finished and saved its progress"
    assert store.states(world.conf.rules[0].name)[EVIL].firing
    # The next run is not stuck on the key: it resolves it.
    report = world.run(window(world, 11))
    assert sorted((n.key, n.status) for n in report.notifications) == sorted(
        [(EVIL, "resolved"), ("app.db", "resolved")]
    )


class Exploding:
    """A channel with a bug: it raises something no channel is supposed to."""

    name = "email"

    def send(self, n):
        raise KeyError(n.key)


def test_a_channel_that_raises_anything_stops_neither_the_others_nor_the_state(world, slack):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 0})
    world.write(1, window(world, 1))
    world.write(1, window(world, 6))  # still firing in the next window
    report = world.run(window(world, 6), email=Exploding())
    assert [f.split(":")[0] for f in report.failures] == ["email"] and "KeyError" in report.failures[0]
    assert len(slack.received) == 1 and len(world.logged()) == 1
    store = StateStore(world.session, "logging", world.conf.name)
    assert store.watermark() == window(world, 5)
    assert store.states(world.conf.rules[0].name)["*"].firing
    assert world.run(window(world, 11), email=Exploding()).notifications == [], "fired once, state kept"


def test_dry_run_changes_nothing(world, capsys):
    world.rules({"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 0})
    world.write(1, window(world, 1))
    report = world.run(window(world, 6), dry_run=True)
    assert len(report.notifications) == 1 and "would send" in capsys.readouterr().out
    assert world.logged() == []
    assert StateStore(world.session, "logging", world.conf.name).watermark() is None


def test_lease_prevents_a_second_evaluator(world):
    store = StateStore(world.session, "logging", world.conf.name)
    assert store.acquire("host-a", 60) is None
    assert store.acquire("host-b", 60) == "host-a"
    store.release("host-a")
    assert store.acquire("host-b", 60) is None
    store.release("host-b")


# Read once per window: every rule that shares a table shares its scan, and sharing changes no count.

FIELDS = {"level": ("INFO", "ERROR", "CRITICAL"), "logger": ("app.db", "app.web"), "host": ("web1", "web2")}


@st.composite
def rule_sets(draw):
    """Up to six application rules of every shape: filters on indexed and other columns, grouping,
    windows of 1 to 10 minutes, flatlines with a lookback."""
    out = []
    for i in range(draw(st.integers(1, 6))):
        filters = {c: draw(st.sampled_from(v)) for c, v in FIELDS.items() if draw(st.booleans())}
        rule = {"name": f"r{i}", "filter": filters, "window": f"{draw(st.integers(1, 10))}m", "threshold": 1}
        if draw(st.booleans()):
            rule["group_by"] = draw(st.sampled_from(("host", "logger", "level")))
        if draw(st.integers(0, 3)) == 0:
            rule |= {"kind": "flatline", "group_by": rule.get("group_by", "host"), "lookback": "5m"}
        out.append(rule)
    return out


@pytest.fixture(scope="module")
def shared_rows(cassandra_settings):
    """Rows every minute from 09:50 to 10:10 of a day of their own, of each level, logger and host."""
    with open_session(cassandra_settings) as session:
        yield (session, *_write_shared_rows(session))


def _write_shared_rows(session):
    _tag, base = SLOTS.take()
    insert = session.prepare(
        "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, app, level, logger, message) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows = []
    start = base.replace(hour=9, minute=50)
    for minute in range(20):
        for n, (level, logger, host) in enumerate(
            (lv, lg, h) for lv in FIELDS["level"] for lg in FIELDS["logger"] for h in FIELDS["host"]
        ):
            if (minute + n) % 3 == 0:
                continue  # not every combination every minute
            ts = start + timedelta(minutes=minute, seconds=n)
            session.execute(
                insert, (host, ts.date(), ts.hour, ts, uuid.uuid4(), "shop", level, logger, f"{minute} {n}")
            )
            rows.append({"ts": ts, "level": level, "logger": logger, "host": host})
    return base, rows


def expected(rule, rows, start, end):
    """The rule's counts, computed from the rows as written."""
    out = {}
    for row in rows:
        if start <= row["ts"] < end and all(row[c] in v for c, v in rule.filters.items()):
            key = row[rule.group_by] if rule.group_by else "*"
            out[key] = out.get(key, 0) + 1
    return out


@settings(max_examples=25)
@given(items=rule_sets(), minute=st.integers(0, 20))
def test_one_scan_per_window_counts_what_each_rule_would_count_alone(shared_rows, items, minute):
    session, base, rows = shared_rows
    end = base.replace(hour=9, minute=50) + timedelta(minutes=minute)
    rules = parse_rules(items, include_builtin=False)
    spans = [Span(r.name, r, end - timedelta(seconds=r.window), end) for r in rules]
    spans += [Span(f"{r.name} before", r, s.start - timedelta(seconds=r.lookback), s.start)
              for r, s in zip(rules, spans, strict=False) if r.kind == "flatline"]  # fmt: skip
    query = WindowQuery(session, "logging")
    found = query.count_spans(spans)
    for span in spans:
        assert dict(found[span.key].counts) == expected(span.rule, rows, span.start, span.end), span
    wide = any(query._pushed(r) is None for r in rules)
    narrow = {query._pushed(r) for r in rules} - {None}
    assert query.scans <= int(wide) + len(narrow), "one read of the range, plus one per indexed equality outside it"
    if all(query._pushed(r) is None for r in rules):
        assert query.scans == 1


def test_an_evaluation_of_twenty_rules_reads_each_table_once(world):
    world.rules(
        *[{"name": f"app-{i}", "filter": {"level": "ERROR", "app": f"app{i}"}, "threshold": 50} for i in range(8)],
        *[{"name": f"logger-{i}", "filter": {"logger": f"svc.{i}"}, "threshold": 1000} for i in range(5)],
        {"name": "per-host", "group_by": "host", "threshold": 5},
        {"name": "silent-apps", "kind": "flatline", "group_by": "app", "threshold": 1, "lookback": "10m"},
        {"name": "infra-err", "table": "infrastructure", "filter": {"severity": "err"}, "threshold": 100},
        {"name": "infra-per-host", "table": "infrastructure", "group_by": "host", "threshold": 100},
        {"name": "auth", "table": "infrastructure", "filter": {"source": "auth"}, "threshold": 500},
        {"name": "kernel", "table": "infrastructure", "filter": {"program": "kernel"}, "threshold": 100},
        {"name": "silent-hosts", "kind": "flatline", "table": "infrastructure", "group_by": "host", "threshold": 1},
    )
    assert len(world.conf.rules) == 20
    world.write(3, window(world, 1))
    query = WindowQuery(world.session, "logging")
    store = StateStore(world.session, "logging", world.conf.name)
    report = Evaluator(world.conf, query, store, {}, clock=lambda: window(world, 6)).run()
    assert len(report.windows) == 1
    assert query.scans == 2, "one read of the window per table, lookbacks included"


def test_an_hour_of_lookback_is_read_through_its_index_not_by_scanning_every_row(world):
    host_silent = next(r for r in parse_rules([]) if r.name == "host-silent")
    world.rules({"name": "per-program", "table": "infrastructure", "group_by": "program", "threshold": 100})
    world.conf = replace(world.conf, rules=(*world.conf.rules, replace(host_silent, name=f"host-silent-{world.tag}")))
    world.metrics("web1", window(world, -50), window(world, 5))
    query = WindowQuery(world.session, "logging")
    store = StateStore(world.session, "logging", world.conf.name)
    found = Evaluator(world.conf, query, store, {}, clock=lambda: window(world, 6))._counts(window(world, 5))
    assert query.scans == 2, "the 5-minute window unfiltered, the hour before it through source = 'metrics'"
    assert found[f"host-silent-{world.tag}"].counts == {"web1": 5}
