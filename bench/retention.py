"""The whole retention period, compressed, at a scale the machine allows (on demand).

    python bench/retention.py                      # 20 hosts x 1,000 rows a day x 90 days on a loopback node
    python bench/retention.py --hosts 50 --rows-per-host 2000 --json /tmp/retention.json

agents/tests/test_retention_simulation.py proves the mechanism on a few windows; this runs all 90
days of the appliance's own table (cql/, 90-day TTL, 3-day TWCS windows) through retention_sim.py:
each simulated day's rows carry that day's write time (`USING TIMESTAMP`) and the TTL they would
have left, and are flushed on their own, oldest day first, as a node receiving rows in time order
would. Then it waits for compaction to settle and counts SSTables against the windows (TWCS leaves
one per closed window; the window in progress is size-tiered), measures bytes per row on disk,
and lets two windows past the retention expire to show they are dropped whole (SSTable count and
disk before and after; no compaction rewrites them). gc grace and TWCS's expiry check frequency
are shortened for the bench keyspace only, as in the test: in production an expired window goes
3 h (gc grace) plus at most 10 minutes after its last row expired.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "agents" / "tests"), str(ROOT / "agents")]

KS = "retention_bench"
TABLE = "infrastructure_logs"


def compactions_left(home: Path, jmx: int) -> int:
    """Compactions queued or running: the SSTable count means nothing before they are done."""
    from retention_sim import nodetool

    out = nodetool(home, jmx, "compactionstats")
    m = re.search(r"pending tasks: (\d+)", out)
    running = len(re.findall(r"^\s*\S+\s+Compaction\s", out, re.M))  # one line per active task
    return (int(m.group(1)) if m else 0) + running


def main() -> int:
    """Simulate, settle, count, expire; print the figures (and write them with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--rows-per-host", type=int, default=1000, help="rows per host per simulated day")
    ap.add_argument("--days", type=int, default=90, help="the retention (the TTL), in days")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from cassandra_node import CassandraNode
    from retention_sim import DAY, Simulator, create_keyspace, nodetool, table_stats, wait_for, window_start

    from iact.cassandra.session import open_session
    from iact.cassandra.settings import ConnectionSettings

    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-retention-")), heap_mb=1024)
    node.start()
    home, jmx = node.home, node.jmx_port
    report: dict = {"hosts": args.hosts, "rows_per_host_per_day": args.rows_per_host, "days": args.days}
    try:
        with open_session(ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)) as session:
            params = create_keyspace(session, KS, ttl_days=args.days, gc_grace_seconds=0)
            size = params.twcs_window_days
            session.execute(
                f"ALTER TABLE {KS}.{TABLE} WITH compaction = {{'class': 'TimeWindowCompactionStrategy', "
                f"'compaction_window_unit': 'DAYS', 'compaction_window_size': {size}, "
                "'expired_sstable_check_frequency_seconds': 1}"
            )
            sim = Simulator(session, KS, ttl_days=args.days, hosts=args.hosts)
            now = datetime.now(UTC)
            started, rows = time.monotonic(), 0
            days = [now - timedelta(days=d) for d in range(args.days - 1, -1, -1)]  # oldest first
            for i, day in enumerate(days):
                rows += sim.day(day, rows_per_host=args.rows_per_host)
                nodetool(home, jmx, "flush", KS, TABLE)
                if i % 10 == 9:
                    print(f"  {i + 1} days written, {rows:,} rows, {time.monotonic() - started:.0f} s", flush=True)
            # TWCS files an SSTable under the window of its newest write: one per day's flush here.
            windows = sorted({window_start(d, size) for d in days})
            newest_days = sum(1 for d in days if window_start(d, size) == windows[-1])
            # A day's rows reach 24 hours back from its moment: the oldest row's window comes first.
            first = window_start(days[0] - timedelta(seconds=DAY - 1), size)
            wait_for(lambda: compactions_left(home, jmx) == 0, 1800, "compaction to settle", interval=5)
            # The count settles a moment after the last task: look until two reads agree.
            live = wait_for(lambda: (a := table_stats(home, jmx, KS, TABLE)) == table_stats(home, jmx, KS, TABLE)
                            and a, 120, "a stable SSTable count", interval=3)  # fmt: skip
            report |= {"rows": rows, "write_seconds": round(time.monotonic() - started), "windows": len(windows),
                       "newest_window_days": newest_days, "sstables": live.sstables, "live_bytes": live.live_bytes,
                       "bytes_per_row": live.live_bytes / rows}  # fmt: skip
            print(f"{rows:,} rows over {args.days} days ({args.hosts} hosts): {len(windows)} windows of {size} days, "
                  f"{live.sstables} SSTables (expected {len(windows) - 1} closed windows, one each, plus 1 to "
                  f"{newest_days} in the window in progress), {live.live_bytes / 1e6:,.1f} MB live, "
                  f"{live.live_bytes / rows:.0f} bytes per row")  # fmt: skip
            closed_ok = len(windows) <= live.sstables <= len(windows) - 1 + newest_days
            report["one_sstable_per_closed_window"] = closed_ok

            # Two windows past the retention (before the oldest row's window, sharing none of its time
            # range), written with half a minute to live, then dropped whole.
            for k in (1, 2):
                start = first - timedelta(days=k * size)
                for end in (start + timedelta(days=1), start + timedelta(days=2.5)):
                    sim.day(end, rows_per_host=args.rows_per_host, ttl=30)
                    nodetool(home, jmx, "flush", KS, TABLE)
            expiring = table_stats(home, jmx, KS, TABLE)

            def dropped() -> object:
                # A flush is what makes TWCS look for expired SSTables (as in the test): one row into a
                # closed window, which TWCS compacts back into that window's one SSTable.
                sim.day(windows[-2] + timedelta(days=1), rows_per_host=1)
                nodetool(home, jmx, "flush", KS, TABLE)
                stats = table_stats(home, jmx, KS, TABLE)
                return stats if stats.sstables <= live.sstables and stats.live_bytes < expiring.live_bytes else None

            t0 = time.monotonic()
            after = wait_for(dropped, 300, "the expired windows dropped", interval=3)
            report |= {"expiring_sstables": expiring.sstables, "expiring_live_bytes": expiring.live_bytes,
                       "after_sstables": after.sstables, "after_live_bytes": after.live_bytes,
                       "dropped_after_seconds": round(time.monotonic() - t0)}  # fmt: skip
            print(f"two windows past the retention (TTL 30 s): {expiring.sstables} SSTables, "
                  f"{expiring.live_bytes / 1e6:,.1f} MB; dropped whole {time.monotonic() - t0:.0f} s later: "
                  f"{after.sstables} SSTables, {after.live_bytes / 1e6:,.1f} MB")  # fmt: skip
    finally:
        node.cleanup()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0 if report.get("one_sstable_per_closed_window") else 1


if __name__ == "__main__":
    sys.exit(main())
