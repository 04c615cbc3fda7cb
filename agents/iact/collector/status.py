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
    lines.append("")
    lines.append("counters: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if status.get("last_error"):
        lines.append(f"last error: {status['last_error']}")
    return "\n".join(lines)
