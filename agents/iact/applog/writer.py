"""The background writer: queue -> rows -> batches -> the shared DurableSink (Cassandra or spool).

Its contract with the handler: every record taken from the queue ends up written, spooled, or
counted in logs_dropped, and the thread never dies. An unexpected exception is reported on stderr
with what was being done, counted in writer_errors, and the loop goes on. Rows that neither
Cassandra nor the spool took (an outage while the spool's disk is full) stay in memory, bounded:
over the bound the writer stops taking from the queue, so the queue fills and emit() drops and
counts instead of blocking the application or losing rows the writer already holds.
"""

from __future__ import annotations

import glob
import os
import queue
import re
import stat
import sys
import threading
import time
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any

from iact.applog.config import HandlerConfig
from iact.applog.rows import COLUMNS, PARTITION_KEY, build_row, row_from_json, row_to_json
from iact.applog.spools import GuardedSpool, NoSpool, OutcomeSink, free_space_note, remove_spool_files
from iact.applog.stats import TOO_FAST, FlushRequest, Stats, drop_report
from iact.sink.durable import DurableSink
from iact.sink.spool import Spool, SpoolLocked

STOP = object()
MAX_BATCHES_PER_WRITE = 10
MAX_RETRY_WAIT = 5.0  # longest pause between attempts to hand over rows nobody took
SPOOL_RETRY_INTERVAL = 10.0  # how often a spool that could not be opened is tried again
ORPHAN_SCAN_INTERVAL = 60.0  # how often to look for spools left by processes that died
FAULTS_BEFORE_SETTING_ASIDE = 3  # one batch failing this often in a row is given up (counted)
# What follows the prefix in a spool's name: ".<pid>.spool" or ".<pid>-<n>.spool". Not the
# ".lock", "-wal", "-shm", ".corrupt-*" companions, nor the spools of an app whose name merely
# starts with ours ("shop" must not take "shop.eu.123.spool").
_SPOOL_SUFFIX = re.compile(r"\.\d+(?:-\d+)?\.spool")
# Every file SQLite or the version-1 import reads for a spool at `path`.
_SPOOL_COMPANIONS = ("", ".lock", "-wal", "-shm", "-journal", ".v1", ".offset")


def _ours_alone(path: str) -> bool:
    """The spool and each companion that exists are regular files of this user, not links.

    Checked where anyone may write ($TMPDIR): another user's file there, replayed, would put
    rows of their making into Cassandra as this application's logs.
    """
    for suffix in _SPOOL_COMPANIONS:
        try:
            st = os.lstat(path + suffix)
        except FileNotFoundError:
            if not suffix:
                return False
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return False
    return True


class Writer(threading.Thread):
    """One per process; started lazily by the handler in the process that logs.

    The constructor does no I/O (it runs on the first logging call): the spool is opened and
    abandoned spools are adopted on the writer thread.
    """

    def __init__(self, config: HandlerConfig, q: queue.Queue, stats: Stats) -> None:
        super().__init__(name="iact-cassandra-writer", daemon=True)
        self.config, self.queue, self.stats = config, q, stats
        self.max_pending = config.batch_size * MAX_BATCHES_PER_WRITE
        self.pending: list[dict] = []
        # Records taken from the queue that are now safe or counted as dropped. With logs_queued
        # it tells close() how many to count as lost if this thread cannot finish in time.
        self.settled = 0
        self.books = threading.Lock()
        self.books_closed = False
        self.deadline: float | None = None  # set by close(): give up on what is undelivered after it
        self._wake = threading.Event()
        self._stopping = False
        self._doing = "starting"
        self._seq = 0
        self._first_at = 0.0
        self._retry_at = 0.0
        self._retry_wait = 0.0
        self._faults = 0
        self._last_fault = ""
        self._next_spool_try = 0.0
        self._next_scan = 0.0
        self._next_note: dict[str, float] = {}
        self._rejected_seen = 0
        sink = OutcomeSink(
            config.connection(),
            config.keyspace,
            config.table,
            COLUMNS,
            PARTITION_KEY,
            ttl_seconds=config.ttl_seconds,
            consistency=config.consistency,
            max_batch_rows=config.batch_size,
        )
        placeholder = NoSpool(config.spool_file(), "the spool is not open yet")
        self.durable = DurableSink(sink, placeholder, replay_chunk=config.batch_size * 10)  # type: ignore[arg-type]

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        """Supervise the loop: an unexpected error is reported and counted, then the loop goes on."""
        while True:
            try:
                if self._step():
                    break
            except Exception as exc:
                self._fault(exc)
        try:
            self._finish()
        except Exception as exc:
            self._say(f"error while closing: {exc!r}")

    def wake(self) -> None:
        """Cut a retry wait short (close() has set a deadline)."""
        self._wake.set()

    def _step(self) -> bool:
        """One round: take a record, deliver or replay when due. True once the writer may end."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            return True
        if isinstance(self.durable.spool, NoSpool) and now >= self._next_spool_try:
            self._open_spool()
        if now >= self._next_scan and now >= self._retry_at:
            self._scan_orphans()
        if self._stopping or len(self.pending) >= self.max_pending:
            # Over the bound (or stopping): leave the queue alone, so it fills and emit() drops
            # and counts, until Cassandra or the spool takes rows again.
            if self._stopping and not self.pending:
                return True
            self._doing = f"waiting to retry {len(self.pending)} record(s)"
            self._wait(self._retry_at)
            if time.monotonic() >= self._retry_at:
                self._deliver()
            return False
        item = self._get(now)
        if item is STOP:
            self._stopping = True
            if self.pending:
                self._deliver()
            return not self.pending
        if isinstance(item, FlushRequest):
            self._flush(item)
            return False
        if item is not None:
            self._take(item)
        now = time.monotonic()
        if self.pending and now >= self._retry_at:
            # With a backlog queued, keep collecting (up to ten batches, sent concurrently) so a
            # busy app is not held to one batch per round trip.
            full = len(self.pending) >= self.config.batch_size and (
                self.queue.empty() or len(self.pending) >= self.max_pending
            )
            if full or now - self._first_at >= self.config.flush_interval:
                self._deliver()
        elif not self.pending and now >= self._retry_at and self.durable.spooled():
            self._replay(force=False)
        return False

    def _get(self, now: float) -> Any:
        if self.pending:
            wait = max(self._first_at + self.config.flush_interval, self._retry_at) - now
        else:
            wait = self.config.flush_interval
        if self.deadline is not None:
            wait = min(wait, self.deadline - now)
        try:
            return self.queue.get(timeout=max(0.0, wait))
        except queue.Empty:
            return None

    def _wait(self, until: float) -> None:
        if self.deadline is not None:
            until = min(until, self.deadline)
        self._wake.wait(max(0.0, until - time.monotonic()))
        self._wake.clear()

    def _take(self, item: tuple[Any, Any, str | None]) -> None:
        record, message, exc_text = item
        self._seq += 1
        self._doing = "converting a record to a row"
        try:
            row = build_row(record, message, exc_text, self.config.app, self.config.host, self._seq)
        except Exception as exc:  # never let one odd record stop the writer
            self._lose(1, f"a record could not be converted to a row: {exc!r}")
            return
        if not self.pending:
            self._first_at = time.monotonic()
        self.pending.append(row)

    def _deliver(self) -> None:
        """Hand pending rows to Cassandra or the spool; what neither takes stays pending, in order."""
        rows = self.pending
        self._doing = f"delivering {len(rows)} record(s)"
        kept = self.durable.deliver(rows)
        del rows[:kept]  # only now: an exception above leaves them pending, to be sent again (same ids)
        with self.books:
            self.settled += kept
        self._faults = 0
        self._sync_stats()
        self._report_drops(self._cause(stuck=bool(rows)))
        if rows:
            self._backoff()
            self.stats.cause = self._cause(stuck=True)
            self._say(
                f"{len(rows)} record(s) wait in memory because {self.stats.cause}; past {self.max_pending} "
                "the queue fills and new records are dropped and counted",
                key="stuck",
            )
        else:
            self._retry_wait, self._retry_at = 0.0, 0.0
            self.stats.cause = self._cause(stuck=False)

    def _flush(self, request: FlushRequest) -> None:
        try:
            while self.pending:
                try:
                    self._deliver()
                except Exception as exc:
                    self._fault(exc)
                end = request.deadline if self.deadline is None else min(request.deadline, self.deadline)
                if not self.pending or time.monotonic() >= end or self._retry_at >= end:
                    break
                self._doing = f"flushing: waiting to retry {len(self.pending)} record(s)"
                self._wait(self._retry_at)
            try:
                self._doing = "flushing"
                self._scan_orphans()
                self._replay(force=True)
            except Exception as exc:  # spooled rows are safe already: a failed replay does not fail the flush
                self._fault(exc)
            request.ok = not self.pending
        finally:
            request.done.set()

    def _replay(self, force: bool) -> None:
        self._doing = "replaying the spool"
        self.durable.replay(force=force)
        self._sync_stats()
        for orphan in [o for o in self.durable.orphans if o.pending_bytes() == 0]:
            self.durable.orphans.remove(orphan)
            remove_spool_files(orphan)

    def _backoff(self) -> None:
        self._retry_wait = min(MAX_RETRY_WAIT, max(0.1, self._retry_wait * 2))
        self._retry_at = time.monotonic() + self._retry_wait

    # -- spools ----------------------------------------------------------------------------------
    def _spool_at(self, path: str) -> Spool:
        return GuardedSpool(path, self.config.spool_max_bytes, row_to_json, row_from_json, reject=self._spool_rejected)

    def _open_spool(self) -> None:
        self._next_spool_try = time.monotonic() + SPOOL_RETRY_INTERVAL
        self._doing = "opening the spool"
        path = self.config.spool_file()
        try:
            for attempt in range(16):
                path = self.config.spool_file(attempt)
                try:
                    self.durable.spool = self._spool_at(path)
                    return
                except SpoolLocked:
                    continue  # a live process in another pid namespace has our pid
            raise SpoolLocked("every alternative name is in use")
        except Exception as exc:
            reason = f"spool {path} cannot be opened ({exc}); retrying every {SPOOL_RETRY_INTERVAL:.0f} s"
            self.durable.spool = NoSpool(path, reason)  # type: ignore[assignment]
            self._say(f"{reason}; meanwhile records go to Cassandra directly", key="spool")

    def _scan_orphans(self) -> None:
        """Adopt spools whose owner died: their lock can be taken (try_lock); a held lock means alive.

        The kernel releases an flock when its holder dies, however it dies, so this is right
        where "is the pid alive?" is not: pids are reused, and differ between pid namespaces.
        """
        self._next_scan = time.monotonic() + ORPHAN_SCAN_INTERVAL
        self._doing = "looking for spools of processes that died"
        bases = [(self.config.spool_base(), False)]
        if not self.config.spool_path:  # spools of versions that defaulted to $TMPDIR, shared with every user
            tmpdir = os.environ.get("TMPDIR", "/tmp")  # nosec B108 # read only, and only our own files (_ours_alone)
            bases.append((os.path.join(tmpdir, f"iact-applog-{self.config.app}"), True))
        ours = {Path(s.path) for s in (self.durable.spool, *self.durable.orphans)}
        found: list[tuple[float, str]] = []
        for base, shared in bases:
            prefix = os.path.basename(base)
            for path in glob.glob(glob.escape(base) + ".*.spool"):
                if Path(path) in ours or not _SPOOL_SUFFIX.fullmatch(os.path.basename(path)[len(prefix) :]):
                    continue
                if shared and not _ours_alone(path):
                    self._say(f"spool {path} is not only this user's regular files; not replayed", key=path)
                    continue
                with suppress(OSError):
                    found.append((os.path.getmtime(path), path))
        for _mtime, path in sorted(found):  # oldest first
            try:
                orphan = self._spool_at(path)  # takes its lock, or raises SpoolLocked: the owner lives
            except SpoolLocked:
                continue
            except Exception as exc:
                self._say(f"spool {path} left by a process that died cannot be opened ({exc!r}); left for later")
                continue
            if orphan.last_error:  # its database did not open (a full disk): let go, adopt it at a later scan
                orphan.close()
                continue
            self.durable.orphans.append(orphan)

    def _spool_rejected(self, raw: str, reason: str) -> None:
        self._lose(1, f"a row could not be spooled or read back ({reason}): {raw[:200]}", settle=False)

    # -- accounting and reporting ----------------------------------------------------------------
    def _lose(self, n: int, why: str, settle: bool = True) -> None:
        """Count n records as dropped, and say why (at most once per drop_report_interval)."""
        with self.books:
            if self.books_closed:
                return
            self.stats.dropped(n)
            if settle:
                self.settled += n
        self.stats.last_error = why
        self._say(f"dropped {n} record(s) (counted in logs_dropped): {why}", key="lose")

    def _sync_stats(self) -> None:
        d, s = self.durable.stats, self.stats
        s.logs_written, s.logs_spooled, s.batches, s.write_errors = d.written, d.spooled, d.batches, d.write_errors
        if d.last_error:
            s.last_error = d.last_error
        rejected = self.durable.dead_letter.count
        if rejected > self._rejected_seen:
            new, self._rejected_seen = rejected - self._rejected_seen, rejected
            reason = self.durable.dead_letter.last_reason
            self._lose(new, f"Cassandra can never take them ({reason}); see the dead-letter log", settle=False)

    def _report_drops(self, cause: str) -> None:
        """Drops are reported here, right after a delivery attempt, when the cause is known.

        Reporting from emit() at the first drop would guess: the queue fills in microseconds,
        long before the attempt in progress tells an outage from a full disk from a slow node.
        """
        due = self.stats.drops_to_report(self.config.drop_report_interval)
        if due is not None:
            with suppress(Exception):
                print(drop_report(self.config.queue_maxsize, *due, cause), file=sys.stderr, flush=True)

    def _cause(self, stuck: bool) -> str:
        """Why records are not being taken as fast as they come, as the stderr reports say it."""
        failure = getattr(self.durable.sink, "failure", None)
        down = f"Cassandra is unreachable ({failure})" if failure else "Cassandra is unreachable"
        spool = self.durable.spool
        if stuck and spool.last_error:
            return f"{down} and {spool.last_error}{free_space_note(spool.path)}"
        if stuck:
            return f"{down} and the spool {spool.path} is full (spool_max_bytes={self.config.spool_max_bytes})"
        if failure:
            return f"{down}; records are spooled to {spool.path} more slowly than the app logs them"
        return TOO_FAST

    def _fault(self, exc: Exception) -> None:
        """An unexpected exception: report it with what was being done, count it, pause, go on."""
        self.stats.writer_errors += 1
        self._faults += 1
        text = f"{type(exc).__name__}: {exc}"
        self.stats.last_error = f"writer error while {self._doing}: {text}"
        self.stats.cause = f"the writer fails while {self._doing} ({text})"
        held = f"; the {len(self.pending)} record(s) in hand are kept and retried" if self.pending else ""
        detail = "" if text == self._last_fault else "\n" + "".join(traceback.format_exception(exc)).rstrip()
        self._last_fault = text
        self._say(f"unexpected error while {self._doing}: {text}{held}; the writer goes on{detail}")
        self._backoff()
        self._report_drops(self.stats.cause)
        if self._faults >= FAULTS_BEFORE_SETTING_ASIDE and self.pending and self._doing.startswith("delivering"):
            n = min(len(self.pending), self.config.batch_size)
            del self.pending[:n]
            self._faults = 0
            self._lose(n, f"delivering them failed {FAULTS_BEFORE_SETTING_ASIDE} times in a row ({text})")

    def _say(self, message: str, key: str | None = None) -> None:
        """One line on stderr; with a key, at most once per drop_report_interval."""
        now = time.monotonic()
        if key is not None:
            if now < self._next_note.get(key, 0.0):
                return
            self._next_note[key] = now + self.config.drop_report_interval
        with suppress(Exception):  # stderr may be closed at interpreter exit
            print(f"iact CassandraHandler: {message}", file=sys.stderr, flush=True)

    def _finish(self) -> None:
        """Count what is still undelivered as dropped, then release the connections and the spools."""
        self._doing = "closing"
        lost = 0
        with self.books:
            if not self.books_closed:
                lost = len(self.pending)
                while True:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, FlushRequest):
                        item.done.set()
                    elif item is not STOP:
                        lost += 1
                self.books_closed = True
                self.stats.dropped(lost)
                self.pending = []
        if lost:
            self._say(
                f"closing: {lost} record(s) could not be delivered within close_timeout "
                f"({self.config.close_timeout:g} s) and are lost, counted in logs_dropped: {self._cause(stuck=True)}"
            )
        own = self.durable.spool
        if own.pending_bytes() == 0 and isinstance(own, Spool):
            remove_spool_files(own)  # a clean exit leaves no file behind (first: closing the driver may be slow)
        self.durable.close()

    def give_up(self) -> int:
        """Called by close() when this thread did not finish in time: count the unsettled as lost."""
        with self.books:
            if self.books_closed:
                return 0
            self.books_closed = True
            lost = max(0, self.stats.logs_queued - self.settled)
            self.stats.dropped(lost)
            return lost

    def release_inherited(self) -> None:
        """In a forked child: let go of the parent's spool locks without touching its files.

        The child's copy of each lock descriptor would keep the parent's spools "alive" after
        the parent dies. Closing the copy releases nothing for the parent (the flock belongs to
        the open file, which the parent still holds). The SQLite connections and the driver's
        sockets are deliberately not closed: that would act on the parent's files and sessions.
        """
        for spool in (self.durable.spool, *self.durable.orphans):
            fd = getattr(spool, "_lock_fd", -1)
            if isinstance(fd, int) and fd >= 0:
                with suppress(OSError):
                    os.close(fd)
                spool._lock_fd = -1  # type: ignore[union-attr]  # so close() can never close a reused fd
