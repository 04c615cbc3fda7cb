"""Benchmark of iact-alert (run on demand: `python bench/alerting_bench.py`).

One evaluation of 20 rules over 100 hosts' worth of rows (one row per host per second in both
log tables, i.e. 30,000 + 30,000 rows in the 5-minute window, plus the flatline lookback), on a
real Cassandra node. Baseline measured in the same run: reading every row of the window and of the
flatline rules' 10-minute lookback once per table, which is the least any evaluation of these rules
must read.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra_node import CassandraNode

from iact.alerting.config import AlertConfig
from iact.alerting.engine import Evaluator
from iact.alerting.query import WindowQuery
from iact.alerting.rules import parse_rules
from iact.alerting.state import StateStore
from iact.cassandra.session import open_session
from iact.cassandra.settings import ConnectionSettings
from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams

HOSTS = 100
SECONDS = 300
LEVELS = ["INFO"] * 90 + ["WARNING"] * 7 + ["ERROR"] * 2 + ["CRITICAL"]
LOOKBACK = timedelta(minutes=10)
SEVERITIES = ["info"] * 90 + ["notice"] * 5 + ["warning"] * 3 + ["err"] * 2


def rules() -> list:
    """20 rules: the 4 built-ins and 16 more of every shape."""
    extra = [
        {"name": f"app-errors-{i}", "filter": {"level": "ERROR", "app": f"app{i}"}, "window": "5m", "threshold": 50}
        for i in range(5)
    ] + [
        {"name": f"logger-{i}", "filter": {"logger": f"svc.{i}"}, "window": "5m", "threshold": 1000} for i in range(3)
    ] + [
        {"name": "per-host-errors", "filter": {"level": ["ERROR", "CRITICAL"]}, "group_by": "host", "threshold": 5},
        {"name": "infra-err", "table": "infrastructure", "filter": {"severity": "err"}, "threshold": 100},
        {"name": "infra-err-per-host", "table": "infrastructure", "filter": {"severity": "err"}, "group_by": "host",
         "threshold": 5},
        {"name": "auth", "table": "infrastructure", "filter": {"source": "auth"}, "threshold": 500},
        {"name": "per-program", "table": "infrastructure", "group_by": "program", "threshold": 10000},
        {"name": "kernel", "table": "infrastructure", "filter": {"program": "kernel"}, "threshold": 100},
        {"name": "silent-hosts", "kind": "flatline", "table": "infrastructure", "group_by": "host", "threshold": 1,
         "lookback": "10m"},
        {"name": "silent-apps", "kind": "flatline", "group_by": "app", "threshold": 1, "lookback": "10m"},
    ]  # fmt: skip
    out = parse_rules(extra)
    assert len(out) == 20, len(out)
    return out


def load(session: Session, start: datetime) -> int:
    """One row per host per second in both tables, from start - 10 min (lookback) to start + 5 min."""
    app = session.prepare(
        "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, app, level, logger, message) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    infra = session.prepare(
        "INSERT INTO logging.infrastructure_logs (host, day, hour, ts, line_id, source, severity, program, message) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    app_rows, infra_rows = [], []
    for s in range(-600, SECONDS):
        ts = start + timedelta(seconds=s)
        for h in range(HOSTS):
            t = ts + timedelta(milliseconds=h)
            n = s * HOSTS + h
            app_rows.append((f"web{h}", t.date(), t.hour, t, uuid.uuid4(), f"app{h % 5}", LEVELS[n % 100],
                             f"svc.{n % 8}", f"request {n} done in {n % 300} ms"))  # fmt: skip
            source, program = ("syslog", "auth", "journal")[n % 3], ("sshd", "kernel", "cron", "systemd")[n % 4]
            infra_rows.append(
                (f"web{h}", t.date(), t.hour, t, uuid.uuid4(), source, SEVERITIES[n % 100], program, f"line {n}")
            )
    for statement, rows in ((app, app_rows), (infra, infra_rows)):
        execute_concurrent_with_args(session, statement, rows, concurrency=64, raise_on_first_error=True)
    return len(app_rows) + len(infra_rows)


def main() -> None:
    """Start a node, load rows, time one evaluation."""
    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-bench-alert-")), heap_mb=1024)
    node.start()
    try:
        conn = ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)
        params = SchemaParams(replication=(("dc1", 1),))
        with open_session(conn) as session:
            apply_migrations(session, params, load_migrations(find_cql_dir(), params), lambda _l: None)
            start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
            t0 = time.perf_counter()
            loaded = load(session, start)
            load_s = time.perf_counter() - t0
            end = start + timedelta(seconds=SECONDS)
            query = WindowQuery(session, "logging")
            scan = parse_rules([{"name": "all-app", "threshold": 0}, {"name": "all-infra", "table": "infrastructure",
                                "threshold": 0}], include_builtin=False)  # fmt: skip
            t0 = time.perf_counter()
            scanned = sum(sum(query.count(r, start, end).counts.values()) for r in scan)
            window_only = time.perf_counter() - t0
            # The flatline rules need the keys of the 10 minutes before the window too: reading the
            # window and that lookback once per table is the least any evaluation of these rules reads.
            t0 = time.perf_counter()
            scanned_lookback = sum(sum(query.count(r, start - LOOKBACK, end).counts.values()) for r in scan)
            baseline = time.perf_counter() - t0
            conf = AlertConfig(connection=conn, rules=tuple(rules()), name="bench", log_path=None, query_delay=60)
            conf = replace(conf, interval=300)
            store = StateStore(session, "logging", "bench")
            query = WindowQuery(session, "logging")
            evaluator = Evaluator(conf, query, store, {}, clock=lambda: end + timedelta(seconds=61))
            t0 = time.perf_counter()
            report = evaluator.run()
            took = time.perf_counter() - t0
    finally:
        node.cleanup()
    print(f"rows loaded: {loaded:,} in {load_s:.1f} s; rows in the window: {scanned:,}, with the lookback: "
          f"{scanned_lookback:,}")  # fmt: skip
    print(f"{'measure':64} {'value':>10}")
    print(f"{'read every row of the 5-minute window once (both tables)':64} {window_only:>8.2f} s")
    print(f"{'baseline: read window and 10-minute lookback once (both tables)':64} {baseline:>8.2f} s")
    print(f"{'one evaluation, 20 rules, 100 hosts (incl. flatline lookback)':64} {took:>8.2f} s")
    print(f"{'queries the evaluation ran':64} {query.scans:>10}")
    print(f"{'ratio evaluation / baseline (read-once)':64} {took / baseline:>9.2f}x")
    print(f"{'notifications decided':64} {len(report.notifications):>10}")


if __name__ == "__main__":
    main()
