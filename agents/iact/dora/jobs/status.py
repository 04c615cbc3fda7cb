"""A job's status file: its last run and whether one is under way, written so that nobody can steer it.

The backup runs as root and the dashboard reads as its service user. The writer therefore works
through a descriptor of a directory that its own user owns and nobody else may write in (for root a
root-owned 0755 directory, never one the service user owns: an entry swapped there for a link could
aim root's writes at any file). It creates the new file beside the old one and renames it over it,
so the page never reads half a file and no link is ever followed; a link found where the file should
be is refused, not replaced, so someone gets to ask who planted it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime
from typing import Any

VERSION = 1
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
FILE_MODE = 0o644  # the dashboard's user reads root's file
DIR_MODE = 0o755
MAX_BYTES = 64 * 1024


class StatusError(Exception):
    """The status cannot be written or read; the message says what to fix."""


@dataclass(frozen=True)
class Run:
    """One finished run."""

    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    exit_code: int
    last_line: str

    @property
    def ok(self) -> bool:
        """Cron's own idea of success: exit code 0."""
        return self.exit_code == 0


@dataclass(frozen=True)
class Record:
    """What one status file holds."""

    name: str
    command: tuple[str, ...]
    running_since: datetime | None = None
    last: Run | None = None

    def to_json(self) -> dict[str, Any]:
        """The file's content (times in ISO 8601 with their UTC offset)."""
        last = None
        if self.last:
            last = {"started_at": self.last.started_at.isoformat(), "finished_at": self.last.finished_at.isoformat(),
                    "duration_seconds": round(self.last.duration_seconds, 3), "exit_code": self.last.exit_code,
                    "ok": self.last.ok, "last_line": self.last.last_line}  # fmt: skip
        running = self.running_since.isoformat() if self.running_since else None
        return {"version": VERSION, "name": self.name, "command": list(self.command), "running_since": running,
                "last": last}  # fmt: skip


def _time(value: object, key: str) -> datetime:
    if not isinstance(value, str):
        raise StatusError(f"{key} is {value!r}, not a time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise StatusError(f"{key} is {value!r}, not an ISO 8601 time") from exc
    if at.tzinfo is None:
        raise StatusError(f"{key} is {value!r}, without its UTC offset")
    return at


def parse(data: object) -> Record:
    """A record from a file's parsed JSON; StatusError names the first thing that is wrong."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise StatusError(f"not a version {VERSION} job status (written by another iact-dora-job release?)")
    last = data.get("last")
    run = None
    if last is not None:
        if not isinstance(last, dict):
            raise StatusError("last is not a mapping")
        code, line, duration = last.get("exit_code"), last.get("last_line", ""), last.get("duration_seconds")
        if not isinstance(code, int) or not isinstance(line, str) or not isinstance(duration, int | float):
            raise StatusError("last needs exit_code, duration_seconds and last_line")
        run = Run(_time(last.get("started_at"), "last.started_at"), _time(last.get("finished_at"), "last.finished_at"),
                  float(duration), code, line)  # fmt: skip
    running = data.get("running_since")
    command = data.get("command", [])
    if not isinstance(command, list):
        raise StatusError("command is not a list")
    return Record(name=str(data.get("name", "")), command=tuple(str(c) for c in command),
                  running_since=_time(running, "running_since") if running is not None else None, last=run)  # fmt: skip


def load(path: str) -> Record | None:
    """The record at `path` for the page; None when the job never wrote one."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StatusError(
            f"cannot read {path} ({exc.strerror}): the dashboard's user must be able to read it; the role makes "
            "the directory 0755 and the file 0644"
        ) from exc
    if len(raw) > MAX_BYTES:
        raise StatusError(f"{path} is over {MAX_BYTES} bytes: not a job status; delete it, the next run writes one")
    try:
        return parse(json.loads(raw))
    except (ValueError, StatusError) as exc:
        raise StatusError(f"{path}: {exc}; the next run of the job replaces it") from exc


class StatusDir:
    """A status directory, opened once and checked: owned by this process's user, writable by nobody else."""

    def __init__(self, path: str) -> None:
        self.path = path
        created = False
        try:
            os.mkdir(path, DIR_MODE)
            created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise StatusError(f"cannot create {path} ({exc.strerror}): create its parent, or fix --status-dir") from exc
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StatusError(f"{path} is a symbolic link or not a directory: refusing to write there; make "
                                  "it a directory owned by the job's user") from exc  # fmt: skip
            raise StatusError(f"cannot open {path} ({exc.strerror})") from exc
        if created:
            os.fchmod(self.fd, DIR_MODE)  # whatever cron's umask was
        info, euid = os.fstat(self.fd), os.geteuid()
        problem = ""
        if info.st_uid != euid:
            problem = (f"is owned by uid {info.st_uid}, not by this job's user (uid {euid}): a job writes its status "
                       "only in its own user's directory (root's backup in a root-owned one, never the service "
                       "user's; see django_dora_backup_status_dir)")  # fmt: skip
        elif info.st_mode & 0o022:
            problem = (f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}): nobody else may write "
                       f"where this job does; chmod 755 {path}")  # fmt: skip
        if problem:
            os.close(self.fd)
            raise StatusError(f"{path} {problem}")

    def close(self) -> None:
        """Release the directory."""
        os.close(self.fd)

    def read(self, name: str) -> Record | None:
        """The job's previous record (None if absent, a link, or unreadable: the next write starts afresh)."""
        try:
            fd = os.open(f"{name}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                return parse(json.loads(fh.read(MAX_BYTES)))
        except (OSError, ValueError, StatusError):
            return None

    def write(self, record: Record) -> None:
        """Replace the job's record atomically; refuse when its name is taken by a link or anything but a file."""
        target = f"{record.name}.json"
        where = os.path.join(self.path, target)
        try:
            info = os.stat(target, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISLNK(info.st_mode):
                raise StatusError(f"{where} is a symbolic link: refusing to replace it; remove it and find out who "
                                  "planted it")  # fmt: skip
            if not stat.S_ISREG(info.st_mode):
                raise StatusError(f"{where} is not a regular file: remove it, the next run writes the status")
        data = json.dumps(record.to_json(), indent=2).encode() + b"\n"
        tmp = f".{target}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                     dir_fd=self.fd)  # fmt: skip
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), FILE_MODE)  # whatever cron's umask was
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise
