"""Entries journalctl printed without a field journald always writes are read again by their cursor.

A follower races journald's writes: sd-journal skips an entry's data object it cannot read at that
instant (sd_journal_enumerate_data treats EADDRNOTAVAIL and EBADMSG as "skip this field", logged at
debug level only), so `journalctl --follow` can print an entry without its MESSAGE, and read again
moments later the entry is whole. CI run 46 stored `run=a9043330 seq=676` from the journal as ''
that way while every Cassandra node restarted; systemd#40263 reports the same from libsystemd.

Which entries are suspect is decided from fields a client cannot set or leave out: journald adds
_TRANSPORT to every entry, _PID/_UID/_GID (the socket's credentials) to every syslog, stdout and
native one, and MESSAGE and PRIORITY to every syslog, stdout and kernel one. (_BOOT_ID is printed
from the entry's header, so it is never missing.) A tear of a field journald may leave out
(_COMM, _SYSTEMD_UNIT: the sender may be gone before journald looks) cannot be told from its absence.
A native entry may lack MESSAGE on purpose, and any local user can send such entries: they are
suspect, not proof. Re-reading is bounded by a share of the source's time per kind, so neither a
flood of such entries nor a journal file with a bad object (whose entries stay torn) can make the
source crawl; such an entry is passed on as read, counted and logged.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_CURSOR = re.compile(rb'"__CURSOR"\s*:\s*"([^"]+)"')
_TRANSPORT = re.compile(rb'"_TRANSPORT"\s*:\s*"([a-z]+)"')
_CREDENTIALS = ("_PID", "_UID", "_GID")
# What journald writes whatever the client sent, by transport; "journal" is the native protocol.
_BY_TRANSPORT = {
    b"syslog": ("MESSAGE", "PRIORITY", *_CREDENTIALS),
    b"stdout": ("MESSAGE", "PRIORITY", *_CREDENTIALS),
    b"journal": _CREDENTIALS,
    b"kernel": ("MESSAGE", "PRIORITY"),
    b"audit": ("MESSAGE",),
    b"driver": ("MESSAGE",),
}


def _key(name: str) -> re.Pattern[bytes]:
    # A key in journalctl's JSON is a quoted name followed by a colon; a quote inside a value is
    # escaped, and a value is followed by a comma or a brace, so a value cannot pass for a key.
    return re.compile(b'"' + name.encode() + rb'"\s*:')


_KEYS = {name: _key(name) for name in {"_TRANSPORT", "MESSAGE", *(f for fs in _BY_TRANSPORT.values() for f in fs)}}


def missing_fields(line: bytes) -> tuple[list[str], bool]:
    """(the fields journald writes that the line lacks, whether journald guarantees them).

    Native entries without MESSAGE come back as (["MESSAGE"], False): suspect, not proof.
    """
    m = _TRANSPORT.search(line)
    expected = _BY_TRANSPORT.get(m.group(1), ()) if m else ("_TRANSPORT",)
    missing = [name for name in expected if not _KEYS[name].search(line)]
    if missing:
        return missing, True
    if not _KEYS["MESSAGE"].search(line):
        return ["MESSAGE"], False
    return [], False


def _keys(line: bytes) -> frozenset[str] | None:
    """The entry's field names (the order journalctl prints them in differs from one run to the next)."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return frozenset(entry) if isinstance(entry, dict) else None


class Budget:
    """A share of the source's time, in seconds: `share` a second on average, `burst` at once."""

    def __init__(self, share: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.share, self.burst, self.clock = share, burst, clock
        self.seconds, self.at = burst, clock()

    def _refill(self) -> None:
        now = self.clock()
        self.seconds = min(self.burst, self.seconds + (now - self.at) * self.share)
        self.at = now

    def available(self) -> bool:
        """Whether any time is left (a reading may overdraw it; the next waits until it is paid back)."""
        self._refill()
        return self.seconds > 0

    def charge(self, seconds: float) -> None:
        """Time spent reading again."""
        self._refill()
        self.seconds -= seconds


class Rereader:
    """Completes a torn entry from a fresh journalctl, which opens the journal files as they are now."""

    # Before each reading: the first at once (a new process is itself some milliseconds later). A
    # reading with no more fields than the last one ends the attempts: the tear is in the file.
    DELAYS = (0.0, 0.25)
    TIMEOUT = 5.0  # for one reading; stop() ends it at once

    def __init__(self, command: str, max_bytes: int, stopped: threading.Event) -> None:
        self.command = command
        self.max_bytes = max_bytes
        self.stopped = stopped
        self.reread = 0  # entries completed by a second reading
        self.incomplete = 0  # entries passed on still lacking a field journald guarantees
        self._guaranteed = Budget(0.1, 5.0)  # a tenth of the time: torn entries are rare
        self._optional = Budget(0.02, 1.0)  # native entries without MESSAGE: anyone can send them
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._warned_at = float("-inf")
        self._unwarned = 0

    def stop(self) -> None:
        """End a reading under way (stopped is set first, so no other starts)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()

    def whole(self, line: bytes, cursor: str) -> tuple[bytes, int] | None:
        """(the entry, bytes cut from it): the line unless a reading by cursor completes it; None if
        stopped meanwhile (the entry is not passed on, so the next start reads it again)."""
        missing, guaranteed = missing_fields(line)
        if not missing:
            return line, 0
        budget = self._guaranteed if guaranteed else self._optional
        if not budget.available():
            return self._torn(line, cursor, missing, guaranteed, "the time allowed for re-reading is spent")
        keys = _keys(line)
        stderr = ""
        for delay in self.DELAYS:
            if self.stopped.wait(delay):
                return None
            started = time.monotonic()
            again, stderr = self._read(cursor)
            budget.charge(time.monotonic() - started)
            if self.stopped.is_set():
                return None
            if again is None:
                break  # gone, or journalctl failed: a second try would not do better
            if again[1] or not missing_fields(again[0])[0]:  # whole, or over the limit as any long entry
                self.reread += 1
                return again
            keys_again = _keys(again[0])
            if keys is not None and keys_again is not None and keys_again <= keys:
                break  # no field came back: torn in the file, not by a race
            keys = keys_again
        return self._torn(line, cursor, missing, guaranteed, f"a reading by its cursor did not complete it{stderr}")

    def _torn(self, line: bytes, cursor: str, missing: list[str], guaranteed: bool, why: str) -> tuple[bytes, int]:
        """Passes a torn entry on: counted and logged if journald guarantees what it lacks."""
        if not guaranteed:
            return line, 0
        self.incomplete += 1
        now = time.monotonic()
        if now - self._warned_at < 60:  # a file with a bad object tears every entry that uses it
            self._unwarned += 1
            return line, 0
        more = f" ({self._unwarned} more since the last such warning)" if self._unwarned else ""
        self._warned_at, self._unwarned = now, 0
        log.warning(
            "journal entry %s arrived without %s (%s); it is stored as journalctl printed it%s. "
            "`journalctl -o verbose --cursor='%s' -n1` shows what the journal holds; "
            "`journalctl --verify` finds a damaged journal file",
            cursor, ", ".join(missing), why, more, cursor,
        )  # fmt: skip
        return line, 0

    def _read(self, cursor: str) -> tuple[tuple[bytes, int] | None, str]:
        """(the entry at `cursor` as a new journalctl prints it, or None: gone, another entry, or the
        reading failed; the end of journalctl's stderr, or why it failed, for the warning). Never raises:
        a failed reading leaves the entry as it was, it does not stop the journal."""
        try:
            return self._run(cursor)
        except (OSError, RuntimeError, ValueError) as exc:  # no fd, no thread, no disk for stderr
            return None, f"; cannot read it again: {exc}"

    def _run(self, cursor: str) -> tuple[tuple[bytes, int] | None, str]:
        argv = [self.command, "--output=json", "--all", "--quiet", f"--cursor={cursor}", "--lines=1"]
        with tempfile.TemporaryFile() as err:
            with self._lock:
                if self.stopped.is_set():
                    return None, ""
                self._proc = proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
            watchdog = threading.Timer(self.TIMEOUT, proc.kill)
            try:
                watchdog.start()
                assert proc.stdout is not None
                first = proc.stdout.readline(self.max_bytes)
                cut = 0
                if first and not first.endswith(b"\n"):  # over the limit: keep the head, count the rest
                    while (more := proc.stdout.readline(self.max_bytes)) and not more.endswith(b"\n"):
                        cut += len(more)
                    cut += len(more)
            finally:  # one line is all it was asked for; whatever happened, the process ends here
                watchdog.cancel()
                proc.kill()
                proc.wait()
                proc.stdout.close()  # type: ignore[union-attr]
                with self._lock:
                    self._proc = None
            err.seek(0)
            text = err.read()[-300:].decode(errors="replace").strip()
        stderr = f"; journalctl said: {text}" if text else ""
        m = _CURSOR.search(first)
        if not m or m.group(1).decode(errors="replace") != cursor or (cut == 0 and not first.endswith(b"\n")):
            return None, stderr  # vacuumed (journalctl sought the nearest entry), killed, or nothing printed
        return (first, cut), stderr
