"""The handler's counters and what it says about drops: shared by the handler and its writer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

TOO_FAST = "the app logs faster than Cassandra takes records: raise queue_maxsize, or check Cassandra's load"


@dataclass
class FlushRequest:
    """Put on the queue; done is set once the writer handled it, ok says whether all before it is safe.

    Until `deadline` (monotonic) the writer keeps retrying rows nobody took, so a flush with a
    timeout rides out a transient failure instead of reporting it.
    """

    deadline: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


@dataclass
class Stats:
    """Counters read by get_stats(); the two written from application threads go through the lock."""

    logs_queued: int = 0
    logs_written: int = 0
    logs_dropped: int = 0
    logs_spooled: int = 0
    batches: int = 0
    write_errors: int = 0
    writer_errors: int = 0
    last_error: str | None = None
    cause: str = TOO_FAST  # why records are not taken as fast as they come, for the drop reports
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def queued(self) -> None:
        """One record enqueued (any thread; `+=` alone loses counts between threads)."""
        with self.lock:
            self.logs_queued += 1

    drops_reported: int = 0
    next_drop_report: float = 0.0

    def dropped(self, n: int = 1) -> None:
        """n records lost (any thread)."""
        with self.lock:
            self.logs_dropped += n

    def drops_to_report(self, interval: float) -> tuple[int, int] | None:
        """(new, total) drops when a report is due (at most one per interval), else None."""
        with self.lock:
            now = time.monotonic()
            if self.logs_dropped <= self.drops_reported or now < self.next_drop_report:
                return None
            new, self.drops_reported = self.logs_dropped - self.drops_reported, self.logs_dropped
            self.next_drop_report = now + interval
            return new, self.logs_dropped


def drop_report(queue_maxsize: int, new: int, total: int, cause: str) -> str:
    """The periodic stderr line about dropped records, with what is really in the way."""
    return (
        f"iact CassandraHandler: dropped {new} record(s) since the last report, {total} in all "
        f"(logs_dropped; queue_maxsize {queue_maxsize}): {cause}."
    )
