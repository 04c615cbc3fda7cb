"""The systemd journal through `journalctl -o json --follow`, resumed after the saved cursor.

journalctl is used rather than the C bindings so the agent installs from wheels alone; it also
handles journal rotation and vacuuming for us. --after-cursor skips the entry at the cursor.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Iterator

from iact.collector.sources.records import RawJournal

log = logging.getLogger(__name__)
_CURSOR = re.compile(rb'"__CURSOR"\s*:\s*"([^"]+)"')


def journal_command(command: str, cursor: str | None, start_position: str) -> list[str]:
    """The journalctl invocation for a resume point."""
    argv = [command, "--output=json", "--follow", "--all", "--quiet"]
    if cursor:
        return [*argv, f"--after-cursor={cursor}", "--no-tail"]
    return [*argv, "--lines=all" if start_position == "beginning" else "--lines=0"]


class JournalSource:
    """Yields raw JSON entries until stop(); restarts journalctl (after the last read entry) if it dies."""

    def __init__(self, command: str, cursor: str | None, start_position: str, max_bytes: int) -> None:
        self.command = command
        self.cursor = cursor
        self.start_position = start_position
        self.max_bytes = max_bytes
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self.entries_read = 0

    def stop(self) -> None:
        """Make entries() return soon."""
        self._stopped.set()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()

    def entries(self) -> Iterator[RawJournal]:
        """Entries in journal order, forever (until stop)."""
        backoff = 1.0
        while not self._stopped.is_set():
            argv = journal_command(self.command, self.cursor, self.start_position)
            try:
                self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as exc:
                log.error("cannot run %s (%s); install systemd's journalctl or set sources.journal.enabled: false",
                          argv[0], exc)  # fmt: skip
                self._stopped.wait(min(backoff, 60))
                backoff *= 2
                continue
            assert self.proc.stdout is not None
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
                    self.cursor = m.group(1).decode()
                self.entries_read += 1
                backoff = 1.0
                yield RawJournal(line, cut)
            rc = self.proc.wait()
            if self._stopped.is_set():
                return
            err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
            log.error("journalctl exited with %s: %s; restarting after the last entry read", rc, err[-500:])
            self._stopped.wait(min(backoff, 60))
            backoff *= 2
