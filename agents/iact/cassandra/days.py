"""The `day` partition keys a time range touches: both log tables partition by (host, day, hour), and
every reader that names partitions or queries the `day` index walks these."""

from __future__ import annotations

from datetime import date, datetime, timedelta


def days_between(start: datetime, end: datetime) -> list[date]:
    """Every calendar day of [start, end), in order (end exclusive, so a range ending at midnight
    does not touch the next day)."""
    day, last = start.date(), (end - timedelta(microseconds=1)).date()
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out
