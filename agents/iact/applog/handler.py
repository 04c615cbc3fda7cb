"""`CassandraHandler`: a logging.Handler that ships records to logging.application_logs.

The calling thread only renders the message (so later mutation of args cannot change it),
formats exception text when there is one, and does a non-blocking put on a bounded queue.
Everything else happens on the writer thread; a full queue drops and counts, never blocks.
A forked child gets fresh locks, queue and counters from an at-fork hook, so a lock another
thread of the parent held at the moment of the fork cannot deadlock the child's first record.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import weakref
from contextlib import suppress
from typing import Any

from iact.applog.config import HandlerConfig
from iact.applog.stats import FlushRequest, Stats, drop_report
from iact.applog.writer import STOP, Writer

_formatter = logging.Formatter()
START_RETRY_INTERVAL = 5.0  # a writer that could not start is tried again this often; records queue meanwhile
CLOSE_GRACE = 1.0  # after close_timeout, how long close() waits for the writer to count what it gives up

# Every handler, weakly (a handler nobody references must still be collectable), for the fork hook.
_handlers: weakref.WeakSet[CassandraHandler] = weakref.WeakSet()
# The parent's writers as seen in a forked child: kept referenced so their SQLite connections and
# driver sockets are never finalized there (closing them in the child would act on the parent's).
_inherited: list[Writer] = []


def _after_fork_in_child() -> None:
    for handler in list(_handlers):
        handler._reinit_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class CassandraHandler(logging.Handler):
    """Ship records to Cassandra asynchronously; see HandlerConfig for the keyword arguments."""

    def __init__(self, level: int | str = logging.NOTSET, **settings: Any) -> None:
        super().__init__(level)
        self.config = HandlerConfig(**settings)
        self.config.connection()  # validate now: a wrong setting fails at configuration time
        self._closed = False
        self._reset()
        _handlers.add(self)

    def _reset(self) -> None:
        """The per-process state, fresh: at construction and in a forked child.

        A child must not inherit locks (another thread of the parent may have held one at the
        fork, and nobody would ever release it there), the queue (its mutex is such a lock, and
        its records are the parent's to deliver) or the counters (get_stats is per process).
        """
        self.stats = Stats()
        self._pid = -1
        self._queue: queue.Queue = queue.Queue(self.config.queue_maxsize)
        self._writer: Writer | None = None
        self._start_lock = threading.Lock()
        self._next_start = 0.0

    def _reinit_after_fork(self) -> None:
        """os.register_at_fork(after_in_child=...): runs in the child, which has this one thread."""
        if self._writer is not None:
            self._writer.release_inherited()
            _inherited.append(self._writer)
        self._reset()

    def _start_writer(self) -> None:
        """Start a writer in this process (the first record, or the first after a fork)."""
        with self._start_lock:
            if self._pid != os.getpid():
                if self._pid != -1:  # a fork that bypassed the at-fork hook: at least do not share the queue
                    self.stats, self._queue, self._writer = Stats(), queue.Queue(self.config.queue_maxsize), None
                self._pid = os.getpid()
            if self._writer is not None or self._closed or time.monotonic() < self._next_start:
                return
            try:
                writer = Writer(self.config, self._queue, self.stats)
                writer.start()
            except Exception as exc:  # records wait in the queue (bounded) for the next attempt
                self._next_start = time.monotonic() + START_RETRY_INTERVAL
                self.stats.cause = f"the writer cannot start ({exc!r}); retrying every {START_RETRY_INTERVAL:g} s"
                with suppress(Exception):
                    print(f"iact CassandraHandler: {self.stats.cause}", file=sys.stderr)
                return
            self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        """Enqueue the record; never blocks, never raises into the application."""
        try:
            if self._writer is None or self._pid != os.getpid():
                self._start_writer()
            if self._closed:
                self._drop("the handler is closed")
                return
            exc_text = None
            if record.exc_info or record.stack_info:
                exc_text = "\n".join(
                    t
                    for t in (
                        record.exc_text or (_formatter.formatException(record.exc_info) if record.exc_info else None),
                        record.stack_info,
                    )
                    if t
                )
            msg = record.msg
            # A bytes message is decoded (invalid UTF-8 replaced) on the writer, not repr()'d.
            message = msg if type(msg) is bytes and not record.args else record.getMessage()
            self._queue.put_nowait((record, message, exc_text))
            self.stats.queued()
        except queue.Full:
            self._drop()
        except RecursionError:
            raise
        except Exception:
            self.stats.dropped(1)  # e.g. a format string that does not match its arguments
            self.handleError(record)

    def _drop(self, cause: str | None = None) -> None:
        """Count a dropped record. A running writer reports drops after its next delivery attempt,
        when it knows the cause; without one (not started, closed) the report is made here."""
        self.stats.dropped(1)
        if cause is None and self._writer is not None and self._writer.is_alive():
            return
        due = self.stats.drops_to_report(self.config.drop_report_interval)
        if due is not None:
            with suppress(Exception):
                print(drop_report(self.config.queue_maxsize, *due, cause or self.stats.cause), file=sys.stderr)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything this process queued so far is written or spooled.

        False when that did not happen within the timeout (close_timeout by default): Cassandra
        and the spool refuse rows, or the queue is too full to take the request.
        """
        if self._pid != os.getpid():
            return True  # nothing was logged in this process
        if self._writer is None:
            self._start_writer()
        writer = self._writer
        if writer is None or not writer.is_alive():
            return self._queue.empty() and (writer is None or not writer.pending)
        end = time.monotonic() + (self.config.close_timeout if timeout is None else timeout)
        request = FlushRequest(deadline=end)
        try:
            self._queue.put(request, timeout=max(0.0, end - time.monotonic()))
        except queue.Full:
            return False
        return request.done.wait(max(0.0, end - time.monotonic())) and request.ok

    def close(self) -> None:
        """Drain within close_timeout, stop the writer; logging.shutdown calls this at exit.

        What could not be delivered by then is counted in logs_dropped and reported on stderr.
        """
        try:
            if not self._closed and self._pid == os.getpid():
                writer = self._writer
                if writer is not None and writer.is_alive():
                    end = time.monotonic() + self.config.close_timeout
                    writer.deadline = end
                    self.flush(self.config.close_timeout)
                    with suppress(queue.Full):
                        self._queue.put(STOP, timeout=max(0.0, end - time.monotonic()))
                    self._closed = True
                    writer.wake()
                    writer.join(max(0.0, end - time.monotonic()) + CLOSE_GRACE)
                    if writer.is_alive() and (lost := writer.give_up()):
                        self._say(f"closing: the writer did not finish in time; {lost} record(s) counted as lost")
                elif lost := self._queue.qsize():  # the writer never started
                    self.stats.dropped(lost)
                    self._say(f"closing: {lost} record(s) never reached a writer ({self.stats.cause})")
            self._closed = True
            if self.stats.logs_dropped > self.stats.drops_reported:  # none goes unreported, whatever the interval
                self.stats.drops_reported = self.stats.logs_dropped
                total, cause = self.stats.logs_dropped, self.stats.cause
                self._say(f"{total} record(s) dropped in all (logs_dropped); last cause: {cause}")
        finally:
            super().close()

    @staticmethod
    def _say(message: str) -> None:
        with suppress(Exception):  # stderr may be closed at interpreter exit
            print(f"iact CassandraHandler: {message}", file=sys.stderr)

    def get_stats(self) -> dict[str, Any]:
        """Counters of this process's handler (a forked child starts from zero)."""
        writer = self._writer
        return {
            "logs_queued": self.stats.logs_queued,
            "logs_written": self.stats.logs_written,
            "logs_dropped": self.stats.logs_dropped,
            "logs_spooled": self.stats.logs_spooled,
            "logs_pending": len(writer.pending) if writer is not None else 0,
            "batches": self.stats.batches,
            "write_errors": self.stats.write_errors,
            "writer_errors": self.stats.writer_errors,
            "last_error": self.stats.last_error,
            "queue_depth": self._queue.qsize(),
        }
