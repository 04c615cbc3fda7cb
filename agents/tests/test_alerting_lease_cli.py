"""The evaluation lease through the path cron and the timer run: `iact-alert run` processes at once.

Real processes of the installed console script against the session's loopback Cassandra node, a
real HTTP server standing in for Slack, and the log channel's file. The Slack stand-in holds every
request open until the test lets it go, so a run that is notifying is provably still holding the
lease while the other process tries: the overlap is made, not hoped for.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from alerting_slots import SLOTS

from iact.alerting.state import StateStore

pytestmark = pytest.mark.cassandra
IACT_ALERT = Path(sys.executable).with_name("iact-alert")
LEASE_TTL = 10  # seconds, through the configuration's lease_ttl as an operator sets it; renewed every third
HELD = "another evaluation holds the lease"


class HeldSlack(http.server.ThreadingHTTPServer):
    """Records each POST, then keeps the request open until `release` is set (or 120 s pass)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                outer.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                outer.release.wait(120)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass  # the client was killed meanwhile

            def log_message(self, *_args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/T000/B000/secret"


@pytest.fixture
def slack():
    server = HeldSlack()
    yield server
    server.release.set()
    server.shutdown()


def wait_for(what: str, condition: Callable[[], object], timeout: float, interval: float = 0.2) -> object:
    """Poll `condition` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Installation:
    """One alerting installation of its own (name, app, rule), configured in a YAML file as deployed."""

    def __init__(self, session, cassandra_settings, slack: HeldSlack, tmp_path: Path) -> None:
        self.session = session
        self.tag, _ = SLOTS.take()
        self.app = f"leasecli-{self.tag}-{uuid.uuid4().hex[:6]}"
        self.name = f"lease-{self.app}"
        self.alert_log = tmp_path / "log_alerts.log"
        self.config = tmp_path / "alerting.yaml"
        doc = {
            "name": self.name,
            "cassandra": {"hosts": list(cassandra_settings.contact_points), "port": cassandra_settings.port},
            "interval": "1m",
            "query_delay": "1s",
            "lease_ttl": f"{LEASE_TTL}s",
            "retry_attempts": 1,
            "builtin_rules": False,
            "rules": [{"name": f"errors-{self.app}", "filter": {"app": self.app}, "window": "1m", "threshold": 0,
                       "channels": ["slack", "log"]}],
            "channels": {"slack": {"webhook_url": slack.url, "timeout": 120}, "log": {"path": str(self.alert_log)}},
        }  # fmt: skip
        self.config.write_text(yaml.safe_dump(doc))
        self.insert = session.prepare(
            "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, app, level, logger, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.store = StateStore(session, "logging", self.name)

    def errors_now(self) -> None:
        """An error row every 5 s over the last 150 s, so whichever 1-minute window a run evaluates has some."""
        now = datetime.now(UTC)
        for back in range(0, 150, 5):
            ts = now - timedelta(seconds=back)
            row = ("web1", ts.date(), ts.hour, ts, uuid.uuid4(), self.app, "ERROR", "app.db", f"boom {back}")
            self.session.execute(self.insert, row)

    def start(self) -> subprocess.Popen:
        """`iact-alert --config ... run`, as the timer's service or the cron entry runs it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("IACT_")}
        return subprocess.Popen(
            [str(IACT_ALERT), "--config", str(self.config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def lease_holder(self) -> str | None:
        row = self.session.execute(
            "SELECT lease_owner FROM logging.alert_runs WHERE name = %s", (f"lease:{self.name}",)
        ).one()
        return row.lease_owner if row else None

    def logged(self) -> list[dict]:
        return [json.loads(x) for x in self.alert_log.read_text().splitlines()] if self.alert_log.exists() else []


@pytest.fixture
def installation(session, cassandra_settings, slack, tmp_path):
    assert IACT_ALERT.exists(), f"{IACT_ALERT}: the console entry point is not installed (pip install -e .)"
    return Installation(session, cassandra_settings, slack, tmp_path)


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def test_two_runs_at_once_one_evaluates_and_notifies_the_other_says_the_lease_is_held(installation, slack):
    installation.errors_now()
    procs = [installation.start(), installation.start()]
    # One of them takes the lease and blocks in Slack; the other must give up on its own meanwhile.
    loser = wait_for("one of the runs to exit while the other notifies",
                     lambda: next((p for p in procs if p.poll() is not None), None), 60)  # fmt: skip
    winner = next(p for p in procs if p is not loser)
    code, output = finish(loser)
    assert code == 0, output
    assert HELD in output and installation.name in output, output
    assert winner.poll() is None, "the holder was still notifying"
    # The loser may give up before the holder's notice reaches Slack (a slow query on a busy machine).
    wait_for("the holder's notice to reach Slack", lambda: slack.received or None, 60)
    assert len(slack.received) == 1, slack.received
    slack.release.set()
    code, output = finish(winner)
    assert code == 0, output
    assert HELD not in output and "1 notification(s)" in output, output
    assert len(slack.received) == 1, "exactly one run notified"
    assert [r["rule"] for r in installation.logged()] == [f"errors-{installation.app}"]
    assert installation.lease_holder() is None, "the holder gives the lease back"


def test_a_run_that_outlasts_the_lease_ttl_keeps_the_lease(installation, slack):
    installation.errors_now()
    holder = installation.start()
    wait_for("the first run to notify (and hold the lease)", lambda: slack.received, 60)
    owner = installation.lease_holder()
    assert owner is not None
    # The run stays in Slack for two TTLs; the lease must be there, the same holder's, at every look.
    until = time.monotonic() + 2 * LEASE_TTL
    while time.monotonic() < until:
        assert installation.lease_holder() == owner, "the live holder's lease lapsed"
        time.sleep(0.25)
    code, output = finish(installation.start())
    assert code == 0 and HELD in output, output
    assert len(slack.received) == 1, "a second run notified while the first was still running"
    slack.release.set()
    code, output = finish(holder)
    assert code == 0, output


def test_a_killed_holder_blocks_until_the_ttl_then_a_later_run_takes_over(installation, slack):
    installation.errors_now()
    doomed = installation.start()
    wait_for("the first run to notify (and hold the lease)", lambda: slack.received, 60)
    owner = installation.lease_holder()
    assert owner is not None and owner.endswith(f"/{doomed.pid}"), owner
    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait(10)
    # Renewed at most a third of a TTL before the kill, the dead holder's lease stands for at least
    # two thirds of one more: a run started now is refused.
    assert installation.lease_holder() == owner, "nobody released it, yet it is gone"
    code, output = finish(installation.start())
    assert time.monotonic() - killed_at < 2 * LEASE_TTL / 3, "the refused run took too long to be conclusive"
    assert code == 0 and HELD in output and owner in output, output
    wait_for("the dead holder's lease to lapse", lambda: installation.lease_holder() is None, LEASE_TTL + 30)
    assert time.monotonic() - killed_at > LEASE_TTL / 2, "the lease lapsed long before its TTL"
    slack.release.set()
    installation.errors_now()
    code, output = finish(installation.start())
    assert code == 0, output
    assert HELD not in output and "1 notification(s)" in output, output
    assert len(slack.received) == 2, "the run after the lapse evaluated and notified (the dead one never finished)"
    assert installation.lease_holder() is None
