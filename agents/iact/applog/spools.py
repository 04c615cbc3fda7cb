"""The writer's spools: SQLite calls fenced off from fork(), a stand-in when none can be opened, cleanup.

Kept apart from the writer's loop: these are about files and processes, the loop about records.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from iact.sink.cassandra import CassandraSink, Reject, SinkError
from iact.sink.spool import Spool, try_lock


class OutcomeSink(CassandraSink):
    """Remembers whether the last attempt reached Cassandra, to say why rows are waiting."""

    failure: str | None = None

    def write(self, rows: Sequence[dict[str, Any]], reject: Reject | None = None) -> int:
        """CassandraSink.write, noting the outcome."""
        try:
            written = super().write(rows, reject)
        except SinkError as exc:
            self.failure = str(exc)
            raise
        self.failure = None
        return written


# SQLite has process-wide mutexes. A fork while the writer thread is inside SQLite copies them
# locked into the child, where nobody ever unlocks them: the child's first spool open hangs for
# good. So every spool call of the writer holds this guard, and an at-fork hook takes it first:
# a fork waits for the call in progress (milliseconds), never for a network round trip. Hooks
# registered later run first before a fork, so this one runs before logging's takes its lock
# (a spool call may log).
SQLITE_GUARD = threading.Lock()
os.register_at_fork(
    before=SQLITE_GUARD.acquire, after_in_parent=SQLITE_GUARD.release, after_in_child=SQLITE_GUARD.release
)


class GuardedSpool(Spool):
    """A Spool whose SQLite calls hold SQLITE_GUARD, so a fork never lands in the middle of one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with SQLITE_GUARD:
            super().__init__(*args, **kwargs)

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Spool.append under the guard."""
        with SQLITE_GUARD:
            return super().append(rows)

    def chunks(self, max_rows: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Spool.chunks, each step under the guard (not while the caller writes the chunk)."""
        steps = super().chunks(max_rows)
        while True:
            with SQLITE_GUARD:
                chunk = next(steps, None)
            if chunk is None:
                return
            yield chunk

    def ack(self, last_id: int) -> None:
        """Spool.ack under the guard."""
        with SQLITE_GUARD:
            super().ack(last_id)

    def close(self) -> None:
        """Spool.close under the guard."""
        with SQLITE_GUARD:
            super().close()


class NoSpool:
    """Stands in for a spool that cannot be opened: rows still go to Cassandra directly."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = Path(path)
        self.max_bytes = 0
        self.last_error: str | None = reason

    def pending_bytes(self) -> int:
        """Nothing is ever stored here."""
        return 0

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Takes nothing; the writer keeps the rows."""
        return 0

    def chunks(self, max_rows: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Nothing to replay."""
        return iter(())

    def ack(self, last_id: int) -> None:
        """Nothing to forget."""

    def close(self) -> None:
        """Nothing to release."""


def free_space_note(path: Path) -> str:
    """Say so when the spool's filesystem is (nearly) full: SQLite's error does not name the disk."""
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return ""
    free = st.f_bavail * st.f_frsize
    return f" [{os.strerror(errno.ENOSPC)}: {free} bytes free in {path.parent}]" if free < 1024 * 1024 else ""


def remove_spool_files(spool: Spool) -> None:
    """Close an empty spool and delete its files, under its lock so no other process is using it."""
    spool.close()
    fd = try_lock(spool.lock_path)
    if fd is None:  # another process adopted it in the meantime; it will clean up
        return
    try:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with suppress(FileNotFoundError):
                os.unlink(f"{spool.path}{suffix}")
        with suppress(FileNotFoundError):
            os.unlink(spool.lock_path)
    finally:
        os.close(fd)
