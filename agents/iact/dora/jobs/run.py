"""`iact-dora-job NAME --status-dir DIR -- COMMAND [ARG...]`: run one of the dashboard's cron jobs and record it.

/health/ shows when each job last ran and how it ended without running anything itself, so the job
leaves that behind: DIR/NAME.json (see `status`), written when the run starts (`running_since`)
and when it ends. The command's output passes through unchanged to the wrapper's standard output,
stdout and stderr merged in the order written (cron's `>> log 2>&1` merges them anyway), and its
last line is kept as the run's result. The wrapper exits with the command's code, so cron's
`|| echo ... failed` still fires. A status it cannot write never stops the job: it says why on
stderr, which is the job's log, and the page then shows the job as late.

Standard library only, no Django: root runs it for the backup.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType

from iact.dora.jobs.status import NAME, Record, Run, StatusDir, StatusError

TAIL_BYTES = 8192  # enough for the last line of any sane output; the rest only passes through
LINE_LIMIT = 300
FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def _warn(message: str) -> None:
    print(f"iact-dora-job: {message}", file=sys.stderr, flush=True)


def _write_all(fd: int, data: bytes) -> bool:
    """Pass a chunk on; False once the reader is gone (the job keeps running and is still recorded)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except OSError:
            return False
    return True


def last_line(tail: bytes) -> str:
    """The last non-blank line of the output, shortened for the page."""
    for line in reversed(tail.decode("utf-8", "replace").splitlines()):
        if line.strip():
            return line.strip()[:LINE_LIMIT]
    return ""


def run_command(command: Sequence[str], out_fd: int = 1) -> tuple[int, str]:
    """Run it, copying its merged output to `out_fd`; its exit code (128+N when signal N killed it) and last line.

    SIGTERM and SIGHUP sent to the wrapper go on to the command, which then ends as it would have
    alone; a terminal's Ctrl-C reaches the command directly, so the wrapper only waits for it.
    """
    try:
        proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        _warn(f"command not found: {command[0]} (cron's PATH is the one in /etc/cron.d/iact-dora)")
        return 127, f"command not found: {command[0]}"
    except OSError as exc:
        _warn(f"cannot run {command[0]}: {exc.strerror}")
        return 126, f"cannot run {command[0]}: {exc.strerror}"

    def forward(signum: int, _frame: FrameType | None) -> None:
        proc.send_signal(signum)

    handlers: dict[int, Callable[[int, FrameType | None], object] | int | None] = {
        sig: signal.signal(sig, forward) for sig in FORWARDED
    }
    handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    tail, passing, output = b"", True, proc.stdout.fileno() if proc.stdout else -1
    try:
        while chunk := os.read(output, 65536):
            passing = passing and _write_all(out_fd, chunk)
            tail = (tail + chunk)[-TAIL_BYTES:]
        code = proc.wait()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if proc.stdout is not None:
            proc.stdout.close()
    line = last_line(tail)
    if code < 0:
        name = signal.Signals(-code).name
        return 128 - code, f"killed by {name}" + (f" after: {line}" if line else "")
    return code, line


def _save(directory: StatusDir | None, record: Record) -> None:
    if directory is None:
        return
    try:
        directory.write(record)
    except (OSError, StatusError) as exc:
        _warn(f"{exc}; the dashboard will show this run as missing")


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="iact-dora-job",
        usage="iact-dora-job NAME --status-dir DIR -- COMMAND [ARG...]",
        description="Run COMMAND, pass its output through, write DIR/NAME.json for /health/, exit with its code.",
    )
    parser.add_argument("name", metavar="NAME", help="the job's name: its status file is NAME.json")
    parser.add_argument("--status-dir", required=True, metavar="DIR",
                        help="a directory owned by the job's user and writable by nobody else")  # fmt: skip
    args = list(argv)
    split = args.index("--") if "--" in args else len(args)
    options, command = parser.parse_args(args[:split]), args[split + 1 :]
    if not command:
        parser.error("put the command after --, e.g. iact-dora-job backup --status-dir DIR -- iact-dora-backup")
    if not NAME.match(options.name):
        parser.error(f"NAME {options.name!r}: use lowercase letters, digits, - and _ (it names a file)")
    return options, command


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; its exit code is the command's (2 for a usage error, before anything ran)."""
    options, command = _parse(sys.argv[1:] if argv is None else argv)
    directory: StatusDir | None = None
    try:
        directory = StatusDir(options.status_dir)
    except StatusError as exc:
        _warn(f"{exc}; running {options.name} without recording it")
    started, clock = datetime.now(UTC), time.monotonic()
    previous = directory.read(options.name) if directory else None
    _save(directory, Record(options.name, tuple(command), started, previous.last if previous else None))
    sys.stdout.flush()
    code, line = run_command(command)
    run = Run(started, datetime.now(UTC), time.monotonic() - clock, code, line)
    _save(directory, Record(options.name, tuple(command), None, run))
    if directory is not None:
        with contextlib.suppress(OSError):
            directory.close()
    return code


def entry_point() -> None:
    """The console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
