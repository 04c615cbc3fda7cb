"""Rows that can never be written, kept with their error instead of blocking or vanishing.

A row lands here only when retrying cannot help (its values do not fit the table, the server
refuses it as invalid, it cannot be encoded): retrying it would stop every row behind it, and
dropping it silently would break the promise that every line is accounted for. The file is JSON
lines, bounded (one previous generation kept), so an operator can read, fix and re-send.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class DeadLetter:
    """Append-only, size-bounded record of rejected rows; `count` is shown in status."""

    def __init__(self, path: str | os.PathLike[str] | None, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = Path(path) if path else None
        self.max_bytes = max_bytes
        self.count = 0
        self.last_reason: str | None = None
        self.last_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self, row: Any, reason: str) -> None:
        """Record one rejected row (a dict, or the raw text of one)."""
        with self._lock:
            self.count += 1
            self.last_reason = reason
            self.last_at = time.time()
            entry = {
                "at": datetime.now(UTC).isoformat(),
                "reason": reason,
                "row": row if isinstance(row, str) else repr(row),
            }
            log.error("row set aside in the dead-letter file %s: %s", self.path or "(none configured)", reason)
            if self.path is None:
                return
            line = (json.dumps(entry, ensure_ascii=True) + "\n").encode()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if self.path.exists() and self.path.stat().st_size + len(line) > self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.error("cannot write the dead-letter file %s (%s); the row is only in this log: %s",
                          self.path, exc, entry)  # fmt: skip
