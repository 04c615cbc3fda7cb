"""A hostile host: an unprivileged user writes poison lines with `logger`; the agent stores what follows.

Lines no parser expects reach the agent through both of its paths (the journal, and rsyslog's
/var/log/syslog): a tag whose pid overflows an int, a pid of non-ASCII digits, invalid UTF-8,
control characters and a NUL, a 100 KB line. Any user on the host can write these, so none of them
may stop delivery or crash the agent: a normal line written after them is stored from both paths
within 30 s, and systemd has not restarted the agent.
"""

from __future__ import annotations

import shlex
import uuid
from datetime import UTC, datetime

from cassandra.query import SimpleStatement
from conftest import agent_restarts, agent_status, podman, ring_up, secret, unit_started, wait_until

NODE = "cass1"


def as_nobody(script: str):
    """Run a shell snippet on NODE as the unprivileged user `nobody` (anyone can write to /dev/log)."""
    return podman("exec", "--user", "nobody", NODE, "sh", "-c", script, check=False)


def poison(run: str) -> dict[str, str]:
    """What each poison line is -> the shell that writes it (printf's octal escapes give the raw bytes)."""
    return {
        "pid past 2**31 in the tag": f"logger -t 'x[9999999999]' 'hi {run}'",
        "pid of superscript digits": f"logger -t 'x[²]' 'hi {run}'",
        "pid of Arabic-Indic digits": f"logger -t 'x[٣٤]' 'hi {run}'",
        "invalid UTF-8": rf"printf 'bad utf-8 \377\376 \300\257 \355\240\200 {run}\n' | logger -t hostile-utf8",
        "control characters and a NUL": (
            rf"printf 'ctl \001 soh \033[31m esc \177 del \010 bs {run} \000 after nul\n' | logger -t hostile-ctl"
        ),
        "a 100 KB line": (
            f"{{ printf '{run} '; head -c 102400 /dev/zero | tr '\\000' x; echo; }} "
            "| logger --size 200000 -t hostile-long"
        ),
    }


def test_poison_lines_from_an_unprivileged_user_neither_stop_nor_crash_the_agent(connect):
    wait_until(lambda: ring_up(3) or None, 300, "all three nodes UN before the hostile host", interval=5)
    wait_until(lambda: agent_status(NODE).get("healthy") or None, 60, f"the agent on {NODE} healthy")
    reader = connect("iact_reader", secret("cassandra_reader_password"))  # before the clock starts
    query = SimpleStatement(
        "SELECT host, source, message FROM logging.infrastructure_logs WHERE day = %s AND program = 'hostile-ok'"
    )
    restarts, started_at = agent_restarts(NODE), unit_started(NODE, "iact-collector")
    run = uuid.uuid4().hex[:8]
    started = datetime.now(UTC).date()

    for what, script in poison(run).items():
        wrote = as_nobody(script)
        assert wrote.returncode == 0, f"{what}: {script}: {wrote.stderr}"
    marker = f"after-poison {run}"
    wrote = as_nobody(f"logger -t hostile-ok {shlex.quote(marker)}")
    assert wrote.returncode == 0, wrote.stderr

    def stored() -> set[str] | None:
        days = sorted({started, datetime.now(UTC).date()})  # the line may be stamped after midnight (UTC)
        rows = [r for day in days for r in reader.execute(query, (day,))]
        sources = {r.source for r in rows if r.host == NODE and r.message == marker}
        return sources if sources >= {"journal", "syslog"} else None

    def agent() -> str:
        return f"NRestarts {restarts} -> {agent_restarts(NODE)}, counters {agent_status(NODE).get('counters')}"

    try:
        wait_until(stored, 30, f"{marker!r} from {NODE}'s journal and syslog", interval=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; agent: {agent()}") from None
    assert agent_restarts(NODE) == restarts, f"systemd restarted the agent: {agent()}"
    assert unit_started(NODE, "iact-collector") == started_at, f"the agent is not the process it was: {agent()}"
