"""Acknowledged positions of every source, persisted atomically (write, fsync, rename).

A position only moves here after the rows up to it are safe (written to Cassandra, or fsynced to
the spool that is replayed before anything else). A crash therefore re-reads at most the lines
after the last save, and their deterministic row keys turn the re-send into overwrites.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

VERSION = 1


@dataclass
class FileState:
    """One file generation: identity, where its line ids come from, and the acknowledged offset."""

    key: str  # frozen at discovery; part of every line id of this file
    source: str
    path: str
    dev: int
    ino: int
    fp: str  # sha256 of the first fp_len bytes
    fp_len: int
    offset: int
    last_ts: str | None = None  # time of the line ending at `offset`, for lines that carry none
    first_seen: str = ""
    closed_at: float | None = None  # set when rotated away and read to the end


@dataclass
class Position:
    """What one acknowledged row moves: a file offset (key = file key) or the journal cursor."""

    key: str
    end: int | str
    ts: str | None


class Checkpoints:
    """Thread-safe store; save() is cheap to call often (it writes only when something changed)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.files: dict[str, FileState] = {}
        self.journal_cursor: str | None = None
        self.known_paths: set[str] = set()
        self.last_saved: float | None = None  # when the previous run last saved (None: first run)
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"checkpoint file {self.path} is unreadable ({exc}); move it away to start again from "
                "the configured start_position (lines since the last checkpoint may then be skipped)"
            ) from exc
        for item in data.get("files", []):
            state = FileState(**item)
            self.files[state.key] = state
        self.journal_cursor = data.get("journal_cursor")
        self.last_saved = data.get("saved_at")
        self.known_paths = set(data.get("known_paths", [])) | {s.path for s in self.files.values()}

    def register(self, state: FileState) -> None:
        """A new file generation: saved at once, so its key is fixed before any of its rows are sent."""
        with self.lock:
            self.files[state.key] = state
            self.known_paths.add(state.path)
            self._dirty = True
        self.save()

    def ack(self, positions: dict[str, Position]) -> None:
        """Rows up to these positions are safe."""
        with self.lock:
            for pos in positions.values():
                if pos.key == "journal":
                    self.journal_cursor = str(pos.end)
                elif (state := self.files.get(pos.key)) is not None and int(pos.end) >= state.offset:
                    state.offset = int(pos.end)
                    state.last_ts = pos.ts
            self._dirty = True

    def close(self, key: str) -> None:
        """A rotated file was read to its end."""
        with self.lock:
            if key in self.files:
                self.files[key].closed_at = time.time()
                self._dirty = True

    def forget_closed(self, older_than: float = 7 * 86400) -> None:
        """Drop generations closed long ago (their files are rotated out of existence by then)."""
        cutoff = time.time() - older_than
        with self.lock:
            for key in [k for k, s in self.files.items() if s.closed_at and s.closed_at < cutoff]:
                del self.files[key]
                self._dirty = True

    def forget(self, key: str) -> None:
        """A file vanished before it could be read to its end."""
        with self.lock:
            if self.files.pop(key, None) is not None:
                self._dirty = True

    def save(self) -> None:
        """Write the file if anything changed; atomic, so a crash leaves the old or the new one."""
        with self._save_lock:
            self._save()

    def _save(self) -> None:
        with self.lock:
            if not self._dirty:
                return
            data = {
                "version": VERSION,
                "files": [asdict(s) for s in self.files.values()],
                "journal_cursor": self.journal_cursor,
                "known_paths": sorted(self.known_paths),
                "saved_at": time.time(),
            }
            self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
