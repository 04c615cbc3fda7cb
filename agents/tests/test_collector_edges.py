"""Edge cases a review found after the fault harness was green, each reproduced here first.

Real files, real tailer and checkpoints; the acknowledgement is done by hand where the pipeline
would do it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime

from iact.collector.checkpoint import Checkpoints, Position
from iact.collector.config import FileSource
from iact.collector.rows import RowBuilder
from iact.collector.sources.files import FileTailer
from iact.collector.sources.records import RawLine
from iact.sink.spool import Spool


def tailer(cp: Checkpoints, pattern: str, start: str = "beginning", rotate_wait: float = 0.0) -> FileTailer:
    return FileTailer([FileSource(pattern, "app", "raw")], cp, start_position=start, rotate_wait=rotate_wait)


def read_all(t: FileTailer, cp: Checkpoints, rounds: int = 6) -> list[RawLine]:
    out = []
    for _ in range(rounds):
        got = list(t.poll())
        out.extend(x for x in got if not x.empty)
        cp.ack({x.key: Position(x.key, x.end, None) for x in got})
    return out


def test_a_glob_that_matches_rotated_names_reads_each_line_once(tmp_path):
    log = tmp_path / "app.log"
    cp = Checkpoints(tmp_path / "cp.json")
    t = tailer(cp, str(tmp_path / "app.log*"))
    log.write_text("a1\na2\n")
    got = read_all(t, cp)
    os.rename(log, tmp_path / "app.log.1")  # rename rotation: the glob matches the old file too
    log.write_text("b1\n")
    got += read_all(t, cp)
    shutil.copyfile(log, tmp_path / "app.log.2")  # and a copytruncate copy of the live one
    os.truncate(log, 0)
    log.write_text("c1\n")
    got += read_all(t, cp)
    assert sorted(x.data for x in got) == [b"a1", b"a2", b"b1", b"c1"]


def test_a_file_created_while_the_agent_was_stopped_is_read_from_its_start(tmp_path):
    (tmp_path / "a.log").write_text("old, before the first run\n")
    cp = Checkpoints(tmp_path / "cp.json")
    t = tailer(cp, str(tmp_path / "*.log"), start="end")
    assert read_all(t, cp) == [], "start_position end: the first run skips what was there"
    cp.save()
    t.close()
    (tmp_path / "b.log").write_text("written while stopped\n")
    cp = Checkpoints(tmp_path / "cp.json")
    assert [x.data for x in read_all(tailer(cp, str(tmp_path / "*.log"), start="end"), cp)] == [
        b"written while stopped"
    ]


def test_a_file_ending_in_an_empty_line_catches_up_and_its_rotation_closes(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("a\n\n")
    cp = Checkpoints(tmp_path / "cp.json")
    t = tailer(cp, str(log))
    read_all(t, cp)
    assert [f["lag_bytes"] for f in t.lag().values()] == [0]
    os.rename(log, tmp_path / "app.log.1")
    log.touch()
    read_all(t, cp)
    old = next(s for s in cp.files.values() if s.end_offset is not None)
    assert old.closed_at is not None


def test_an_empty_new_file_does_not_adopt_an_old_rotation_as_its_copy(tmp_path):
    log = tmp_path / "app.log"
    cp = Checkpoints(tmp_path / "cp.json")
    t = tailer(cp, str(log))

    def rotate():
        for p in sorted(tmp_path.glob("app.log.*"), key=lambda p: -int(p.suffix[1:])):
            p.rename(tmp_path / f"app.log.{int(p.suffix[1:]) + 1}")
        log.rename(tmp_path / "app.log.1")
        log.touch()

    log.write_text("week1 a\nweek1 b\n")
    got = read_all(t, cp)
    rotate()
    log.write_text("week2 a\n")
    got += read_all(t, cp)
    for p, days in ((tmp_path / "app.log.1", 8), (log, 1)):  # as old as weekly rotation makes them
        os.utime(p, (time.time() - days * 86400,) * 2)
    cp.forget_closed(older_than=0)  # closed long ago: forgotten, so their identities are unknown
    rotate()  # week 1 shifted to app.log.3 (a fresh change time), a new empty app.log
    got += read_all(t, cp)
    with open(log, "a") as f:
        f.write("week3 a\n")
    got += read_all(t, cp)
    data = [x.data for x in got]
    assert sorted(data) == sorted(set(data)) and b"week3 a" in data


def test_status_shows_a_rotated_generation_while_it_drains(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("a1\n")
    cp = Checkpoints(tmp_path / "cp.json")
    t = tailer(cp, str(log), rotate_wait=3600)
    list(t.poll())  # read, not acknowledged
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("b1\n")
    list(t.poll())
    lag = t.lag()
    assert len(lag) == len(t.tracked) == 2 and sum(f["lag_bytes"] for f in lag.values()) == 6
    assert lag[str(tmp_path / "app.log.1")]["rotated"]


def test_one_absurd_full_stamp_does_not_move_the_lines_after_it():
    for tz in ("UTC", "America/New_York"):
        builder, off, out = RowBuilder("h"), 0, []
        for data in (b"Nov 28 10:00:00 h app[1]: before", b"0001-01-01T00:00:00Z h evil[2]: hostile",
                     b"Nov 28 10:00:01 h app[1]: after"):  # fmt: skip
            item = RawLine("app", "k", off, off + len(data) + 1, data, 0, "auto", "2026-11-28T09:00:00+00:00",
                           "h", tz, False)  # fmt: skip
            off = item.end
            out.append(builder.build(item)[0])
        assert [r["ts"].year for r in out] == [2026, 2026, 2026], tz
        assert out[1]["fields"]["claimed_ts"].startswith("0001-01-01") and out[2]["program"] == "app"


def _legacy(tmp_path):
    path = tmp_path / "rows.spool"
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(3)))
    return path


def _replayed(path) -> list:
    spool = Spool(path, 1 << 20)
    try:
        return [r["n"] for rows, _ in spool.chunks(100) for r in rows]
    finally:
        spool.close()


def test_a_version_1_spool_survives_kill_9_during_its_import(tmp_path):
    path = _legacy(tmp_path)
    code = textwrap.dedent(f"""
        import os, signal
        from iact.sink import spool
        spool.Spool._import_legacy = lambda self, db, legacy: os.kill(os.getpid(), signal.SIGKILL)
        spool.Spool({str(path)!r}, 1 << 20)
    """)
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == -9
    assert _replayed(path) == [0, 1, 2]


def test_a_version_1_spool_survives_a_full_disk_during_its_import(tmp_path, monkeypatch):
    path = _legacy(tmp_path)
    real = Spool._import_legacy

    def full(self, db, legacy):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Spool, "_import_legacy", full)
    spool = Spool(path, 1 << 20)
    assert spool.pending_bytes() > 0, "what waits in the old spool still counts as waiting"
    monkeypatch.setattr(Spool, "_import_legacy", real)
    spool._next_open = 0  # space is back
    assert [r["n"] for rows, _ in spool.chunks(100) for r in rows] == [0, 1, 2]


def test_a_full_state_disk_does_not_stop_the_agent(tmp_path, monkeypatch):
    from iact.collector.runs import Runs

    cp = Checkpoints(tmp_path / "cp.json")
    cp.changed()
    monkeypatch.setattr(os, "replace", lambda *_a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with contextlib.suppress(OSError):
        cp.save()
    assert cp._dirty, "an unsaved change is kept for the next save"
    Runs(tmp_path / "runs.json").start()  # logs, does not raise
    assert datetime.now()  # reached


def test_a_recycled_inode_after_an_empty_generation_is_followed(tmp_path):
    log = tmp_path / "app.log"
    log.touch()
    cp = Checkpoints(tmp_path / "cp.json")
    t = tailer(cp, str(log))
    read_all(t, cp)
    log.unlink()  # removed and created again: the inode number is often reused
    log.touch()
    read_all(t, cp)
    log.unlink()
    log.touch()
    with open(log, "a") as f:
        f.write("after two recycles\n")
    assert [x.data for x in read_all(t, cp)] == [b"after two recycles"]


def test_a_file_seen_only_empty_then_written_and_rotated_while_stopped_is_read_once(tmp_path):
    log = tmp_path / "app.log"
    log.touch()
    cp = Checkpoints(tmp_path / "cp.json")
    read_all(tailer(cp, str(log)), cp)
    cp.save()
    time.sleep(1.1)  # what follows happens after the last save, as it would while the agent is down
    log.write_text("written while stopped\n")
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("the new file\n")
    cp = Checkpoints(tmp_path / "cp.json")
    got = [x.data for x in read_all(tailer(cp, str(log)), cp)]
    assert sorted(got) == [b"the new file", b"written while stopped"]
