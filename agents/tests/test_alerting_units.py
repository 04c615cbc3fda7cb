"""Rules as data: validation names the rule and field; window arithmetic for catch-up."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from alerting_slots import DAYS, SlotAllocator
from pki import TestCA

from iact.alerting.config import from_mapping
from iact.alerting.engine import logs_link, window_ends
from iact.alerting.notify import LogChannel, Notification, slack_text
from iact.alerting.query import WindowCounts
from iact.alerting.rules import BUILTIN, RuleError, load_rules, parse_rules
from iact.yamlconfig import ConfigError


def test_builtin_rules_have_the_seeds_thresholds():
    rules = {r.name: r for r in parse_rules([])}
    assert (rules["errors"].threshold, rules["errors"].window, rules["errors"].filters) == (
        10,
        300,
        {"level": ("ERROR",)},
    )
    assert (rules["criticals"].threshold, rules["criticals"].filters["level"]) == (5, ("CRITICAL",))
    assert (rules["logger-loop"].threshold, rules["logger-loop"].group_by) == (100, "logger")
    assert len(BUILTIN) == 4


def test_builtin_host_silent_watches_every_collectors_metrics():
    rule = {r.name: r for r in parse_rules([])}["host-silent"]
    assert (rule.kind, rule.table, rule.group_by, rule.filters) == (
        "flatline",
        "infrastructure",
        "host",
        {"source": ("metrics",), "program": ("iact-collector",)},
    )
    assert (rule.window, rule.lookback, rule.threshold, rule.severity) == (300, 3600, 1, "critical")
    assert rule.fires(0) and not rule.fires(1)


def test_a_rule_with_a_builtin_name_replaces_it():
    rules = {r.name: r for r in parse_rules([{"name": "errors", "filter": {"level": "ERROR"}, "threshold": 50}])}
    assert rules["errors"].threshold == 50 and len(rules) == 4


def test_enabled_false_switches_a_rule_off():
    rules = {r.name for r in parse_rules([{"name": "host-silent", "enabled": False}])}
    assert rules == {"errors", "criticals", "logger-loop"}
    # A whole rule may stay in the file, switched off; switched on it is a rule like any other.
    mine = {"name": "quiet", "kind": "flatline", "group_by": "host", "threshold": 1}
    assert parse_rules([{**mine, "enabled": False}], include_builtin=False) == []
    assert [r.name for r in parse_rules([{**mine, "enabled": True}], include_builtin=False)] == ["quiet"]
    with pytest.raises(RuleError, match=r"rule 'host-silent': enabled: give true or false"):
        parse_rules([{"name": "host-silent", "enabled": "no"}])
    with pytest.raises(RuleError, match="used twice"):
        parse_rules([{"name": "host-silent", "enabled": False}, {"name": "host-silent", "enabled": False}])


def test_rules_file_tunes_and_switches_off(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "builtin: true\nrules:\n"
        "  - {name: host-silent, kind: flatline, table: infrastructure, group_by: host, threshold: 1,\n"
        "     filter: {source: metrics, program: iact-collector}, window: 15m, lookback: 2h, severity: warning}\n"
        "  - {name: logger-loop, enabled: false}\n"
    )
    rules = {r.name: r for r in load_rules(path)}
    assert set(rules) == {"errors", "criticals", "host-silent"}
    assert (rules["host-silent"].window, rules["host-silent"].lookback, rules["host-silent"].severity) == (
        900,
        7200,
        "warning",
    )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "x", "threshold": "ten"}, r"rule 'x': threshold: give a whole number"),
        ({"name": "x", "threshold": 1, "window": "5 minutes"}, r"rule 'x': window: '5 minutes' is not a duration"),
        ({"name": "x", "threshold": 1, "table": "metrics"}, r"rule 'x': table: 'metrics'"),
        ({"name": "x", "threshold": 1, "filter": {"severity": "err"}}, r"rule 'x': filter.severity: not a column"),
        ({"name": "x", "threshold": 1, "kind": "flatline"}, r"rule 'x': group_by: a flatline rule needs a key"),
        ({"name": "x", "threshold": 1, "channels": ["pager"]}, r"rule 'x': channels: list some of"),
        ({"name": "x", "threshold": 1, "treshold": 2}, r"rule 'x': treshold: unknown field"),
        ({"threshold": 1}, r"rule #1: name"),
    ],
)
def test_rule_errors_name_rule_and_field(rule, message):
    with pytest.raises(RuleError, match=message):
        parse_rules([rule])


def test_duplicate_names_are_refused():
    with pytest.raises(RuleError, match="used twice"):
        parse_rules([{"name": "a", "threshold": 1}, {"name": "a", "threshold": 2}])


def test_config_errors():
    base = {"cassandra": {"hosts": ["h"]}}
    assert from_mapping(base).slack is None and from_mapping(base).log_path == "/var/log/iact/log_alerts.log"
    with pytest.raises(ConfigError, match=r"channels\.email\.host: name your SMTP relay"):
        from_mapping({**base, "channels": {"email": {"to": ["a@b"], "from": "c@d"}}})
    with pytest.raises(ConfigError, match=r"channels\.slack\.webhook_url"):
        from_mapping({**base, "channels": {"slack": {"webhook_url": "hooks.slack.com/x"}}})
    with pytest.raises(ConfigError, match="interval: '5 min' is not a duration"):
        from_mapping({**base, "interval": "5 min"})


def test_lease_ttl_defaults_to_the_interval_at_least_a_minute_and_can_be_set():
    base = {"cassandra": {"hosts": ["h"]}}
    assert from_mapping(base).lease_ttl == 300
    assert from_mapping({**base, "interval": "30s"}).lease_ttl == 60
    assert from_mapping({**base, "interval": "10m"}).lease_ttl == 600
    assert from_mapping({**base, "lease_ttl": "15s"}).lease_ttl == 15
    with pytest.raises(ConfigError, match="lease_ttl: '0s' is not a duration"):
        from_mapping({**base, "lease_ttl": "0s"})


def test_window_ends_recount_the_last_and_catch_up_missed_runs():
    now = datetime(2026, 11, 23, 10, 17, 30, tzinfo=UTC)
    assert window_ends(None, now, 300, 120, 3600) == [datetime(2026, 11, 23, 10, 15, tzinfo=UTC)]
    last = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # runs at 10:05 and 10:10 were missed
    assert window_ends(last, now, 300, 120, 3600) == [last + timedelta(minutes=m) for m in (0, 5, 10, 15)]
    long_ago = now - timedelta(days=2)
    assert len(window_ends(long_ago, now, 300, 120, 3600)) == 13, "catch-up is capped at max_catchup"


def test_message_names_rule_key_count_window_threshold():
    n = Notification("logger-loop", "app.payments", "firing", "warning", 150, 100, "frequency",
                     "2026-11-23T10:00:00+00:00", "2026-11-23T10:05:00+00:00", ["l1", "l2"], "SELECT ...")  # fmt: skip
    text = n.text()
    for part in ("logger-loop", "app.payments", "150 records", "> 100", "10:00:00", "10:05:00", "l1", "SELECT"):
        assert part in text


def test_samples_are_the_newest_rows_in_time_order_whatever_the_arrival_order():
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    counts = WindowCounts(start, start + timedelta(minutes=5))
    arrival = [7, 2, 9, 0, 5, 8, 1]  # rows come back in token order, not by time
    for second in arrival:
        counts.counts["*"] += 1
        counts.offer("*", start + timedelta(seconds=second), f"line {second}", keep=3)
    assert counts.samples("*") == ["line 7", "line 8", "line 9"]
    assert counts.samples("other") == []


def test_cassandra_ca_file_reaches_the_connection_and_is_checked_at_start(tmp_path):
    ca = TestCA(tmp_path / "pki").ca_file
    conf = from_mapping({"cassandra": {"hosts": ["h"], "ca_file": str(ca)}})
    assert conf.connection.ca_file == str(ca)
    assert from_mapping({"cassandra": {"hosts": ["h"], "ca_file": ""}}).connection.ca_file is None
    with pytest.raises(ConfigError, match=r"cassandra\.ca_file: cannot load .*missing\.pem \(No such file"):
        from_mapping({"cassandra": {"hosts": ["h"], "ca_file": str(tmp_path / "missing.pem")}})
    ca.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"cassandra\.ca_file: cannot load .*no PEM certificate"):
        from_mapping({"cassandra": {"hosts": ["h"], "ca_file": str(ca)}})


def test_slack_text_cannot_page_everyone_or_forge_links():
    n = Notification("errors", "<!channel>", "firing", "warning", 11, 10, "frequency",
                     "2026-11-23T10:00:00+00:00", "2026-11-23T10:05:00+00:00",
                     ["Invalid HTTP_HOST header: '<!here|x>' & <https://evil.example|click>"])  # fmt: skip
    text = slack_text(n)
    assert "<" not in text and "&lt;!channel>" in text and "&amp; &lt;https://evil.example|click>" in text
    assert "(fires when > 10)" in text, "a lone > is text, left as it is"


def test_alert_log_is_one_line_per_notice_whatever_the_key(tmp_path):
    path = tmp_path / "log_alerts.log"
    keys = ["app.evil\r\n{}\x00", "para\u2028graph\u2029", "nel\x85", "caf\u00e9"]
    for key in keys:
        LogChannel(str(path)).send(Notification("loop", key, "firing", "warning", 1, 0, "frequency", "a", "b"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == keys
    assert "caf\u00e9" in lines[-1], "readable text stays readable"


def test_alerting_test_slots_never_share_a_day_or_a_tag():
    slots = SlotAllocator(days=DAYS)
    taken = [slots.take() for _ in range(DAYS)]
    assert len({day.date() for _, day in taken}) == DAYS, "two tests would count each other's rows"
    assert len({tag for tag, _ in taken}) == DAYS
    assert all(day.hour == 12 for _, day in taken), "noon: the windows the tests use (07:00 to 11:00) stay in their day"
    with pytest.raises(RuntimeError, match="all 600 test days are taken"):
        slots.take()


def test_alerting_test_slots_are_distinct_across_threads():
    slots = SlotAllocator(days=400)
    out: list[tuple[str, object]] = []
    threads = [threading.Thread(target=lambda: out.extend(slots.take() for _ in range(100))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({day for _, day in out}) == 400


def test_the_notice_links_to_the_log_console_on_its_window_and_filter():
    rule = next(r for r in parse_rules([]) if r.name == "host-silent")
    start, end = datetime(2026, 11, 29, 10, 0, tzinfo=UTC), datetime(2026, 11, 29, 10, 5, tzinfo=UTC)
    link = logs_link("https://dora.example.internal/api/dora/dashboard/", rule, "web7", start, end)
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "dora.example.internal", "/logs/")
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "table": "infrastructure", "from": start.isoformat(), "to": end.isoformat(),
        "source": "metrics", "program": "iact-collector", "host": "web7",
    }  # fmt: skip
    errors = next(r for r in parse_rules([]) if r.name == "errors")
    assert "host=" not in logs_link("https://d/", errors, "*", start, end), "no key to add for an ungrouped rule"
    assert logs_link("", errors, "*", start, end) == "", "no dashboard configured: no link"
