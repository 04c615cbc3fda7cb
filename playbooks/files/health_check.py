"""The appliance's health on one host; prints one JSON list of {check, ok, detail}.

Run by playbooks/health.yml with the collector's virtualenv Python and the host's part as one JSON
argument. Read-only and quick, so it can run from cron or during an incident: Cassandra's view of
this node, the agent's own status (its exit code and PROBLEM lines), lag and spool, the last alert
run, the dashboard's own HTTP check, disk use.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime


def result(check: str, ok: bool, detail: str) -> dict[str, object]:
    """One row of the fleet's table."""
    return {"check": check, "ok": ok, "detail": detail}


def run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a read-only command; a missing tool reads as a failed result, never a crash."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def cassandra_node(nodetool: str, listen: str) -> list[dict[str, object]]:
    """This node as the ring sees it (UN), and the hints it still holds for others."""
    status = run(nodetool, "status")
    if status.returncode != 0:
        return [result("Cassandra node is UN", False, f"nodetool status failed: {status.stderr.strip()[-200:]}")]
    states = {ip: state for state, ip in re.findall(r"^([UD][NLJM])\s+(\S+)\s", status.stdout, re.M)}
    down = sorted(ip for ip, state in states.items() if state != "UN")
    mine = states.get(listen, "not in ring")
    out = [result("Cassandra node is UN", mine == "UN", f"{listen}: {mine}")]
    ring = f"{len(states)} nodes" + (f", not UN: {down}" if down else "")
    out.append(result("Cassandra ring all UN", not down, ring))
    hints = run(nodetool, "listpendinghints")
    pending = [ln for ln in hints.stdout.splitlines()[1:] if ln.strip()] if "does not have" not in hints.stdout else []
    out.append(result("Cassandra pending hints", hints.returncode == 0, f"{len(pending)} endpoints with hints"))
    return out


def agent(
    status_cmd: list[str],
    max_lag: int,
    max_age: int = 30,
    max_stall: int = 300,
    stall_floor_bytes: int = 1 << 20,
    restart_window: int = 600,
) -> list[dict[str, object]]:
    """The collector's own judgement, then its lag and spool.

    `iact-collector status` exits non-zero with `PROBLEM: ...` lines on stderr for what it finds wrong
    (a stale status file, a dead stage, crash restarts, lag not shrinking, nothing acknowledged while
    lines wait, rows set aside): any non-zero exit is a FAIL, one row per PROBLEM line, whatever the
    JSON's `healthy` says.
    """
    out = run(
        *status_cmd, "--json", "--max-age", str(max_age), "--max-stall", str(max_stall),
        "--stall-floor-bytes", str(stall_floor_bytes), "--restart-window", str(restart_window),
    )  # fmt: skip
    found = [ln.split(":", 1)[1].strip() for ln in out.stderr.splitlines() if ln.startswith("PROBLEM:")]
    try:
        status = json.loads(out.stdout)
    except ValueError:
        status = None
    if not isinstance(status, dict):
        detail = "; ".join(found) or out.stderr.strip()[-200:] or "no output"
        return [result("agent status", False, f"iact-collector status failed (exit {out.returncode}): {detail}")]
    version = status.get("version")
    if out.returncode == 0 and status.get("healthy"):
        rows = [result("agent status", True, f"version {version}, no problems")]
    elif found:
        rows = [result("agent status", False, problem) for problem in found]
    else:  # non-zero without a PROBLEM line (or 'healthy' false with exit 0): still a FAIL
        tail = out.stderr.strip()[-200:] or f"healthy: {status.get('healthy')}"
        rows = [result("agent status", False, f"version {version}, exit {out.returncode}: {tail}")]
    lag, spool = int(status.get("lag_bytes", -1)), int(status.get("spool_bytes", -1))
    return [
        *rows,
        result("agent lag", 0 <= lag <= max_lag, f"{lag} bytes (max {max_lag})"),
        result("agent spool empty", spool == 0, f"{spool} bytes spooled"),
    ]


def alerting(status_cmd: list[str], max_age: int) -> dict[str, object]:
    """The evaluator ran recently and its last run succeeded (cron or timer is alive)."""
    out = run(*status_cmd, "status")
    found = re.search(r"^last run: (\S+ \S+) \((\w+)\)", out.stdout, re.M)
    if not found:
        detail = out.stdout.splitlines()[0] if out.stdout else out.stderr.strip()[-200:]
        return result("last alert run", False, f"no run recorded: {detail}")
    at = datetime.fromisoformat(found.group(1))
    age = (datetime.now(UTC) - at).total_seconds()
    ok = found.group(2) == "ok" and age <= max_age
    return result("last alert run", ok, f"{int(age)} s ago ({found.group(2)}), max {max_age} s")


def dashboard(url: str, host_header: str) -> dict[str, object]:
    """The dashboard's own /healthz through the host's nginx (the app and its database)."""
    request = urllib.request.Request(url, headers={"Host": host_header})
    context = ssl._create_unverified_context()  # the host's own nginx, on loopback
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            body = response.read(200).decode(errors="replace")
            return result("dashboard HTTP check", response.status == 200, f"{url}: {response.status} {body.strip()}")
    except (urllib.error.URLError, OSError) as exc:
        return result("dashboard HTTP check", False, f"{url}: {exc}")


def disks(paths: list[str], max_percent: int) -> list[dict[str, object]]:
    """Use of each filesystem holding appliance data, once per filesystem."""
    out, seen = [], set()
    for path in paths:
        if not os.path.exists(path):
            continue
        st = os.statvfs(path)
        if (st.f_fsid, st.f_blocks) in seen:
            continue
        seen.add((st.f_fsid, st.f_blocks))
        used = 100 * (st.f_blocks - st.f_bfree) / max(st.f_blocks, 1)
        free_gib = st.f_bavail * st.f_frsize / 2**30
        detail = f"{used:.0f}% used (max {max_percent}%), {free_gib:.1f} GiB free"
        out.append(result(f"disk {path}", used <= max_percent, detail))
    return out


def main() -> int:
    """Run the checks for this host's part and print the rows as JSON."""
    part = json.loads(sys.argv[1])
    results: list[dict[str, object]] = []
    if part.get("nodetool"):
        results += cassandra_node(part["nodetool"], part["listen"])
    if part.get("collector"):
        results += agent(
            part["collector"], int(part["max_lag_bytes"]), max_age=int(part.get("agent_max_age", 30)),
            max_stall=int(part.get("agent_max_stall", 300)),
            stall_floor_bytes=int(part.get("agent_stall_floor_bytes", 1 << 20)),
            restart_window=int(part.get("agent_restart_window", 600)),
        )  # fmt: skip
    if part.get("alert"):
        results.append(alerting(part["alert"], int(part["alert_max_age"])))
    if part.get("dashboard_url"):
        results.append(dashboard(part["dashboard_url"], part["dashboard_host"]))
    results += disks(part.get("disk_paths", ["/"]), int(part["disk_max_percent"]))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
