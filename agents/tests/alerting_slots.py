"""One place that hands each alerting test its own day and name tag in the shared Cassandra node.

The alerting queries read a whole day's partitions (every host, every app), so two tests writing on
the same day count each other's rows. Days picked as `random % 600` collide (with the 17 worlds of
test_alerting_cassandra.py, about one run in five has two on one day); a counter cannot. The counter
is per process, which is enough: the Cassandra node is a session fixture, so every process that
shares a node shares this too.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, date, datetime, timedelta

FIRST_DAY = date(2024, 1, 1)
# Far behind any test that writes at the real "now", and inside the tables' default TTL arithmetic.
DAYS = 600


class SlotAllocator:
    """Distinct (tag, day) pairs: the n-th call gets day FIRST_DAY + n and tag "s<n>"."""

    def __init__(self, first: date = FIRST_DAY, days: int = DAYS) -> None:
        self._first, self._days = first, days
        self._next = itertools.count()
        self._lock = threading.Lock()

    def take(self) -> tuple[str, datetime]:
        """A tag unique in this session and noon of a day no other slot has; fails loudly when none is left."""
        with self._lock:
            n = next(self._next)
        if n >= self._days:
            raise RuntimeError(f"all {self._days} test days are taken; raise alerting_slots.DAYS")
        day = self._first + timedelta(days=n)
        return f"s{n:04d}", datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


SLOTS = SlotAllocator()
