"""The fleet at a glance: a snapshot of the Cassandra nodes, the collector hosts and the alert runs,
each green, amber or red with the reason.

Built by the dashboard's health job (`iact-dora dora_health`, from cron) and written to a file that
/health/ only reads: a page view never runs a query per node. The nodes' state comes from the
driver's view of the ring and each node's own `system_views.pending_hints` (a CQL virtual table,
no nodetool, no JMX); the hosts' from the metrics row each collector writes every minute.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cassandra.cluster import Session

GREEN, AMBER, RED = "green", "amber", "red"
SEEN_AMBER = timedelta(minutes=3)  # collectors write metrics every minute
SEEN_RED = timedelta(minutes=10)
LAG_AMBER = 10 * 1024**2
RESTART_AMBER = timedelta(minutes=10)
ALERT_RUN_RED = timedelta(minutes=20)  # the alert job runs every 5 minutes


@dataclass
class Item:
    """One line of the page."""

    kind: str  # node, collector, alerting
    name: str
    state: str
    reason: str
    details: dict[str, str]


def _worst(states: list[str]) -> str:
    return RED if RED in states else AMBER if AMBER in states else GREEN


def _pending_hints(session: Session, host: Any, attempts: int = 5) -> list[Any]:
    """The node's own pending_hints (a virtual table: only that node can answer). The health job
    connects afresh each run, and the driver opens its pools to the other nodes in the background, so a
    node whose pool is not ready yet is asked again, for a few seconds."""
    for attempt in range(attempts):
        try:
            return list(session.execute("SELECT host_id, files FROM system_views.pending_hints", host=host))
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    return []


def nodes(session: Session) -> list[Item]:
    """Each node the driver knows: up or down (its view), release, and the hints it holds."""
    out = []
    cluster = session.cluster
    for host in sorted(cluster.metadata.all_hosts(), key=lambda h: str(h.endpoint)):
        details = {"address": str(host.endpoint.address), "release": str(host.release_version or "?"),
                   "dc": str(host.datacenter), "rack": str(host.rack)}  # fmt: skip
        if not host.is_up:
            out.append(Item("node", details["address"], RED, "down (the dashboard's driver cannot reach it)", details))
            continue
        try:
            rows = _pending_hints(session, host)
        except Exception as exc:  # the node answered the ring but not this query
            out.append(Item("node", details["address"], AMBER, f"pending hints unreadable: {exc}"[:200], details))
            continue
        files = sum(int(r.files or 0) for r in rows)
        details["hint_files"] = str(files)
        state, reason = (AMBER, f"holds {files} hint file(s) for {len(rows)} node(s)") if files else (GREEN, "up")
        out.append(Item("node", details["address"], state, reason, details))
    return out


def collectors(session: Session, keyspace: str, now: datetime) -> list[Item]:
    """The newest metrics row of every host seen in the last hour, judged by age, lag, spool and restarts."""
    latest: dict[str, Any] = {}
    since = now - timedelta(hours=1)
    statement = session.prepare(
        f"SELECT host, ts, fields FROM {keyspace}.infrastructure_logs "  # nosec B608 # keyspace checked by the caller
        "WHERE day = ? AND ts >= ? AND ts < ? AND source = 'metrics'"
    )
    for day in sorted({since.date(), now.date()}):
        for row in session.execute(statement, [day, since.replace(tzinfo=None), now.replace(tzinfo=None)]):
            if row.host not in latest or row.ts > latest[row.host].ts:
                latest[row.host] = row
    out = []
    for host, row in sorted(latest.items()):
        fields = dict(row.fields or {})
        seen = row.ts.replace(tzinfo=UTC)
        age = now - seen
        details = {"last_seen": seen.isoformat(timespec="seconds"), "version": fields.get("agent_version", "?"),
                   "lag_bytes": fields.get("agent_lag_bytes", "?"), "spool_bytes": fields.get("agent_spool_bytes", "?"),
                   "started_at": fields.get("agent_started_at", "?")}  # fmt: skip
        problems: list[tuple[str, str]] = []
        if age > SEEN_RED:
            problems.append((RED, f"no metrics for {int(age.total_seconds() // 60)} min"))
        elif age > SEEN_AMBER:
            problems.append((AMBER, f"no metrics for {int(age.total_seconds() // 60)} min"))
        if fields.get("agent_spool_bytes", "0") not in ("0", ""):
            problems.append((AMBER, f"spooling {fields['agent_spool_bytes']} bytes (Cassandra unreachable?)"))
        if int(fields.get("agent_lag_bytes", "0") or 0) > LAG_AMBER:
            problems.append((AMBER, f"{fields['agent_lag_bytes']} bytes behind its files"))
        started = fields.get("agent_started_at")
        if started and now - datetime.fromisoformat(started) < RESTART_AMBER:
            problems.append((AMBER, f"agent restarted at {started[:19]}"))
        state = _worst([s for s, _ in problems])
        out.append(Item("collector", host, state, "; ".join(r for _, r in problems) or "reporting", details))
    return out


def alert_runs(session: Session, keyspace: str, now: datetime) -> list[Item]:
    """The last evaluation of each alerting installation (not the leases); amber when none ever ran."""
    out = []
    for row in session.execute(f"SELECT name, last_run_at, last_status FROM {keyspace}.alert_runs"):  # nosec B608
        if row.name.startswith("lease:") or row.last_run_at is None:
            continue
        at = row.last_run_at.replace(tzinfo=UTC)
        details = {"last_run_at": at.isoformat(timespec="seconds"), "status": str(row.last_status)}
        if now - at > ALERT_RUN_RED:
            out.append(Item("alerting", row.name, RED, f"no alert run since {details['last_run_at']}", details))
        elif row.last_status != "ok":
            out.append(Item("alerting", row.name, AMBER, f"last run: {row.last_status}", details))
        else:
            out.append(Item("alerting", row.name, GREEN, "evaluated on time", details))
    if not out:  # a line that says so, rather than no line at all
        out.append(Item("alerting", "iact-alert", AMBER, "never ran: no alert run recorded in alert_runs; is "
                        "iact-alert installed and scheduled (roles/alerting)?", {}))  # fmt: skip
    return out


def snapshot(session: Session, keyspace: str = "logging", now: datetime | None = None) -> dict[str, Any]:
    """Everything /health/ shows."""
    now = now or datetime.now(UTC)
    items = nodes(session) + collectors(session, keyspace, now) + alert_runs(session, keyspace, now)
    return {"taken_at": now.isoformat(timespec="seconds"), "state": _worst([i.state for i in items]),
            "items": [asdict(i) for i in items]}  # fmt: skip


def write(path: Path, data: dict[str, Any]) -> None:
    """Atomically, so the page never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fleet-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)
