"""Log search over the two log tables, newest first, never with ALLOW FILTERING.

Every query either names the partitions it reads or goes through a storage-attached index:

- one host chosen: the host's (host, day, hour) partitions, newest hour first; rows come back in
  the clustering order (ts DESC), so a page is the next rows of those partitions, resumed with
  Cassandra's own paging state (`Page.token`). Indexed equalities narrow each partition read.
- no host: per day, the SAI indexes on `day` and `ts` (plus one indexed equality). Those rows
  arrive in token order, not time order, so they are read in time slices small enough to sort
  (a slice holding more than SLICE_ROWS rows is halved), and pages resume from the last row shown.
- a request id, with or without a host: the SAI index on `request_id` alone, the request's rows
  (at most TRACE_LIMIT of them) sorted here, pages resuming from the last row shown. A request with
  more rows than that goes through the plans above instead.

Filters on columns without an index (`unit`) and the text term are applied here, to rows the query
read; those reads are bounded by `scan_limit` per page, and the page says when it stopped there.
Partitions read for such a filter come SCAN_FETCH rows per round trip, not a page's worth.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cassandra.cluster import Session

from iact.cassandra.days import days_between
from iact.cassandra.names import cql_identifier

PAGE_SIZE = 100
SCAN_FETCH = 1000  # rows per round trip when rows are filtered here (most of them are not shown)
SLICE_ROWS = 2000  # rows sorted in memory at once, for searches across hosts
FIRST_SLICE = timedelta(minutes=5)
MIN_SLICE = timedelta(seconds=1)
TRACE_LIMIT = 2000

TABLES = {"application": ("application_logs", "log_id"), "infrastructure": ("infrastructure_logs", "line_id")}
# Filterable columns per table, and those an SAI index answers (usable in the query itself).
FILTERS = {
    "application": ("app", "level", "logger", "request_id"),
    "infrastructure": ("source", "severity", "program", "unit"),
}
INDEXED = {
    "application": ("request_id", "level", "app", "logger"),
    "infrastructure": ("program", "severity", "source"),
}


class SearchError(ValueError):
    """A search that cannot be run as asked; the message says what to change."""


@dataclass(frozen=True)
class Query:
    """What the user asked for, validated; times are aware UTC, end exclusive."""

    table: str
    start: datetime
    end: datetime
    host: str = ""
    filters: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise SearchError(f"unknown table {self.table!r}: choose one of {', '.join(TABLES)}")
        if not self.start < self.end:
            raise SearchError("the time range is empty: 'from' must be before 'to'")
        for column, _ in self.filters:
            if column not in FILTERS[self.table]:
                raise SearchError(f"{self.table} logs cannot be filtered on {column!r}")

    @property
    def pushed(self) -> tuple[str, str] | None:
        """The one indexed equality the query itself carries (the most selective first)."""
        mine = dict(self.filters)
        column = next((c for c in INDEXED[self.table] if c in mine), None)
        return (column, mine[column]) if column else None

    @property
    def request_id(self) -> str:
        """The request id asked for, or ''."""
        return dict(self.filters).get("request_id", "")

    @property
    def residual(self) -> tuple[tuple[str, str], ...]:
        """Filters applied here, to the rows read."""
        return tuple(f for f in self.filters if f != self.pushed)

    @property
    def plan(self) -> str:
        """How the query reads, for the page: 'request', 'partitions', 'index' (fast) or 'scan' (bounded)."""
        if self.text or any(c not in INDEXED[self.table] for c, _ in self.residual):
            return "scan"
        return "request" if self.request_id else "partitions" if self.host else "index"

    def digest(self) -> str:
        """Binds a paging token to this query: a token is refused for any other."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


@dataclass
class Page:
    """One page of rows (dicts, newest first), and where the next one starts."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    cursor: dict[str, Any] | None = None  # None: no further page
    scanned: int = 0
    scan_limited: bool = False


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _millis(at: datetime) -> datetime:
    """`at` as the driver sends it: truncated to the millisecond."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _hours(start: datetime, end: datetime) -> list[datetime]:
    """Hour starts covering [start, end), newest first."""
    hour = (end - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour >= start.replace(minute=0, second=0, microsecond=0):
        out.append(hour)
        hour -= timedelta(hours=1)
    return out


class LogSearch:
    """Runs queries on one session; statements are prepared once per shape."""

    def __init__(self, session: Session, keyspace: str = "logging", scan_limit: int = 20_000) -> None:
        self.session = session
        self.keyspace = cql_identifier(keyspace, "keyspace")
        self.scan_limit = scan_limit
        self._prepared: dict[str, Any] = {}
        self.queries = 0  # statements run, for tests and the benchmark

    def _prepare(self, cql: str) -> Any:
        if cql not in self._prepared:
            self._prepared[cql] = self.session.prepare(cql)
        return self._prepared[cql]

    def _matches(self, query: Query, row: Any) -> bool:
        if query.host and row.host != query.host:  # only the plans that do not name partitions can differ
            return False
        if any(str(getattr(row, c) or "") != v for c, v in query.residual):
            return False
        return not query.text or query.text.lower() in (row.message or "").lower()

    # One host: its partitions, newest hour first, resumed with Cassandra's paging state.

    def _partition_statement(self, query: Query) -> Any:
        table, _ = TABLES[query.table]
        extra = f" AND {query.pushed[0]} = ?" if query.pushed else ""
        return self._prepare(
            f"SELECT * FROM {self.keyspace}.{table} WHERE host = ? AND day = ? AND hour = ? "  # nosec B608 # names are constants
            f"AND ts >= ? AND ts < ?{extra}"
        )

    def _by_partition(self, query: Query, cursor: dict[str, Any] | None) -> Page:
        hours = _hours(query.start, query.end)
        index = cursor["hour"] if cursor else 0
        state = bytes.fromhex(cursor["state"]) if cursor and cursor.get("state") else None
        skip = cursor["skip"] if cursor else 0
        page = Page()
        statement = self._partition_statement(query)
        while index < len(hours):
            hour = hours[index]
            args = [query.host, hour.date(), hour.hour, _naive(query.start), _naive(query.end)]
            args += [query.pushed[1]] if query.pushed else []
            bound = statement.bind(args)
            bound.fetch_size = SCAN_FETCH if query.residual or query.text else PAGE_SIZE
            self.queries += 1
            result = self.session.execute(bound, paging_state=state)
            rows = result.current_rows
            for position, row in enumerate(rows):
                if position < skip:
                    continue
                page.scanned += 1
                if self._matches(query, row):
                    page.rows.append(_as_dict(row, query.table))
                if len(page.rows) == PAGE_SIZE or page.scanned >= self.scan_limit:
                    page.scan_limited = len(page.rows) < PAGE_SIZE
                    if position + 1 < len(rows):  # resume inside this fetched page
                        page.cursor = _cursor(index, state, position + 1)
                    elif result.paging_state:
                        page.cursor = _cursor(index, result.paging_state, 0)
                    elif index + 1 < len(hours):
                        page.cursor = _cursor(index + 1, None, 0)
                    return page
            skip = 0
            if result.paging_state:
                state = result.paging_state
            else:
                index, state = index + 1, None
        return page

    # Any host: time slices through the SAI indexes, each sorted here.

    def _index_statement(self, query: Query) -> Any:
        table, _ = TABLES[query.table]
        extra = f" AND {query.pushed[0]} = ?" if query.pushed else ""
        return self._prepare(
            f"SELECT * FROM {self.keyspace}.{table} WHERE day = ? AND ts >= ? AND ts < ?{extra} LIMIT {SLICE_ROWS + 1}"  # nosec B608
        )

    def _slice(self, query: Query, start: datetime, end: datetime) -> tuple[list[Any], bool]:
        """Rows of [start, end), and whether there were more than SLICE_ROWS (then only those)."""
        statement = self._index_statement(query)
        rows: list[Any] = []
        for day in days_between(start, end):
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            lo, hi = max(start, midnight), min(end, midnight + timedelta(days=1))
            args = [day, _naive(lo), _naive(hi)] + ([query.pushed[1]] if query.pushed else [])
            self.queries += 1
            rows += list(self.session.execute(statement, args))
            if len(rows) > SLICE_ROWS:
                return rows[:SLICE_ROWS], True
        return rows, False

    def _fill(self, query: Query, rows: list[Any], after: tuple[datetime, str] | None, page: Page) -> bool:
        """Adds `rows`, sorted here newest first, from after `after` on; True once the page is full
        or the scan limit reached (the page's cursor then names its last row read)."""
        _, id_column = TABLES[query.table]
        rows.sort(key=lambda r: (-_aware(r.ts).timestamp(), str(getattr(r, id_column))))
        for row in rows:
            ts, row_id = _aware(row.ts), str(getattr(row, id_column))
            if after and (ts > after[0] or (ts == after[0] and row_id <= after[1])):
                continue
            page.scanned += 1
            if self._matches(query, row):
                page.rows.append(_as_dict(row, query.table))
            if len(page.rows) == PAGE_SIZE or page.scanned >= self.scan_limit:
                page.scan_limited = page.scan_limited or len(page.rows) < PAGE_SIZE
                page.cursor = {"ts": ts.isoformat(), "id": row_id}
                return True
        return False

    def _by_index(self, query: Query, cursor: dict[str, Any] | None) -> Page:
        page = Page()
        # Resume after the last row shown: rows are ordered by (ts DESC, id ASC).
        after = (datetime.fromisoformat(cursor["ts"]), cursor["id"]) if cursor else None
        end = after[0] + timedelta(milliseconds=1) if after else query.end
        width = FIRST_SLICE
        while end > query.start:
            start = max(query.start, end - width)
            rows, overflow = self._slice(query, start, end)
            if overflow and end - start > MIN_SLICE:
                width = max(MIN_SLICE, (end - start) / 2)
                continue
            # A second holding more than SLICE_ROWS rows: the first of them only, and the page says so.
            page.scan_limited = page.scan_limited or overflow
            if self._fill(query, rows, after, page):
                return page
            after = None
            end = start
            if len(rows) < SLICE_ROWS // 4:
                width = min(width * 2, timedelta(days=1))
        return page

    # A request id: its index alone, every row of the request sorted here.

    def _by_request(self, query: Query, cursor: dict[str, Any] | None) -> Page | None:
        """The page, or None when the request has more than TRACE_LIMIT rows (too many to sort here)."""
        table, _ = TABLES[query.table]
        statement = self._prepare(
            f"SELECT * FROM {self.keyspace}.{table} WHERE request_id = ? LIMIT {TRACE_LIMIT + 1}"  # nosec B608
        )
        self.queries += 1
        rows = list(self.session.execute(statement, [query.request_id]))
        if len(rows) > TRACE_LIMIT:
            return None
        # Cassandra compares times in milliseconds: so does this filter, like the other plans' queries.
        start, end = _naive(_millis(query.start)), _naive(_millis(query.end))
        rows = [r for r in rows if start <= r.ts < end]
        after = (datetime.fromisoformat(cursor["ts"]), cursor["id"]) if cursor else None
        page = Page()
        self._fill(query, rows, after, page)
        return page

    def search(self, query: Query, cursor: dict[str, Any] | None = None) -> Page:
        """The page of `query` that starts at `cursor` (None: the first page)."""
        if query.request_id and (cursor is None or "ts" in cursor):
            page = self._by_request(query, cursor)
            if page is not None:
                return page
            if cursor is not None:  # the request outgrew TRACE_LIMIT between pages: go on in time order
                return self._by_index(query, cursor)
        return self._by_partition(query, cursor) if query.host else self._by_index(query, cursor)

    def trace(self, request_id: str) -> list[dict[str, Any]]:
        """Every application row of one request, across hosts, oldest first."""
        statement = self._prepare(
            f"SELECT * FROM {self.keyspace}.application_logs WHERE request_id = ? LIMIT {TRACE_LIMIT}"  # nosec B608
        )
        self.queries += 1
        rows = [_as_dict(r, "application") for r in self.session.execute(statement, [request_id])]
        return sorted(rows, key=lambda r: (r["ts"], r["id"]))

    def row(self, table: str, host: str, ts: datetime, row_id: str) -> dict[str, Any] | None:
        """One row by its primary key."""
        name, id_column = TABLES[table]
        statement = self._prepare(
            f"SELECT * FROM {self.keyspace}.{name} WHERE host = ? AND day = ? AND hour = ? "  # nosec B608
            f"AND ts = ? AND {id_column} = ?"
        )
        self.queries += 1
        at = _aware(ts)
        found = self.session.execute(statement, [host, at.date(), at.hour, _naive(at), uuid.UUID(row_id)]).one()
        return _as_dict(found, table) if found else None

    def context(self, table: str, host: str, ts: datetime, around: int = 10) -> list[dict[str, Any]]:
        """The `around` lines before and after `ts` on the same host (the row's own included), newest first."""
        name, _ = TABLES[table]
        where = f"FROM {self.keyspace}.{name} WHERE host = ? AND day = ? AND hour = ?"
        older = self._prepare(f"SELECT * {where} AND ts <= ? LIMIT {around + 1}")  # nosec B608
        newer = self._prepare(f"SELECT * {where} AND ts > ? ORDER BY ts ASC LIMIT {around}")  # nosec B608
        at = _aware(ts)
        rows: dict[tuple[datetime, str], dict[str, Any]] = {}
        for hour in (at - timedelta(hours=1), at, at + timedelta(hours=1)):
            for statement in (older, newer):
                self.queries += 1
                for r in self.session.execute(statement, [host, hour.date(), hour.hour, _naive(at)]):
                    d = _as_dict(r, table)
                    rows[(d["ts"], d["id"])] = d
        after = sorted((r for r in rows.values() if r["ts"] > at), key=lambda r: r["ts"])[:around]
        before = sorted((r for r in rows.values() if r["ts"] <= at), key=lambda r: r["ts"], reverse=True)
        return after[::-1] + before[: around + 1]


def _cursor(hour: int, state: bytes | None, skip: int) -> dict[str, Any]:
    return {"hour": hour, "state": state.hex() if state else "", "skip": skip}


def _as_dict(row: Any, table: str) -> dict[str, Any]:
    """A row as the templates and JSON see it: aware UTC time, the id as text, every column."""
    data = row._asdict()
    _, id_column = TABLES[table]
    data["ts"] = _aware(data["ts"])
    data["id"] = str(data.pop(id_column))
    data["table"] = table
    return data


def iter_pages(search: LogSearch, query: Query) -> Iterator[Page]:
    """Every page of a query, for exports and tests."""
    cursor = None
    while True:
        page = search.search(query, cursor)
        yield page
        if page.cursor is None:
            return
        cursor = page.cursor
