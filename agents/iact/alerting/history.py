"""What the alerter said, and to whom: alert_events (cql/0007_alert_console.cql), one partition per UTC day.

The engine writes a row per notification it sent or a silence held; the dashboard's /alerts/ page
reads it back by day. Every read names its day, so the page's cost does not grow with the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from cassandra.cluster import Session
from cassandra.util import uuid_from_time

from iact.cassandra.names import cql_identifier

EVENTS = ("firing", "renotify", "escalation", "resolved", "silenced")
DAY_LIMIT = 1000  # rows shown for one day; a day of more notices than this is a storm, and the newest matter


@dataclass(frozen=True)
class Event:
    """One notification: `event` is what happened (EVENTS), `status` firing or resolved."""

    ts: datetime
    rule: str
    key: str
    event: str
    status: str
    severity: str = ""
    count: int = 0
    threshold: int = 0
    step: int = 0
    channels: frozenset[str] = field(default_factory=frozenset)
    failed: frozenset[str] = field(default_factory=frozenset)
    window_start: datetime | None = None
    window_end: datetime | None = None
    logs_path: str = ""  # /logs/?... on the notice's window

    @property
    def sent_to(self) -> str:
        """The channels it reached, in a stable order (for pages and messages)."""
        return ", ".join(sorted(self.channels))

    @property
    def failed_on(self) -> str:
        """The channels that failed it after their retries."""
        return ", ".join(sorted(self.failed))


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class History:
    """Append and read alert_events."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self.s = session
        self.ks = cql_identifier(keyspace, "keyspace")  # formatted into the statements below; values are bound

    def record(self, e: Event) -> None:
        """Append one event to its day (the table's TTL removes it after 90 days)."""
        ts = e.ts.astimezone(UTC)
        self.s.execute(
            f"INSERT INTO {self.ks}.alert_events (day, ts, id, rule, key, event, status, severity, count, threshold, "  # nosec B608 # keyspace checked in __init__
            "step, channels, failed, window_start, window_end, logs_path) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (ts.date(), ts, uuid_from_time(datetime.now(UTC)), e.rule, e.key, e.event, e.status, e.severity, e.count,
             e.threshold, e.step, set(e.channels), set(e.failed), e.window_start, e.window_end, e.logs_path),
        )  # fmt: skip

    def day(self, day: date, since: datetime | None = None, limit: int = DAY_LIMIT) -> list[Event]:
        """One day's events, newest first; only those at or after `since` when given."""
        cql = (
            f"SELECT ts, rule, key, event, status, severity, count, threshold, step, channels, failed, "  # nosec B608 # keyspace checked in __init__
            f"window_start, window_end, logs_path FROM {self.ks}.alert_events WHERE day = %s"
        )
        args: tuple[object, ...] = (day,)
        if since is not None:
            cql += " AND ts >= %s"
            args += (since,)
        rows = self.s.execute(f"{cql} LIMIT {int(limit)}", args)
        return [
            Event(_utc(r.ts), r.rule, r.key, r.event, r.status or "", r.severity or "", r.count or 0,  # type: ignore[arg-type]
                  r.threshold or 0, r.step or 0, frozenset(r.channels or ()), frozenset(r.failed or ()),
                  _utc(r.window_start), _utc(r.window_end), r.logs_path or "")
            for r in rows
        ]  # fmt: skip

    def recent(self, now: datetime, hours: int = 24) -> list[Event]:
        """The last `hours` of events, newest first: today's partition, then the days before it."""
        since = now - timedelta(hours=hours)
        out: list[Event] = []
        day = now.astimezone(UTC).date()
        while day >= since.astimezone(UTC).date():
            out += self.day(day, since)
            day -= timedelta(days=1)
        return out
