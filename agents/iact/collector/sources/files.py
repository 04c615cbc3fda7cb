"""Follow files the way logrotate leaves them: renamed, copy-truncated, deleted, recreated.

A file is known by device + inode + a hash of its first bytes (inodes are recycled, and a
copy-truncated file keeps its inode but not its first bytes). Each generation of a file gets a
key when first seen; the key and the byte offset of a line make its row id, so re-reading a
line after a crash overwrites the row instead of duplicating it.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from iact.collector.checkpoint import Checkpoints, FileState
from iact.collector.config import FileSource
from iact.collector.sources.records import RawLine
from iact.collector.zone import host_zone_name

log = logging.getLogger(__name__)

FP_BYTES = 1024
MIN_HEAD = 64
COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4", ".z", ".zip")
READ_CHUNK = 256 * 1024
MAX_CHUNKS_PER_POLL = 16  # per file, so one busy file cannot starve the others
# Looks for a copytruncate copy while rotations beside it keep renaming the siblings (see _find_copy).
COPY_LOOKUPS = 5


def _fingerprint(fd: int, length: int = FP_BYTES) -> tuple[str, int]:
    head = os.pread(fd, length, 0)
    return hashlib.sha256(head).hexdigest(), len(head)


def _identities(siblings: list[tuple[str, os.stat_result]]) -> list[tuple[str, int, int]]:
    """Which file each listed name was: a rename or a new file under an old name changes it."""
    return [(path, st.st_dev, st.st_ino) for path, st in siblings]


@dataclass
class Tracked:
    """An open file generation and the read position (ahead of the acknowledged one)."""

    state: FileState
    spec: FileSource
    fd: int
    pos: int
    line_start: int
    buf: bytearray = field(default_factory=bytearray)
    cut: int = 0
    rotated: bool = False
    last_size: int = -1
    # st_ctime_ns: changes on every write and on truncation, even back to the same size. Set from the
    # look that discovered the file, so its first read sees what changed since (-1: not known).
    last_ctime: int = -1
    checked_at: float = 0.0  # wall time of this look at the file...
    prev_checked_at: float = 0.0  # ...and of the one before: anything rotated since is a candidate
    last_growth: float = field(default_factory=time.monotonic)
    first_ts: str | None = None  # the previous line's time at the read start (or when first seen)
    follows: bool = False  # first_ts is a line's time, not the file's first sighting
    replaced_by: str = ""  # set when truncated in place: the key of the generation that continues the file

    @property
    def context(self) -> tuple[str | None, str | None, bool]:
        """What every RawLine of this generation carries for its row key: host, zone, follows."""
        return self.state.host, self.state.tz, self.follows


class FileTailer:
    """poll() yields every complete line that appeared since the last call, file by file."""

    def __init__(
        self,
        specs: Sequence[FileSource],
        checkpoints: Checkpoints,
        max_line_bytes: int = 64 * 1024,
        start_position: str = "end",
        rotate_wait: float = 5.0,
        host: str = "",
    ) -> None:
        self.specs = list(specs)
        self.host = host
        self.checkpoints = checkpoints
        self.max_line_bytes = max_line_bytes
        self.start_position = start_position
        self.rotate_wait = rotate_wait
        self.tracked: dict[str, Tracked] = {}
        self._initial = True
        self._discovered_at: float | None = None
        self._deferred_unseen: list[tuple[float | None, list[str]]] = []
        self.copies_adopted = 0
        zone_name = host_zone_name()
        for state in checkpoints.files.values():  # generations saved by an older agent: pin them now
            state.host = state.host or host
            state.tz = state.tz or zone_name

    # -- discovery -------------------------------------------------------------------------
    def _scan(self) -> dict[str, tuple[FileSource, os.stat_result]]:
        found: dict[str, tuple[FileSource, os.stat_result]] = {}
        for spec in self.specs:
            for path in sorted(glob.glob(spec.path)):
                if path in found:
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found[path] = (spec, st)
        return found

    def _open(self, path: str) -> int | None:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError:
            log.error("cannot read %s: permission denied; add the collector's user to the file's group (adm)", path)
        except OSError:
            pass
        return None

    def _matching_state(self, st: os.stat_result, fd: int) -> FileState | None:
        """A persisted generation with this identity (a restart, or a rotated file matched by a glob)."""
        for state in self.checkpoints.files.values():
            same_inode = (state.dev, state.ino) == (st.st_dev, st.st_ino) and state.key not in self.tracked
            if state.end_offset is not None or state.truncated:
                continue  # read to its end already, or its content now lives in a copy
            if same_inode and _fingerprint(fd, state.fp_len)[0] == state.fp:
                return state
        return None

    def _new_generation(
        self, spec: FileSource, path: str, st: os.stat_result, fd: int, offset: int, origin: str | None = None
    ) -> FileState:
        fp, fp_len = _fingerprint(fd)
        now = datetime.now(UTC)
        state = FileState(
            key=f"{st.st_dev}-{st.st_ino}-{fp[:12]}-{int(now.timestamp() * 1e6)}",
            source=spec.source,
            path=path,
            dev=st.st_dev,
            ino=st.st_ino,
            fp=fp,
            fp_len=fp_len,
            offset=offset,
            origin=origin or path,
            first_seen=now.isoformat(),
            host=self.host,
            tz=host_zone_name(),
        )
        self.checkpoints.register(state)
        return state

    def _already_read(self, st: os.stat_result, fd: int) -> bool:
        """Known inode with its first bytes (a finished generation), or a copy of a known generation.

        A copy of a file being followed is recognised by all the first bytes seen of it, however
        few; of other generations only by MIN_HEAD bytes or more.
        """
        for state in self.checkpoints.files.values():
            same_inode = (state.dev, state.ino) == (st.st_dev, st.st_ino)
            # A generation seen only empty has no content to read twice (and its inode may be reused).
            if same_inode and state.fp_len and _fingerprint(fd, state.fp_len)[0] == state.fp:
                return True
        live = [t.state for t in self.tracked.values() if not t.rotated and t.state.fp_len]
        return any(_fingerprint(fd, s.fp_len)[0] == s.fp for s in live) or self._known_head(fd)

    def _start_offset(self, path: str, fd: int, size: int) -> int:
        # `end` is for the very first run only: a file that appears later (created while the agent
        # was stopped, or during a reload) holds nothing the agent has ever seen.
        first_run = self._initial and self.checkpoints.last_saved is None
        if not first_run or path in self.checkpoints.known_paths or self.start_position == "beginning":
            return 0
        # Start after the last complete line, not in the middle of one being written.
        tail = os.pread(fd, min(size, 64 * 1024), max(0, size - 64 * 1024))
        nl = tail.rfind(b"\n")
        return size if nl < 0 and size > 64 * 1024 else max(0, size - len(tail) + nl + 1)

    def _track(
        self, state: FileState, spec: FileSource, fd: int, rotated: bool = False, seen: os.stat_result | None = None
    ) -> None:
        with self.checkpoints.lock:  # offset and last_ts from the same acknowledgement
            self._track_locked(state, spec, fd, rotated, seen)

    def _track_locked(
        self, state: FileState, spec: FileSource, fd: int, rotated: bool, seen: os.stat_result | None
    ) -> None:
        self.tracked[state.key] = Tracked(
            state=state, spec=spec, fd=fd, pos=state.offset, line_start=state.offset, rotated=rotated,
            first_ts=state.last_ts or state.first_seen, follows=state.last_ts is not None,
            last_ctime=seen.st_ctime_ns if seen is not None else -1,
        )  # fmt: skip

    def discover(self) -> None:
        """Notice rotations and new files; on the first call, also resume files rotated while stopped."""
        since, self._discovered_at = self._discovered_at, time.time()
        found = self._scan()
        by_identity = {(t.state.dev, t.state.ino): t for t in self.tracked.values()}
        rotated_paths = []
        for t in self.tracked.values():
            if t.rotated:
                continue
            current = found.get(t.state.path)
            if current is None or (current[1].st_dev, current[1].st_ino) != (t.state.dev, t.state.ino):
                log.info("%s was rotated or removed; reading the old file to its end", t.state.path)
                rotated_paths.append(t.state.path)
                self._follow_rename(t)
                t.rotated = True
                t.last_growth = time.monotonic()
        for path, (spec, st) in found.items():
            if (st.st_dev, st.st_ino) in by_identity:
                continue
            fd = self._open(path)
            if fd is None:
                continue
            st = os.fstat(fd)  # what was opened: the path may have been rotated since the scan
            if (st.st_dev, st.st_ino) in by_identity:
                os.close(fd)
                continue
            state = self._matching_state(st, fd)
            if state is None and self._already_read(st, fd):
                # A glob that matches rotated names (`*.log` with dateext, `syslog*`): this file is a
                # generation read to its end, or a copy of one that copytruncate is making. Its lines
                # are read once, under that generation's key.
                os.close(fd)
                continue
            if state is None:
                state = self._new_generation(spec, path, st, fd, self._start_offset(path, fd, st.st_size))
                log.info("following %s from offset %d", path, state.offset)
            else:
                state.path, state.closed_at = path, None
            # The status lists the file from now on, before its first read: a file written and
            # copy-truncated in between (a busy machine stretches the gap) is told by its ctime.
            self._track(state, spec, fd, seen=st)
            by_identity[(st.st_dev, st.st_ino)] = self.tracked[state.key]
        if rotated_paths and not self._initial:
            # Rotated twice since the last look: the file in between was never seen. Looked for after
            # this poll's reads, once truncated generations have claimed their copies: a copy is not
            # a file never seen, even when its first bytes are too few to tell.
            self._deferred_unseen.append((since, rotated_paths))
        if self._initial:
            self._resume_rotated_while_stopped()
            self._unseen_rotations(self.checkpoints.unseen_since, sorted(self.checkpoints.known_paths))
            self._initial = False
        if self.checkpoints.scanned_at is None:  # a first run: nothing before it to seek
            self.checkpoints.scanned_at = self._discovered_at

    def _resume_rotated_while_stopped(self) -> None:
        specs = {s.source: s for s in self.specs}
        waiting = [s for s in self.checkpoints.files.values() if s.key not in self.tracked and s.closed_at is None]
        for state in sorted(waiting, key=lambda s: s.fp_len > 0):
            if state.fp_len == 0:
                # Seen only empty: nothing of it was read, so there is nothing to resume. Matching it by
                # inode alone could hand a reused inode (a copy of another generation) to the wrong
                # key; whatever the file holds now is read as a new file (or as the copy it is).
                self.checkpoints.forget(state.key)
                continue
            fd = None if state.truncated else self._find_in_directory(state)
            if fd is None:
                fd = self._find_copy(state)
            if fd is None:
                log.warning(
                    "%s (generation %s) disappeared while the collector was stopped; lines after offset %d "
                    "could not be read. Keep at least one uncompressed rotation (logrotate delaycompress).",
                    state.path, state.key, state.offset,
                )  # fmt: skip
                self.checkpoints.forget(state.key)
                continue
            spec = specs.get(state.source) or FileSource(path=state.path, source=state.source)
            log.info("resuming %s (rotated while stopped) at offset %d", state.path, state.offset)
            self._track(state, spec, fd, rotated=True)

    def _follow_rename(self, t: Tracked) -> None:
        """Where a rotated generation went (`syslog.1`), so status shows it under its own name."""
        for path, st in self._siblings(t.state.live_path):
            if (st.st_dev, st.st_ino) == (t.state.dev, t.state.ino):
                t.state.path = path
                return

    def _siblings(self, path: str) -> list[tuple[str, os.stat_result]]:
        """Regular files named like rotations of path (`syslog.1`, `syslog-20261123`), not compressed."""
        directory, base = os.path.split(path)
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            return []
        found = []
        for name in names:
            if not (name.startswith(base) and name[len(base) : len(base) + 1] in (".", "-")):
                continue
            if not name[len(base) + 1 :].isdigit():
                continue  # .gz, .xz, ... and unrelated names
            full = os.path.join(directory, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((full, st))
        return found

    def _unseen_rotations(self, since: float | None, paths: list[str]) -> None:
        """Rotated files never opened: created and rotated away while the agent was down, or between two polls.

        Only siblings of these paths, not a known generation, not a copy of one, and modified
        after `since`: a file never registered was never read, so reading it from the start
        duplicates nothing.
        """
        if since is None:
            return
        identities = {(s.dev, s.ino) for s in self.checkpoints.files.values()}
        identities |= {(t.state.dev, t.state.ino) for t in self.tracked.values()}
        for known in sorted(paths):
            spec = next((s for s in self.specs if fnmatch.fnmatch(known, s.path)), None)
            if spec is None:
                continue
            candidates = [
                (st.st_mtime, path, st)
                for path, st in self._siblings(known)
                if (st.st_dev, st.st_ino) not in identities and st.st_mtime >= since - 1 and st.st_size
            ]
            for _mtime, path, st in sorted(candidates):
                fd = self._open(path)
                if fd is None:
                    continue
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) in identities or self._known_head(fd):
                    os.close(fd)  # known after all, or a copy (copytruncate) of a generation already read
                    continue
                log.info("reading %s from the start: it was rotated before the collector saw it", path)
                state = self._new_generation(spec, path, st, fd, 0, origin=known)
                self._track(state, spec, fd, rotated=True)
                identities.add((st.st_dev, st.st_ino))

    def _copy_candidates(self, state: FileState) -> list[tuple[str, os.stat_result]]:
        """Siblings named like rotations of this generation's file that no other generation owns.

        A generation saved before it had any bytes (fp_len 0) can only be matched by time: its copy
        was made after it was first seen.
        """
        taken = {(t.state.dev, t.state.ino) for t in self.tracked.values()}
        taken |= {(s.dev, s.ino) for s in self.checkpoints.files.values() if s.key != state.key}
        since = datetime.fromisoformat(state.first_seen).timestamp() if state.first_seen else 0.0
        found = []
        for path, st in self._siblings(state.live_path):
            if (st.st_dev, st.st_ino) in taken or st.st_size < state.offset:
                continue
            if state.fp_len == 0 and (st.st_mtime < since - 1 or not st.st_size or self._path_known_head(path)):
                continue  # a copy is written after the file was first seen; a shifted old rotation is not
            found.append((path, st))
        return found

    def _known_head(self, fd: int) -> bool:
        """Does the file start like a generation already known (so it is a copy of one, not new)?

        Only heads of MIN_HEAD bytes or more count: a few bytes (a timestamp) are shared by
        unrelated files.
        """
        return any(
            _fingerprint(fd, s.fp_len)[0] == s.fp for s in self.checkpoints.files.values() if s.fp_len >= MIN_HEAD
        )

    def _path_known_head(self, path: str) -> bool:
        fd = self._open(path)
        if fd is None:
            return True
        try:
            return self._known_head(fd)
        finally:
            os.close(fd)

    def _find_copy(self, state: FileState) -> int | None:
        """The copy copytruncate made of this generation: a sibling whose first bytes match it.

        Its lines keep the generation's key and resume at the acknowledged offset, so what was
        stored before is not stored again and the tail not yet read is not lost.

        A rotation running beside the lookup (a second copytruncate renaming the copy to `.2` and
        writing an empty `.1` in its name) changes what a listed name opens between the listing and
        the open: while the siblings are not what the listing said, the lookup starts again (CI's
        chaos seed 63 lost 76 lines to one such race).
        """
        listed = self._copy_candidates(state)
        for _ in range(COPY_LOOKUPS):
            for path, listed_st in listed:
                fd = self._open(path)
                if fd is None:
                    continue
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (listed_st.st_dev, listed_st.st_ino):
                    os.close(fd)  # another file under that name now: the next listing says where it went
                    continue
                if _fingerprint(fd, state.fp_len)[0] == state.fp and st.st_size >= state.offset:
                    log.info("%s is the copytruncate copy of %s; resuming at offset %d", path, state.path, state.offset)
                    state.path, state.dev, state.ino, state.truncated = path, st.st_dev, st.st_ino, False
                    if state.fp_len == 0:
                        # Seen only empty: its identity is now the copy's first bytes (saved with the new
                        # generation's registration), so a restart before the copy's first read resumes
                        # it instead of forgetting a generation with nothing read.
                        state.fp, state.fp_len = _fingerprint(fd)
                    self.copies_adopted += 1
                    return fd
                os.close(fd)
            relisted = self._copy_candidates(state)
            if _identities(relisted) == _identities(listed):
                return None  # the siblings held still: there is no copy
            listed = relisted  # the next look starts from what the siblings are now
        return None

    def _find_in_directory(self, state: FileState) -> int | None:
        try:
            entries = list(os.scandir(os.path.dirname(state.path)))
        except OSError:
            return None
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (state.dev, state.ino) and (fd := self._open(entry.path)) is not None:
                opened = os.fstat(fd)  # renamed again since the scan?
                if (opened.st_dev, opened.st_ino) == (state.dev, state.ino) and (
                    _fingerprint(fd, state.fp_len)[0] == state.fp
                ):
                    state.path = entry.path
                    return fd
                os.close(fd)
        return None

    # -- reading ---------------------------------------------------------------------------
    def poll(self) -> Iterator[RawLine]:
        """Discover, then read every tracked file; close rotated files once drained and quiet."""
        self.discover()
        for t in list(self.tracked.values()):
            yield from self._read(t)
        while self._deferred_unseen:
            since, paths = self._deferred_unseen[0]
            self._unseen_rotations(since, paths)
            self._deferred_unseen.pop(0)
        # Everything that existed when this poll's scan began is registered now with what it held:
        # read, or claimed as a copy or a rotation. Not before the reads (a stop or a reload
        # abandons the poll after its scan): a file seen only empty and written since is registered
        # with content only by its read, and the file between two copytruncates only through it.
        self.checkpoints.scanned_at = self._discovered_at

    def _check_replaced(self, t: Tracked, st: os.stat_result) -> bool:
        """Truncated (size below our position) or rewritten (first bytes changed)? copytruncate does both."""
        if st.st_size < t.pos:
            return True
        head = os.pread(t.fd, FP_BYTES, 0)  # one read: checked and, below, sharpened from the same bytes
        if t.state.fp_len and hashlib.sha256(head[: t.state.fp_len]).hexdigest() != t.state.fp:
            return True
        if t.state.fp_len == 0 and 0 <= t.last_ctime != st.st_ctime_ns and self._copied_away(t):
            # Seen only empty, then written and copy-truncated between two polls (and maybe written
            # again): no first bytes to compare, but a new sibling holding the old content tells.
            return True
        if t.state.fp_len < FP_BYTES and st.st_size > t.state.fp_len:
            # Identity sharpens as the file grows, and is saved before any line past it is read: a
            # generation saved with fewer first bytes than it has acknowledged would match any file.
            t.state.fp, t.state.fp_len = hashlib.sha256(head).hexdigest(), len(head)
            self.checkpoints.changed(save=True)
        return False

    def _copied_away(self, t: Tracked) -> bool:
        """A new sibling holds content this file no longer starts with: it was copied, then truncated.

        copytruncate copies first and truncates after. A copy (whole or still being written) that
        the live file still starts with is not yet a reason to replace it: reading the live file now
        and the copy later would store the same lines under two generations.

        A rotation running beside the look (a second copytruncate renaming the copy to `.2` between
        the directory's listing and the stat of its names) can hide the copy from one listing: while
        the siblings are not what the listing said, the look starts again, as _find_copy's does.
        """
        first_read = t.last_size < 0
        listed = self._copy_candidates(t.state)
        for _ in range(COPY_LOOKUPS):
            for path, cst in listed:
                if first_read and cst.st_mtime_ns <= t.last_ctime:
                    # At the first read, the look before was the discovery: a sibling last written before
                    # the file as discovered is a rotation (start_position: end skips it), not its copy.
                    continue
                fd = self._open(path)
                if fd is None:
                    continue
                try:
                    opened = os.fstat(fd)
                    if (opened.st_dev, opened.st_ino) != (cst.st_dev, cst.st_ino):
                        continue  # another file under that name now: the next listing says where it went
                    copy_head = os.pread(fd, FP_BYTES, 0)
                finally:
                    os.close(fd)
                # Against the live file as it is now, after the copy was read, not as the poll found it:
                # the application writes on while logrotate copies, and copytruncate truncates only
                # once the copy is made, so a live file that still holds the copy is not copied away.
                now, live_head = os.fstat(t.fd), os.pread(t.fd, FP_BYTES, 0)
                if now.st_size < opened.st_size or not live_head.startswith(copy_head):
                    return True
            relisted = self._copy_candidates(t.state)
            if _identities(relisted) == _identities(listed):
                return False  # the siblings held still: nothing was copied away
            listed = relisted  # the next look starts from what the siblings are now
        return False

    def _read(self, t: Tracked) -> Iterator[RawLine]:
        try:
            st = os.fstat(t.fd)
        except OSError:
            return
        if st.st_nlink == 0 and not t.rotated:
            t.rotated = True
        t.prev_checked_at, t.checked_at = t.checked_at, time.time()
        if st.st_size != t.last_size or st.st_ctime_ns != t.last_ctime:
            if self._check_replaced(t, st):
                yield from self._replace(t)
                t = self.tracked[t.replaced_by]
            if st.st_size != t.last_size:
                t.last_growth = time.monotonic()
            t.last_size, t.last_ctime = st.st_size, st.st_ctime_ns
        for _ in range(MAX_CHUNKS_PER_POLL):
            data = os.pread(t.fd, READ_CHUNK, t.pos)
            if not data:
                break
            if t.state.fp_len and _fingerprint(t.fd, t.state.fp_len)[0] != t.state.fp:
                # Truncated (and written again) since the last check, maybe while a line waited in a full
                # queue: this chunk may be new content. The first bytes are checked after the read, so a
                # chunk that passes was read before the truncation.
                yield from self._replace(t)
                t = self.tracked[t.replaced_by]
                continue
            base = t.pos
            t.pos += len(data)
            yield from self._lines(t, data, base)
        if t.rotated and t.pos >= st.st_size and time.monotonic() - t.last_growth >= self.rotate_wait:
            yield from self._flush_partial(t)
            self._close(t)

    def _lines(self, t: Tracked, data: bytes, base: int) -> Iterator[RawLine]:
        limit = self.max_line_bytes
        parts = data.split(b"\n")
        rest = parts.pop()
        off = base
        spec, key = t.spec, t.state.key
        trailing_empty: tuple[int, int] | None = None
        for i, piece in enumerate(parts):
            end = off + len(piece) + 1
            cut = 0
            if i == 0 and (t.buf or t.cut):
                room = limit - len(t.buf)
                cut = t.cut + max(0, len(piece) - room)
                piece = bytes(t.buf) + piece[: max(0, room)]
                t.buf.clear()
                t.cut = 0
            elif len(piece) > limit:
                cut, piece = len(piece) - limit, piece[:limit]
            start = t.line_start
            t.line_start = end
            off = end
            if piece.endswith(b"\r"):
                piece = piece[:-1]
            if piece or cut:
                trailing_empty = None
                yield RawLine(spec.source, key, start, end, piece, cut, spec.format, t.first_ts, *t.context)
            else:
                trailing_empty = (start, end)
        if trailing_empty is not None:
            # Empty lines store nothing, but the offset after them must be acknowledged, or a file
            # ending in one never shows as caught up and, rotated, is never done.
            start, end = trailing_empty
            yield RawLine(spec.source, key, start, end, b"", 0, spec.format, t.first_ts, *t.context, empty=True)
        if rest:
            room = limit - len(t.buf)
            if room > 0:
                t.buf += rest[:room]
            t.cut += max(0, len(rest) - max(room, 0))

    def _flush_partial(self, t: Tracked) -> Iterator[RawLine]:
        """The last line of a file that will never get its newline."""
        if t.buf or t.cut:
            line = RawLine(
                t.spec.source,
                t.state.key,
                t.line_start,
                t.pos,
                bytes(t.buf),
                t.cut,
                t.spec.format,
                t.first_ts,
                *t.context,
            )
            t.buf.clear()
            t.cut = 0
            t.line_start = t.pos
            yield line

    def _replace(self, t: Tracked) -> Iterator[RawLine]:
        """Truncated in place: the old generation continues in its copy (if any), the file starts anew.

        Sets t.replaced_by to the new generation's key. With a copy, the old generation is read
        again from its acknowledged offset, so a line cut short by the truncation is read whole
        from the copy (and not flushed here half-read).
        """
        log.info("%s was truncated or rewritten in place (copytruncate); reading it from the start", t.state.path)
        st = os.fstat(t.fd)
        old = t.state
        path = old.path
        del self.tracked[old.key]
        old.truncated = True
        copy_fd = self._find_copy(old)
        if copy_fd is not None:
            self._track(old, t.spec, copy_fd, rotated=True)
        else:
            yield from self._flush_partial(t)
            if old.offset < t.pos:
                log.warning(
                    "%s was truncated with lines after offset %d not yet delivered, and no copy of it was found "
                    "(copytruncate leaves one named like %s.1): unless they are delivered, they are lost",
                    path, old.offset, path,
                )  # fmt: skip
            self.checkpoints.finish(old.key, t.pos)
        state = self._new_generation(t.spec, path, st, t.fd, 0, origin=old.live_path)
        self._track(state, t.spec, t.fd, rotated=t.rotated)
        t.replaced_by = state.key
        # Content written after the truncation we did see, and rotated away before this poll.
        self._unseen_rotations(t.prev_checked_at or None, [old.live_path])

    def _close(self, t: Tracked) -> None:
        log.info("finished rotated file %s at offset %d", t.state.path, t.pos)
        os.close(t.fd)
        del self.tracked[t.state.key]
        self.checkpoints.finish(t.state.key, t.pos)

    @property
    def ready(self) -> bool:
        """The first look is done: files rotated while the agent was stopped are tracked too."""
        return not self._initial

    def lag(self) -> dict[str, dict[str, object]]:
        """Per file: path, acknowledged offset, size, bytes not yet acknowledged."""
        out: dict[str, dict[str, object]] = {}
        for t in list(self.tracked.values()):
            try:
                size = os.fstat(t.fd).st_size
            except OSError:
                continue
            name = t.state.path if t.state.path not in out else f"{t.state.path} ({t.state.key})"
            out[name] = {
                "source": t.state.source, "generation": t.state.key, "acked_offset": t.state.offset,
                "read_offset": t.pos, "size": size, "lag_bytes": max(0, size - t.state.offset), "rotated": t.rotated,
            }  # fmt: skip
        return out

    def close(self) -> None:
        """Close every descriptor (positions live in the checkpoints)."""
        for t in self.tracked.values():
            os.close(t.fd)
        self.tracked.clear()
