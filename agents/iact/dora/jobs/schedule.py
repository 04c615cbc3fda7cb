"""How long a cron job may go without running, read off its schedule.

The role writes each job's cron schedule into dora.yaml next to the job's status file, so the page
judges lateness from the schedule cron actually uses, not from a number kept up to date by hand.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

DAY_MINUTES = 24 * 60


class ScheduleError(ValueError):
    """The schedule is not one the page can judge; the message says what to write instead."""


def _field(text: str, low: int, high: int, what: str) -> set[int]:
    """One cron field (`*`, `*/6`, `15`, `1-5`, `0-30/10`, or a comma list of those) as its values."""
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                first, last = low, high
            elif "-" in base:
                first, last = (int(v) for v in base.split("-", 1))
            elif step_text:
                raise ValueError("a step needs * or a range before it")
            else:
                first = last = int(base)
        except ValueError as exc:
            raise ScheduleError(f"{what} field {text!r}: write *, */N, N, N-M, N-M/S or a comma list ({exc})") from exc
        if step < 1 or not low <= first <= last <= high:
            raise ScheduleError(f"{what} field {text!r}: values must lie in {low}-{high}, steps be positive")
        values.update(range(first, last + 1, step))
    return values


def longest_gap(schedule: str) -> timedelta:
    """The longest time between two runs of a five-field schedule whose day, month and weekday are `*`.

    Only daily-or-more-frequent jobs are judged: with the other fields set the gap would depend on
    the calendar, and the dashboard's jobs (cron.j2) never set them.
    """
    fields = schedule.split()
    if len(fields) != 5:
        raise ScheduleError(f"{schedule!r}: write five cron fields, e.g. '15 */6 * * *' (no @daily)")
    if fields[2:] != ["*", "*", "*"]:
        raise ScheduleError(f"{schedule!r}: only the minute and hour fields may be set (day, month, weekday: *)")
    minutes = _field(fields[0], 0, 59, "minute")
    hours = _field(fields[1], 0, 23, "hour")
    times = sorted(h * 60 + m for h in hours for m in minutes)
    gaps = [b - a for a, b in pairwise(times)] + [times[0] + DAY_MINUTES - times[-1]]
    return timedelta(minutes=max(gaps))
