"""The log console through nginx on the app host: a `logger` line written on cass2 is found on
/logs/ by the dashboard's admin, read with the cluster's read-only account over TLS."""

from __future__ import annotations

import json
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

    def found():
        rows = json.loads(page.opener.open(base, timeout=30).read())["rows"]
        return [r for r in rows if r["message"] == marker] or None

    rows = wait_until(found, 90, f"{marker} on /logs/", interval=2)
    assert {r["host"] for r in rows} == {"cass2"} and {r["source"] for r in rows} == {"journal", "syslog"}
