"""The background writer: queue -> rows -> batches -> the shared DurableSink (Cassandra or spool)."""

from __future__ import annotations

import glob
import os
import queue
import threading
import time
from dataclasses import dataclass, field

from iact.applog.config import HandlerConfig
from iact.applog.rows import COLUMNS, PARTITION_KEY, build_row, row_from_json, row_to_json
from iact.sink.cassandra import CassandraSink
from iact.sink.durable import DurableSink
from iact.sink.spool import Spool

STOP = object()
MAX_BATCHES_PER_WRITE = 10


@dataclass
class FlushRequest:
    """Put on the queue; set once everything queued before it is written or spooled."""

    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Stats:
    """Counters read by get_stats(); written by one thread each, read racily, which is fine."""

    logs_queued: int = 0
    logs_written: int = 0
    logs_dropped: int = 0
    logs_spooled: int = 0
    batches: int = 0
    write_errors: int = 0
    last_error: str | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Writer(threading.Thread):
    """One per process; started lazily by the handler in the process that logs."""

    def __init__(self, config: HandlerConfig, q: queue.Queue, stats: Stats) -> None:
        super().__init__(name="iact-cassandra-writer", daemon=True)
        self.config, self.queue, self.stats = config, q, stats
        sink = CassandraSink(
            config.connection(),
            config.keyspace,
            config.table,
            COLUMNS,
            PARTITION_KEY,
            ttl_seconds=config.ttl_seconds,
            consistency=config.consistency,
            max_batch_rows=config.batch_size,
        )
        # Spools left by processes that died (a crashed worker) are replayed too, oldest first.
        base = config.spool_file().rsplit(".", 2)[0]
        orphans = [
            self._spool_at(p)
            for p in sorted(glob.glob(f"{glob.escape(base)}.*.spool"), key=os.path.getmtime)
            if p != config.spool_file() and not _pid_alive(int(p.rsplit(".", 2)[1]))
        ]
        self.durable = DurableSink(
            sink, self._spool_at(config.spool_file()), orphans, replay_chunk=config.batch_size * 10
        )
        self._seq = 0

    def _spool_at(self, path: str) -> Spool:
        return Spool(path, self.config.spool_max_bytes, row_to_json, row_from_json)

    def run(self) -> None:
        """Collect rows until the batch is full or old enough, then deliver; replay when idle."""
        pending: list[dict] = []
        first_at = 0.0
        while True:
            wait = (
                self.config.flush_interval
                if not pending
                else max(0.0, first_at + self.config.flush_interval - time.monotonic())
            )
            try:
                item = self.queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is STOP:
                self._deliver(pending)
                self.durable.close()
                return
            if isinstance(item, FlushRequest):
                self._deliver(pending)
                pending = []
                self.durable.replay(force=True)
                self._sync_stats()
                item.done.set()
                continue
            if item is not None:
                record, message, exc_text = item
                self._seq += 1
                try:
                    pending.append(build_row(record, message, exc_text, self.config.app, self.config.host, self._seq))
                except Exception as exc:  # never let one odd record stop the writer
                    self.stats.logs_dropped += 1
                    self.stats.last_error = f"record could not be converted: {exc!r}"
                if len(pending) == 1:
                    first_at = time.monotonic()
            # With a backlog queued, keep collecting (up to ten batches, sent concurrently) so a
            # busy app is not held to one batch per round trip.
            full = len(pending) >= self.config.batch_size and (
                self.queue.empty() or len(pending) >= self.config.batch_size * MAX_BATCHES_PER_WRITE
            )
            if pending and (full or time.monotonic() - first_at >= self.config.flush_interval):
                self._deliver(pending)
                pending = []
            elif not pending and self.durable.spooled():
                self.durable.replay()
                self._sync_stats()

    def _deliver(self, rows: list[dict]) -> None:
        if rows:
            self.stats.logs_dropped += len(rows) - self.durable.deliver(rows)
            self._sync_stats()

    def _sync_stats(self) -> None:
        d = self.durable.stats
        self.stats.logs_written, self.stats.logs_spooled, self.stats.batches = d.written, d.spooled, d.batches
        self.stats.write_errors, self.stats.last_error = d.write_errors, d.last_error
