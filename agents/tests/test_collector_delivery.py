"""The defects of issue 14, one test each, at the depth where each was fixed.

Rows are checked against the real table (bound by the driver and written to a real node), and
the tailer against real files; nothing here is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iact.collector.batch import Batch
from iact.collector.checkpoint import Checkpoints, Position
from iact.collector.config import FileSource
from iact.collector.rows import COLUMNS, PARTITION_KEY, RowBuilder
from iact.collector.sources.files import FileTailer
from iact.collector.sources.records import RawJournal, RawLine
from iact.collector.status import problems
from iact.sink.cassandra import CassandraSink
from iact.sink.deadletter import DeadLetter
from iact.sink.spool import Spool, SpoolLocked

POISON = [
    b"Nov 28 10:00:00 cass2 x[9999999999]: hi",  # the logger line: pid over int32
    "<13>1 2026-11-28T10:00:00Z cass2 app ² - - procid passes isdigit, not int".encode(),
    "Nov 28 10:00:00 cass2 x[٣٤]: Arabic-Indic digits".encode(),
    b"Nov 28 10:00:00 cass2 app[1]: bad utf-8 \xff\xfe nul \x00",
    b"<999>Nov 28 10:00:00 cass2 app: PRI out of range",
]


def line(data: bytes, offset: int = 0, key: str = "k1", tz: str = "UTC", fallback: str | None = None) -> RawLine:
    return RawLine("syslog", key, offset, offset + len(data) + 1, data, 0, "auto", fallback, "h1", tz, bool(fallback))


# -- 1. poison values ------------------------------------------------------------------------------


@pytest.mark.cassandra
def test_every_poison_line_binds_and_is_written(cassandra_settings, session):
    host = f"poison-{uuid.uuid4().hex[:8]}"
    builder = RowBuilder(host)
    rows = [builder.build(line(d, i * 100))[0] for i, d in enumerate(POISON)]
    journal = [
        b'{"MESSAGE": "lone surrogate \\ud800", "__CURSOR": "c1", "_PID": "99999999999"}',
        b'{"MESSAGE": "far future", "__CURSOR": "c2", "__REALTIME_TIMESTAMP": "99999999999999999999"}',
        b'{"MESSAGE": [255, 254, 0], "__CURSOR": "c3", "PRIORITY": "42"}',
    ]
    rows += [builder.build(RawJournal(j, 0))[0] for j in journal]
    for row in rows:
        row["host"] = host
    rejected: list[str] = []
    sink = CassandraSink(cassandra_settings, "logging", "infrastructure_logs", COLUMNS, PARTITION_KEY)
    try:
        assert sink.write(rows, lambda _row, reason: rejected.append(reason)) == len(rows)
    finally:
        sink.close()
    assert not rejected, rejected
    assert rows[0]["pid"] is None and rows[0]["fields"]["pid"] == "9999999999", "coerced, the original kept"
    assert builder.coerced >= 2


@pytest.mark.cassandra
def test_a_row_cassandra_refuses_goes_to_the_dead_letter_file_and_the_rest_are_written(
    cassandra_settings, session, tmp_path
):
    host = f"dead-{uuid.uuid4().hex[:8]}"
    builder = RowBuilder(host)
    good = [builder.build(line(f"Nov 28 10:00:0{i} h app[1]: ok {i}".encode(), i * 100))[0] for i in range(3)]
    for row in good:
        row["host"] = host
    bad = dict(good[1], line_id="not a uuid")  # cannot be bound
    dead = DeadLetter(tmp_path / "dead.jsonl")
    sink = CassandraSink(cassandra_settings, "logging", "infrastructure_logs", COLUMNS, PARTITION_KEY)
    try:
        sink.write([good[0], bad, good[2]], dead)
    finally:
        sink.close()
    assert dead.count == 1 and "cannot be bound" in json.loads((tmp_path / "dead.jsonl").read_text())["reason"]
    stored = session.execute(
        "SELECT message FROM logging.infrastructure_logs WHERE host=%s AND day=%s AND hour=%s",
        (host, good[0]["day"], good[0]["hour"]),
    )
    assert sorted(r.message for r in stored) == ["ok 0", "ok 2"]


# -- 2. rotated generations close on acknowledgement, not on reading --------------------------------


def test_a_rotated_file_read_to_its_end_stays_open_until_its_rows_are_acknowledged(tmp_path):
    cp = Checkpoints(tmp_path / "cp.json")
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(f"Nov 28 10:00:00 h app[1]: line {i}\n".encode() for i in range(10)))
    tailer = FileTailer([FileSource(str(log), "syslog")], cp, start_position="beginning", rotate_wait=0, host="h")
    read = list(tailer.poll())
    os.rename(log, tmp_path / "app.log.1")
    read += list(tailer.poll())
    read += list(tailer.poll())  # drained and quiet: the tailer lets go of it
    assert len(read) == 10 and not tailer.tracked
    key = read[0].key
    assert cp.files[key].closed_at is None, "read to the end is not delivered: a restart must read it again"
    cp.save()
    again = FileTailer([FileSource(str(log), "syslog")], Checkpoints(tmp_path / "cp.json"), host="h")
    assert [x.data for x in again.poll()] == [x.data for x in read], "a restart resumes it from offset 0"
    cp.ack({key: Position(key, read[-1].end, None)})
    assert cp.files[key].closed_at is not None


# -- 3. the spool survives torn writes, full disks and partial deletes -------------------------------


def test_a_torn_wal_keeps_every_committed_row(tmp_path):
    spool = Spool(tmp_path / "s.spool", 10**6)
    spool.append([{"n": i} for i in range(50)])
    spool.close()
    with open(tmp_path / "s.spool-wal", "ab") as f:
        f.write(os.urandom(3000))  # a frame cut short by kill -9 or power loss
    again = Spool(tmp_path / "s.spool", 10**6)
    assert [r["n"] for rows, _ in again.chunks(100) for r in rows] == list(range(50))


def test_a_damaged_spool_is_moved_aside_and_the_agent_goes_on(tmp_path, caplog):
    (tmp_path / "s.spool").write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    spool = Spool(tmp_path / "s.spool", 10**6)
    assert spool.append([{"n": 1}]) == 1
    assert list(tmp_path.glob("s.spool.corrupt-*")), "kept for the operator"
    assert "damaged" in caplog.text


def test_a_version_1_spool_is_imported_from_its_offset(tmp_path):
    lines = [json.dumps({"n": i}) for i in range(5)]
    (tmp_path / "s.spool").write_text("\n".join(lines) + '\n{"n": 5, "torn')
    (tmp_path / "s.spool.offset").write_text(str(len(lines[0]) + 1))
    spool = Spool(tmp_path / "s.spool", 10**6)
    assert [r["n"] for rows, _ in spool.chunks(100) for r in rows] == [1, 2, 3, 4]


def test_one_spool_one_owner(tmp_path):
    first = Spool(tmp_path / "s.spool", 10**6)
    with pytest.raises(SpoolLocked, match="in use by another process"):
        Spool(tmp_path / "s.spool", 10**6)
    first.close()
    Spool(tmp_path / "s.spool", 10**6).close()


def test_a_spool_replayed_on_a_full_disk_still_empties(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        spool = Spool(mnt / "s.spool", 10**7)
        while spool.append([{"pad": "x" * 2000}] * 10):
            pass
        assert spool.last_error and "free space" in spool.last_error
        for _rows, end in spool.chunks(1000):
            spool.ack(end)
        assert spool.pending_bytes() == 0 and list(spool.chunks(10)) == []
        assert spool.append([{"n": 1}]) == 1, "space came back with the deleted file"
        spool.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_ack_of_a_replayed_chunk_is_one_transaction(tmp_path):
    spool = Spool(tmp_path / "s.spool", 10**6)
    spool.append([{"n": i} for i in range(10)])
    _rows, end = next(spool.chunks(4))
    spool.ack(end)
    db = sqlite3.connect(tmp_path / "s.spool")
    assert [n for (n,) in db.execute("SELECT json_extract(data, '$.n') FROM spool ORDER BY id")] == list(range(4, 10))


# -- 4. copytruncate while stopped or behind ---------------------------------------------------------


def _tail(tmp_path: Path, cp: Checkpoints) -> FileTailer:
    return FileTailer(
        [FileSource(str(tmp_path / "app.log"), "syslog")], cp, start_position="beginning", rotate_wait=0, host="h"
    )


def test_copytruncate_while_stopped_resumes_the_copy_where_it_was(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(f"Nov 28 10:00:00 h app[1]: first {i}\n".encode() for i in range(20)))
    cp = Checkpoints(tmp_path / "cp.json")
    first = list(_tail(tmp_path, cp).poll())
    cp.ack({first[9].key: Position(first[9].key, first[9].end, None)})  # ten delivered, ten in flight
    cp.save()
    shutil.copyfile(log, tmp_path / "app.log.1")  # logrotate copytruncate, agent stopped
    os.truncate(log, 0)
    log.write_bytes(b"Nov 28 10:00:01 h app[1]: after\n")
    again = list(_tail(tmp_path, Checkpoints(tmp_path / "cp.json")).poll())
    resumed = [x for x in again if x.key == first[0].key]
    assert [(x.offset, x.data) for x in resumed] == [(x.offset, x.data) for x in first[10:]], "same keys, no repeat"
    assert [x.data for x in again if x.key != first[0].key] == [b"Nov 28 10:00:01 h app[1]: after"]


def test_copytruncate_while_behind_reads_the_unread_tail_from_the_copy(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(f"Nov 28 10:00:00 h app[1]: line {i}\n".encode() for i in range(5)))
    cp = Checkpoints(tmp_path / "cp.json")
    tailer = _tail(tmp_path, cp)
    read = list(tailer.poll())
    with open(log, "ab") as f:  # the agent is behind: these are not read yet
        f.write(b"".join(f"Nov 28 10:00:00 h app[1]: unread {i}\n".encode() for i in range(5)))
    shutil.copyfile(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    read += list(tailer.poll())
    read += list(tailer.poll())
    texts = [x.data.decode().rsplit(": ", 1)[1] for x in read]
    assert [t for t in texts if t.startswith("unread")] == [f"unread {i}" for i in range(5)]
    assert len({(x.key, x.offset) for x in read if x.data.endswith(b"line 0")}) == 1


# -- 5. row keys that depend on the line only ----------------------------------------------------------


def test_a_re_read_line_keeps_its_key_whatever_the_zone_now(tmp_path, monkeypatch):
    data = b"Nov  1 01:30:00 h app[1]: in the repeated hour of New York's fall-back"
    first = RowBuilder("h").build(line(data, tz="America/New_York", fallback="2026-11-01T05:40:00+00:00"))[0]
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the host's zone changed before the re-read; the pinned one did not
    again = RowBuilder("h").build(line(data, tz="America/New_York", fallback="2026-11-01T05:40:00+00:00"))[0]
    assert (first["ts"], first["line_id"]) == (again["ts"], again["line_id"])
    assert first["ts"] == datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "the second 01:30 (EST), after the previous line"


def test_the_year_turns_with_the_local_new_year_east_of_utc():
    # 00:30 on 1 Jan in Tokyo is 15:30 UTC on 31 Dec: the old code took the UTC year and went a year back.
    prev = "2026-12-31T14:59:00+00:00"
    row = RowBuilder("h").build(line(b"Jan  1 00:30:00 h app[1]: happy new year", tz="Asia/Tokyo", fallback=prev))[0]
    assert row["ts"] == datetime(2026, 12, 31, 15, 30, tzinfo=UTC)


def test_lines_without_a_stamp_take_the_previous_lines_time_across_a_restart():
    prev = "2026-11-28T10:00:00+00:00"
    row = RowBuilder("h").build(line(b"a continuation line without a stamp", fallback=prev))[0]
    assert row["ts"].isoformat() == prev


# -- 6. set-aside lines are acknowledged in order -------------------------------------------------------


def test_a_skipped_line_is_acknowledged_after_the_rows_before_it():
    batch = Batch()
    batch.add({"n": 1}, Position("k", 10, None))
    batch.skip(Position("k", 20, None))
    batch.add({"n": 2}, Position("k", 30, None))
    assert batch.acknowledged(0) == {}
    assert batch.acknowledged(1)["k"].end == 20
    assert batch.acknowledged(2)["k"].end == 30


# -- 7. failure is visible --------------------------------------------------------------------------------


def _status(**over: object) -> dict:
    now = datetime.now(UTC).isoformat()
    base = {"updated_at": now, "healthy": True, "lag_bytes": 0, "queues": {}, "in_flight": 0, "last_ack_at": now}
    return {**base, **over}


def test_status_fails_on_a_crash_restart_in_the_window():
    now = datetime.now(UTC).timestamp()
    assert any("after a crash" in p for p in problems(_status(crash_restarts=[now - 60])))
    assert not problems(_status(crash_restarts=[now - 3600]))


def test_status_fails_when_lag_has_not_shrunk():
    now = datetime.now(UTC).timestamp()
    history = [[now - 400 + 10 * i, 5_000_000 + i] for i in range(40)]
    assert any("not shrunk" in p for p in problems(_status(lag_bytes=5_000_040, lag_history=history), now=now))
    shrinking = [[t, 9_000_000 - 100_000 * i] for i, (t, _lag) in enumerate(history)]
    assert not problems(_status(lag_bytes=5_000_000, lag_history=shrinking), now=now)


def test_status_fails_when_nothing_is_acknowledged_while_lines_wait():
    old = datetime.fromtimestamp(datetime.now(UTC).timestamp() - 900, UTC).isoformat()
    found = problems(_status(lag_bytes=10, last_ack_at=old, last_error="cannot connect"))
    assert any("nothing acknowledged" in p and "cannot connect" in p for p in found)
    assert not problems(_status(lag_bytes=0, last_ack_at=old))
