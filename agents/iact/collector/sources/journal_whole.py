"""Entries journalctl printed without a field journald always writes are read again by their cursor.

A follower races journald's writes: sd-journal skips an entry's data object it cannot read at that
instant (sd_journal_enumerate_data treats EADDRNOTAVAIL and EBADMSG as "skip this field", logged at
debug level only), so `journalctl --follow` can print an entry without its MESSAGE, and read again
moments later the entry is whole. CI run 46 stored `run=a9043330 seq=676` from the journal as ''
that way while every Cassandra node restarted; systemd#40263 reports the same from libsystemd.

Which entries are suspect is decided from fields a client cannot set or leave out: journald adds
_TRANSPORT and _BOOT_ID to every entry, and MESSAGE and PRIORITY to every syslog, stdout and kernel
one. An entry sent over the native protocol may lack MESSAGE on purpose, and any local user can send
such entries, so those are read again only within a small budget: a flood of them cannot turn the
source into one journalctl run per entry.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_CURSOR = re.compile(rb'"__CURSOR"\s*:\s*"([^"]+)"')
_TRANSPORT = re.compile(rb'"_TRANSPORT"\s*:\s*"([a-z]+)"')
# journald writes these whatever the client sent; transports not listed may lack MESSAGE on purpose.
_ALWAYS = ("_TRANSPORT", "_BOOT_ID")
_BY_TRANSPORT = {
    b"syslog": ("MESSAGE", "PRIORITY"),
    b"stdout": ("MESSAGE", "PRIORITY"),
    b"kernel": ("MESSAGE", "PRIORITY"),
    b"audit": ("MESSAGE",),
    b"driver": ("MESSAGE",),
}


def _key(name: str) -> re.Pattern[bytes]:
    # A key in journalctl's JSON is a quoted name followed by a colon; a quote inside a value is
    # escaped, and a value is followed by a comma or a brace, so a value cannot pass for a key.
    return re.compile(b'"' + name.encode() + rb'"\s*:')


_KEYS = {name: _key(name) for name in {*_ALWAYS, "MESSAGE", "PRIORITY"}}


def missing_fields(line: bytes) -> tuple[list[str], bool]:
    """(the fields journald writes that the line lacks, whether journald guarantees them).

    Native entries without MESSAGE come back as (["MESSAGE"], False): suspect, not proof.
    """
    m = _TRANSPORT.search(line)
    expected = [*_ALWAYS, *_BY_TRANSPORT.get(m.group(1), ())] if m else list(_ALWAYS)
    missing = [name for name in expected if not _KEYS[name].search(line)]
    if missing:
        return missing, True
    if not _KEYS["MESSAGE"].search(line):
        return ["MESSAGE"], False
    return [], False


class Budget:
    """A token bucket: `rate` takes a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.at = burst, clock()

    def take(self) -> bool:
        """One token if there is one; False means "not now", and costs nothing."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Rereader:
    """Completes a torn entry from a fresh journalctl, which opens the journal files as they are now."""

    # Before each reading: the first at once (a new process is itself some milliseconds later).
    DELAYS = (0.0, 0.2, 1.0)

    def __init__(self, command: str, max_bytes: int, stopped: threading.Event) -> None:
        self.command = command
        self.max_bytes = max_bytes
        self.stopped = stopped
        self.reread = 0  # entries completed by a second reading
        self.incomplete = 0  # entries passed on still lacking a field journald guarantees
        self._guaranteed = Budget(20, 200)  # a torn entry is rare; this only bounds an unforeseen kind
        self._optional = Budget(2, 20)  # native entries without MESSAGE: anyone can send them
        self._warned_budget = float("-inf")

    def whole(self, line: bytes, cursor: str) -> tuple[bytes, int]:
        """(the entry, bytes cut from it): the line itself unless a reading by cursor completes it."""
        missing, guaranteed = missing_fields(line)
        if not missing:
            return line, 0
        budget = self._guaranteed if guaranteed else self._optional
        if not budget.take():
            if guaranteed:
                self._give_up(cursor, missing, 0, "the re-reading budget is spent")
            return line, 0
        readings = 0
        for delay in self.DELAYS if guaranteed else self.DELAYS[:1]:
            if self.stopped.wait(delay):
                return line, 0
            readings += 1
            again = self._read(cursor)
            if again is not None and (again[1] or not missing_fields(again[0])[0]):  # whole, or cut
                self.reread += 1
                return again
        if guaranteed:
            self._give_up(cursor, missing, readings, "")
        return line, 0

    def _give_up(self, cursor: str, missing: list[str], readings: int, why: str) -> None:
        self.incomplete += 1
        now = time.monotonic()
        if not readings and now - self._warned_budget < 60:
            return  # a spent budget is said once a minute; an entry read again and still torn, each time
        if not readings:
            self._warned_budget = now
        log.warning(
            "journal entry %s arrived without %s%s; it is stored as journalctl printed it "
            "(`journalctl -o verbose --cursor='%s' -n1` shows what the journal holds now)",
            cursor, ", ".join(missing),
            f" and {readings} readings by its cursor did not complete it" if readings else f" ({why})",
            cursor,
        )  # fmt: skip

    def _read(self, cursor: str) -> tuple[bytes, int] | None:
        """The entry at `cursor` as a new journalctl prints it, or None (gone, or another entry)."""
        argv = [self.command, "--output=json", "--all", "--quiet", f"--cursor={cursor}", "--lines=1"]
        try:
            out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("cannot read journal entry %s again: %s", cursor, exc)
            return None
        first = out.stdout.split(b"\n", 1)[0]
        m = _CURSOR.search(first[: self.max_bytes])
        if not m or m.group(1).decode(errors="replace") != cursor:
            return None  # vacuumed: journalctl sought the nearest entry, which is not this one
        if len(first) + 1 > self.max_bytes:  # as the source cuts a long line: the head, and the count
            return first[: self.max_bytes], len(first) + 1 - self.max_bytes
        return first + b"\n", 0
