"""Alert state in Cassandra (cql/0005_alerting.cql, 0007_alert_console.cql), so it survives a move to another host.

alert_state: one row per (rule, key) that has fired, with the current episode's escalation step and
the channels it reached; alert_acks: who acknowledged which episode; alert_silences; alert_runs holds the last
evaluated window end (missed runs are caught up) and a lease taken with a lightweight transaction
and renewed while a run works, so two hosts scheduled by mistake never evaluate, and notify, at the
same time; a holder that dies leaves a lease that lapses after its TTL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
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
    step: int = 0  # escalation steps sent in this episode
    notified: frozenset[str] = field(default_factory=frozenset)  # channels told during this episode
    logs_path: str = ""  # /logs/?... on the latest window it fired in


@dataclass(frozen=True)
class Ack:
    """Someone took the episode of (rule, key) that started at `since`; a later episode is not covered."""

    rule: str
    key: str
    since: datetime
    acked_at: datetime
    acked_by: str


class NotFiring(LookupError):
    """An ack was asked for a key that is not firing; the message says how to see what is."""


@dataclass
class Silence:
    """Notifications for (rule, key) are held until `until`; key '*' silences every key of the rule."""

    rule: str
    key: str
    until: datetime
    created_by: str
    created_at: datetime | None = None

    def covers(self, rule: str, key: str) -> bool:
        """This silence holds (rule, key): the same key, or every key of the rule."""
        return self.rule == rule and self.key in (key, "*")


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class StateStore:
    """Small reads and writes; every statement names its table and key."""

    def __init__(self, session: Session, keyspace: str, name: str = "iact") -> None:
        self.s = session
        self.ks = cql_identifier(keyspace, "keyspace")  # formatted into the statements below; values are bound
        # One watermark and one lease per installation name (several appliances may share a cluster).
        self.watermark_row, self.lease_row = f"watermark:{name}", f"lease:{name}"

    _STATE = "key, firing, since, last_notified, last_count, escalation_step, notified_channels, logs_path"

    @staticmethod
    def _state(r: object) -> KeyState:
        return KeyState(bool(r.firing), _utc(r.since), _utc(r.last_notified), r.last_count or 0,  # type: ignore[attr-defined]
                        r.escalation_step or 0, frozenset(r.notified_channels or ()), r.logs_path or "")  # type: ignore[attr-defined]  # fmt: skip

    def states(self, rule: str) -> dict[str, KeyState]:
        """Every key of a rule that ever fired."""
        rows = self.s.execute(
            f"SELECT {self._STATE} FROM {self.ks}.alert_state WHERE rule = %s",  # nosec B608 # keyspace checked in __init__
            (rule,),
        )
        return {r.key: self._state(r) for r in rows}

    def firing(self) -> dict[tuple[str, str], KeyState]:
        """Every firing (rule, key), for a page that does not know the rules: the table holds one row
        per key that ever fired, so it is read whole, like the silences."""
        rows = self.s.execute(f"SELECT rule, {self._STATE} FROM {self.ks}.alert_state")  # nosec B608 # keyspace checked in __init__
        return {(r.rule, r.key): self._state(r) for r in rows if r.firing}

    def save(self, rule: str, key: str, state: KeyState) -> None:
        """Write one key's state."""
        self.s.execute(
            f"INSERT INTO {self.ks}.alert_state (rule, key, firing, since, last_notified, last_count, escalation_step, "  # nosec B608 # keyspace checked in __init__
            "notified_channels, logs_path, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (rule, key, state.firing, state.since, state.last_notified, state.last_count, state.step,
             set(state.notified), state.logs_path, datetime.now(UTC)),
        )  # fmt: skip

    def retire(self, rule: str, key: str) -> bool:
        """Drop a key's state (a host decommissioned on purpose): no resolved notice; False if it had none."""
        query = f"SELECT firing FROM {self.ks}.alert_state WHERE rule = %s AND key = %s"  # nosec B608 # keyspace checked in __init__
        if self.s.execute(query, (rule, key)).one() is None:
            return False
        self.s.execute(f"DELETE FROM {self.ks}.alert_state WHERE rule = %s AND key = %s", (rule, key))  # nosec B608 # keyspace checked in __init__
        return True

    def acks(self, rule: str) -> dict[str, Ack]:
        """The last ack of each key of a rule (of this episode or an older one: compare `since`)."""
        return self.acks_of([rule])[rule]

    def acks_of(self, rules: Iterable[str]) -> dict[str, dict[str, Ack]]:
        """The acks of several rules, their partitions read at once (a page listing every firing rule)."""
        cql = f"SELECT key, since, acked_at, acked_by FROM {self.ks}.alert_acks WHERE rule = %s"  # nosec B608 # keyspace checked in __init__
        futures = {rule: self.s.execute_async(cql, (rule,)) for rule in rules}
        return {
            rule: {r.key: Ack(rule, r.key, _utc(r.since), _utc(r.acked_at), r.acked_by or "") for r in f.result()}  # type: ignore[arg-type]
            for rule, f in futures.items()
        }

    def ack(self, rule: str, key: str, by: str, at: datetime | None = None, since: datetime | None = None) -> Ack:
        """Acknowledge the firing episode of (rule, key): its renotify and escalation stop until it resolves.

        `since`: the episode the user saw (the page sends it). When another episode has started since,
        nobody has seen it: refuse rather than silence its escalation.
        """
        row = self.s.execute(
            f"SELECT firing, since FROM {self.ks}.alert_state WHERE rule = %s AND key = %s",  # nosec B608 # keyspace checked in __init__
            (rule, key),
        ).one()
        if row is None or not row.firing or row.since is None:
            raise NotFiring(f"{rule} [{key}] is not firing: nothing to acknowledge (`iact-alert status` lists what is)")
        if since is not None and _utc(row.since) != _utc(since):
            raise NotFiring(
                f"{rule} [{key}] resolved and fired again (since {_utc(row.since):%Y-%m-%d %H:%M:%S} UTC) after "
                "the page was shown: reload it and acknowledge the episode firing now"
            )
        ack = Ack(rule, key, _utc(row.since), at or datetime.now(UTC), by)  # type: ignore[arg-type]
        self.s.execute(
            f"INSERT INTO {self.ks}.alert_acks (rule, key, since, acked_at, acked_by) VALUES (%s, %s, %s, %s, %s)",  # nosec B608 # keyspace checked in __init__
            (rule, key, ack.since, ack.acked_at, by),
        )
        return ack

    def silences(self, now: datetime) -> list[Silence]:
        """Silences still in force."""
        rows = self.s.execute(f"SELECT rule, key, until, created_at, created_by FROM {self.ks}.alert_silences")  # nosec B608 # keyspace checked in __init__
        out = [Silence(r.rule, r.key, _utc(r.until), r.created_by or "", _utc(r.created_at)) for r in rows]  # type: ignore[arg-type]
        return [x for x in out if x.until > now]

    def silence(self, rule: str, key: str, until: datetime, by: str, at: datetime | None = None) -> None:
        """Hold notifications; the row expires by itself shortly after `until`."""
        at = at or datetime.now(UTC)
        ttl = max(60, int((until - at).total_seconds()) + 3600)
        self.s.execute(
            f"INSERT INTO {self.ks}.alert_silences (rule, key, until, created_at, created_by) "  # nosec B608 # keyspace checked in __init__
            f"VALUES (%s, %s, %s, %s, %s) USING TTL {ttl}",
            (rule, key, until, at, by),
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

    def runs(self) -> list[tuple[str, datetime | None, str | None]]:
        """(installation name, last run, status) of every installation sharing the cluster (a few rows)."""
        rows = self.s.execute(f"SELECT name, last_run_at, last_status FROM {self.ks}.alert_runs")  # nosec B608 # keyspace checked in __init__
        return sorted((r.name.removeprefix("watermark:"), _utc(r.last_run_at), r.last_status)
                      for r in rows if r.name.startswith("watermark:"))  # fmt: skip

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
