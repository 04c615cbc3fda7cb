"""The retention period, compressed, on the session's real node (retention_sim.py): TWCS keeps one SSTable per
window, and a window whose rows have all expired is dropped whole, without being compacted or read.

The tables are the appliance's own (cql/, 90-day TTL, 3-day windows), in a keyspace of their own. Two
settings are shortened for the test only, and the README says what they are in production: gc grace
(3 h there, the hint window: an expired window is dropped 3 h after its last row expires) and TWCS's
`expired_sstable_check_frequency_seconds` (600 s there: a 3-day window is dropped at most 10 minutes
late). `unsafe_aggressive_sstable_expiration` stays off: the agents write rows as they arrive, so an
older window never shares a key range with a newer, live SSTable written at an older time, which is
the only case it would help.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from retention_sim import Simulator, create_keyspace, nodetool, table_stats, wait_for, window_start

from iact.cassandra.session import open_session

pytestmark = pytest.mark.cassandra

KS = "twcs_sim"


def test_twcs_keeps_one_sstable_per_window_and_drops_an_expired_window_whole(cassandra_node, cassandra_settings):
    home, jmx = cassandra_node.home, cassandra_node.jmx_port
    with open_session(cassandra_settings) as session:
        params = create_keyspace(session, KS, ttl_days=90, gc_grace_seconds=0)
        size = params.twcs_window_days
        assert size == 3, "90 days in 3-day windows: about 30 SSTables per table and node"
        session.execute(
            f"ALTER TABLE {KS}.infrastructure_logs WITH compaction = {{'class': 'TimeWindowCompactionStrategy', "
            f"'compaction_window_unit': 'DAYS', 'compaction_window_size': {size}, "
            "'expired_sstable_check_frequency_seconds': 1}"
        )
        sim = Simulator(session, KS, ttl_days=90, hosts=4)
        current = window_start(datetime.now(UTC), size)

        def write_window(k: int, ttl: int | None = None) -> None:
            """Two flushes (two SSTables) in the window k windows back, as a node receiving rows in time order."""
            start = current - timedelta(days=k * size)
            for end in (start + timedelta(days=1), start + timedelta(days=2.5)):
                sim.day(end, rows_per_host=250, ttl=ttl)
                nodetool(home, jmx, "flush", KS, "infrastructure_logs")

        for k in range(1, 6):  # five windows back, each still within the retention: ten flushes
            write_window(k)
        # And the window in progress: TWCS treats its newest window with size-tiered compaction (it is still
        # being written), so the one flush here stays one SSTable; every older window is compacted into one.
        sim.day(datetime.now(UTC), rows_per_host=100)
        nodetool(home, jmx, "flush", KS, "infrastructure_logs")

        def sstables(n: int):
            def check():
                stats = table_stats(home, jmx, KS, "infrastructure_logs")
                return stats if stats.sstables == n else None

            return check

        live = wait_for(sstables(6), 120, "TWCS compacting each older window into one SSTable")

        # Two older windows reach the end of the retention: their rows have half a minute left to live.
        for k in (6, 7):
            write_window(k, ttl=30)
        with_expiring = table_stats(home, jmx, KS, "infrastructure_logs")
        assert with_expiring.sstables >= 8 and with_expiring.live_bytes > live.live_bytes

        def dropped():
            # A flush is what makes TWCS look for work; each adds a small SSTable to an older window, which it
            # compacts back into that window's one (the window in progress is left alone).
            sim.day(current - timedelta(days=size) + timedelta(days=1), rows_per_host=1)
            nodetool(home, jmx, "flush", KS, "infrastructure_logs")
            return sstables(6)()

        after = wait_for(dropped, 120, "the expired windows dropped", interval=3)
        assert after.live_bytes < with_expiring.live_bytes
        assert after.live_bytes <= live.live_bytes * 1.05, (live, after)
        # Their partitions read nothing (expired), and nothing was compacted to drop them: the count says it.
        old = current - timedelta(days=6 * size) + timedelta(hours=12)
        rows = session.execute(
            f"SELECT count(*) FROM {KS}.infrastructure_logs WHERE host = 'sim000' AND day = %s AND hour = %s",
            (old.date(), old.hour),
        ).one()
        assert rows[0] == 0
        print(f"\n6 windows, one SSTable each: {live.live_bytes / 10_400:.0f} bytes per row on disk (data and indexes)")
