"""The pipeline without Cassandra: a full spool stops reading instead of dropping or growing memory."""

from __future__ import annotations

import time

from iact.collector.config import from_mapping
from iact.collector.pipeline import Collector


def wait_for(condition, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_full_spool_pauses_reading_and_keeps_checkpoints_behind(tmp_path):
    log = tmp_path / "app.log"
    with open(log, "w") as f:
        for i in range(5000):
            f.write(f"2026-11-23T03:00:00.{i:06d}+00:00 h app[1]: line {i} {'x' * 80}\n")
    conf = from_mapping(
        {
            "host": "h",
            "cassandra": {"hosts": ["127.0.0.1"], "port": 1},  # nothing listens: every write fails
            "sources": {"files": [{"path": str(log), "source": "app"}], "journal": {"enabled": False}},
            "start_position": "beginning",
            "state_dir": str(tmp_path / "state"),
            "spool": {"max_bytes": "64KiB"},
            "batch": {"max_rows": 10, "max_wait": 0.05},
            "queue_lines": 100,
            "queue_batches": 1,
            "metrics": {"interval": 0},
            "poll_interval": 0.05,
        }
    )
    collector = Collector(conf)
    collector.start()
    try:
        wait_for(lambda: collector.counters.spool_full_waits > 0, 30, "the spool to fill")
        time.sleep(0.5)  # let the stages settle against the full queues; then nothing may move
        status = collector.status()
        file_status = status["files"][str(log)]
        assert 0 < status["spool_bytes"] <= 64 * 1024
        assert file_status["read_offset"] < file_status["size"], "reading must pause, not run ahead"
        assert status["queues"]["lines"] <= 100 and status["queues"]["batches"] <= 1
        spooled_rows = collector.durable.stats.spooled
        acked = collector.checkpoints.files[file_status["generation"]].offset
        safe = sum(len(line) for line in log.read_bytes().splitlines(keepends=True)[:spooled_rows])
        assert 0 < acked <= safe, "the checkpoint never passes a line that is not in the spool"
    finally:
        assert collector.stop(timeout=1.0) is False, "with Cassandra away and the spool full it cannot drain"
