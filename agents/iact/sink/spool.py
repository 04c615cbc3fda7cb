"""A bounded on-disk FIFO of rows for when Cassandra is unreachable: SQLite in WAL mode.

Why SQLite and not JSON lines: a spool must survive exactly the moments it exists for (kill -9
during a large append, a full disk, power loss, a crash between "delete what was replayed" and
"remember where replay stopped"). SQLite's atomic commit gives that for free: an append is one
transaction, replay acknowledges by deleting rows up to an id in one transaction, and a torn
write is rolled back on the next open. Freed pages are reused, so a flapping cluster cannot grow
the file beyond the limit plus SQLite's own overhead.

One process owns a spool at a time, enforced by an exclusive flock on a sidecar `.lock` file:
the kernel drops the lock when the owner dies, however it dies, so "is the owner alive?" never
depends on pids (which are reused, and differ between pid namespaces).

Spools written by versions before 0.3 (JSON lines plus an `.offset` file) are imported on open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SQLITE_MAGIC = b"SQLite format 3\x00"


class SpoolLocked(RuntimeError):
    """Another live process owns this spool."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def try_lock(path: Path) -> int | None:
    """An exclusive flock on path (created if needed): the fd, or None if a live process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class Spool:
    """Append rows, replay them in order, forget them once delivered.

    `reject(raw, reason)` receives what cannot be stored or read back (a row JSON cannot encode,
    a stored row that no longer decodes), so one bad row is set aside, never retried forever.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int,
        encode: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r,
        decode: Callable[[dict[str, Any]], dict[str, Any]] = lambda r: r,
        reject: Callable[[str, str], None] | None = None,
        lock_timeout: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.max_bytes = max_bytes
        self._encode, self._decode = encode, decode
        self._reject = reject or (
            lambda raw, reason: log.error("spool %s: dropped a row (%s): %.200s", path, reason, raw)
        )
        self._lock = threading.Lock()
        self.last_error: str | None = None
        new_dir = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if new_dir:
            _fsync_dir(self.path.parent.parent)
        self._lock_fd = self._acquire(lock_timeout)
        self._db: sqlite3.Connection | None = None
        self._pending = 0
        self._next_open = 0.0
        try:
            self._ensure()
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _ensure(self) -> bool:
        """Open the database if it is not; False while it cannot be (its disk is full, say).

        Until then, an existing spool file counts as pending, so new rows never overtake it.
        """
        if self._db is not None:
            return True
        if time.monotonic() < self._next_open:
            return False
        try:
            self._db = self._open()
        except sqlite3.OperationalError as exc:
            self._next_open = time.monotonic() + 1.0
            self.last_error = f"spool {self.path} cannot be opened ({exc}); free space on its disk"
            log.error("%s", self.last_error)
            legacy = self.path.with_name(self.path.name + ".v1")
            self._pending = sum(p.stat().st_size for p in (self.path, legacy) if p.exists())
            return False
        self._pending = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM spool").fetchone()[0]
        self.last_error = None
        return True

    # -- opening ---------------------------------------------------------------------------------
    def _acquire(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (fd := try_lock(self.lock_path)) is None:
            if time.monotonic() >= deadline:
                raise SpoolLocked(
                    f"spool {self.path} is in use by another process (flock on {self.lock_path}); "
                    "run one agent per spool path, or give each its own spool path"
                )
            time.sleep(0.05)
        return fd

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a committed append is on disk before the checkpoint moves
        db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, size INTEGER NOT NULL, "
            "data TEXT NOT NULL)"
        )
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check failed")
        return db

    def _open(self) -> sqlite3.Connection:
        legacy = self.path.with_name(self.path.name + ".v1")
        if self.path.exists():
            with open(self.path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
            if head and head != SQLITE_MAGIC:
                os.replace(self.path, legacy)
        try:
            db = self._connect()
        except sqlite3.OperationalError:
            raise  # a full disk or a permission problem, not damage: keep the file, try again later
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    os.replace(src, Path(str(aside) + suffix))
            log.error(
                "spool %s is damaged (%s); moved it to %s and started an empty one. Rows in it may need "
                "replaying by hand (sqlite3 %s 'SELECT data FROM spool')",
                self.path, exc, aside, aside,
            )  # fmt: skip
            db = self._connect()
        _fsync_dir(self.path.parent)
        if legacy.exists():  # on every open, until imported: a crash or a full disk mid-import loses nothing
            try:
                self._import_legacy(db, legacy)
            except BaseException:
                db.close()
                raise
        return db

    def _import_legacy(self, db: sqlite3.Connection, legacy: Path) -> None:
        """JSON lines from an older agent, from its replay offset; torn or garbled lines are rejected."""
        offset_file = self.path.with_name(self.path.name + ".offset")
        try:
            offset = int(offset_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            offset = 0
        rows = []
        with open(legacy, "rb") as f:
            f.seek(offset)
            for line in f:
                text = line.decode("utf-8", "replace").rstrip("\n")
                try:
                    json.loads(text)
                except ValueError:
                    self._reject(text, "unreadable line in a version-1 spool")
                    continue
                rows.append((len(text), text))
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO spool (size, data) VALUES (?, ?)", rows)
        legacy.unlink()
        offset_file.unlink(missing_ok=True)
        log.info("imported %d rows from the version-1 spool %s", len(rows), legacy)

    # -- the FIFO ---------------------------------------------------------------------------------
    def pending_bytes(self) -> int:
        """Bytes of rows written but not yet replayed."""
        return self._pending

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append as many rows as fit, in one transaction; return how many were kept.

        Fewer than len(rows) means the spool is full, or its disk is (then `last_error` says so):
        the caller keeps the rest. Rows JSON cannot encode are handed to `reject` and count as kept.
        """
        with self._lock:
            if not self._ensure():
                return 0
            assert self._db is not None
            encoded: list[tuple[int, str]] = []
            size = self._pending
            kept = 0
            for row in rows:
                try:
                    text = json.dumps(self._encode(row), ensure_ascii=False, separators=(",", ":"))
                    text.encode("utf-8")  # lone surrogates cannot be stored
                except (TypeError, ValueError) as exc:
                    self._reject(repr(row), f"cannot be spooled: {exc}")
                    kept += 1
                    continue
                if size + len(text) > self.max_bytes:
                    break
                encoded.append((len(text), text))
                size += len(text)
                kept += 1
            if not encoded:
                return kept
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.executemany("INSERT INTO spool (size, data) VALUES (?, ?)", encoded)
            except sqlite3.Error as exc:
                self.last_error = f"spool {self.path} cannot be written ({exc}); free space on its disk"
                log.error("%s", self.last_error)
                return 0
            self.last_error = None
            self._pending = size
            return kept

    def chunks(self, max_rows: int) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Yield (rows, last id) in order; ack(last id) forgets them."""
        last = 0
        while True:
            with self._lock:
                if not self._ensure():
                    return
                assert self._db is not None
                found = self._db.execute(
                    "SELECT id, data FROM spool WHERE id > ? ORDER BY id LIMIT ?", (last, max_rows)
                ).fetchall()
            if not found:
                return
            rows = []
            for _row_id, data in found:
                try:
                    rows.append(self._decode(json.loads(data)))
                except (TypeError, ValueError, KeyError) as exc:
                    self._reject(data, f"spooled row cannot be decoded: {exc}")
            last = found[-1][0]
            yield rows, last

    def ack(self, last_id: int) -> None:
        """Rows up to last_id are in Cassandra (or set aside): delete them in one transaction.

        If that fails (a full disk), they stay and are sent again later: rows are idempotent.
        """
        with self._lock:
            assert self._db is not None, "ack() follows chunks(), which opened the database"
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    query = "SELECT COALESCE(SUM(size), 0) FROM spool WHERE id <= ?"
                    (gone,) = self._db.execute(query, (last_id,)).fetchone()
                    self._db.execute("DELETE FROM spool WHERE id <= ?", (last_id,))
                self._pending = max(0, self._pending - gone)
                if self._pending == 0:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                if self._all_replayed(last_id):
                    # Deleting rows needs free space for the WAL; deleting the file needs none. On a
                    # full disk that is the only way a spool can ever shrink.
                    self._reset()
                    return
                self.last_error = f"spool {self.path}: cannot forget replayed rows ({exc}); they will be sent again"
                log.error("%s", self.last_error)

    def _all_replayed(self, last_id: int) -> bool:
        assert self._db is not None
        try:
            (top,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM spool").fetchone()
        except sqlite3.Error:
            return False
        return last_id >= top

    def _reset(self) -> None:
        """Every row was replayed: remove the database files and start an empty one."""
        assert self._db is not None
        self._db.close()
        self._db = None
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        self._pending = 0
        self._next_open = 0.0
        self._ensure()

    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        with self._lock:
            if self._lock_fd < 0:
                return
            if self._db is not None:
                self._db.close()
            os.close(self._lock_fd)
            self._lock_fd = -1
