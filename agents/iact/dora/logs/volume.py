"""Rows per minute or per hour of a search, split by level (application) or severity (infrastructure).

The chart above the console's results counts what the search would list, so it reads the way the
search does (LogSearch's plans, never ALLOW FILTERING): one host's (host, day, hour) partitions, or
the SAI index on `day` with the time range plus the one indexed equality the search pushes down, or
a request id's own index. Only the columns the count needs travel (ts, the split column, and what the residual
filters test).

Counting is bounded: it reads at most `limit` rows. It walks newest first, so when it stops, the
buckets it finished are exact and the older ones are reported as not counted (None), never as a
sample that would draw a false shape. The plans differ in how they keep that promise:

- partitions: rows arrive in time order (ts DESC), so the first row past the limit tells which
  bucket is incomplete; every newer bucket is complete. The next partition is read while one is
  counted (the driver parses rows in Python), so Cassandra may read one fetch page past the limit.
- index: rows of one read arrive in token order, so a read is only counted once it is whole. Reads
  are time slices aligned to buckets, each capped at SLICE_ROWS and at a quarter of what is left of
  the limit (a single bucket: all that is left); a slice that overflows is halved and read again, its
  rows still charged to the limit, so the limit bounds what Cassandra reads, not only what is
  counted. Slices widen while they come back well under their cap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cassandra.cluster import ResponseFuture

from iact.cassandra.days import days_between
from iact.dora.logs.search import TABLES, TRACE_LIMIT, LogSearch, Query, _hours, _millis, _naive

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
MINUTE_BUCKETS_UP_TO = timedelta(hours=6)  # <= 360 bars; longer windows count per hour (<= 168 bars)
SPLIT = {"application": "level", "infrastructure": "severity"}
# Most severe first, so the stack reads the same way on every chart; unknown values follow, sorted.
ORDER = {
    "application": ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"),
    "infrastructure": ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"),
}
NONE_LABEL = "(none)"
FETCH_SIZE = 5000
SLICE_ROWS = 5000  # rows one index read may return before its slice is halved
FIRST_SLICE_BUCKETS = 4
# A count reads a few narrow columns where a search page reads whole rows (messages, exceptions):
# it may read this many times the console's per-page scan limit.
SCANS_PER_COUNT = 5


@dataclass
class Volume:
    """Counts per bucket and split value; buckets before `counted_from` were not counted (the limit)."""

    table: str
    width: timedelta
    starts: list[datetime]  # bucket starts, oldest first
    counts: Counter[tuple[str, int]]  # (split value, bucket index) -> rows
    counted_from: datetime
    scanned: int
    limit: int
    capped: bool

    def series(self) -> list[tuple[str, list[int | None]]]:
        """Each split value's counts over all buckets: 0 where empty, None where not counted."""
        names = {name for name, _ in self.counts}
        known = [n for n in ORDER[self.table] if n in names]
        ordered = known + sorted(names - set(known))
        return [
            (name, [self.counts[(name, i)] if s >= self.counted_from else None for i, s in enumerate(self.starts)])
            for name in ordered
        ]

    @property
    def total(self) -> int:
        """Rows counted in the buckets shown as counted."""
        first = next((i for i, s in enumerate(self.starts) if s >= self.counted_from), len(self.starts))
        return sum(n for (_, i), n in self.counts.items() if i >= first)


def bucket_width(query: Query) -> timedelta:
    """Per minute up to six hours, per hour beyond: a chart of at most a few hundred bars."""
    return MINUTE if query.end - query.start <= MINUTE_BUCKETS_UP_TO else HOUR


def floor(at: datetime, width: timedelta) -> datetime:
    """The start of the bucket holding `at` (buckets are aligned on the epoch, hence on UTC hours)."""
    step = int(width.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, UTC)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class _Tally:
    """The running count of one Volume: the rows read so far, matched against the search's filters."""

    def __init__(self, search: LogSearch, query: Query, limit: int) -> None:
        self.search, self.query, self.limit = search, query, limit
        self.width = bucket_width(query)
        self.first = floor(query.start, self.width)
        self.counts: Counter[tuple[str, int]] = Counter()
        self.scanned = 0
        self.split = SPLIT[query.table]
        # Rows come back as naive UTC: subtracting the first bucket's start gives the bucket's index.
        self.origin = _naive(self.first)
        # Whether a row read can fail the search's filters (then each row is tested, which costs).
        self.filtered = bool(query.residual or query.text or query.host)

    def add(self, row: Any) -> None:
        if self.filtered and not self.search._matches(self.query, row):
            return
        self.counts[(getattr(row, self.split) or NONE_LABEL, (row.ts - self.origin) // self.width)] += 1

    def columns(self) -> str:
        needed = ["ts", self.split, *(["host"] if self.query.host else []), *(c for c, _ in self.query.residual)]
        if self.query.text:
            needed.append("message")
        return ", ".join(dict.fromkeys(needed))

    def volume(self, counted_from: datetime | None, capped: bool) -> Volume:
        starts, at = [], self.first
        while at < self.query.end:
            starts.append(at)
            at += self.width
        return Volume(self.query.table, self.width, starts, self.counts, counted_from or self.first,
                      self.scanned, self.limit, capped)  # fmt: skip


def _pushed(query: Query) -> tuple[str, list[Any]]:
    if not query.pushed:
        return "", []
    return f" AND {query.pushed[0]} = ?", [query.pushed[1]]


def _by_partition(tally: _Tally) -> Volume:
    search, query = tally.search, tally.query
    table, _ = TABLES[query.table]
    extra, value = _pushed(query)
    statement = search._prepare(
        f"SELECT {tally.columns()} FROM {search.keyspace}.{table} WHERE host = ? AND day = ? AND hour = ? "  # nosec B608 # names are constants
        f"AND ts >= ? AND ts < ?{extra}"
    )
    tally.filtered = bool(query.residual or query.text)  # the partitions are the host's

    def read(hour: datetime) -> ResponseFuture:
        bound = statement.bind([query.host, hour.date(), hour.hour, _naive(query.start), _naive(query.end), *value])
        bound.fetch_size = FETCH_SIZE
        search.queries += 1
        return search.session.execute_async(bound)

    hours = _hours(query.start, query.end)  # newest first, each partition in ts DESC order
    ahead = read(hours[0])
    for i in range(len(hours)):
        result = ahead.result()
        if i + 1 < len(hours):  # the next partition is read while this one is counted (rows parse slowly)
            ahead = read(hours[i + 1])
        for row in result:
            if tally.scanned == tally.limit:
                # Every row newer than this one was counted: the buckets after its own are complete.
                return tally.volume(floor(_aware(row.ts), tally.width) + tally.width, capped=True)
            tally.scanned += 1
            tally.add(row)
    return tally.volume(None, capped=False)


def _by_index(tally: _Tally) -> Volume:
    search, query, width = tally.search, tally.query, tally.width
    table, _ = TABLES[query.table]
    extra, value = _pushed(query)
    statement = search._prepare(
        f"SELECT {tally.columns()} FROM {search.keyspace}.{table} WHERE day = ? AND ts >= ? AND ts < ?{extra} "  # nosec B608
        "LIMIT ?"
    )
    end, buckets = query.end, FIRST_SLICE_BUCKETS
    while end > query.start:
        top = floor(end - timedelta(microseconds=1), width)  # the bucket of the slice's newest row
        start = max(query.start, top - (buckets - 1) * width)
        single = start >= top
        left = tally.limit - tally.scanned
        cap = left if single else min(left // 4, SLICE_ROWS)  # an overflow wastes at most a quarter of what is left
        rows: list[Any] = []
        for day in days_between(start, end):
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            lo, hi = max(start, midnight), min(end, midnight + timedelta(days=1))
            bound = statement.bind([day, _naive(lo), _naive(hi), *value, cap + 1 - len(rows)])
            bound.fetch_size = FETCH_SIZE
            search.queries += 1
            rows += list(search.session.execute(bound))
            if len(rows) > cap:
                break
        tally.scanned += min(len(rows), left)
        if len(rows) > cap:  # the slice holds more than may be read at once: it cannot be counted whole
            if single or tally.scanned >= tally.limit:
                return tally.volume(end, capped=True)
            buckets = max(1, ((top - floor(start, width)) // width + 1) // 2)
            continue
        for row in rows:
            tally.add(row)
        end = start
        if len(rows) * 4 < min((tally.limit - tally.scanned) // 4, SLICE_ROWS):  # twice as wide will fit
            buckets = min(buckets * 2, timedelta(days=1) // width)
    return tally.volume(None, capped=False)


def _by_request(tally: _Tally) -> Volume | None:
    """A request's rows through its own index, as the search reads them; None past TRACE_LIMIT rows."""
    search, query = tally.search, tally.query
    table, _ = TABLES[query.table]
    statement = search._prepare(
        f"SELECT {tally.columns()} FROM {search.keyspace}.{table} WHERE request_id = ? LIMIT {TRACE_LIMIT + 1}"  # nosec B608
    )
    search.queries += 1
    rows = list(search.session.execute(statement, [query.request_id]))
    tally.scanned = len(rows)  # charged to the limit even when another plan must count them
    if len(rows) > TRACE_LIMIT:
        return None
    start, end = _naive(_millis(query.start)), _naive(_millis(query.end))
    for row in rows:
        if start <= row.ts < end:
            tally.add(row)
    return tally.volume(None, capped=False)


def count(search: LogSearch, query: Query, limit: int | None = None) -> Volume:
    """The volume of `query`, reading at most `limit` rows (default: SCANS_PER_COUNT x the scan limit)."""
    tally = _Tally(search, query, limit if limit is not None else search.scan_limit * SCANS_PER_COUNT)
    if query.request_id and tally.limit > TRACE_LIMIT and (counted := _by_request(tally)) is not None:
        return counted
    return _by_partition(tally) if query.host else _by_index(tally)
