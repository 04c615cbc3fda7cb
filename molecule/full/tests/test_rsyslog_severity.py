"""File lines keep the severity they were logged with (collector_agent_rsyslog_severity, on in the lab).

Debian's rsyslog writes /var/log/syslog without priorities, so the agent had to guess a file line's
severity from its words: `logger -p user.err "disk on fire"` was stored as err from the journal but
info from syslog. The role's rsyslog drop-in puts `<PRI>` in front of each line; the agent reads it.
"""

import uuid
from datetime import UTC, datetime

import pytest
import testinfra
from cassandra.query import SimpleStatement
from conftest import secret, wait_until

NODE = "cass2"


@pytest.fixture(scope="module")
def cass2():
    return testinfra.get_host(f"podman://{NODE}")


def test_rsyslog_writes_the_priority_into_the_files_the_agent_reads(cass2):
    dropin = cass2.file("/etc/rsyslog.d/00-iact-collector-severity.conf")
    assert dropin.exists and dropin.user == "root" and dropin.mode == 0o644
    assert cass2.run("rsyslogd -N1").rc == 0
    marker = f"sevfile-{uuid.uuid4()}"
    cass2.check_output(f"logger -p user.err -t iactsev {marker}")
    line = wait_until(
        lambda: cass2.run(f"grep -F -- {marker} /var/log/syslog").stdout.strip(), 10, f"{marker} in /var/log/syslog"
    )
    assert line.startswith("<11>"), f"user.err is priority 11; rsyslog wrote {line!r}"


@pytest.mark.parametrize(
    ("priority", "source", "facility", "severity"),
    [("user.err", "syslog", "user", "err"), ("auth.warning", "auth", "auth", "warning")],
)
def test_a_logged_severity_is_stored_from_the_file_as_from_the_journal(
    cass2, connect, priority, source, facility, severity
):
    marker = f"sev-{uuid.uuid4()}"
    cass2.check_output(f"logger -p {priority} -t iactsev disk on fire {marker}")
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    query = SimpleStatement(
        "SELECT host, source, facility, severity, message, fields FROM logging.infrastructure_logs "
        "WHERE day = %s AND program = 'iactsev'"
    )

    def stored():
        rows = [
            r
            for r in reader.execute(query, (datetime.now(UTC).date(),))
            if r.host == NODE and r.message.endswith(marker)
        ]
        return rows if {r.source for r in rows} >= {"journal", source} else None

    rows = wait_until(stored, 30, f"{marker} from {NODE}'s journal and {source} file", interval=1)
    from_file = [r for r in rows if r.source == source]
    assert len(from_file) == 1, from_file
    assert (from_file[0].facility, from_file[0].severity) == (facility, severity)
    assert "severity_inferred" not in (from_file[0].fields or {}), "the file line's severity was guessed"
    assert {r.severity for r in rows if r.source == "journal"} == {severity}
