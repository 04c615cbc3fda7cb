"""A cron job's line on /health/: green, amber or red and why, from its status file, its schedule and the clock.

Red: the last run failed (cron mailed root once; the page keeps saying it until a run succeeds).
Amber: no run started within the schedule's longest gap plus some grace (cron starts on the minute
and the status is written a moment later; a daily job moves by an hour across a DST change), a
run going on longer than that, a status file that cannot be read, or a job that never ran: a
backup that was never taken is something to know, not a green light.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from iact.dora.jobs.status import Record, StatusError, load

if TYPE_CHECKING:
    from iact.dora.conf import JobConfig

GREEN, AMBER, RED = "green", "amber", "red"
MIN_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class JobLine:
    """What the page prints for one job; empty strings where there is nothing to say."""

    name: str
    title: str
    schedule: str
    state: str
    reason: str
    started_at: str = ""
    finished_at: str = ""
    duration: str = ""
    result: str = ""
    last_line: str = ""
    command: str = ""


def grace(period: timedelta) -> timedelta:
    """How late a run may start before the page calls it missed."""
    return max(MIN_GRACE, period / 10)


def span(delta: timedelta) -> str:
    """0.4 s, 12 s, 3 min 5 s, 6 h, 2 h 3 min, 1 day 2 h."""
    seconds = delta.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    if minutes:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    return f"{secs} s"


def stamp(at: datetime) -> str:
    """A time as the page shows it, in UTC like the rest of /health/."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def judge(job: JobConfig, record: Record | None, now: datetime, error: str = "") -> JobLine:
    """The job's line; `error` is why its status file could not be read."""
    period = job.period
    base = {"name": job.name, "title": job.title, "schedule": job.schedule}
    log = f"; its log: {job.log_file}" if job.log_file else ""
    if error:
        return JobLine(**base, state=AMBER, reason=f"status unreadable: {error}", result="status unreadable")
    if record is None or (record.last is None and record.running_since is None):
        reason = f"never ran: no status in {job.status_file} yet (due every {span(period)}; if it should have run, "
        return JobLine(**base, state=AMBER, reason=reason + f"see cron's mail{log})", result="never ran")
    last = record.last
    running = record.running_since
    if running and last and running <= last.started_at:
        running = None  # a run that ended after it started (runs overlapped): not under way
    problems: list[tuple[str, str]] = []
    if last and not last.ok:
        output = f": {last.last_line}" if last.last_line else ", without output"
        problems.append((RED, f"last run failed (exit {last.exit_code}){output}{log}"))
    latest = max(t for t in (running, last.started_at if last else None) if t is not None)
    overdue = now - latest > period + grace(period)
    if overdue and running:
        problems.append((AMBER, f"running since {stamp(running)} ({span(now - running)}), longer than its "
                                f"{span(period)} period{log}"))  # fmt: skip
    elif overdue:
        problems.append((AMBER, f"no run since {stamp(latest)} ({span(now - latest)} ago; due every {span(period)})"))
    state = RED if any(s == RED for s, _ in problems) else AMBER if problems else GREEN
    if problems:
        reason = "; ".join(r for _, r in problems)
        if running and not overdue:
            reason += f"; running again since {stamp(running)}"
    elif running:
        reason = f"running since {stamp(running)}" + ("" if last is None else "; the last run was ok")
    else:
        reason = f"ran on time (due every {span(period)})"
    command = " ".join(record.command)
    if last is None:
        return JobLine(**base, state=state, reason=reason, result="first run under way", command=command)
    return JobLine(**base, state=state, reason=reason, started_at=stamp(last.started_at),
                   finished_at=stamp(last.finished_at), duration=span(timedelta(seconds=last.duration_seconds)),
                   result="ok" if last.ok else f"failed (exit {last.exit_code})", last_line=last.last_line,
                   command=command)  # fmt: skip


def lines(jobs: tuple[JobConfig, ...], now: datetime | None = None) -> list[JobLine]:
    """Every configured job's line: one small file read each, nothing run."""
    now = now or datetime.now(UTC)
    out = []
    for job in jobs:
        try:
            out.append(judge(job, load(job.status_file), now))
        except StatusError as exc:
            out.append(judge(job, None, now, error=str(exc)))
    return out
