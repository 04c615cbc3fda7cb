"""Count log rows in a time window, per key, straight from Cassandra.

Queries go by day (a window may straddle midnight) and ts range, plus an equality on one indexed
column when the rule filters on it; the SAI indexes answer that without ALLOW FILTERING. Other
filters and the grouping happen here, on rows of one window only.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cassandra.cluster import Session

from iact.alerting.rules import COLUMNS, TABLES, Rule
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


def _days(start: datetime, end: datetime) -> list:
    day, last = start.date(), (end - timedelta(microseconds=1)).date()
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out


class WindowQuery:
    """Prepared statements per (table, indexed filter), reused across rules and windows."""

    def __init__(self, session: Session, keyspace: str, samples_per_key: int = 3) -> None:
        self.session = session
        self.keyspace = cql_identifier(keyspace, "keyspace")
        self.samples_per_key = samples_per_key
        self._prepared: dict[tuple[str, str | None], object] = {}

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
        result = WindowCounts(start, end)
        pushed = next((c for c in INDEXED[rule.table] if len(rule.filters.get(c, ())) == 1), None)
        statement = self._statement(rule.table, pushed)
        rest = {c: set(v) for c, v in rule.filters.items() if c != pushed}
        for day in _days(start, end):
            args = [day, start, end] + ([rule.filters[pushed][0]] if pushed else [])
            for row in self.session.execute(statement, args):  # type: ignore[arg-type]
                if any(str(getattr(row, c)) not in values for c, values in rest.items()):
                    continue
                key = str(getattr(row, rule.group_by)) if rule.group_by else ALL_KEYS
                result.counts[key] += 1
                line = f"{row.ts:%Y-%m-%d %H:%M:%S} {row.host}: {row.message[:300]}"
                result.offer(key, row.ts, line, self.samples_per_key)
        return result
