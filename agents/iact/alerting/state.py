"""Alert state in Cassandra (cql/0005_alerting.cql), so it survives a move to another host.

alert_state: one row per (rule, key) that has fired; alert_silences; alert_runs holds the last
evaluated window end (missed runs are caught up) and a lease taken with a lightweight transaction
and renewed while a run works, so two hosts scheduled by mistake never evaluate, and notify, at the
same time; a holder that dies leaves a lease that lapses after its TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.cluster import Session

from iact.cassandra.names import cql_identifier


@dataclass
class KeyState:
    """What was last said about one (rule, key)."""

    firing: bool
    since: datetime | None
    last_notified: datetime | None
    last_count: int


@dataclass
class Silence:
    """Notifications for (rule, key) are held until `until`; key '*' silences every key of the rule."""

    rule: str
    key: str
    until: datetime
    created_by: str


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class StateStore:
    """Small reads and writes; every statement names its table and key."""

    def __init__(self, session: Session, keyspace: str, name: str = "iact") -> None:
        self.s = session
        self.ks = cql_identifier(keyspace, "keyspace")  # formatted into the statements below; values are bound
        # One watermark and one lease per installation name (several appliances may share a cluster).
        self.watermark_row, self.lease_row = f"watermark:{name}", f"lease:{name}"

    def states(self, rule: str) -> dict[str, KeyState]:
        """Every key of a rule that ever fired."""
        rows = self.s.execute(
            f"SELECT key, firing, since, last_notified, last_count FROM {self.ks}.alert_state WHERE rule = %s",  # nosec B608 # keyspace checked in __init__
            (rule,),
        )
        return {r.key: KeyState(bool(r.firing), _utc(r.since), _utc(r.last_notified), r.last_count or 0) for r in rows}

    def save(self, rule: str, key: str, state: KeyState) -> None:
        """Write one key's state."""
        self.s.execute(
            f"INSERT INTO {self.ks}.alert_state (rule, key, firing, since, last_notified, last_count, updated_at) "  # nosec B608 # keyspace checked in __init__
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (rule, key, state.firing, state.since, state.last_notified, state.last_count, datetime.now(UTC)),
        )

    def silences(self, now: datetime) -> list[Silence]:
        """Silences still in force."""
        rows = self.s.execute(f"SELECT rule, key, until, created_by FROM {self.ks}.alert_silences")  # nosec B608 # keyspace checked in __init__
        out = [Silence(r.rule, r.key, _utc(r.until), r.created_by or "") for r in rows]  # type: ignore[arg-type]
        return [x for x in out if x.until > now]

    def silence(self, rule: str, key: str, until: datetime, by: str) -> None:
        """Hold notifications; the row expires by itself shortly after `until`."""
        ttl = max(60, int((until - datetime.now(UTC)).total_seconds()) + 3600)
        self.s.execute(
            f"INSERT INTO {self.ks}.alert_silences (rule, key, until, created_at, created_by) "  # nosec B608 # keyspace checked in __init__
            f"VALUES (%s, %s, %s, %s, %s) USING TTL {ttl}",
            (rule, key, until, datetime.now(UTC), by),
        )

    def unsilence(self, rule: str, key: str) -> None:
        """Lift a silence."""
        self.s.execute(f"DELETE FROM {self.ks}.alert_silences WHERE rule = %s AND key = %s", (rule, key))  # nosec B608 # keyspace checked in __init__

    def watermark(self) -> datetime | None:
        """End of the last evaluated window."""
        row = self.s.execute(
            f"SELECT last_window_end FROM {self.ks}.alert_runs WHERE name = %s",  # nosec B608 # keyspace checked in __init__
            (self.watermark_row,),
        ).one()
        return _utc(row.last_window_end) if row else None

    def last_run(self) -> tuple[datetime | None, str | None]:
        """When the last run finished and how."""
        row = self.s.execute(
            f"SELECT last_run_at, last_status FROM {self.ks}.alert_runs WHERE name = %s",  # nosec B608 # keyspace checked in __init__
            (self.watermark_row,),
        ).one()
        return (_utc(row.last_run_at), row.last_status) if row else (None, None)

    def set_watermark(self, end: datetime, status: str) -> None:
        """Record progress (after each window, so a crash resumes where it stopped)."""
        self.s.execute(
            f"INSERT INTO {self.ks}.alert_runs (name, last_window_end, last_run_at, last_status) "  # nosec B608 # keyspace checked in __init__
            "VALUES (%s, %s, %s, %s)",
            (self.watermark_row, end, datetime.now(UTC), status),
        )

    def acquire(self, owner: str, ttl: int) -> str | None:
        """Take the lease; None if taken, else the current holder's name is returned on failure."""
        row = self.s.execute(
            f"INSERT INTO {self.ks}.alert_runs (name, lease_owner) VALUES (%s, %s) IF NOT EXISTS USING TTL {int(ttl)}",  # nosec B608 # keyspace checked in __init__
            (self.lease_row, owner),
        ).one()
        return None if row[0] else (getattr(row, "lease_owner", None) or "another host")

    def renew(self, owner: str, ttl: int) -> str | None:
        """Extend our lease by `ttl`; None while we hold it, else who does now ("nobody": it lapsed)."""
        row = self.s.execute(
            f"UPDATE {self.ks}.alert_runs USING TTL {int(ttl)} SET lease_owner = %s WHERE name = %s "  # nosec B608 # keyspace checked in __init__
            "IF lease_owner = %s",
            (owner, self.lease_row, owner),
        ).one()
        return None if row[0] else (getattr(row, "lease_owner", None) or "nobody")

    def release(self, owner: str) -> None:
        """Give the lease back (it also expires by itself)."""
        self.s.execute(f"DELETE FROM {self.ks}.alert_runs WHERE name = %s IF lease_owner = %s", (self.lease_row, owner))  # nosec B608 # keyspace checked in __init__
