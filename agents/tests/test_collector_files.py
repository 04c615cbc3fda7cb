"""File following: rotation by rename and copytruncate, recycled inodes, truncation, restarts."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from iact.collector.checkpoint import Checkpoints, Position
from iact.collector.config import FileSource
from iact.collector.sources.files import FileTailer


def make(tmp_path, start="beginning", max_line=1024, rotate_wait=0.0):
    cp = Checkpoints(tmp_path / "state" / "checkpoints.json")
    specs = [FileSource(path=str(tmp_path / "app.log"), source="app", format="raw")]
    return cp, FileTailer(specs, cp, max_line_bytes=max_line, start_position=start, rotate_wait=rotate_wait)


def read_all(tailer, cp, ack=True):
    """Poll until nothing new; acknowledge everything read (as the sink would)."""
    out = []
    for _ in range(10):
        got = list(tailer.poll())
        if not got:
            break
        out.extend(got)
        if ack:
            cp.ack({x.key: Position(x.key, x.end, None) for x in got})
    return out


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def test_start_at_end_skips_old_lines_then_follows(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("old 1\nold 2\n")
    cp, t = make(tmp_path, start="end")
    assert read_all(t, cp) == []
    append(log, "new 1\nnew 2\n")
    assert [x.data for x in read_all(t, cp)] == [b"new 1", b"new 2"]


def test_partial_line_waits_for_its_newline(tmp_path):
    log = tmp_path / "app.log"
    cp, t = make(tmp_path)
    log.write_text("complete\nhalf")
    assert [x.data for x in read_all(t, cp)] == [b"complete"]
    append(log, " done\n")
    lines = read_all(t, cp)
    assert [(x.data, x.offset, x.end) for x in lines] == [(b"half done", 9, 19)]


def test_rename_rotation_reads_old_file_to_end_then_new_file(tmp_path):
    log = tmp_path / "app.log"
    cp, t = make(tmp_path)
    log.write_text("a1\na2\n")
    assert len(read_all(t, cp)) == 2
    os.rename(log, tmp_path / "app.log.1")
    append(tmp_path / "app.log.1", "a3 written after the rename\n")  # the daemon has not reopened yet
    log.write_text("b1\n")
    data = [x.data for x in read_all(t, cp)]
    assert data == [b"a3 written after the rename", b"b1"]
    assert len(t.tracked) == 1, "the rotated file is closed once drained"


def test_copytruncate_is_detected_even_when_the_file_grew_back(tmp_path):
    log = tmp_path / "app.log"
    cp, t = make(tmp_path)
    log.write_text("x" * 50 + "\n")
    read_all(t, cp)
    shutil.copy(log, tmp_path / "app.log.1")
    with open(log, "r+") as f:
        f.truncate(0)
    append(log, "y" * 80 + "\n")  # longer than before: size alone would not tell
    lines = read_all(t, cp)
    assert [x.data for x in lines] == [b"y" * 80]
    assert lines[0].offset == 0


def test_truncation_below_offset(tmp_path):
    log = tmp_path / "app.log"
    cp, t = make(tmp_path)
    log.write_text("first line that is long\n")
    read_all(t, cp)
    with open(log, "r+") as f:
        f.truncate(0)
    assert read_all(t, cp) == []
    append(log, "after\n")
    assert [x.data for x in read_all(t, cp)] == [b"after"]


def test_restart_resumes_from_acknowledged_offset_only(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("l1\nl2\nl3\n")
    cp, t = make(tmp_path)
    lines = list(t.poll())
    cp.ack({lines[0].key: Position(lines[0].key, lines[0].end, None)})  # only l1 made it
    cp.save()
    t.close()
    cp2, t2 = make(tmp_path, start="end")  # start_position must not apply to a known file
    again = read_all(t2, cp2)
    assert [x.data for x in again] == [b"l2", b"l3"]
    assert [x.key for x in again] == [lines[1].key] * 2, "same generation key, so the same row ids"
    assert [x.offset for x in again] == [lines[1].offset, lines[2].offset]


def test_rotated_while_stopped_is_finished_from_the_rotated_file(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("l1\n")
    cp, t = make(tmp_path)
    read_all(t, cp)
    cp.save()
    t.close()
    append(log, "l2 before rotation\n")
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("n1\n")
    cp2, t2 = make(tmp_path, start="end")
    assert sorted(x.data for x in read_all(t2, cp2)) == [b"l2 before rotation", b"n1"]


def test_recycled_inode_is_a_new_file(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("old content line\n" * 3)
    cp, t = make(tmp_path)
    read_all(t, cp)
    cp.save()
    t.close()
    log.unlink()
    log.write_text("new\n")
    # Force what the filesystem may or may not do: the new file gets the old inode number.
    data = json.loads(cp.path.read_text())
    data["files"][0]["ino"] = os.stat(log).st_ino
    cp.path.write_text(json.dumps(data))
    cp2, t2 = make(tmp_path, start="end")
    lines = read_all(t2, cp2)
    assert [(x.data, x.offset) for x in lines] == [(b"new", 0)], "old offset 51 must not be applied"


def test_huge_line_truncated_with_count_and_next_line_intact(tmp_path):
    log = tmp_path / "app.log"
    cp, t = make(tmp_path, max_line=300)
    with open(log, "wb") as f:
        f.write(b"A" * 1000 + b"\n" + b"short\n")
    lines = read_all(t, cp)
    assert [(len(x.data), x.cut) for x in lines] == [(300, 700), (5, 0)]
    assert lines[1].offset == 1001


def test_huge_line_spanning_reads(tmp_path, monkeypatch):
    monkeypatch.setattr("iact.collector.sources.files.READ_CHUNK", 64)
    log = tmp_path / "app.log"
    cp, t = make(tmp_path, max_line=100)
    with open(log, "wb") as f:
        f.write(b"B" * 500 + b"\nok\n")
    lines = read_all(t, cp)
    assert [(x.data[:3], len(x.data), x.cut, x.end) for x in lines] == [(b"BBB", 100, 400, 501), (b"ok", 2, 0, 504)]


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    cp, t = make(tmp_path)
    (tmp_path / "app.log").write_text("l1\n")
    read_all(t, cp)
    cp.save()
    before = cp.path.read_text()
    cp.ack({k: Position(k, 999, None) for k in cp.files})

    def boom(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        cp.save()
    assert cp.path.read_text() == before, "a failed save leaves the previous checkpoint intact"


def test_corrupt_checkpoint_names_the_fix(tmp_path):
    path = tmp_path / "checkpoints.json"
    path.write_text("{half")
    with pytest.raises(RuntimeError, match="move it away"):
        Checkpoints(path)


def test_file_created_and_rotated_away_while_stopped_is_read(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("g1 line\n")
    cp, t = make(tmp_path)
    read_all(t, cp)
    cp.save()
    t.close()
    # While stopped: two rotations, so one generation (g2) was never seen by the collector.
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("g2 never seen\n")
    os.rename(tmp_path / "app.log.1", tmp_path / "app.log.2")
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("g3\n")
    (tmp_path / "app.log.3.gz").write_bytes(b"compressed, ignored")
    cp2, t2 = make(tmp_path, start="end")
    assert sorted(x.data for x in read_all(t2, cp2)) == [b"g2 never seen", b"g3"]


@pytest.mark.parametrize("copied", [0.4, 1.0], ids=["copy-in-progress", "copy-done"])
def test_a_copy_seen_before_the_truncation_is_not_taken_for_it(tmp_path, copied):
    """copytruncate copies, then truncates: a poll between the two must not start a second generation.

    Found by the chaos schedules (seed 92): a file seen only empty, written, then copied; the
    agent polled while the copy existed and the live file was still whole, took the copy for the
    old content and read the live file again as a new generation: 38 lines stored twice.
    """
    log = tmp_path / "app.log"
    log.touch()
    cp, t = make(tmp_path)
    assert read_all(t, cp) == []  # seen only empty
    lines = "".join(f"line {i} " + "z" * 40 + "\n" for i in range(30))
    append(log, lines)
    with open(tmp_path / "app.log.1", "w") as f:  # logrotate's copy, as far as it got
        f.write(lines[: int(len(lines) * copied)])
    got = read_all(t, cp)
    with open(tmp_path / "app.log.1", "w") as f:
        f.write(lines)
    os.truncate(log, 0)
    got += read_all(t, cp)
    append(log, "after the truncation\n")
    got += read_all(t, cp)
    ids: dict[bytes, set[tuple[str, int]]] = {}
    for x in got:
        ids.setdefault(x.data, set()).add((x.key, x.offset))
    twice = {d: i for d, i in ids.items() if len(i) > 1}
    assert not twice, f"{len(twice)} lines read under two row ids, e.g. {next(iter(twice.items()))}"
    assert len(ids) == 31
