"""The reporting window and its chart buckets, in the dashboard's time zone.

Buckets are calendar days (7 and 30 days) or weeks starting on Monday (60 and 90 days) in the
configured zone, so a deployment at 23:30 local time lands on the day the team saw it. The window
is aligned to them: it starts at the local midnight opening its first bucket and ends now, so
every bucket is whole except the last, which is the day or week in progress (marked `partial`).
"Last 7 days" is today and the 6 days before it; "last 90 days" is this week and the 12 before.
Rates divide by the time the window actually covers, not by its nominal length.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

PERIODS = (7, 30, 60, 90)


@dataclass(frozen=True)
class Window:
    """[start, end) in aware datetimes, with the bucket boundaries for charts."""

    start: datetime
    end: datetime
    days: int
    bucket_days: int
    tz: tzinfo

    def __post_init__(self) -> None:
        # The bounds in UTC, for contains(): rows come from the database in UTC, and two datetimes with
        # the same tzinfo compare without asking a zone for its offset (a page compares ~10^5 times).
        object.__setattr__(self, "_utc", (self.start.astimezone(UTC), self.end.astimezone(UTC)))
        object.__setattr__(self, "_bucket_cache", ((), []))

    @classmethod
    def last(cls, days: int, now: datetime, tz: tzinfo) -> Window:
        """The buckets covering the last `days` days up to now (`days` is one of PERIODS)."""
        if days not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(map(str, PERIODS))} days, got {days}")
        bucket_days = 1 if days <= 30 else 7
        start = _local_midnight(now, tz)
        if bucket_days == 7:
            start = _local_midnight(start - timedelta(days=start.weekday()) + timedelta(hours=3), tz)
        # Stepping back whole local days, at noon, keeps DST's 23- and 25-hour days whole.
        back = (math.ceil(days / bucket_days) - 1) * bucket_days
        start = _local_midnight(start.replace(hour=12) - timedelta(days=back), tz)
        return cls(start, now, days, bucket_days, tz)

    def previous(self) -> Window:
        """The same length of time just before this window, for "vs previous N days".

        Same length, not the same buckets: the current window ends now, mid-bucket, and a count
        over 6.5 days compared with one over 7 would read as a slowdown nobody caused.
        """
        return Window(self.start - (self.end - self.start), self.start, self.days, self.bucket_days, self.tz)

    @property
    def length_days(self) -> float:
        """The time the window covers, in days: what rates divide by."""
        return (self.end - self.start).total_seconds() / 86400

    def contains(self, moment: datetime) -> bool:
        """Is the moment inside the window."""
        start, end = self._utc  # type: ignore[attr-defined]
        return start <= moment < end

    def buckets(self) -> list[datetime]:
        """Local midnights starting each bucket; the first is the window's start."""
        out = []
        day = self.start
        while day < self.end:
            out.append(day)
            day = _local_midnight(day.replace(hour=12) + timedelta(days=self.bucket_days), self.tz)
        return out

    def partial(self, starts: list[datetime]) -> list[bool]:
        """Which buckets the window does not cover whole: the one in progress, if now is not a bucket boundary."""
        if not starts:
            return []
        nxt = _local_midnight(starts[-1].replace(hour=12) + timedelta(days=self.bucket_days), self.tz)
        return [False] * (len(starts) - 1) + [self.end < nxt]

    def bucket_of(self, moment: datetime, starts: list[datetime]) -> int:
        """Index of the bucket holding the moment (starts as from buckets())."""
        key, utc = self._bucket_cache  # type: ignore[attr-defined]
        if key is not starts:  # the same list, asked for every row: converted to UTC once
            utc = [s.astimezone(UTC) for s in starts]
            object.__setattr__(self, "_bucket_cache", (starts, utc))
        return max(0, bisect.bisect_right(utc, moment) - 1)


def _local_midnight(moment: datetime, tz: tzinfo) -> datetime:
    """Midnight of the local day (days are 23 or 25 hours long at DST changes)."""
    local = moment.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
