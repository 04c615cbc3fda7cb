"""Escalation, acknowledgement and history against the session's real Cassandra node, with a fake clock.

The rule fires in the window [10:00, 10:05), evaluated by the run at 10:06: its episode starts at the
window's end (10:05), so a step with `after: 15m` is due from 10:20 on. Slack and the mail relay are
the loopback stand-ins of test_alerting_cassandra.py, the log channel a file.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from test_alerting_cassandra import slack, smtp, window, world  # noqa: F401  (the fixtures and helpers)

from iact.alerting.cli import channels as build_channels
from iact.alerting.cli import main as iact_alert
from iact.alerting.engine import Evaluator
from iact.alerting.history import History
from iact.alerting.query import WindowQuery
from iact.alerting.rules import RuleError, Step, load_rules, parse_rules
from iact.alerting.state import KeyState, NotFiring, StateStore
from iact.schema.migrations import find_cql_dir, load_migrations
from iact.schema.params import SchemaParams

pytestmark = pytest.mark.cassandra

ESCALATING = {"name": "err", "filter": {"level": "ERROR"}, "window": "5m", "threshold": 0, "channels": ["log"],
              "renotify": "1d", "escalation": [{"after": "15m", "channels": ["slack"]},
                                               {"after": "30m", "channels": ["email"]}]}  # fmt: skip


def firing_for(w, minutes):
    """An ERROR row in every 5-minute window from 10:00 for `minutes`."""
    for m in range(0, minutes, 5):
        w.write(1, window(w, m + 1))


def steps(report):
    return [n.escalation for n in report.notifications if n.escalation]


def store(w):
    return StateStore(w.session, "logging", w.conf.name)


def test_each_step_is_sent_at_the_first_run_it_is_due_and_not_before(world, slack, smtp):  # noqa: F811
    world.rules(ESCALATING)
    firing_for(world, 60)
    sent = [steps(world.run(window(world, m))) for m in (6, 11, 16, 19)]
    assert sent == [[], [], [], []], "10:19: 14 minutes since 10:05, not yet"
    assert slack.received == [] and smtp.messages == [] and len(world.logged()) == 1, "only the first notice, to log"
    assert steps(world.run(window(world, 20))) == [1], "10:20: exactly 15 minutes"
    assert [m["text"].splitlines()[0] for m in slack.received] == [
        f"[WARNING] {world.conf.rules[0].name} (escalation 1)"
    ]
    assert "Escalation step 1" in slack.received[0]["text"] and "iact-alert ack" in slack.received[0]["text"]
    assert [steps(world.run(window(world, m))) for m in (26, 31, 34)] == [[], [], []], "step 2 waits for 10:35"
    assert steps(world.run(window(world, 36))) == [2] and len(smtp.messages) == 1 and len(slack.received) == 1
    assert "Escalation step 2" in smtp.messages[0]
    assert [steps(world.run(window(world, m))) for m in (41, 51)] == [[], []], "no step left"
    state = store(world).states(world.conf.rules[0].name)["*"]
    assert (state.step, state.notified) == (2, frozenset({"log", "slack", "email"}))


def test_a_late_run_sends_every_overdue_step_in_order(world, slack, smtp):  # noqa: F811
    world.rules(ESCALATING)
    firing_for(world, 60)
    world.run(window(world, 6))
    report = world.run(window(world, 41))  # the runs between never happened
    assert steps(report) == [1, 2]
    assert len(slack.received) == 1 and len(smtp.messages) == 1


def test_a_catch_up_run_sends_no_step_the_episode_had_not_reached(world, slack, smtp):  # noqa: F811
    """A run that catches up on missed windows evaluates them oldest first: at the episode's first
    window it is 0 minutes old, whatever the run's clock says; here it resolves two windows later."""
    world.rules(ESCALATING)
    world.run(window(world, 1))  # a run before anything fired: the watermark
    firing_for(world, 10)  # 10:00-10:10, then quiet
    report = world.run(window(world, 46))  # the runs between never happened
    assert steps(report) == [] and slack.received == [] and smtp.messages == []
    assert [n.status for n in report.notifications] == ["firing", "resolved"]


def test_an_ack_stops_escalation_and_renotify_until_the_episode_ends_and_covers_no_later_one(world, slack):  # noqa: F811
    world.rules(ESCALATING | {"renotify": "10m"})
    name = world.conf.rules[0].name
    firing_for(world, 30)  # 10:00-10:30, then quiet until 11:00, then again
    for m in range(60, 90, 5):
        world.write(1, window(world, m + 1))
    assert [n.status for n in world.run(window(world, 6)).notifications] == ["firing"]
    ack = store(world).ack(name, "*", "carol", at=window(world, 8))
    assert (ack.since, ack.acked_by) == (window(world, 5), "carol")
    for m in (11, 16, 21, 26, 31):
        assert world.run(window(world, m)).notifications == [], f"acknowledged: nothing at 10:{m}"
    assert slack.received == []
    assert [n.status for n in world.run(window(world, 36)).notifications] == ["resolved"], "the resolution still goes"
    with pytest.raises(NotFiring, match="not firing"):
        store(world).ack(name, "*", "carol")
    # 11:05: a new episode, not covered by carol's ack of the first one.
    assert [n.status for n in world.run(window(world, 66)).notifications] == ["firing"]
    assert steps(world.run(window(world, 81))) == [1] and len(slack.received) == 1
    assert store(world).acks(name)["*"].since == window(world, 5), "the old ack stays, bound to its episode"


def test_the_resolved_notice_goes_to_every_channel_told_during_the_episode(world, slack, smtp):  # noqa: F811
    world.rules(ESCALATING)
    firing_for(world, 20)  # through 10:20
    world.run(window(world, 6))
    assert steps(world.run(window(world, 21))) == [1]
    report = world.run(window(world, 26))  # 10:20-10:25 is empty
    assert [n.status for n in report.notifications] == ["resolved"]
    assert "RESOLVED" in slack.received[-1]["text"], "slack was told by step 1, so it hears the end"
    assert smtp.messages == [], "step 2 never went out: the relay is not told"
    assert [e["status"] for e in world.logged()] == ["firing", "resolved"]
    state = store(world).states(world.conf.rules[0].name)["*"]
    assert (state.firing, state.step, state.notified) == (False, 0, frozenset())


def test_a_silence_holds_the_steps_which_go_out_when_it_ends(world, slack):  # noqa: F811
    world.rules(ESCALATING)
    name = world.conf.rules[0].name
    firing_for(world, 60)
    world.run(window(world, 6))
    store(world).silence(name, "*", datetime.now(UTC) + timedelta(hours=1), "test")
    assert steps(world.run(window(world, 21))) == [] and slack.received == []
    store(world).unsilence(name, "*")
    assert steps(world.run(window(world, 26))) == [1]


def test_every_notice_is_in_the_days_history_with_the_channels_it_went_to(world, slack):  # noqa: F811
    world.rules(ESCALATING)
    name = world.conf.rules[0].name
    firing_for(world, 40)
    world.run(window(world, 6))
    world.run(window(world, 21))
    world.run(window(world, 36))
    store(world).silence(name, "*", datetime.now(UTC) + timedelta(hours=1), "test")
    world.run(window(world, 46))  # 10:40-10:45 is empty: resolved, but silenced
    slack.status = 500
    store(world).unsilence(name, "*")
    for m in (51, 56, 61, 66):
        world.write(1, window(world, m))
    world.run(window(world, 56))  # fires again: log only (the rule's channel)
    world.run(window(world, 71))  # step 1 to slack, which fails
    events = [e for e in History(world.session, "logging").day(window(world, 0).date()) if e.rule == name]
    got = [(e.ts, e.event, e.status, e.step, sorted(e.channels), sorted(e.failed)) for e in events]
    assert got == [
        (window(world, 71), "escalation", "firing", 1, [], ["slack"]),
        (window(world, 56), "firing", "firing", 0, ["log"], []),
        # The resolution the silence held goes out when it ends, to the channels that heard the episode fire.
        (window(world, 56), "resolved", "resolved", 0, ["email", "log"], ["slack"]),
        (window(world, 46), "silenced", "resolved", 0, [], []),
        (window(world, 36), "escalation", "firing", 2, ["email"], []),
        (window(world, 21), "escalation", "firing", 1, ["slack"], []),
        (window(world, 6), "firing", "firing", 0, ["log"], []),
    ], got
    first = events[-1]
    assert (first.window_start, first.window_end, first.count) == (window(world, 0), window(world, 5), 1)
    assert first.logs_path.startswith("/logs/?table=application&from=") and "level=ERROR" in first.logs_path
    later = History(world.session, "logging").day(window(world, 0).date(), since=window(world, 50))
    assert sorted(e.event for e in later if e.rule == name and e.ts == window(world, 56)) == ["firing", "resolved"]
    recent = History(world.session, "logging").recent(window(world, 80), hours=1)
    assert [e.ts for e in recent if e.rule == name] == [window(world, m) for m in (71, 56, 56, 46, 36, 21)]
    overnight = History(world.session, "logging").recent(window(world, 0) + timedelta(hours=16))  # 02:00 next day
    assert len([e for e in overnight if e.rule == name]) == 7, "yesterday's partition is read too"


class BrokenHistory:
    """alert_events refuses every write, as for an alerter whose role lacks the grant."""

    def record(self, _event):
        raise RuntimeError("Unauthorized: iact_alerter has no MODIFY permission on alert_events")


def test_a_history_that_cannot_be_written_stops_neither_the_notice_nor_the_state(world, slack, caplog):  # noqa: F811
    world.rules(ESCALATING | {"channels": ["slack"]})
    firing_for(world, 10)
    ev = Evaluator(world.conf, WindowQuery(world.session, "logging"), store(world), build_channels(world.conf),
                   clock=lambda: window(world, 6), history=BrokenHistory())  # fmt: skip
    report = ev.run()
    assert [n.status for n in report.notifications] == ["firing"] and len(slack.received) == 1
    assert store(world).states(world.conf.rules[0].name)["*"].firing
    assert [r.getMessage() for r in caplog.records if "alert history" in r.getMessage()] == [
        "could not write the alert history (alert_events): Unauthorized: iact_alerter has no MODIFY permission on "
        "alert_events; apply cql/ (`iact-schema apply`) and give the alerter its grants (`iact-schema auth roles "
        "--alerter`, i.e. the cassandra_cluster role)"
    ]


def test_the_firing_state_links_the_log_console_on_its_latest_window(world):  # noqa: F811
    world.rules({"name": "loop", "window": "5m", "threshold": 0, "group_by": "logger"})
    world.write(1, window(world, 1), logger="app.db")
    world.write(1, window(world, 6), logger="app.db")
    world.run(window(world, 11))
    state = store(world).states(world.conf.rules[0].name)["app.db"]
    assert state.logs_path.startswith("/logs/?table=application&from=") and "logger=app.db" in state.logs_path
    assert "to=" + window(world, 10).isoformat().replace(":", "%3A").replace("+", "%2B") in state.logs_path


def test_the_console_migration_is_safe_to_run_again(session):
    """0007 adds columns with ALTER TABLE ... ADD IF NOT EXISTS (Cassandra 5.0): a changed file is re-applied whole."""
    params = SchemaParams(replication=(("dc1", 1),))
    [migration] = [m for m in load_migrations(find_cql_dir(), params) if m.name == "alert_console"]
    for _ in range(2):
        for statement in migration.statements:
            session.execute(statement, timeout=120)
    columns = {
        r.column_name: r.type
        for r in session.execute(
            "SELECT column_name, type FROM system_schema.columns WHERE keyspace_name = 'logging' "
            "AND table_name = 'alert_state'"
        )
    }
    assert (columns["escalation_step"], columns["notified_channels"], columns["logs_path"]) == ("int", "set<text>",
                                                                                                "text")  # fmt: skip
    events = session.execute(
        "SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = 'logging' "
        "AND table_name = 'alert_events'"
    ).one()
    assert events.default_time_to_live == 90 * 86400


# --- iact-alert ack / status ----------------------------------------------------------------------


def test_iact_alert_ack_and_status(world, tmp_path, capsys):  # noqa: F811
    world.rules({"name": "loop", "window": "5m", "threshold": 0, "group_by": "logger",
                 "escalation": [{"after": "15m", "channels": ["email"]}]})  # fmt: skip
    name = world.conf.rules[0].name
    config = tmp_path / "alerting.yaml"
    config.write_text(yaml.safe_dump({
        "name": world.conf.name, "builtin_rules": False,
        "cassandra": {"hosts": list(world.conf.connection.contact_points), "port": world.conf.connection.port},
        "rules": [{"name": name, "window": "5m", "threshold": 0, "group_by": "logger",
                   "escalation": [{"after": "15m", "channels": ["log"]}]}],
        "channels": {"log": {"path": str(tmp_path / "log_alerts.log")}},
    }))  # fmt: skip
    since = window(world, 5)
    store(world).save(name, "app.db", KeyState(True, since, since, 4, 1, frozenset({"log", "email"})))
    assert iact_alert(["--config", str(config), "ack", name, "app.db", "--by", "dave"]) == 0
    assert "acknowledged" in capsys.readouterr().out
    ack = store(world).acks(name)["app.db"]
    assert (ack.since, ack.acked_by) == (since, "dave") and datetime.now(UTC) - ack.acked_at < timedelta(minutes=1)
    assert iact_alert(["--config", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert (
        f"{name} [app.db] since {since:%Y-%m-%d %H:%M:%S} UTC, count 4, escalation step 1/1, acknowledged by dave"
        in out
    )
    assert iact_alert(["--config", str(config), "ack", name, "app.web"]) == 1
    assert "is not firing: nothing to acknowledge" in capsys.readouterr().err
    assert iact_alert(["--config", str(config), "ack", "nope"]) == 2
    assert "no rule named 'nope'" in capsys.readouterr().err
    # A key that will never come back (a host decommissioned): retired, without a resolved notice.
    assert iact_alert(["--config", str(config), "retire", name, "app.db"]) == 0
    assert "no resolved notice" in capsys.readouterr().out
    assert "app.db" not in store(world).states(name) and not (tmp_path / "log_alerts.log").exists()
    assert iact_alert(["--config", str(config), "retire", name, "app.db"]) == 1
    assert "nothing to retire" in capsys.readouterr().err
    # A rule taken out of the configuration leaves its firing keys behind: they can be retired too.
    store(world).save("removed-rule", "web1", KeyState(True, since, since, 4))
    assert iact_alert(["--config", str(config), "retire", "removed-rule", "web1"]) == 0
    assert "web1" not in store(world).states("removed-rule")


# --- rules ----------------------------------------------------------------------------------------


def test_escalation_steps_parse():
    [rule] = parse_rules([ESCALATING], include_builtin=False)
    assert rule.escalation == (Step(900, ("slack",)), Step(1800, ("email",)))
    assert parse_rules([{"name": "x", "threshold": 1}], include_builtin=False)[0].escalation == ()


@pytest.mark.parametrize(
    ("escalation", "message"),
    [
        ("15m", r"rule 'x': escalation: expected a list of steps"),
        (["15m"], r"rule 'x': escalation\[0\]: expected a mapping with after and channels"),
        ([{"channels": ["email"]}], r"rule 'x': escalation\[0\]: after: say how long"),
        ([{"after": "soon", "channels": ["email"]}], r"rule 'x': escalation\[0\]: after: 'soon' is not a duration"),
        ([{"after": "15m"}], r"rule 'x': escalation\[0\]: channels: list some of slack, email, log"),
        ([{"after": "15m", "channels": ["pager"]}], r"rule 'x': escalation\[0\]: channels: list some of"),
        ([{"after": "15m", "channels": ["email"], "to": "boss"}], r"rule 'x': escalation\[0\]: to: unknown field"),
        ([{"after": "30m", "channels": ["email"]}, {"after": "15m", "channels": ["slack"]}],
         r"rule 'x': escalation\[1\]: after: '15m' is not later than the step before \(1800 s\)"),
        ([{"after": "15m", "channels": ["email"]}, {"after": "900s", "channels": ["slack"]}],
         r"escalation\[1\]: after: '900s' is not later"),
    ],
)  # fmt: skip
def test_escalation_errors_name_the_rule_and_the_field(escalation, message):
    with pytest.raises(RuleError, match=message):
        parse_rules([{"name": "x", "threshold": 1, "escalation": escalation}], include_builtin=False)


def test_escalation_in_a_rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent("""\
        rules:
          - name: db-errors
            filter: {level: ERROR}
            threshold: 5
            channels: [slack]
            escalation:
              - {after: 15m, channels: [email]}
              - {after: 1h, channels: [email, log]}
        """))  # fmt: skip
    rule = next(r for r in load_rules(path) if r.name == "db-errors")
    assert rule.escalation == (Step(900, ("email",)), Step(3600, ("email", "log")))


# -- from a review of the escalation: each test failed before its fix ---------------------------------------


def test_a_host_silent_longer_than_the_lookback_stays_firing_and_escalates(world, slack):  # noqa: F811
    """A flatline key expected only while seen during the lookback: once silent longer than that, it left the
    counts, and its stored firing state was never looked at again (no renotify, no escalation, firing forever)."""
    world.rules({"name": "quiet", "kind": "flatline", "group_by": "host", "window": "5m", "threshold": 1,
                 "lookback": "30m", "channels": ["log"], "renotify": "1d",
                 "escalation": [{"after": "45m", "channels": ["slack"]}]})  # fmt: skip
    name = world.conf.rules[0].name
    world.write(1, window(world, -20), level="INFO", host="web9")  # seen at 09:40, then never again
    assert [(n.key, n.status) for n in world.run(window(world, 6)).notifications] == [("web9", "firing")]
    for m in (21, 36, 46):  # from 10:40 on, 09:40 is outside the lookback
        assert world.run(window(world, m)).notifications == []
    report = world.run(window(world, 51))  # 10:50: 45 minutes since 10:05
    assert [(n.key, n.escalation) for n in report.notifications] == [("web9", 1)] and len(slack.received) == 1
    state = store(world).states(name)["web9"]
    assert state.firing and state.last_count == 0 and "host=web9" in state.logs_path
    world.write(2, window(world, 56), level="INFO", host="web9")  # back at 10:56
    assert [(n.key, n.status) for n in world.run(window(world, 61)).notifications] == [("web9", "resolved")]
    assert "RESOLVED" in slack.received[-1]["text"]


def test_a_step_no_channel_delivered_is_tried_again_on_the_next_run(world, slack):  # noqa: F811
    world.rules(ESCALATING)
    name = world.conf.rules[0].name
    firing_for(world, 60)
    world.run(window(world, 6))
    slack.status = 500
    report = world.run(window(world, 21))
    assert steps(report) == [1] and report.failures, "step 1 was tried and failed"
    assert store(world).states(name)["*"].step == 0, "a step nobody heard is not taken"
    slack.status = 200
    assert steps(world.run(window(world, 26))) == [1] and len(slack.received) == 1
    assert store(world).states(name)["*"].step == 1


class Killed(BaseException):
    """The run dies here (kill -9, an OOM kill), after the notices before it went out."""


class DyingChannel:
    name = "email"

    def send(self, _n):
        raise Killed


def test_each_step_is_saved_as_it_goes_out_so_a_run_that_dies_sends_none_twice(world, slack, smtp):  # noqa: F811
    world.rules(ESCALATING)
    world.conf = replace(world.conf, max_catchup=300)  # the late run evaluates 10:30 and 10:35 only
    name = world.conf.rules[0].name
    firing_for(world, 60)
    world.run(window(world, 6))
    with pytest.raises(Killed):
        world.run(window(world, 41), email=DyingChannel())  # steps 1 and 2 due; it dies sending step 2
    assert len(slack.received) == 1 and store(world).states(name)["*"].step == 1
    assert steps(world.run(window(world, 41))) == [2], "step 1 went out already"
    assert len(slack.received) == 1 and len(smtp.messages) == 1


def test_a_resolution_held_by_a_silence_goes_out_when_the_silence_ends(world, slack):  # noqa: F811
    world.rules(ESCALATING)
    name = world.conf.rules[0].name
    firing_for(world, 20)
    world.run(window(world, 6))
    assert steps(world.run(window(world, 21))) == [1] and len(slack.received) == 1
    store(world).silence(name, "*", datetime.now(UTC) + timedelta(hours=1), "test")
    report = world.run(window(world, 26))  # 10:20-10:25 is empty: resolved, but silenced
    assert report.notifications == [] and [n.status for n in report.silenced] == ["resolved"]
    assert not store(world).states(name)["*"].firing
    assert world.run(window(world, 31)).notifications == [], "still silenced: still held"
    store(world).unsilence(name, "*")
    report = world.run(window(world, 36))
    assert [n.status for n in report.notifications] == ["resolved"], "slack heard it fire: it hears the end"
    assert "RESOLVED" in slack.received[-1]["text"] and len(slack.received) == 2
    assert store(world).states(name)["*"].notified == frozenset(), "owed once, sent once"
    assert world.run(window(world, 41)).notifications == []


def test_escalation_to_a_channel_not_configured_is_a_configuration_error():
    from iact.alerting.config import ConfigError, from_mapping

    conf = {"cassandra": {"hosts": ["127.0.0.1"]}, "builtin_rules": False, "channels": {"log": {"path": "/tmp/a.log"}},
            "rules": [{"name": "err", "threshold": 0, "channels": ["log"],
                       "escalation": [{"after": "15m", "channels": ["slack"]}]}]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"rule 'err': escalation\[0\]: channels: slack is not configured"):
        from_mapping(conf)
    conf["channels"]["slack"] = {"webhook_url": "https://hooks.example/x"}
    assert from_mapping(conf).rules[0].escalation[0].channels == ("slack",)


# -- from a second review of the escalation --------------------------------------------------------------


class Down:
    """A channel whose far end is down (the relay refuses)."""

    def __init__(self, name):
        self.name = name

    def send(self, _n):
        from iact.alerting.notify import ChannelError

        raise ChannelError(f"{self.name} down")


def test_a_dead_channel_in_one_step_does_not_block_the_later_steps(world, slack):  # noqa: F811
    world.rules(ESCALATING | {"escalation": [{"after": "15m", "channels": ["email"]},
                                             {"after": "30m", "channels": ["slack"]}]})  # fmt: skip
    firing_for(world, 60)
    world.run(window(world, 6))
    for m in (21, 26, 31):
        assert world.run(window(world, m), email=Down("email")).failures, "step 1 tried again each run"
    assert slack.received == []
    world.run(window(world, 36), email=Down("email"))  # 10:35: step 2 is due; step 1 never got through
    assert len(slack.received) == 1 and "(escalation 2)" in slack.received[0]["text"]
    assert store(world).states(world.conf.rules[0].name)["*"].step == 2
    assert steps(world.run(window(world, 41), email=Down("email"))) == [], "nothing left to try"


def test_a_failed_step_is_tried_once_per_run_and_given_up_after_renotify(world):  # noqa: F811
    world.rules(ESCALATING | {"renotify": "30m", "escalation": [{"after": "15m", "channels": ["email"]}]})
    name = world.conf.rules[0].name
    firing_for(world, 120)
    world.run(window(world, 6))
    assert steps(world.run(window(world, 21), email=Down("email"))) == [1]
    report = world.run(window(world, 26), email=Down("email"))  # evaluates 10:20 again, then 10:25
    assert steps(report) == [1], "once per run, not once per window evaluated"
    for m in range(31, 50, 5):
        world.run(window(world, m), email=Down("email"))
    assert store(world).states(name)["*"].step == 0, "10:46: still within renotify (30 m) of 10:20"
    world.run(window(world, 51), email=Down("email"))  # 10:50: given up, recorded as failed
    state = store(world).states(name)["*"]
    assert state.step == 1 and "email" not in state.notified, "failed: nobody was told"
    assert steps(world.run(window(world, 56), email=Down("email"))) == []


def test_an_owed_resolution_survives_a_new_episode_under_the_same_silence(world, slack):  # noqa: F811
    world.rules(ESCALATING)
    name = world.conf.rules[0].name
    firing_for(world, 20)  # episode A, 10:00-10:20
    world.run(window(world, 6))
    assert steps(world.run(window(world, 21))) == [1] and len(slack.received) == 1
    store(world).silence(name, "*", datetime.now(UTC) + timedelta(hours=1), "test")
    world.run(window(world, 26))  # A resolves, held
    world.write(1, window(world, 26))  # episode B, 10:25-10:30, still silenced
    world.run(window(world, 31))
    assert store(world).states(name)["*"].notified >= {"log", "slack"}, "still owed"
    store(world).unsilence(name, "*")
    report = world.run(window(world, 36))  # the silence is over: B's held notice (10:30), then its end (10:35)
    assert [n.status for n in report.notifications] == ["firing", "resolved"]
    assert "RESOLVED" in slack.received[-1]["text"], "slack heard A fire: it hears the end"


def test_a_first_notice_held_by_a_silence_goes_out_when_the_silence_ends(world):  # noqa: F811
    world.rules(ESCALATING | {"renotify": "1d"})
    name = world.conf.rules[0].name
    firing_for(world, 60)
    store(world).silence(name, "*", datetime.now(UTC) + timedelta(hours=1), "test")
    assert world.run(window(world, 6)).notifications == []
    store(world).unsilence(name, "*")
    report = world.run(window(world, 11))
    assert [(n.status, n.renotify) for n in report.notifications] == [("firing", True)], "not a day later"
    assert [e["status"] for e in world.logged()] == ["firing"]


def test_retire_waits_for_a_run_in_progress_and_is_in_the_history(world, tmp_path, capsys):  # noqa: F811
    world.rules({"name": "loop", "window": "5m", "threshold": 0, "group_by": "logger"})
    name = world.conf.rules[0].name
    config = tmp_path / "alerting.yaml"
    config.write_text(yaml.safe_dump({
        "name": world.conf.name, "builtin_rules": False,
        "cassandra": {"hosts": list(world.conf.connection.contact_points), "port": world.conf.connection.port},
        "rules": [{"name": name, "window": "5m", "threshold": 0, "group_by": "logger"}],
        "channels": {"log": {"path": str(tmp_path / "log_alerts.log")}},
    }))  # fmt: skip
    since = window(world, 5)
    store(world).save(name, "gone", KeyState(True, since, since, 4))
    assert store(world).acquire("a running evaluation", 60) is None
    assert iact_alert(["--config", str(config), "retire", name, "gone"]) == 1
    assert "a run is in progress" in capsys.readouterr().err
    assert store(world).states(name)["gone"].firing, "left alone while the run holds the lease"
    store(world).release("a running evaluation")
    assert iact_alert(["--config", str(config), "retire", name, "gone"]) == 0
    today = History(world.session, "logging").recent(datetime.now(UTC), hours=1)
    assert [(e.event, e.status) for e in today if e.rule == name and e.key == "gone"] == [("retired", "resolved")]


# -- from a third review ---------------------------------------------------------------------------------


def test_a_first_notice_nobody_took_is_tried_again_next_run(world):  # noqa: F811
    world.rules(ESCALATING | {"channels": ["slack"], "escalation": []})
    firing_for(world, 60)
    assert world.run(window(world, 6), slack=Down("slack")).failures
    report = world.run(window(world, 11))  # slack is back
    assert [n.status for n in report.notifications] == ["firing"], "nobody has heard of it yet"
    assert world.run(window(world, 16)).notifications == [], "told now: renotify in a day"


def test_a_resolution_a_channel_failed_is_tried_again(world, slack):  # noqa: F811
    world.rules(ESCALATING)
    firing_for(world, 20)
    world.run(window(world, 6))
    assert steps(world.run(window(world, 21))) == [1] and len(slack.received) == 1
    assert world.run(window(world, 26), slack=Down("slack")).failures  # resolved; slack down
    world.run(window(world, 31))
    assert "RESOLVED" in slack.received[-1]["text"], "slack was paged: it hears the end"
    assert world.run(window(world, 36)).notifications == [], "once"


def test_escalation_does_not_postpone_the_rules_renotify(world, slack, smtp):  # noqa: F811
    world.rules(ESCALATING | {"renotify": "20m"})
    firing_for(world, 120)
    world.run(window(world, 6))  # log told at 10:06
    got = []
    for m in range(11, 60, 5):
        got += [(m, n.escalation, n.renotify) for n in world.run(window(world, m)).notifications]
    assert (26, 0, True) in got, got


def test_a_dry_run_catching_up_shows_each_notice_once(world):  # noqa: F811
    world.rules(ESCALATING | {"escalation": []})
    world.run(window(world, 1))
    firing_for(world, 30)
    report = world.run(window(world, 31), dry_run=True)  # 10:00 .. 10:30: six windows
    assert [n.status for n in report.notifications] == ["firing"]
