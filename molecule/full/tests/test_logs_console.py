"""The console pages through nginx on the app host: a `logger` line written on cass2 is found on
/logs/ by the dashboard's admin, read with the cluster's read-only account over TLS; /health/
shows the fleet."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid

import testinfra
from conftest import node_ip, wait_until
from test_appliance import signed_in


def test_a_logger_line_written_on_cass2_is_found_on_the_logs_page():
    marker = f"console-{uuid.uuid4()}"
    testinfra.get_host("podman://cass2").run(f"logger -t consoletest {marker}")
    query = urllib.parse.urlencode(
        {"table": "infrastructure", "host": "cass2", "program": "consoletest", "q": marker, "range": "15m"}
    )
    page = signed_in(f"/logs/?{query}")
    assert "/logs/" in page.geturl(), "signed in and sent on to the console"
    html = page.read().decode()
    assert "Bounded scan" in html, "a text term is a bounded scan, and the page says so"
    base = f"https://{node_ip('app1')}/logs/?{query}&format=json"

    def found():  # the agent stores the line twice, from the journal and from syslog: wait for both
        rows = [r for r in json.loads(page.opener.open(base, timeout=30).read())["rows"] if r["message"] == marker]
        return rows if {r["source"] for r in rows} >= {"journal", "syslog"} else None

    rows = wait_until(found, 90, f"{marker} on /logs/, via the journal and syslog", interval=2)
    assert {r["host"] for r in rows} == {"cass2"} and {r["source"] for r in rows} == {"journal", "syslog"}


def test_the_health_page_shows_every_node_up_and_every_collector_reporting():
    """The health job (cron's, run here directly) writes the fleet snapshot; /health/ shows it through nginx."""
    app1 = testinfra.get_host("podman://app1")
    out = app1.run("runuser -u iact-dora -- /usr/local/bin/iact-dora dora_health")
    assert "fleet" in out.stdout and "FAIL fleet" not in out.stdout, out.stdout + out.stderr
    page = signed_in("/health/")
    assert "/health/" in page.geturl()
    html = page.read().decode()
    items = dict(re.findall(r'data-kind="(?:node|collector)" data-name="([^"]+)" data-state="(\w+)"', html))
    collectors = {name: state for name, state in items.items() if name in ("cass1", "cass2", "cass3", "app1")}
    assert set(collectors) == {"cass1", "cass2", "cass3", "app1"}, items
    nodes = {name: state for name, state in items.items() if name not in collectors}
    assert len(nodes) == 3 and set(nodes.values()) == {"green"}, nodes
    # An agent the earlier tests restarted (upgrades, TLS) is amber for ten minutes, and says so.
    for name, state in collectors.items():
        reason = re.search(rf'data-name="{name}" data-state="\w+">.*?<td>\w+</td><td>([^<]*)</td>', html, re.S)
        assert state == "green" or (state == "amber" and "agent restarted" in reason.group(1)), (name, reason.group(1))
