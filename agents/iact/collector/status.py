"""The status file the running agent writes and `iact-collector status` reads."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Atomic replace, world-readable (it holds offsets and counters, never log content)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status, indent=1, sort_keys=True))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any]:
    """The last status written; raises FileNotFoundError if the agent never ran."""
    return json.loads(path.read_text())


def age_seconds(status: dict[str, Any]) -> float:
    """Seconds since the agent last wrote the file."""
    return time.time() - datetime.fromisoformat(status["updated_at"]).timestamp()


def lag_stalled_for(status: dict[str, Any], now: float | None = None, floor: int = 0) -> float:
    """Seconds for which lag has stayed above `floor` without shrinking (0 when caught up or shrinking).

    From the lag history (one sample per 10 s): the longest trailing span in which every sample
    was above the floor and the newest is not below the span's first. The floor keeps a busy host,
    whose lag hovers at what arrived since the last batch, from looking stuck.
    """
    history = status.get("lag_history") or []
    if not history or history[-1][1] <= floor:
        return 0.0
    now = now or time.time()
    newest = history[-1][1]
    start = None
    for t, lag in reversed(history):
        if lag <= floor:
            break
        if newest >= lag:
            start = t
    return now - start if start is not None else 0.0


def problems(
    status: dict[str, Any],
    max_age: float = 30.0,
    max_lag_bytes: int | None = None,
    stall_seconds: float = 300.0,
    restart_window: float = 600.0,
    stall_floor_bytes: int = 1 << 20,
    now: float | None = None,
) -> list[str]:
    """What `status` and health.yml FAIL on, each saying what to look at."""
    now = now or time.time()
    found = []
    age = now - datetime.fromisoformat(status["updated_at"]).timestamp()
    if age > max_age:
        found.append(f"status is {age:.0f} s old: is the collector running? (systemctl status iact-collector)")
    if not status["healthy"]:
        found.append("a pipeline stage is not running: see journalctl -u iact-collector")
    if max_lag_bytes is not None and status["lag_bytes"] > max_lag_bytes:
        found.append(f"lag {status['lag_bytes']} bytes is above {max_lag_bytes}")
    crashes = [t for t in status.get("crash_restarts", []) if now - t <= restart_window]
    if crashes:
        found.append(
            f"{len(crashes)} restart(s) after a crash in the last {restart_window / 60:.0f} min: "
            "see journalctl -u iact-collector for the traceback"
        )
    stalled = lag_stalled_for(status, now, stall_floor_bytes)
    if stalled >= stall_seconds:
        found.append(f"lag has not shrunk for {stalled / 60:.1f} min ({status['lag_bytes']} bytes behind)")
    waiting = status["lag_bytes"] > 0 or bool(status.get("in_flight")) or any(status.get("queues", {}).values())
    if waiting and "last_ack_at" in status:
        quiet = now - datetime.fromisoformat(status["last_ack_at"]).timestamp()
        if quiet >= stall_seconds:
            found.append(
                f"nothing acknowledged for {quiet / 60:.1f} min while lines wait: "
                f"last error: {status.get('last_error') or 'none'}"
            )
    if status.get("last_stage_error_at") and now - status["last_stage_error_at"] <= restart_window:
        found.append(
            f"{status['counters'].get('stage_errors', 0)} unexpected error(s) in the pipeline since start, the last "
            f"{(now - status['last_stage_error_at']) / 60:.0f} min ago: see journalctl -u iact-collector"
        )
    dead = status.get("dead_letter", {})
    if dead.get("count") and now - (dead.get("last_at") or 0) <= restart_window:
        found.append(
            f"{dead['count']} row(s) set aside in {dead['file']} since start, the last "
            f"{(now - dead['last_at']) / 60:.0f} min ago: {dead.get('last_reason')}"
        )
    return found


def render(status: dict[str, Any]) -> str:
    """A human-readable table."""
    c = status["counters"]
    lines = [
        f"iact-collector {status['version']} pid {status['pid']} on {status['host']}, "
        f"up since {status['started_at']}, updated {age_seconds(status):.0f} s ago, "
        f"{'healthy' if status['healthy'] else 'UNHEALTHY'}",
        f"spool: {status['spool_bytes']} bytes   queues: lines {status['queues']['lines']}, "
        f"batches {status['queues']['batches']}   lag: {status['lag_bytes']} bytes",
        "",
        f"{'FILE':<40} {'SOURCE':<10} {'ACKED':>12} {'SIZE':>12} {'LAG':>10}",
    ]
    for path, f in sorted(status["files"].items()):
        name = path + (" (rotated)" if f["rotated"] else "")
        lines.append(f"{name:<40} {f['source']:<10} {f['acked_offset']:>12} {f['size']:>12} {f['lag_bytes']:>10}")
    j = status["journal"]
    if j["enabled"]:
        lines.append(f"journal: {j['entries_read']} entries read, acknowledged cursor {j['acked_cursor'] or '-'}")
        if j.get("entries_reread") or j.get("entries_incomplete"):  # .get: a status file from an older agent
            lines.append(
                f"journal: {j.get('entries_reread', 0)} entries printed torn and read again by cursor, "
                f"{j.get('entries_incomplete', 0)} still torn (see the agent's warnings)"
            )
    lines.append("")
    lines.append("counters: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    dead = status.get("dead_letter", {})
    if dead.get("count"):
        lines.append(f"dead letters: {dead['count']} in {dead['file']} (last: {dead.get('last_reason')})")
    if status.get("last_error"):
        lines.append(f"last error: {status['last_error']}")
    return "\n".join(lines)
