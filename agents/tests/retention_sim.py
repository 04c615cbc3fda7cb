"""A compressed simulation of the retention period on a real node: TWCS windows, expiry, bytes per row.

Rows carry the write time they would have had (`USING TIMESTAMP`, spread over the retention) and the
TTL they would have left (`TTL retention - age`): Cassandra expires a cell at its local write time
plus its TTL, whatever its timestamp, so a row written "45 days ago" with a 90-day TTL is written
now with 45 days to live. Each simulated day is flushed on its own, as the memtable of a node that
receives rows in time order would be. TWCS buckets SSTables by their newest write timestamp, so it
sees the windows the real cluster would.

Used by tests/test_retention_simulation.py (a few windows, the last ones expiring during the test),
bench/capacity.py (bytes per row) and bench/retention.py (all 90 days at a larger scale: windows,
bytes per row, expiry).
"""

from __future__ import annotations

import random
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams

DAY = 86400
MESSAGES = (
    "CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    "sshd[{pid}]: Failed password for invalid user admin from 203.0.113.{n} port {pid} ssh2",
    "kernel: [{pid}.123456] EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro",
    "systemd[1]: Started Session {pid} of user deploy.",
    'nginx[{pid}]: 10.0.0.{n} - - "GET /api/orders?page={n} HTTP/1.1" 200 5123 "-" "curl/7.88"',
)


def nodetool(home: Path, jmx_port: int, *args: str) -> str:
    """nodetool against the local node (JMX on loopback, no auth)."""
    done = subprocess.run(
        [str(home / "bin" / "nodetool"), "-h", "127.0.0.1", "-p", str(jmx_port), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"nodetool {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


@dataclass(frozen=True)
class TableStats:
    """What `nodetool tablestats` says of one table."""

    sstables: int
    live_bytes: int
    partitions: int


def table_stats(home: Path, jmx_port: int, keyspace: str, table: str) -> TableStats:
    """SSTable count, live disk space (every component, indexes included) and estimated partitions."""
    out = nodetool(home, jmx_port, "tablestats", "--", f"{keyspace}.{table}")

    def number(label: str) -> int:
        m = re.search(rf"^\s*{re.escape(label)}: (\d+)", out, re.M)
        if not m:
            raise RuntimeError(f"tablestats has no {label!r}:\n{out}")
        return int(m.group(1))

    return TableStats(number("SSTable count"), number("Space used (live)"), number("Number of partitions (estimate)"))


def create_keyspace(session: Any, keyspace: str, ttl_days: int, gc_grace_seconds: int | None = None) -> SchemaParams:
    """The appliance's schema (cql/, the same TWCS settings) in a keyspace of its own, on this one node."""
    params = SchemaParams(keyspace=keyspace, replication=(("dc1", 1),), ttl_days=ttl_days)
    apply_migrations(session, params, load_migrations(find_cql_dir(), params), lambda _line: None)
    if gc_grace_seconds is not None:
        session.execute(f"ALTER TABLE {keyspace}.infrastructure_logs WITH gc_grace_seconds = {gc_grace_seconds}")
    return params


def window_start(moment: datetime, window_days: int) -> datetime:
    """The start of the TWCS window holding `moment` (windows are aligned to the epoch)."""
    size = window_days * DAY
    return datetime.fromtimestamp(int(moment.timestamp()) // size * size, UTC)


class Simulator:
    """Writes simulated days of infrastructure_logs rows: hosts x rows per host per day."""

    def __init__(self, session: Any, keyspace: str, ttl_days: int, hosts: int, seed: int = 1) -> None:
        self.session, self.keyspace, self.ttl = session, keyspace, ttl_days * DAY
        self.hosts = [f"sim{i:03d}" for i in range(hosts)]
        self.rng = random.Random(seed)
        self.insert = session.prepare(
            f"INSERT INTO {keyspace}.infrastructure_logs (host, day, hour, ts, line_id, source, severity, "
            "severity_code, program, pid, message, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "USING TIMESTAMP ? AND TTL ?"
        )

    def day(self, moment: datetime, rows_per_host: int, ttl: int | None = None, concurrency: int = 64) -> int:
        """Rows of one simulated day ending at `moment`, written with that day's timestamps; returns the count.

        ttl: seconds left to live (default: what a row written then has left of the retention).
        """
        from cassandra.concurrent import execute_concurrent_with_args

        args = []
        for host in self.hosts:
            for _ in range(rows_per_host):
                ts = moment - timedelta(seconds=self.rng.uniform(0, DAY - 1))
                left = ttl if ttl is not None else max(1, int(self.ttl - (datetime.now(UTC) - ts).total_seconds()))
                n, pid = self.rng.randrange(1, 255), self.rng.randrange(100, 60000)
                message = self.rng.choice(MESSAGES).format(pid=pid, n=n)
                program = message.split("[", 1)[0].split(":", 1)[0]
                args.append((host, ts.date(), ts.hour, ts, uuid.uuid4(), "syslog", "info", 6, program, pid, message,
                             ts, int(ts.timestamp() * 1e6), left))  # fmt: skip
        execute_concurrent_with_args(self.session, self.insert, args, concurrency=concurrency)
        return len(args)


def wait_for(cond: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
    """Poll until cond() is truthy; its value, or RuntimeError naming `what` and the last value."""
    end = time.monotonic() + timeout
    value = cond()
    while not value and time.monotonic() < end:
        time.sleep(interval)
        value = cond()
    if not value:
        raise RuntimeError(f"{what}: not within {timeout:.0f} s")
    return value
