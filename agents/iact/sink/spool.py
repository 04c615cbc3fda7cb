"""A bounded on-disk FIFO of rows for when Cassandra is unreachable.

Rows are appended as JSON lines; a sidecar file holds the offset already replayed, written
atomically (write, fsync, rename), so a crash during replay re-sends at most one chunk, which
the deterministic row keys turn into overwrites, not duplicates.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class Spool:
    """Append rows, replay them in order, forget them once delivered."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int,
        encode: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r,
        decode: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r,
    ) -> None:
        self.path = Path(path)
        self.offset_path = self.path.with_name(self.path.name + ".offset")
        self.max_bytes = max_bytes
        self._encode, self._decode = encode, decode
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _set_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(str(offset))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.offset_path)

    def pending_bytes(self) -> int:
        """Bytes written but not yet replayed."""
        try:
            return max(0, self.path.stat().st_size - self._offset())
        except FileNotFoundError:
            return 0

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append as many rows as fit; return how many were kept (the rest did not fit)."""
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            kept = 0
            with open(self.path, "ab") as f:
                for row in rows:
                    line = (json.dumps(self._encode(row), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                    if size - self._offset() + len(line) > self.max_bytes:
                        break
                    f.write(line)
                    size += len(line)
                    kept += 1
                f.flush()
                os.fsync(f.fileno())
            return kept

    def chunks(self, max_rows: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Yield (rows, end offset) in order from the replay offset."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below, iterated lazily
        except FileNotFoundError:
            return
        with f:
            f.seek(self._offset())
            rows: list[dict[str, Any]] = []
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a torn last line from a crash: skip it
                rows.append(self._decode(json.loads(line)))
                if len(rows) >= max_rows:
                    yield rows, f.tell()
                    rows = []
            if rows:
                yield rows, f.tell()

    def ack(self, offset: int) -> None:
        """Rows up to offset are in Cassandra; reset the files once everything is."""
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if offset >= size:
                self.path.unlink(missing_ok=True)
                self.offset_path.unlink(missing_ok=True)
            else:
                self._set_offset(offset)
