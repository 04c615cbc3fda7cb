"""The collector as one pipeline: sources -> parse -> batch -> sink, threads joined by bounded queues.

Bounded queues are the backpressure: when Cassandra is slow and the spool is full, the sink
stops taking batches, the parse stage blocks, the sources block, and the log files themselves
hold the backlog. Memory stays bounded whatever the input rate.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from iact import __version__
from iact.collector.batch import Batch
from iact.collector.checkpoint import Checkpoints
from iact.collector.config import CollectorConfig
from iact.collector.rows import CODEC, COLUMNS, PARTITION_KEY, RowBuilder
from iact.collector.sources.files import FileTailer
from iact.collector.sources.journal import JournalSource
from iact.collector.sources.metrics import sample
from iact.sink.cassandra import CassandraSink
from iact.sink.durable import DurableSink
from iact.sink.spool import Spool

log = logging.getLogger(__name__)
STOP = object()
MERGE_ROWS = 5000


@dataclass
class Counters:
    """Monotonic counters since start, shown by `status` and logged every stats_interval."""

    file_lines: int = 0
    journal_entries: int = 0
    metric_samples: int = 0
    rows_built: int = 0
    rows_acknowledged: int = 0
    truncated_lines: int = 0
    spool_full_waits: int = 0


class Collector:
    """Build with a validated config, start(), and stop() within a deadline."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.started_at = datetime.now(UTC)
        self.checkpoints = Checkpoints(config.checkpoint_file)
        self.counters = Counters()
        self.builder = RowBuilder(config.host)
        self.lines: queue.Queue[Any] = queue.Queue(config.queue_lines)
        self.batches: queue.Queue[Any] = queue.Queue(config.queue_batches)
        self.stop_reading = threading.Event()
        self.abort = threading.Event()
        self.tailer = (
            FileTailer(config.files, self.checkpoints, config.max_line_bytes, config.start_position, config.rotate_wait)
            if config.files
            else None
        )
        self.journal = (
            JournalSource(
                config.journal_command, self.checkpoints.journal_cursor, config.start_position,
                config.max_line_bytes * 4,
            )
            if config.journal
            else None
        )  # fmt: skip
        c = config.cassandra
        sink = CassandraSink(
            c.connection(), c.keyspace, c.table, COLUMNS, PARTITION_KEY, ttl_seconds=c.ttl_seconds,
            consistency=c.consistency, max_batch_rows=config.batch_max_rows, max_batch_bytes=config.batch_max_bytes,
        )  # fmt: skip
        config.spool_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        spool = Spool(config.spool_file, config.spool_max_bytes, CODEC.encode, CODEC.decode)
        self.durable = DurableSink(sink, spool, replay_chunk=config.batch_max_rows)
        self.sources: list[threading.Thread] = []
        self.workers: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start every stage; sources last, so nothing waits on a stage that is not there yet."""
        self.workers = [
            threading.Thread(target=self._parse_stage, name="parse", daemon=True),
            threading.Thread(target=self._sink_stage, name="sink", daemon=True),
        ]
        if self.tailer:
            self.sources.append(threading.Thread(target=self._files_source, name="files", daemon=True))
        if self.journal:
            self.sources.append(threading.Thread(target=self._journal_source, name="journal", daemon=True))
        if self.config.metrics_interval > 0:
            self.sources.append(threading.Thread(target=self._metrics_source, name="metrics", daemon=True))
        for t in [*self.workers, *self.sources]:
            t.start()

    def stop(self, timeout: float) -> bool:
        """Stop reading, deliver what was read (to Cassandra or the spool), checkpoint. True if drained."""
        deadline = time.monotonic() + timeout
        self.stop_reading.set()
        if self.journal:
            self.journal.stop()
        for t in self.sources:
            t.join(max(0.0, deadline - time.monotonic()))
        self._put(self.lines, STOP, deadline)
        for t in self.workers:
            t.join(max(0.0, deadline - time.monotonic()))
        drained = not any(t.is_alive() for t in [*self.workers, *self.sources])
        if not drained:
            self.abort.set()  # stop retrying; unacknowledged lines are read again next start
            for t in self.workers:
                t.join(2.0)
        self.checkpoints.save()
        if self.tailer:
            self.tailer.close()
        self.durable.close()
        return drained

    def healthy(self) -> bool:
        """Every stage alive (the watchdog is only fed while this holds)."""
        return all(t.is_alive() for t in [*self.workers, *self.sources])

    # -- stages --------------------------------------------------------------------------
    def _put(self, q: queue.Queue[Any], item: object, deadline: float | None = None) -> bool:
        while not self.abort.is_set():
            try:
                q.put(item, timeout=0.25)
                return True
            except queue.Full:
                if deadline is not None and time.monotonic() > deadline:
                    return False
        return False

    def _files_source(self) -> None:
        assert self.tailer is not None
        while not self.stop_reading.is_set():
            got = False
            try:
                for line in self.tailer.poll():
                    if not self._put(self.lines, line):
                        return
                    got = True
                    self.counters.file_lines += 1
                    if line.cut:
                        self.counters.truncated_lines += 1
                    if self.stop_reading.is_set():
                        return
            except OSError as exc:
                log.error("reading files failed (%s); retrying", exc)
            if not got:
                self.stop_reading.wait(self.config.poll_interval)

    def _journal_source(self) -> None:
        assert self.journal is not None
        for entry in self.journal.entries():
            if not self._put(self.lines, entry) or self.stop_reading.is_set():
                return
            self.counters.journal_entries += 1

    def _metrics_source(self) -> None:
        sample(self.config.metrics_disks)  # primes the CPU counter
        while not self.stop_reading.wait(self.config.metrics_interval):
            if not self._put(self.lines, sample(self.config.metrics_disks)):
                return
            self.counters.metric_samples += 1

    def _parse_stage(self) -> None:
        batch, deadline = Batch(), 0.0
        max_rows, max_wait = self.config.batch_max_rows, self.config.batch_max_wait
        while True:
            timeout = max_wait if not batch else max(0.0, deadline - time.monotonic())
            try:
                item = self.lines.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is STOP:
                if batch:
                    self._put(self.batches, batch)
                self._put(self.batches, STOP)
                return
            if item is not None:
                row, position = self.builder.build(item)
                if not batch:
                    deadline = time.monotonic() + max_wait
                batch.add(row, position)
                self.counters.rows_built += 1
            if batch and (len(batch) >= max_rows or time.monotonic() >= deadline):
                if not self._put(self.batches, batch):
                    return
                batch = Batch()

    def _sink_stage(self) -> None:
        while True:
            try:
                batch = self.batches.get(timeout=1.0)
            except queue.Empty:
                if self.durable.spooled():
                    self.durable.replay()
                continue
            if batch is STOP:
                self.durable.replay()
                return
            # Merge batches already waiting: more statements in flight per round trip.
            while len(batch) < MERGE_ROWS:
                try:
                    more = self.batches.get_nowait()
                except queue.Empty:
                    break
                if more is STOP:
                    self.batches.put(STOP)  # seen again by the next get, after this delivery
                    break
                batch.extend(more)
            done = 0
            while done < len(batch.rows):
                done += self.durable.deliver(batch.rows[done:])
                if done < len(batch.rows):
                    # Spool full and Cassandra away: hold the rest; the queues fill and reading pauses.
                    self.counters.spool_full_waits += 1
                    if self.abort.wait(1.0):
                        break
                    self.durable.replay()
            self.checkpoints.ack(batch.acknowledged(done))
            self.counters.rows_acknowledged += done

    # -- reporting -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Everything `iact-collector status` shows."""
        files = self.tailer.lag() if self.tailer else {}
        d = self.durable.stats
        return {
            "version": __version__,
            "pid": os.getpid(),
            "host": self.config.host,
            "started_at": self.started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "healthy": self.healthy(),
            "files": files,
            "lag_bytes": sum(int(f["lag_bytes"]) for f in files.values()),  # type: ignore[call-overload]
            "journal": {
                "enabled": self.journal is not None,
                "acked_cursor": self.checkpoints.journal_cursor,
                "entries_read": self.journal.entries_read if self.journal else 0,
            },
            "spool_bytes": self.durable.pending_bytes(),
            "queues": {"lines": self.lines.qsize(), "batches": self.batches.qsize()},
            "counters": {
                **asdict(self.counters),
                "raw_unparsed": self.builder.parse_errors,
                "rows_written": d.written,
                "rows_spooled": d.spooled,
                "write_errors": d.write_errors,
            },
            "last_error": d.last_error,
        }
