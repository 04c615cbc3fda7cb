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
    last_ts: str | None = None  # time of the line ending at `offset`: the reference for the next line's
    first_seen: str = ""
    closed_at: float | None = None  # set when rotated away, read to the end and every row acknowledged
    host: str | None = None  # pinned at discovery: every row of this generation keeps this host...
    tz: str | None = None  # ...and resolves stamps without a zone in this one
    end_offset: int | None = None  # rotated away and read to here; closed once acknowledged up to it
    truncated: bool = False  # copytruncate left its content in a copy that may still turn up
    origin: str | None = None  # the path it was found at: its rotations and copies are named after this one

    @property
    def live_path(self) -> str:
        """The followed path this generation came from (`syslog`, even once it is `syslog.1`)."""
        return self.origin or self.path


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
        self.journal_hosts: list[tuple[str, str]] = []  # (since, host): a rename applies to later entries
        self.known_paths: set[str] = set()
        self.last_saved: float | None = None  # when the previous run last saved (None: first run)
        # When the last finished scan for files began: a file created since and never registered was
        # never seen. Not last_saved: acknowledgements save while the reader is busy between scans.
        self.scanned_at: float | None = None
        self.saved_scan: float | None = None  # scanned_at as the previous run last saved it
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
        fields = set(FileState.__dataclass_fields__)
        for item in data.get("files", []):
            state = FileState(**{k: v for k, v in item.items() if k in fields})
            self.files[state.key] = state
        self.journal_cursor = data.get("journal_cursor")
        self.journal_hosts = [(str(a), str(b)) for a, b in data.get("journal_hosts", [])]
        self.last_saved = data.get("saved_at")
        self.saved_scan = data.get("scanned_at")
        # Until this run finishes a scan, its saves keep the previous run's: a restart's first scan
        # registers files (and saves) before it has looked for the unseen ones.
        self.scanned_at = self.unseen_since
        self.known_paths = set(data.get("known_paths", [])) | {s.path for s in self.files.values()}

    @property
    def unseen_since(self) -> float | None:
        """From when on a rotated file the previous run never registered can only be one it never saw
        (None on a first run). Files saved by an older agent have no scan time: their last save."""
        if self.last_saved is None:
            return None
        return self.saved_scan if self.saved_scan is not None else self.last_saved

    def register(self, state: FileState) -> None:
        """A new file generation: saved at once, so its key is fixed before any of its rows are sent."""
        with self.lock:
            self.files[state.key] = state
            self.known_paths.add(state.path)
            self._dirty = True
        self.save()

    def changed(self, save: bool = False) -> None:
        """A FileState was changed in place (its identity); save now if asked."""
        with self.lock:
            self._dirty = True
        if save:
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
                    self._close_if_done(state)
            self._dirty = True

    def _close_if_done(self, state: FileState) -> None:
        if state.closed_at is None and state.end_offset is not None and state.offset >= state.end_offset:
            state.closed_at = time.time()

    def finish(self, key: str, end_offset: int) -> None:
        """A rotated file was read to end_offset; it is closed once its rows are acknowledged up to there.

        Until then a restart resumes it from its acknowledged offset: rows still queued when the
        agent died are read again, not lost.
        """
        with self.lock:
            if (state := self.files.get(key)) is not None:
                state.end_offset = end_offset
                self._close_if_done(state)
                self._dirty = True

    def set_journal_host(self, host: str, since: str) -> None:
        """Entries written from `since` on belong to `host`; earlier ones keep the name they had."""
        with self.lock:
            if not self.journal_hosts or self.journal_hosts[-1][1] != host:
                self.journal_hosts = [*self.journal_hosts[-4:], (since, host)]
                self._dirty = True

    def forget_closed(self, older_than: float = 7 * 86400, prune_paths: bool = True) -> None:
        """Drop generations closed long ago, and paths no longer there, so the file stays small.

        Not the paths at start: a file being rotated may be missing for a moment, and a known path
        decides both where a reappearing file is read from and where unseen rotations are sought.
        """
        cutoff = time.time() - older_than
        with self.lock:
            for key in [k for k, s in self.files.items() if s.closed_at and s.closed_at < cutoff]:
                del self.files[key]
                self._dirty = True
            if not prune_paths:
                return
            live = {s.path for s in self.files.values()}
            gone = {p for p in self.known_paths if p not in live and not os.path.exists(p)}
            if gone:
                self.known_paths -= gone
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
                "journal_hosts": self.journal_hosts,
                "known_paths": sorted(self.known_paths),
                "saved_at": time.time(),
                "scanned_at": self.scanned_at,
            }
            self._dirty = False
        try:
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
        except OSError:
            with self.lock:
                self._dirty = True  # not saved: try again next time
            raise
