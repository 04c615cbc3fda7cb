"""The file format collector_agent's rsyslog drop-in writes, read back by the agent's parser.

Debian's rsyslog writes file lines without their priority, so the agent used to guess a file
line's severity from its words (`logger -p user.err "disk on fire"` became info). With
`collector_agent_rsyslog_severity` the role makes rsyslog write `<PRI>` in front of each line.
These tests render the role's own template the way rsyslog does, so the template and the parser
cannot drift apart, and check that lines written before the switch still parse.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iact.collector.parse import parse_line
from iact.collector.rows import RowBuilder
from iact.collector.sources.records import RawLine

DROPIN = Path(__file__).resolve().parents[2] / "roles" / "collector_agent" / "templates" / "rsyslog-severity.conf.j2"
STAMP = "2026-11-29T05:00:01.123456+00:00"


def rsyslog_template() -> str:
    """The `string=` of the template the drop-in defines, with rsyslog's escapes undone."""
    text = DROPIN.read_text()
    m = re.search(r'template\(name="[^"]+"\s+type="string"\s+string="((?:[^"\\]|\\.)*)"\)', text)
    assert m, f"{DROPIN.name} defines no string template"
    assert re.search(r"^\$ActionFileDefaultTemplate \S+$", text, re.M), "the template is not made the file default"
    return m.group(1).replace("\\n", "\n")


def render(template: str, pri: int, tag: str, msg: str) -> str:
    """What rsyslog writes for one message (the property replacer's options the template uses)."""
    props = {
        "%PRI%": str(pri),
        "%TIMESTAMP:::date-rfc3339%": STAMP,
        "%HOSTNAME%": "cass2",
        "%syslogtag%": tag,
        "%msg:::sp-if-no-1st-sp%": "" if msg.startswith(" ") else " ",
        "%msg:::drop-last-lf%": msg.removesuffix("\n"),
    }
    line = template
    for prop, value in props.items():
        line = line.replace(prop, value)
    assert "%" not in line, f"a property the test does not render: {line!r}"
    return line.removesuffix("\n")


@pytest.mark.parametrize(
    ("pri", "tag", "msg", "facility", "severity", "program", "pid"),
    [
        (1 * 8 + 3, "root:", " disk on fire", "user", 3, "root", None),  # logger -p user.err
        (4 * 8 + 4, "sshd[812]:", " Failed password for root", "auth", 4, "sshd", 812),
        (10 * 8 + 6, "sudo:", "  alice : TTY=pts/0 ; COMMAND=/bin/true", "authpriv", 6, "sudo", None),
        (0 * 8 + 2, "kernel:", " [ 12.345678] Out of memory: Killed process 42", "kern", 2, "kernel", None),
        (3 * 8 + 7, "cron[7]:", "no error here at all", "daemon", 7, "cron", 7),  # words no longer decide
    ],
)
def test_lines_of_the_roles_format_carry_the_logged_severity(pri, tag, msg, facility, severity, program, pid):
    p = parse_line(render(rsyslog_template(), pri, tag, msg))
    assert (p.facility, p.severity_code, p.severity_inferred) == (facility, severity, False)
    assert (p.program, p.pid, p.hostname, p.format) == (program, pid, "cass2", "syslog")
    assert p.ts == datetime(2026, 11, 29, 5, 0, 1, 123456, tzinfo=UTC)
    # rsyslog puts one space after the tag; the parser takes that one off, and only that one.
    assert p.message == msg.removeprefix(" ").removeprefix("[ 12.345678] ")


@pytest.mark.parametrize(
    "line",
    [
        "Nov 29 05:00:01 cass2 root: disk on fire",  # traditional (RSYSLOG_TraditionalFileFormat)
        f"{STAMP} cass2 root: disk on fire",  # Debian 12's default high-precision format
    ],
)
def test_lines_written_before_the_switch_still_parse_with_a_guessed_severity(line):
    p = parse_line(line)
    assert (p.program, p.hostname, p.message, p.format) == ("root", "cass2", "disk on fire", "syslog")
    assert (p.severity_code, p.severity_inferred) == (6, True)  # "disk on fire" reads as info


def test_a_file_switching_format_mid_way_gives_rows_with_the_right_severities():
    """rsyslog restarts with the drop-in while the agent follows /var/log/syslog: both shapes in one file."""
    builder = RowBuilder("cass2")
    lines = [f"{STAMP} cass2 root: before the switch", render(rsyslog_template(), 11, "root:", " disk on fire")]
    rows, offset = [], 0
    for text in lines:
        data = text.encode()
        end = offset + len(data) + 1
        row, _pos = builder.build(RawLine("syslog", "k", offset, end, data, 0, "auto", STAMP))
        rows.append(row)
        offset = end
    assert [(r["severity"], r["facility"]) for r in rows] == [("info", None), ("err", "user")]
    assert rows[0]["fields"] == {"severity_inferred": "true"}
    assert rows[1]["fields"] is None
