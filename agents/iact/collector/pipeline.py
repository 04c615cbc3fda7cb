"""The collector as one pipeline: sources -> parse -> batch -> sink, threads joined by bounded queues.

Bounded queues are the backpressure: when Cassandra is slow and the spool is full, the sink
stops taking batches, the parse stage blocks, the sources block, and the log files themselves
hold the backlog. Memory stays bounded whatever the input rate.

Every stage is supervised item by item: an unexpected exception is logged with the identity of
the line that caused it, counted, and the line is set aside in the dead-letter file; the stage
goes on. One line can therefore never stop a host's logging, nor crash-loop the agent.
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
from iact.collector.sources.records import RawJournal, RawLine
from iact.sink.cassandra import CassandraSink
from iact.sink.deadletter import DeadLetter
from iact.sink.durable import DurableSink
from iact.sink.spool import Spool

log = logging.getLogger(__name__)
STOP = object()
MERGE_ROWS = 5000
LAG_SAMPLE_SECONDS = 10
LAG_SAMPLES = 360  # one hour of lag history in the status file


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
    stage_errors: int = 0
    lines_set_aside: int = 0  # read, but no row could be built: in the dead-letter file
    positions_without_row: int = 0  # empty or set-aside lines whose offsets were acknowledged


class Collector:
    """Build with a validated config, start(), and stop() within a deadline."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.started_at = datetime.now(UTC)
        self.checkpoints = Checkpoints(config.checkpoint_file)
        self.counters = Counters()
        self.checkpoints.set_journal_host(config.host, self.started_at.isoformat())
        self.builder = RowBuilder(config.host, self.checkpoints.journal_hosts)
        self.dead_letter = DeadLetter(config.dead_letter_file)
        self.last_ack_at = time.time()
        self.last_stage_error_at: float | None = None
        self.lag_history: list[tuple[float, int]] = []
        self.lines: queue.Queue[Any] = queue.Queue(config.queue_lines)
        self.batches: queue.Queue[Any] = queue.Queue(config.queue_batches)
        self.stop_reading = threading.Event()
        self.abort = threading.Event()
        self.tailer = (
            FileTailer(
                config.files,
                self.checkpoints,
                config.max_line_bytes,
                config.start_position,
                config.rotate_wait,
                host=config.host,
            )
            if config.files
            else None
        )
        self.journal = (
            JournalSource(
                config.journal_command, self.checkpoints.journal_cursor, config.start_position,
                config.max_line_bytes * 4, since=self.checkpoints.last_saved,
            )
            if config.journal
            else None
        )  # fmt: skip
        c = config.cassandra
        sink = CassandraSink(
            c.connection(), c.keyspace, c.table, COLUMNS, PARTITION_KEY, ttl_seconds=c.ttl_seconds,
            consistency=c.consistency, max_batch_rows=config.batch_max_rows, max_batch_bytes=config.batch_max_bytes,
        )  # fmt: skip
        # A reload waits here for the previous pipeline to let go of the spool.
        spool = Spool(
            config.spool_file, config.spool_max_bytes, CODEC.encode, CODEC.decode, self.dead_letter,
            lock_timeout=config.shutdown_timeout + 40,
        )  # fmt: skip
        self.durable = DurableSink(sink, spool, replay_chunk=config.batch_max_rows, dead_letter=self.dead_letter)
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
                t.join(35.0)  # a write in flight ends within the driver's request timeout
        try:
            self.checkpoints.save()
        except OSError as exc:
            log.error("cannot save checkpoints at stop (%s): lines since the last save are read again", exc)
        if self.tailer:
            self.tailer.close()
        self.durable.close()
        return drained

    def in_flight(self) -> int:
        """Items read from a source and not yet acknowledged (queued, being parsed, batched or written)."""
        c = self.counters
        read = c.file_lines + c.journal_entries + c.metric_samples
        return max(0, read - c.rows_acknowledged - c.positions_without_row)

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
            except Exception:
                self._stage_error("files", "polling the files")
                self.stop_reading.wait(1.0)
            if not got:
                self.stop_reading.wait(self.config.poll_interval)

    def _journal_source(self) -> None:
        assert self.journal is not None
        while not self.stop_reading.is_set():
            try:
                for entry in self.journal.entries():
                    if not self._put(self.lines, entry) or self.stop_reading.is_set():
                        return
                    self.counters.journal_entries += 1
                return
            except Exception:
                self._stage_error("journal", "reading the journal")  # entries() resumes after the last cursor
                self.stop_reading.wait(1.0)

    def _metrics_source(self) -> None:
        while not self.stop_reading.wait(self.config.metrics_interval):
            try:
                item = sample(self.config.metrics_disks)
                item.fields.update(self.agent_fields())
            except Exception:
                self._stage_error("metrics", "sampling host metrics")
                continue
            if not self._put(self.lines, item):
                return
            self.counters.metric_samples += 1

    def _stage_error(self, stage: str, doing: str, item: object = None, row: object = None) -> None:
        """Log and count an unexpected exception; set aside what caused it. The stage goes on."""
        self.counters.stage_errors += 1
        self.last_stage_error_at = time.time()
        where = _identity(item)
        log.exception("%s stage: unexpected error while %s%s; set aside, going on", stage, doing, where)
        if item is not None or row is not None:
            self.dead_letter(row if row is not None else item, f"{stage} stage failed while {doing}{where}")

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
            if isinstance(item, RawLine) and item.empty:
                if not batch:
                    deadline = time.monotonic() + max_wait
                batch.skip(self.builder.skip_position(item))
                item = None
            if item is not None:
                try:
                    row, position = self.builder.build(item)
                except Exception:
                    self._stage_error("parse", "building a row", item)
                    self.counters.lines_set_aside += 1
                    position = self.builder.skip_position(item) if isinstance(item, RawLine) else None
                    if position is not None:  # acknowledged in order, behind the rows before it
                        if not batch:
                            deadline = time.monotonic() + max_wait
                        batch.skip(position)
                else:
                    if not batch:
                        deadline = time.monotonic() + max_wait
                    batch.add(row, position)
                    self.counters.rows_built += 1
            if batch and (len(batch) >= max_rows or time.monotonic() >= deadline):
                if not self._put(self.batches, batch):
                    return
                batch = Batch()

    def _sink_stage(self) -> None:
        while not self.abort.is_set():
            try:
                batch = self.batches.get(timeout=1.0)
            except queue.Empty:
                if self.durable.spooled():
                    self._replay()
                continue
            if batch is STOP:
                self._replay()
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
                done += self._deliver(batch.rows[done:])
                if done < len(batch.rows):
                    # Spool full and Cassandra away: hold the rest; the queues fill and reading pauses.
                    self.counters.spool_full_waits += 1
                    if self.abort.wait(1.0):
                        break
                    self._replay()
            acked = batch.acknowledged(done)
            self.checkpoints.ack(acked)
            self.counters.rows_acknowledged += done
            self.counters.positions_without_row += sum(1 for n, _pos in batch.skipped if n <= done)
            if acked:  # a line of a file or the journal (metric rows, which have no position, do not count)
                self.last_ack_at = time.time()

    def _replay(self) -> None:
        try:
            self.durable.replay()
        except Exception:
            self._stage_error("sink", "replaying the spool")  # the rows stay spooled; retried later

    def _deliver(self, rows: list[dict[str, Any]]) -> int:
        """DurableSink.deliver, supervised: on a bug, rows go one by one and the one that fails is set aside."""
        try:
            return self.durable.deliver(rows)
        except Exception:
            self._stage_error("sink", f"delivering {len(rows)} rows")
        done = 0
        for row in rows:
            try:
                kept = self.durable.deliver([row])
            except Exception:
                self._stage_error("sink", "delivering one row", row=row)
                kept = 1
            if not kept:
                return done
            done += 1
        return done

    def sample_lag(self) -> None:
        """Called by the main loop; keeps the lag history that `status` judges progress by."""
        now = time.time()
        if self.lag_history and now - self.lag_history[-1][0] < LAG_SAMPLE_SECONDS:
            return
        lag = sum(int(f["lag_bytes"]) for f in self.tailer.lag().values()) if self.tailer else 0  # type: ignore[call-overload]
        self.lag_history = [*self.lag_history[-(LAG_SAMPLES - 1) :], (now, lag)]

    def agent_fields(self) -> dict[str, str]:
        """The agent's own state in each metrics row: the dashboard's fleet page reads it from there
        (version, when it started, so restarts show, how far behind and how much is spooled)."""
        return {
            "agent_version": __version__,
            "agent_started_at": self.started_at.isoformat(),
            "agent_lag_bytes": str(self.lag_history[-1][1] if self.lag_history else 0),
            "agent_spool_bytes": str(self.durable.pending_bytes()),
        }

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
            "files_ready": self.tailer.ready if self.tailer else True,
            "lag_bytes": sum(int(f["lag_bytes"]) for f in files.values()),  # type: ignore[call-overload]
            "journal": {
                "enabled": self.journal is not None,
                "acked_cursor": self.checkpoints.journal_cursor,
                "entries_read": self.journal.entries_read if self.journal else 0,
                "entries_reread": self.journal.entries_reread if self.journal else 0,
                "entries_incomplete": self.journal.entries_incomplete if self.journal else 0,
            },
            "spool_bytes": self.durable.pending_bytes(),
            "queues": {"lines": self.lines.qsize(), "batches": self.batches.qsize()},
            "in_flight": self.in_flight(),
            "counters": {
                **asdict(self.counters),
                "raw_unparsed": self.builder.parse_errors,
                "rows_coerced": self.builder.coerced,
                "rows_written": d.written,
                "rows_spooled": d.spooled,
                "rows_dead_lettered": self.dead_letter.count,
                "write_errors": d.write_errors,
                "copies_adopted": self.tailer.copies_adopted if self.tailer else 0,
            },
            "dead_letter": {"file": str(self.config.dead_letter_file), "count": self.dead_letter.count,
                            "last_reason": self.dead_letter.last_reason, "last_at": self.dead_letter.last_at},
            "last_ack_at": datetime.fromtimestamp(self.last_ack_at, UTC).isoformat(),
            "last_stage_error_at": self.last_stage_error_at,
            "lag_history": [[round(t, 1), lag] for t, lag in self.lag_history],
            "last_error": d.last_error,
        }  # fmt: skip


def _identity(item: object) -> str:
    """Where a raw item came from, for the log line of a supervised failure."""
    if isinstance(item, RawLine):
        return f" (line of {item.source}, generation {item.key}, bytes {item.offset}-{item.end})"
    if isinstance(item, RawJournal):
        return f" (journal entry, {len(item.data)} bytes)"
    return ""
