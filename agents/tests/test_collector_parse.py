"""Parsers on real-world line shapes (corpus/syslog.txt) and journal entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iact.collector.parse import parse_line
from iact.collector.parse.journal import parse_journal
from iact.collector.parse.syslog import _traditional_time
from iact.collector.rows import RowBuilder
from iact.collector.sources.records import RawJournal, RawLine

CORPUS = Path(__file__).parent / "corpus" / "syslog.txt"


def test_debian_traditional_line():
    p = parse_line("Nov  3 04:05:07 cass1 sshd[2212]: Failed password for invalid user admin from 203.0.113.7")
    assert (p.format, p.hostname, p.program, p.pid) == ("syslog", "cass1", "sshd", 2212)
    assert p.message.startswith("Failed password")
    assert p.ts is not None and (p.ts.month, p.ts.day) == (11, 3)
    assert p.severity_code == 3 and p.severity_inferred, "no PRI: 'Failed' makes it an error"


def test_high_precision_line_is_converted_to_utc():
    p = parse_line("2026-11-23T03:17:01.123456+01:00 cass1 CRON[1234]: (root) CMD (debian-sa1 1 1)")
    assert p.ts == datetime(2026, 11, 23, 2, 17, 1, 123456, tzinfo=UTC)
    assert (p.program, p.pid, p.severity_code) == ("CRON", 1234, 6)


def test_nanoseconds_are_cut_to_microseconds():
    p = parse_line("2026-11-23T03:17:04.123456789+00:00 cass1 app[1]: x")
    assert p.ts == datetime(2026, 11, 23, 3, 17, 4, 123456, tzinfo=UTC)


def test_rfc3164_pri_gives_facility_and_severity():
    p = parse_line("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    assert (p.facility, p.severity_code, p.severity_inferred) == ("auth", 2, False)
    assert (p.hostname, p.program, p.pid) == ("mymachine", "su", None)


def test_rfc5424_with_structured_data():
    line = (
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"] An application event log entry...'
    )
    p = parse_line(line)
    assert p.format == "rfc5424"
    assert (p.facility, p.severity_code, p.program) == ("local4", 5, "evntslog")
    assert p.ts == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert p.fields == {
        "msgid": "ID47",
        "exampleSDID@32473.iut": "3",
        "exampleSDID@32473.eventSource": "Application",
        "exampleSDID@32473.eventID": "1011",
    }
    assert p.message == "An application event log entry..."


def test_rfc5424_escapes_and_bom():
    p = parse_line('<14>1 2026-11-23T03:00:00Z host app - - [meta x="a \\"quoted\\] value"] text')
    assert p.fields == {"meta.x": 'a "quoted] value'}
    p = parse_line("<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - \ufeff'su root' failed")
    assert p.message == "'su root' failed"


def test_kernel_lines_in_kern_log_and_from_dmesg():
    p = parse_line("Nov  3 04:05:10 cass1 kernel: [  123.456789] EXT4-fs (sda1): mounted filesystem")
    assert (p.program, p.facility, p.fields) == ("kernel", "kern", {"kernel_uptime": "123.456789"})
    assert p.message == "EXT4-fs (sda1): mounted filesystem"
    p = parse_line("<6>[   12.000000] random: crng init done")
    assert (p.format, p.severity_code, p.message) == ("kernel", 6, "random: crng init done")


def test_unparseable_lines_are_kept_raw():
    for line in ("this line has no syslog header at all", "", "<999>garbage", "\x00\x01binary"):
        p = parse_line(line)
        assert p.format == "raw" and p.message == line and p.severity_code is None


def test_impossible_date_keeps_the_line_without_a_time():
    p = parse_line("Feb 30 12:00:00 cass1 app: an impossible date")
    assert p.ts is None and p.message == "an impossible date"


def test_year_is_inferred_around_new_year():
    now = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    assert _traditional_time("Dec", "31", "23:59:00", now).year == 2026
    assert _traditional_time("Jan", "1", "00:04:00", now).year == 2027


def test_whole_corpus_parses_without_errors_and_mostly_structured():
    lines = CORPUS.read_text().splitlines()
    parsed = [parse_line(line) for line in lines]
    raw = [line for line, p in zip(lines, parsed, strict=True) if p.format == "raw"]
    assert raw == ["this line has no syslog header at all"], raw
    assert all(p.message is not None for p in parsed)


def test_journal_entry_fields():
    entry = {
        "__CURSOR": "s=abc;i=1",
        "__REALTIME_TIMESTAMP": "1763867821123456",
        "PRIORITY": "3",
        "SYSLOG_FACILITY": "4",
        "SYSLOG_IDENTIFIER": "sshd",
        "_PID": "812",
        "_COMM": "sshd",
        "_SYSTEMD_UNIT": "ssh.service",
        "_HOSTNAME": "cass1",
        "MESSAGE": "error: could not load host key",
    }
    p = parse_journal(entry)
    assert (p.severity_code, p.facility, p.program, p.pid, p.unit) == (3, "auth", "sshd", 812, "ssh.service")
    assert p.ts == datetime.fromtimestamp(1763867821.123456, UTC)
    assert p.fields["comm"] == "sshd"


def test_journal_binary_message_is_decoded_with_replacement():
    p = parse_journal({"MESSAGE": [104, 105, 255, 10], "__REALTIME_TIMESTAMP": "1"})
    assert p.message == "hi\ufffd\n"


def test_row_ids_are_deterministic_and_times_carried_forward():
    b1, b2 = RowBuilder("h1"), RowBuilder("h1")
    lines = [
        RawLine("syslog", "k1", 0, 50, b"2026-11-23T03:00:00+00:00 h1 app: first", 0, "auto", None),
        RawLine("syslog", "k1", 50, 70, b"  continuation without a time", 0, "auto", None),
    ]
    rows1 = [b1.build(x)[0] for x in lines]
    rows2 = [b2.build(x)[0] for x in lines]
    assert [(r["line_id"], r["ts"]) for r in rows1] == [(r["line_id"], r["ts"]) for r in rows2]
    assert rows1[1]["ts"] == rows1[0]["ts"], "a line without a time takes the previous line's"
    assert rows1[1]["severity"] == "unknown"


def test_invalid_utf8_and_truncation_marker():
    row, pos = RowBuilder("h").build(RawLine("s", "k", 0, 9, b"bad \xff\xfe", 1000, "raw", "2026-01-01T00:00:00+00:00"))
    assert row["message"] == "bad \ufffd\ufffd…[truncated 1000 bytes]"
    assert pos.end == 9 and row["ts"] == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("data", [b"{not json", b'{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"5","MESS'])
def test_broken_journal_json_is_kept_with_its_cursor(data):
    row, pos = RowBuilder("h").build(RawJournal(data, 0))
    assert row["message"].startswith(data.decode()[:5])
    if b"__CURSOR" in data:
        assert pos is not None and pos.end == "s=1;i=2"


def test_journal_json_line_round_trip():
    line = json.dumps({"__CURSOR": "c1", "__REALTIME_TIMESTAMP": "2000000", "MESSAGE": "m", "PRIORITY": "6"})
    row, pos = RowBuilder("h").build(RawJournal(line.encode() + b"\n", 0))
    assert (row["source"], row["severity"], pos.end) == ("journal", "info", "c1")
