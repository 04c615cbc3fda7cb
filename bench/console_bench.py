"""Benchmark of the log console's server time (run on demand: `python bench/console_bench.py`).

A loopback Cassandra node (agents/tests/cassandra_node.py) is filled with several hosts' application
and infrastructure logs over several days ending now; a throwaway MariaDB holds the dashboard's
users and sessions. Measured in-process with Django's test client (the whole stack: middleware,
session, permission check, view, template), p50 and p95 wall time and the median CPU time of this
process, in rounds that run every request once (so the machine's other load falls on all alike), of:

- /logs/ for one host's last hour, the errors of a day across hosts, one request id, a text term
  over one host-day, the live tail's poll (all hosts, and one host);
- /logs/volume/ of the first two (the chart's counts);
- /health/ and, when the dashboard has it, /alerts/.

Baseline in the same run: the raw CQL of the first search (the host's newest partitions, 100 rows,
as LogSearch reads them) through the driver alone, so the ratio shows what Django adds. Targets
(the issue's): p95 < 150 ms for the first three searches, < 100 ms for /health/ and /alerts/.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))
os.environ["DJANGO_SETTINGS_MODULE"] = "dora_test_settings"

import django
from cassandra import ConsistencyLevel, OperationTimedOut, WriteTimeout
from cassandra.cluster import NoHostAvailable, ResponseFuture, Session
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement
from cassandra_node import CassandraNode
from mariadb_server import MariaDBServer

from iact.cassandra.session import open_session
from iact.cassandra.settings import ConnectionSettings
from iact.dora.logs.search import LogSearch
from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams

if TYPE_CHECKING:
    from django.test import Client

LEVELS = (("INFO", 80), ("WARNING", 12), ("ERROR", 6), ("DEBUG", 2))
SEVERITIES = (("info", 70), ("notice", 15), ("warning", 8), ("err", 6), ("crit", 1))
TERM = "timeout"  # in about 1 % of application messages
MESSAGES = (
    "GET /api/orders/{n} 200 in {ms} ms",
    "order {n} paid by card ending {card}",
    "cart {n} updated: {items} items",
    "user {n} signed in from 10.0.{a}.{b}",
    "cache miss for product {n}, loaded in {ms} ms",
)
BATCH = 40  # rows per unlogged batch, all of one partition (one mutation on the node)
IN_FLIGHT = 8  # batches: more only times writes out on a busy 2-core machine
RETRIES = 10


@dataclass
class Fill:
    """What the node holds, and the ids the searches look for."""

    hosts: list[str]
    first: datetime
    last: datetime
    application: int
    infrastructure: int
    request_id: str


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _message(rng: random.Random, n: int) -> str:
    if rng.random() < 0.01:
        return f"upstream {TERM} after {rng.randint(5, 30)} s calling payments for order {n}"
    ip = (rng.randint(0, 255), rng.randint(1, 254))
    return rng.choice(MESSAGES).format(n=n, ms=rng.randint(1, 900), card=rng.randint(1000, 9999),
                                       items=rng.randint(1, 9), a=ip[0], b=ip[1])  # fmt: skip


def fill(session: Session, hosts: int, days: int, rows_per_hour: int) -> Fill:
    """Each host's partitions (host, day, hour) of the last `days` days, application rows at
    `rows_per_hour` and infrastructure rows at half that; one request traced across three hosts."""
    rng = random.Random(17)  # test data, the same every run
    names = [f"bench-host-{i:02d}" for i in range(hosts)]
    now = datetime.now(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0)
    first = last_hour - timedelta(hours=days * 24 - 1)
    app = session.prepare(
        "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, app, level, logger, message, "
        "request_id, user_id, module, func, lineno) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    infra = session.prepare(
        "INSERT INTO logging.infrastructure_logs (host, day, hour, ts, line_id, source, facility, severity, "
        "program, pid, unit, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    counts = {"application": 0, "infrastructure": 0}
    pending: deque[tuple[ResponseFuture, BatchStatement]] = deque()
    started = time.perf_counter()

    def flush(force: bool = False) -> None:
        while len(pending) >= IN_FLIGHT or (force and pending):
            future, batch = pending.popleft()
            for attempt in range(RETRIES):  # a busy node times writes out; the rows' ids make a retry idempotent
                try:
                    future.result()
                    break
                except (WriteTimeout, OperationTimedOut, NoHostAvailable):  # a stalled node drops the link
                    if attempt == RETRIES - 1:
                        raise
                    time.sleep(2 * (attempt + 1))
                    future = session.execute_async(batch, timeout=120)

    def send(statement: PreparedStatement, rows: list[tuple]) -> None:
        for i in range(0, len(rows), BATCH):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=ConsistencyLevel.ONE)
            for row in rows[i : i + BATCH]:
                batch.add(statement, row)
            pending.append((session.execute_async(batch, timeout=120), batch))
            flush()

    hour = first
    while hour <= last_hour:
        span = min(3600.0, (now - hour).total_seconds())
        for host in names:
            n0 = counts["application"]
            rows = []
            for k in range(int(rows_per_hour * span / 3600)):
                ts = hour + timedelta(seconds=rng.uniform(0, span))
                # No request id: UNSET, as the handler's sink writes it (a null would be a tombstone).
                rid = f"req-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}" if rng.random() < 0.8 else UNSET_VALUE
                rows.append((host, hour.date(), hour.hour, ts, uuid.uuid4(), rng.choice(("shop", "api", "worker")),
                             _weighted(rng, LEVELS), rng.choice(("shop.cart", "shop.pay", "django.request")),
                             _message(rng, n0 + k), rid, str(rng.randint(1, 5000)), "views", "handle",
                             rng.randint(10, 400)))  # fmt: skip
            send(app, rows)
            counts["application"] += len(rows)
            rows = []
            for _ in range(int(rows_per_hour * span / 3600) // 2):
                ts = hour + timedelta(seconds=rng.uniform(0, span))
                program = rng.choice(("sshd", "cron", "kernel", "systemd", "nginx"))
                rows.append((host, hour.date(), hour.hour, ts, uuid.uuid4(), rng.choice(("syslog", "auth", "journal")),
                             "daemon", _weighted(rng, SEVERITIES), program, rng.randint(100, 40000),
                             f"{program}.service", f"{program}[{rng.randint(100, 40000)}]: routine line"))  # fmt: skip
            send(infra, rows)
            counts["infrastructure"] += len(rows)
        hour += timedelta(hours=1)
        if hour.hour == 0:
            done = (hour - first) / (last_hour - first + timedelta(hours=1))
            print(f"  loaded {done:4.0%}: {sum(counts.values()):,} rows, "
                  f"{sum(counts.values()) / (time.perf_counter() - started):,.0f} rows/s", flush=True)  # fmt: skip
    flush(force=True)
    # One request seen by three hosts three hours ago: what a support ticket would name.
    request_id = f"req-bench-{uuid.uuid4().hex[:12]}"
    at = now - timedelta(hours=3)
    for i, host in enumerate(names[:3]):
        ts = at + timedelta(milliseconds=40 * i)
        level = "ERROR" if i == 2 else "INFO"
        session.execute(app, (host, ts.date(), ts.hour, ts, uuid.uuid4(), "shop", level, "shop.pay",
                              f"step {i} of the traced request", request_id, "7", "views", "pay", 1))  # fmt: skip
    counts["application"] += 3
    return Fill(names, first, now, counts["application"], counts["infrastructure"], request_id)


@dataclass
class Measure:
    """One request measured in every round: wall and process CPU time (ms), CQL statements."""

    name: str
    run: Callable[[], int]  # returns the HTTP status
    target: float | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    statements: int = 0

    def p(self, q: float) -> float:
        """The q-quantile of the wall times (nearest rank)."""
        ordered = sorted(self.wall)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rounds(measures: list[Measure], runs: int, search: LogSearch, budget: float = 30.0) -> None:
    """Every measure once per round, `runs` rounds after three of warm-up: the machine's other load
    falls on all of them alike. A measure that has spent `budget` seconds (and has 10 samples) stops."""
    for _ in range(3):
        for m in measures:
            m.run()
    for _ in range(runs):
        for m in measures:
            if len(m.wall) >= 10 and sum(m.wall) / 1000 > budget:
                continue
            before, cpu, t0 = search.queries, time.process_time(), time.perf_counter()
            m.statuses.add(m.run())
            m.wall.append((time.perf_counter() - t0) * 1000)
            m.cpu.append((time.process_time() - cpu) * 1000)
            m.statements += search.queries - before


def main() -> None:
    """Start the node and MariaDB, fill, measure, print, clean up."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=6, help="hosts writing logs (default 6)")
    ap.add_argument("--days", type=int, default=3, help="days of logs, ending now (default 3)")
    ap.add_argument("--rows-per-hour", type=int, default=1200, help="application rows per host-hour (default 1200)")
    ap.add_argument("--runs", type=int, default=40, help="timed requests per measure (default 40)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr] # progress shows when redirected
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs): other "
          "work on the machine inflates every number below, the baseline's too")  # fmt: skip

    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-console-bench-")), heap_mb=2048)
    mariadb = MariaDBServer(Path(tempfile.mkdtemp(prefix="iact-console-bench-db-")))
    node.start()
    mariadb.start()
    try:
        conn = ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)
        with open_session(conn) as session:
            params = SchemaParams(replication=(("dc1", 1),))
            apply_migrations(session, params, load_migrations(find_cql_dir(), params), lambda _l: None)
            t0 = time.perf_counter()
            print(f"filling {args.hosts} hosts x {args.days} days x {args.rows_per_hour} rows/h ...", flush=True)
            data = fill(session, args.hosts, args.days, args.rows_per_hour)
            loaded = time.perf_counter() - t0
            print(f"loaded in {loaded:.0f} s ({(data.application + data.infrastructure) / loaded:,.0f} rows/s)")
            subprocess.run([str(node.home / "bin" / "nodetool"), "-p", str(node.jmx_port), "flush", "logging"],
                           check=False, capture_output=True)  # fmt: skip # reads from SSTables, as in production
            measure(session, mariadb, data, args.runs)
    except BaseException:
        kept = Path(tempfile.mkdtemp(prefix="iact-console-bench-log-")) / "system.log"
        shutil.copy(node.workdir / "logs" / "system.log", kept)
        print(f"the node's log is kept in {kept}", file=sys.stderr)
        raise
    finally:
        node.cleanup()
        mariadb.cleanup()


def measure(session: Session, mariadb: MariaDBServer, data: Fill, runs: int) -> None:
    """Time every page and the baseline, print the table."""
    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Permission, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from iact.dora import fleet
    from iact.dora.conf import HealthConfig
    from iact.dora.logs.connection import set_search

    settings.DATABASES["default"]["HOST"] = mariadb.socket
    connection.settings_dict["HOST"] = mariadb.socket
    create = "CREATE DATABASE dora CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    subprocess.run(["mariadb", f"--socket={mariadb.socket}", "-uroot", "-e", create], check=True)
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", "", "bench password 123")
    user.user_permissions.set(Permission.objects.all())  # every page's permission, checked as for anyone
    client = Client()
    client.force_login(user)
    search = LogSearch(session, "logging", settings.IACT_LOGS.scan_limit)
    set_search(search)
    health_dir = Path(tempfile.mkdtemp(prefix="iact-console-bench-health-"))
    fleet.write(health_dir / "fleet.json", fleet.snapshot(session))
    settings.DORA_HEALTH = HealthConfig(status_file=str(health_dir / "health.json"))

    host = data.hosts[0]
    day = (data.last - timedelta(days=1)).date() if data.last - data.first > timedelta(days=1) else data.last.date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    day_range = {"from": midnight.isoformat(), "to": (midnight + timedelta(days=1)).isoformat()}
    host_day = {"host": host, "from": max(midnight, data.first).isoformat(),
                "to": min(midnight + timedelta(days=1), data.last).isoformat()}  # fmt: skip

    cases: list[tuple[str, str, float | None]] = [
        ("one host's last hour", "/logs/?" + urlencode({"table": "application", "host": host, "range": "1h"}), 150),
        (f"errors of {day} across hosts", "/logs/?" + urlencode({"level": "ERROR"} | day_range), 150),
        ("one request id (24 h)", "/logs/?" + urlencode({"request_id": data.request_id, "range": "24h"}), 150),
        (f"text {TERM!r} over one host-day", "/logs/?" + urlencode({"q": TERM} | host_day), None),
        ("tail poll, all hosts", "/logs/?" + urlencode({"format": "json", "range": "15m"}), None),
        ("tail poll, one host", "/logs/?" + urlencode({"host": host, "format": "json", "range": "15m"}), None),
        ("request trace page", f"/logs/trace/{data.request_id}/", None),
        ("volume: one host's last hour", "/logs/volume/?" + urlencode({"host": host, "range": "1h"}), None),
        (f"volume: errors of {day}", "/logs/volume/?" + urlencode({"level": "ERROR"} | day_range), None),
        ("volume: all hosts, 24 h", "/logs/volume/?" + urlencode({"range": "24h"}), None),
        ("/health/", "/health/", 100),
    ]
    if importlib.util.find_spec("iact.dora.views.alerts") is not None:
        try:
            cases.append(("/alerts/", reverse("alerts"), 100))
        except NoReverseMatch:
            cases.append(("/alerts/", "/alerts/", 100))
    else:
        print("no iact.dora.views.alerts yet: /alerts/ not measured")

    def get(url: str) -> Callable[[], int]:
        return lambda: client.get(url).status_code

    base = Measure("raw CQL of the first search", baseline(session, host))
    measures = [base] + [Measure(name, get(url), target) for name, url, target in cases]
    rounds(measures, runs, search)
    print(f"\nthe node holds {len(data.hosts)} hosts, {data.first:%Y-%m-%d %H:00} .. {data.last:%Y-%m-%d %H:%M} UTC "
          f"({(data.last - data.first).total_seconds() / 86400:.1f} days): application_logs {data.application:,} rows, "
          f"infrastructure_logs {data.infrastructure:,} rows")  # fmt: skip
    print(f"server time in-process (Django test client), up to {runs} rounds of every request after 3 of warm-up; "
          f"scan_limit {search.scan_limit:,}")  # fmt: skip
    print("baseline: the raw CQL of the first search through the driver alone (same rounds)\n")
    print(f"{'request':34} {'status':>6} {'runs':>4} {'p50 ms':>8} {'p95 ms':>8} {'cpu ms':>7} {'p50 x base':>10} "
          f"{'CQL':>5} {'rows':>6}  target")  # fmt: skip
    for m, (_, url, _) in zip(measures, [("", "", None), *cases], strict=True):
        p50, p95 = m.p(0.5), m.p(0.95)
        verdict = "" if m.target is None else f"p95 < {m.target:.0f} ms: {'ok' if p95 < m.target else 'MISSED'}"
        shown = rows_shown(client, url) if url else ""
        print(f"{m.name:34} {max(m.statuses):>6} {len(m.wall):>4} {p50:>8.1f} {p95:>8.1f} "
              f"{statistics.median(m.cpu):>7.1f} {p50 / base.p(0.5):>9.1f}x "
              f"{m.statements / len(m.wall):>5.1f} {shown:>6}  {verdict}")  # fmt: skip
    print("\ncpu ms: this process's CPU per request (median; the driver's thread included, the node's not); CQL: "
          "statements per request;\nrows: rows listed (volume: rows counted, * = capped by its limit)")  # fmt: skip
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    set_search(None)


def rows_shown(client: Client, url: str) -> str:
    """Rows the page lists (or the volume counts), for the reader of the table."""
    if url.startswith("/logs/volume/"):
        body = client.get(url).json()
        return f"{body['total']}{'*' if body['capped'] else ''}"
    if url.startswith("/logs/?"):
        answer = client.get(url + ("" if "format=json" in url else "&format=json"))
        return str(len(answer.json().get("rows", [])))
    return ""


def baseline(session: Session, host: str) -> Callable[[], int]:
    """The first search's CQL alone: the host's partitions newest hour first, 100 rows, as LogSearch runs it."""
    statement = session.prepare(
        "SELECT * FROM logging.application_logs WHERE host = ? AND day = ? AND hour = ? AND ts >= ? AND ts < ?"
    )

    def run() -> int:
        end = datetime.now(UTC)
        start = end - timedelta(hours=1)
        got = 0
        for hour in (end.replace(minute=0, second=0, microsecond=0), start.replace(minute=0, second=0, microsecond=0)):
            bound = statement.bind([host, hour.date(), hour.hour, start.replace(tzinfo=None), end.replace(tzinfo=None)])
            bound.fetch_size = 100
            got += len(session.execute(bound).current_rows)
            if got >= 100:
                break
        return 200

    return run


if __name__ == "__main__":
    main()
