"""Count log rows in a time window, per key, straight from Cassandra.

Queries go by day (a window may straddle midnight) and ts range, plus an equality on one indexed
column when the rule filters on it; the SAI indexes answer that without ALLOW FILTERING. Other
filters and the grouping happen here, on rows of one window only.

One evaluation reads each table once for all the rules that share it (`count_spans`): twenty rules
over one window cost one scan, not twenty. Rules that narrow the table by an indexed equality and
reach outside that scan's range get one narrower query per distinct equality instead.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cassandra.cluster import Session

from iact.alerting.rules import COLUMNS, TABLES, Rule
from iact.cassandra.days import days_between
from iact.cassandra.names import cql_identifier

# Columns with a storage-attached index, usable as an equality in the query itself.
INDEXED = {"application": ("level", "logger", "app"), "infrastructure": ("severity", "source", "program")}
ALL_KEYS = "*"


@dataclass
class WindowCounts:
    """Counts per key over [start, end), with the most recent sample lines per key.

    Rows arrive in token order, not time order, so the first rows seen are arbitrary; a notice
    should show what is happening now, so each key keeps a small heap of its newest rows.
    """

    start: datetime
    end: datetime
    counts: Counter[str] = field(default_factory=Counter)
    _newest: dict[str, list[tuple[datetime, int, str]]] = field(default_factory=lambda: defaultdict(list))

    def offer(self, key: str, ts: datetime, line: str, keep: int) -> None:
        """Keep `line` if it is among the `keep` newest seen for `key` (ties: first seen wins)."""
        heap = self._newest[key]
        item = (ts, -self.counts[key], line)
        if len(heap) < keep:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    def samples(self, key: str) -> list[str]:
        """The newest lines kept for `key`, in time order (oldest of them first), as a notice prints them."""
        return [line for _, _, line in sorted(self._newest.get(key, ()))]


@dataclass(frozen=True)
class Span:
    """One rule's count over [start, end), named by `key` in the answer of `count_spans`."""

    key: str
    rule: Rule
    start: datetime
    end: datetime


def _naive_utc(at: datetime) -> datetime:
    """The driver returns timestamps naive in UTC; compare like with like."""
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


class WindowQuery:
    """Prepared statements per (table, indexed filter), reused across rules and windows."""

    def __init__(self, session: Session, keyspace: str, samples_per_key: int = 3) -> None:
        self.session = session
        self.keyspace = cql_identifier(keyspace, "keyspace")
        self.samples_per_key = samples_per_key
        self._prepared: dict[tuple[str, str | None], object] = {}
        self.scans = 0  # queries run (one per table, day and indexed equality), for tests and benchmarks

    def _statement(self, table: str, column: str | None) -> object:
        key = (table, column)
        if key not in self._prepared:
            cols = ", ".join(sorted({"host", "ts", "message", *COLUMNS[table]}))
            extra = f" AND {column} = ?" if column else ""
            self._prepared[key] = self.session.prepare(
                f"SELECT {cols} FROM {self.keyspace}.{TABLES[table]} WHERE day = ? AND ts >= ? AND ts < ?{extra}"  # nosec B608 # names checked or constants
            )
        return self._prepared[key]

    def count(self, rule: Rule, start: datetime, end: datetime) -> WindowCounts:
        """Rows matching the rule's filters in [start, end), grouped by its key."""
        return self.count_spans([Span("", rule, start, end)])[""]

    def _pushed(self, rule: Rule) -> tuple[str, str] | None:
        column = next((c for c in INDEXED[rule.table] if len(rule.filters.get(c, ())) == 1), None)
        return (column, rule.filters[column][0]) if column else None

    def count_spans(self, spans: list[Span]) -> dict[str, WindowCounts]:
        """Every span's counts, each table read once for all of them.

        The spans that need every row of a table (no indexed equality) share one unfiltered scan
        over the union of their ranges, and so does every narrower span inside that range. A
        narrower span outside it (host-silent's hour of lookback, say) is read through its indexed
        equality, one query per distinct equality, since reading every row of its range would cost
        far more than the window itself.
        """
        results = {span.key: WindowCounts(span.start, span.end) for span in spans}
        for table in TABLES:
            mine = [s for s in spans if s.rule.table == table]
            wide = [s for s in mine if self._pushed(s.rule) is None]
            lo = min((s.start for s in wide), default=None)
            hi = max((s.end for s in wide), default=None)
            groups: dict[tuple[str, str] | None, list[Span]] = defaultdict(list)
            for span in mine:
                covered = lo is not None and hi is not None and lo <= span.start and span.end <= hi
                groups[None if covered else self._pushed(span.rule)].append(span)
            for equality, members in groups.items():
                self._scan(table, equality, members, results)
        return results

    def _scan(
        self, table: str, equality: tuple[str, str] | None, spans: list[Span], results: dict[str, WindowCounts]
    ) -> None:
        start, end = min(s.start for s in spans), max(s.end for s in spans)
        statement = self._statement(table, equality[0] if equality else None)
        checks = [
            (s, _naive_utc(s.start), _naive_utc(s.end), {c: set(v) for c, v in s.rule.filters.items()}) for s in spans
        ]
        for day in days_between(start, end):
            args = [day, start, end] + ([equality[1]] if equality else [])
            self.scans += 1
            for row in self.session.execute(statement, args):  # type: ignore[arg-type]
                ts = _naive_utc(row.ts)
                line = None
                for span, lo, hi, filters in checks:
                    if not lo <= ts < hi or any(str(getattr(row, c)) not in v for c, v in filters.items()):
                        continue
                    key = str(getattr(row, span.rule.group_by)) if span.rule.group_by else ALL_KEYS
                    result = results[span.key]
                    result.counts[key] += 1
                    line = line or f"{row.ts:%Y-%m-%d %H:%M:%S} {row.host}: {row.message[:300]}"
                    result.offer(key, row.ts, line, self.samples_per_key)
