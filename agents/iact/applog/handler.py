"""`CassandraHandler`: a logging.Handler that ships records to logging.application_logs.

The calling thread only renders the message (so later mutation of args cannot change it),
formats exception text when there is one, and does a non-blocking put on a bounded queue.
Everything else happens on the writer thread; a full queue drops and counts, never blocks.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from typing import Any

from iact.applog.config import HandlerConfig
from iact.applog.writer import STOP, FlushRequest, Stats, Writer

_formatter = logging.Formatter()


class CassandraHandler(logging.Handler):
    """Ship records to Cassandra asynchronously; see HandlerConfig for the keyword arguments."""

    def __init__(self, level: int | str = logging.NOTSET, **settings: Any) -> None:
        super().__init__(level)
        self.config = HandlerConfig(**settings)
        self.config.connection()  # validate now: a wrong setting fails at configuration time
        self.stats = Stats()
        self._pid = -1
        self._queue: queue.Queue = queue.Queue(self.config.queue_maxsize)
        self._writer: Writer | None = None
        self._start_lock = threading.Lock()
        self._drops_reported = 0
        self._next_drop_report = 0.0

    def _start_writer(self) -> None:
        """Start a writer in this process (the first record, or the first after a fork)."""
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(self.config.queue_maxsize)
            self._writer = Writer(self.config, self._queue, self.stats)
            self._writer.start()
            self._pid = os.getpid()

    def emit(self, record: logging.LogRecord) -> None:
        """Enqueue the record; never blocks, never raises into the application."""
        try:
            if self._pid != os.getpid():
                self._start_writer()
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
            self.stats.logs_queued += 1
        except queue.Full:
            self.stats.logs_dropped += 1
            if time.monotonic() >= self._next_drop_report:
                self._report_drops()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _report_drops(self) -> None:
        new = self.stats.logs_dropped - self._drops_reported
        self._drops_reported = self.stats.logs_dropped
        self._next_drop_report = time.monotonic() + self.config.drop_report_interval
        print(
            f"iact CassandraHandler: queue full ({self.config.queue_maxsize}); dropped {new} record(s). "
            "Cassandra is slow or the app logs faster than it can write: raise queue_maxsize or check Cassandra.",
            file=sys.stderr,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written or spooled; False on timeout."""
        if self._writer is None or self._pid != os.getpid() or not self._writer.is_alive():
            return True
        request = FlushRequest()
        deadline = timeout if timeout is not None else self.config.close_timeout
        try:
            self._queue.put(request, timeout=deadline)
        except queue.Full:
            return False
        return request.done.wait(deadline)

    def close(self) -> None:
        """Drain within close_timeout, stop the writer; logging.shutdown calls this at exit."""
        try:
            if self._writer is not None and self._pid == os.getpid() and self._writer.is_alive():
                end = time.monotonic() + self.config.close_timeout
                self.flush(self.config.close_timeout)
                try:
                    self._queue.put(STOP, timeout=max(0.0, end - time.monotonic()))
                    self._writer.join(max(0.0, end - time.monotonic()))
                except queue.Full:
                    pass
        finally:
            super().close()

    def get_stats(self) -> dict[str, Any]:
        """Counters of this process's handler."""
        return {
            "logs_queued": self.stats.logs_queued,
            "logs_written": self.stats.logs_written,
            "logs_dropped": self.stats.logs_dropped,
            "logs_spooled": self.stats.logs_spooled,
            "batches": self.stats.batches,
            "write_errors": self.stats.write_errors,
            "last_error": self.stats.last_error,
            "queue_depth": self._queue.qsize(),
        }
