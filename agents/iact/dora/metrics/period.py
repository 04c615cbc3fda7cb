"""The reporting window and its chart buckets, in the dashboard's time zone.

Buckets are calendar days (7 and 30 days) or weeks starting on Monday (60 and 90 days) in the
configured zone, so a deployment at 23:30 local time lands on the day the team saw it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

PERIODS = (7, 30, 60, 90)


@dataclass(frozen=True)
class Window:
    """[start, end) in aware datetimes, with the bucket boundaries for charts."""

    start: datetime
    end: datetime
    days: int
    bucket_days: int
    tz: tzinfo

    @classmethod
    def last(cls, days: int, now: datetime, tz: tzinfo) -> Window:
        """The last `days` days up to now; one of PERIODS."""
        if days not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(map(str, PERIODS))} days, got {days}")
        return cls(now - timedelta(days=days), now, days, 1 if days <= 30 else 7, tz)

    def contains(self, moment: datetime) -> bool:
        """Is the moment inside the window."""
        return self.start <= moment < self.end

    def buckets(self) -> list[datetime]:
        """Local midnights starting each bucket, the first one covering `start`."""
        first = self.start.astimezone(self.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.bucket_days == 7:
            first -= timedelta(days=first.weekday())
        out = []
        day = first
        while day < self.end:
            out.append(day)
            day = _local_midnight(day + timedelta(days=self.bucket_days, hours=3), self.tz)
        return out

    def bucket_of(self, moment: datetime, starts: list[datetime]) -> int:
        """Index of the bucket holding the moment (starts as from buckets())."""
        return max(0, bisect.bisect_right(starts, moment) - 1)


def _local_midnight(moment: datetime, tz: tzinfo) -> datetime:
    """Midnight of the local day (days are 23 or 25 hours long at DST changes)."""
    local = moment.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
