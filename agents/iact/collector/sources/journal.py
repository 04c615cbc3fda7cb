"""The systemd journal through `journalctl -o json --follow`, resumed after the saved cursor.

journalctl is used rather than the C bindings so the agent installs from wheels alone; it also
handles journal rotation and vacuuming for us. --after-cursor skips the entry at the cursor.
An entry printed without a field journald always writes is read again (journal_whole.py).
Its stderr is drained by a thread while it runs: a pipe nobody reads fills at 64 KiB, and then
journalctl blocks on its next warning and the journal stops while the agent looks healthy.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Iterator
from typing import IO

from iact.collector.sources.journal_whole import Rereader
from iact.collector.sources.records import RawJournal

log = logging.getLogger(__name__)
_CURSOR = re.compile(rb'"__CURSOR"\s*:\s*"([^"]+)"')


class StderrTail(threading.Thread):
    """Reads a pipe to its end, keeping the last `keep` bytes for the exit message.

    The first line is logged once (a warning journalctl prints, e.g. a corrupted journal file, is
    worth seeing while it runs); the rest only counts, so a chatty journalctl cannot flood the log.
    """

    def __init__(self, pipe: IO[bytes], keep: int = 4096) -> None:
        super().__init__(name="journalctl-stderr", daemon=True)
        self.pipe = pipe
        self.keep = keep
        self.bytes_read = 0
        self._tail = bytearray()
        self._lock = threading.Lock()

    def run(self) -> None:
        """Until EOF (journalctl exited); read1 returns what is there, so nothing waits for a full chunk."""
        first = True
        read = getattr(self.pipe, "read1", self.pipe.read)  # Popen's pipes are buffered: read1 has it
        try:
            while chunk := read(65536):
                with self._lock:
                    self.bytes_read += len(chunk)
                    self._tail += chunk
                    del self._tail[: -self.keep]
                    if first and b"\n" in self._tail:
                        first = False
                        line = bytes(self._tail).split(b"\n", 1)[0].decode(errors="replace").strip()
                        log.warning("journalctl: %s (further stderr is kept for its exit message)", line[:500])
        except (OSError, ValueError):  # the pipe was closed under us: nothing more to read
            pass
        finally:
            self.pipe.close()

    def text(self) -> str:
        """The last `keep` bytes read, as text."""
        with self._lock:
            return bytes(self._tail).decode(errors="replace").strip()


def journal_command(command: str, cursor: str | None, start_position: str, since: float | None = None) -> list[str]:
    """The journalctl invocation for a resume point.

    Without a cursor but with an earlier run (`since`, its last checkpoint save), entries from
    then on are read: `end` means "from the first run", not "skip what came while we were down".
    """
    argv = [command, "--output=json", "--follow", "--all", "--quiet"]
    if cursor:
        return [*argv, f"--after-cursor={cursor}", "--no-tail"]
    if since is not None:
        return [*argv, f"--since=@{int(since)}", "--no-tail"]
    return [*argv, "--lines=all" if start_position == "beginning" else "--lines=0"]


class JournalSource:
    """Yields raw JSON entries until stop(); restarts journalctl (after the last read entry) if it dies."""

    def __init__(
        self, command: str, cursor: str | None, start_position: str, max_bytes: int, since: float | None = None
    ) -> None:
        self.command = command
        self.cursor = cursor
        self.since = since
        self.start_position = start_position
        self.max_bytes = max_bytes
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self.entries_read = 0
        self._rereader = Rereader(command, max_bytes, self._stopped)

    @property
    def entries_reread(self) -> int:
        """Entries printed without a field journald always writes, completed by reading them again."""
        return self._rereader.reread

    @property
    def entries_incomplete(self) -> int:
        """Entries passed on still without such a field (logged, at most once a minute)."""
        return self._rereader.incomplete

    def stop(self) -> None:
        """Make entries() return soon."""
        self._stopped.set()
        self._rereader.stop()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()

    def entries(self) -> Iterator[RawJournal]:
        """Entries in journal order, forever (until stop)."""
        backoff = 1.0
        while not self._stopped.is_set():
            argv = journal_command(self.command, self.cursor, self.start_position, self.since)
            try:
                self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as exc:
                log.error("cannot run %s (%s); install systemd's journalctl or set sources.journal.enabled: false",
                          argv[0], exc)  # fmt: skip
                self._stopped.wait(min(backoff, 60))
                backoff *= 2
                continue
            assert self.proc.stdout is not None and self.proc.stderr is not None
            stderr = StderrTail(self.proc.stderr)
            stderr.start()
            while True:
                line = self.proc.stdout.readline(self.max_bytes)
                if not line:
                    break
                cut = 0
                if not line.endswith(b"\n"):  # longer than the limit: keep the head, skip the rest
                    while (more := self.proc.stdout.readline(self.max_bytes)) and not more.endswith(b"\n"):
                        cut += len(more)
                    cut += len(more)
                m = _CURSOR.search(line)
                if m:
                    cursor = m.group(1).decode()
                    if not cut:  # a cut line lacks fields by design
                        whole = self._rereader.whole(line, cursor)
                        if whole is None:  # stopped while reading it again: the next start reads it
                            self.proc.kill()  # a journalctl blocked on a full pipe may not end on SIGTERM
                            break
                        line, cut = whole
                    self.cursor = cursor
                self.entries_read += 1
                backoff = 1.0
                yield RawJournal(line, cut)
            rc = self.proc.wait()
            self.proc.stdout.close()
            stderr.join(5.0)  # EOF follows the exit, unless a child of journalctl still holds the pipe
            if self._stopped.is_set():
                return
            log.error("journalctl exited with %s (%d bytes on stderr, ending: %s); restarting after the last entry",
                      rc, stderr.bytes_read, stderr.text()[-500:])  # fmt: skip
            self._stopped.wait(min(backoff, 60))
            backoff *= 2
