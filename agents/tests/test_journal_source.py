"""JournalSource against a fake journalctl: a process that writes to stderr must never stall the journal.

journalctl's stderr is a pipe; unread, it fills at 64 KiB and journalctl then blocks on its next
warning, so no entry arrives while the agent still looks healthy. Each fake here writes well past
that before its first entry; every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from pathlib import Path

import pytest

from iact.collector.sources.journal import JournalSource

STDERR_BYTES = 256 * 1024  # four pipe buffers' worth


def fake_journalctl(tmp_path: Path, entries: int, then: str) -> str:
    """A journalctl stand-in: STDERR_BYTES of warnings, then `entries` JSON lines, then `then` (Python code)."""
    script = tmp_path / "journalctl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, time\n"
        f"warning = b'Journal file /var/log/journal/x/system@1.journal corrupted, ignoring file.\\n'\n"
        f"for _ in range({STDERR_BYTES} // len(warning) + 1):\n"
        "    sys.stderr.buffer.write(warning)\n"
        "sys.stderr.buffer.write(b'last words of journalctl\\n')\n"
        "sys.stderr.flush()\n"
        f"for i in range({entries}):\n"
        "    print(json.dumps({'__CURSOR': f's=1;i={i}', 'MESSAGE': f'entry {i}', 'SYSLOG_IDENTIFIER': 'fake',\n"
        "                      '_TRANSPORT': 'syslog', '_BOOT_ID': 'b1', 'PRIORITY': '6'}))\n"
        "sys.stdout.flush()\n"
        f"{then}\n"
    )
    script.chmod(0o755)
    return str(script)


class Reader(threading.Thread):
    """Iterates the source's entries into a queue, as the pipeline's journal stage does."""

    def __init__(self, source: JournalSource) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.got: queue.Queue[bytes] = queue.Queue()

    def run(self) -> None:
        for entry in self.source.entries():
            self.got.put(entry.data)

    def take(self, n: int, timeout: float = 20.0) -> list[dict]:
        """n entries within the timeout, or fail naming how many arrived."""
        out, end = [], time.monotonic() + timeout
        while len(out) < n:
            try:
                out.append(json.loads(self.got.get(timeout=max(0.0, end - time.monotonic()))))
            except queue.Empty:
                pytest.fail(f"only {len(out)} of {n} journal entries within {timeout:.0f} s: is journalctl blocked?")
        return out


@pytest.fixture
def reader():
    started: list[Reader] = []

    def _start(command: str) -> Reader:
        r = Reader(JournalSource(command, None, "beginning", 65536))
        r.start()
        started.append(r)
        return r

    yield _start
    for r in started:
        r.source.stop()
        r.join(10)
        assert not r.is_alive(), "the source stopped"


def test_entries_arrive_past_a_full_stderr_pipe(tmp_path, reader):
    # Follows forever after the entries, like journalctl --follow; stop() terminates it.
    r = reader(fake_journalctl(tmp_path, 5, "time.sleep(300)"))
    entries = r.take(5)
    assert [e["MESSAGE"] for e in entries] == [f"entry {i}" for i in range(5)]
    assert r.source.cursor == "s=1;i=4" and r.source.entries_read == 5


def test_exit_message_carries_the_tail_of_stderr(tmp_path, reader, caplog):
    caplog.set_level(logging.WARNING, logger="iact.collector.sources.journal")
    r = reader(fake_journalctl(tmp_path, 2, "sys.exit(3)"))
    r.take(2)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        errors = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.ERROR]
        if errors:
            break
        time.sleep(0.05)
    else:
        pytest.fail("no error logged for journalctl's exit")
    assert errors[0].startswith("journalctl exited with 3 (")
    assert "last words of journalctl" in errors[0] and len(errors[0]) < 1000, errors[0]
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert warnings and "corrupted, ignoring file" in warnings[0], "the first stderr line is logged once"


# --- entries printed without a field journald always writes -------------------------------------
# sd-journal skips a data object it cannot read at that instant (sd_journal_enumerate_data:
# EADDRNOTAVAIL/EBADMSG, logged at debug level), so a follower racing journald's writes can print
# an entry without its MESSAGE; read again by its cursor moments later, the entry is whole. CI run 46
# stored `run=a9043330 seq=676` from the journal as '' that way while every Cassandra node restarted.


def staged_journalctl(tmp_path: Path, follow: list[dict], whole: dict[str, list[dict]], reread_s: float = 0) -> str:
    """A journalctl that prints `follow` when following and, asked for one entry by --cursor (after
    `reread_s` seconds), the next of `whole[cursor]` (the last again once they run out; nothing for
    a cursor not in `whole`, as for a vacuumed entry). Every call is logged to `calls`."""
    (tmp_path / "follow.json").write_text(json.dumps(follow))
    (tmp_path / "whole.json").write_text(json.dumps(whole))
    script = tmp_path / "journalctl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, time\n"
        f"d = {str(tmp_path)!r}\n"
        "with open(d + '/calls', 'a') as f:\n"
        "    f.write(' '.join(sys.argv[1:]) + '\\n')\n"
        "cursor = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--cursor=')]\n"
        "if cursor:\n"
        f"    time.sleep({reread_s})\n"
        "    whole = json.load(open(d + '/whole.json'))\n"
        "    n = sum(1 for line in open(d + '/calls') if f'--cursor={cursor[0]}' in line)\n"
        "    versions = whole.get(cursor[0], [])\n"
        "    if versions:\n"
        "        print(json.dumps(versions[min(n, len(versions)) - 1]))\n"
        "    sys.exit(0)\n"
        "for e in json.load(open(d + '/follow.json')):\n"
        "    print(json.dumps(e), flush=True)\n"
        "time.sleep(300)\n"
    )
    script.chmod(0o755)
    return str(script)


def entry(i: int, transport: str = "syslog", **drop: bool) -> dict:
    """A journald entry as journalctl -o json prints it; drop=True fields are left out."""
    e = {"__CURSOR": f"s=1;i={i}", "__REALTIME_TIMESTAMP": str(1796108599635380 + i), "_TRANSPORT": transport,
         "_BOOT_ID": "b1", "_PID": str(100 + i), "_UID": "0", "_GID": "0", "PRIORITY": "3",
         "SYSLOG_IDENTIFIER": "probe", "MESSAGE": f"run=x seq={i}"}  # fmt: skip
    return {k: v for k, v in e.items() if not drop.get(k)}


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return [c for c in path.read_text().splitlines() if "--cursor=" in c] if path.exists() else []


def test_an_entry_printed_without_its_message_is_read_again_by_its_cursor(tmp_path, reader):
    torn = entry(1, MESSAGE=True)
    r = reader(staged_journalctl(tmp_path, [entry(0), torn, entry(2)], {"s=1;i=1": [entry(1)]}))
    got = r.take(3)
    assert [e.get("MESSAGE") for e in got] == ["run=x seq=0", "run=x seq=1", "run=x seq=2"]
    assert r.source.cursor == "s=1;i=2" and r.source.entries_read == 3
    assert r.source.entries_reread == 1 and r.source.entries_incomplete == 0
    assert len(calls(tmp_path)) == 1, "whole entries are not read twice"


@pytest.mark.parametrize(
    ("transport", "dropped"),
    [("syslog", "_TRANSPORT"), ("syslog", "PRIORITY"), ("stdout", "_PID"), ("journal", "_UID"), ("kernel", "MESSAGE")],
)
def test_any_field_journald_always_writes_sends_the_entry_back(tmp_path, reader, transport, dropped):
    whole = entry(1, transport)
    r = reader(staged_journalctl(tmp_path, [entry(1, transport, **{dropped: True})], {"s=1;i=1": [whole]}))
    assert r.take(1)[0].get(dropped) == whole[dropped]


def test_a_reading_that_brings_back_a_field_but_not_all_is_followed_by_another(tmp_path, reader):
    first, then = entry(1, MESSAGE=True, _PID=True), entry(1, MESSAGE=True)
    r = reader(staged_journalctl(tmp_path, [first], {"s=1;i=1": [then, entry(1)]}))
    assert r.take(1)[0]["MESSAGE"] == "run=x seq=1"
    assert len(calls(tmp_path)) == 2 and r.source.entries_reread == 1


def test_an_entry_that_stays_torn_is_passed_on_as_read_counted_and_logged(tmp_path, reader, caplog):
    # Read again, it lacks the same fields: the tear is in the file (a bad object), so one reading.
    caplog.set_level(logging.WARNING)
    torn = entry(1, MESSAGE=True)
    r = reader(staged_journalctl(tmp_path, [torn, entry(2)], {"s=1;i=1": [torn]}))
    got = r.take(2)
    assert "MESSAGE" not in got[0] and got[1]["MESSAGE"] == "run=x seq=2", "the source goes on"
    assert r.source.entries_incomplete == 1 and len(calls(tmp_path)) == 1
    warned = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warned) == 1 and "s=1;i=1" in warned[0] and "without MESSAGE" in warned[0], warned


def test_a_reading_of_another_entry_is_not_taken(tmp_path, reader):
    # The entry was vacuumed: journalctl seeks to the nearest one, which must not replace it.
    r = reader(staged_journalctl(tmp_path, [entry(1, MESSAGE=True)], {"s=1;i=1": [entry(7)]}))
    got = r.take(1)[0]
    assert got["__CURSOR"] == "s=1;i=1" and "MESSAGE" not in got and r.source.entries_incomplete == 1


def test_a_message_in_a_value_does_not_count_as_the_field(tmp_path, reader):
    torn = entry(1, MESSAGE=True) | {"SYSLOG_IDENTIFIER": "MESSAGE", "X": '"MESSAGE": "spoof"'}
    r = reader(staged_journalctl(tmp_path, [torn], {"s=1;i=1": [entry(1)]}))
    assert r.take(1)[0]["MESSAGE"] == "run=x seq=1"


def test_cut_lines_and_whole_entries_are_not_read_again(tmp_path):
    script = staged_journalctl(tmp_path, [entry(0, MESSAGE=True) | {"BIG": "x" * 5000}, entry(1)], {})
    source = JournalSource(script, None, "beginning", 1024)
    got = []
    for raw in source.entries():
        got.append(raw)
        if len(got) == 2:
            source.stop()
    assert got[0].cut > 0 and calls(tmp_path) == []


def test_a_reading_longer_than_the_limit_is_cut_as_a_followed_line_is(tmp_path):
    big = entry(1) | {"BIG": "x" * 3000}
    script = staged_journalctl(tmp_path, [entry(1, MESSAGE=True)], {"s=1;i=1": [big]})
    source = JournalSource(script, None, "beginning", 1024)
    raw = next(source.entries())
    source.stop()
    assert len(raw.data) == 1024 and raw.cut == len(json.dumps(big)) + 1 - 1024


def test_a_stop_during_a_reading_passes_nothing_on_and_is_prompt(tmp_path):
    # The torn entry is not passed on (its cursor not acknowledged), so the next start reads it
    # again; a reading that hangs does not hold the stop for its timeout.
    script = staged_journalctl(tmp_path, [entry(1, MESSAGE=True)], {"s=1;i=1": [entry(1)]}, reread_s=60)
    source = JournalSource(script, None, "beginning", 65536)
    got: list = []
    t = threading.Thread(target=lambda: got.extend(source.entries()), daemon=True)
    t.start()
    end = time.monotonic() + 20
    while not calls(tmp_path) and time.monotonic() < end:
        time.sleep(0.02)
    assert calls(tmp_path), "the reading started"
    stopped_at = time.monotonic()
    source.stop()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - stopped_at < 3, "stop ends the reading"
    assert got == [] and source.cursor is None and source.entries_read == 0


@pytest.mark.parametrize(
    ("torn", "share", "burst"),
    [
        # Any local user can send native entries without MESSAGE: read again within 2 % of the time.
        ({"transport": "journal", "MESSAGE": True}, 0.02, 1.0),
        # A file with a bad object tears every entry that uses it, for good: within 10 % of the time.
        ({"_TRANSPORT": True}, 0.1, 5.0),
    ],
)
def test_a_flood_of_torn_entries_cannot_make_the_source_crawl(tmp_path, reader, caplog, torn, share, burst):
    caplog.set_level(logging.WARNING)
    flood = [entry(i, **torn) for i in range(300)]
    cost = 0.25  # each reading
    r = reader(staged_journalctl(tmp_path, flood, {f"s=1;i={i}": [e] for i, e in enumerate(flood)}, reread_s=cost))
    start = time.monotonic()
    r.take(300, timeout=60)
    elapsed = time.monotonic() - start
    n = len(calls(tmp_path))
    assert 1 <= n <= (burst + share * elapsed) / cost + 1, (n, elapsed)
    warned = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warned) <= 1, "a warning a minute, not one per entry"


def test_the_budget_refills_at_its_share_and_holds_a_burst():
    from iact.collector.sources.journal_whole import Budget

    now = [0.0]
    b = Budget(0.1, 2.0, clock=lambda: now[0])
    b.charge(1.5)
    assert b.available()
    b.charge(1.0)  # overdrawn: nothing until it is paid back
    assert not b.available()
    now[0] = 4.0  # 0.4 s back: still 0.1 s short
    assert not b.available()
    now[0] = 6.0
    assert b.available()
    now[0] = 1000.0  # never more than the burst
    b.charge(2.0)
    assert not b.available()


def test_status_shows_torn_entries_only_when_there_were_some():
    from datetime import UTC, datetime

    from iact.collector.status import render

    now = datetime.now(UTC).isoformat()
    status = {
        "version": "x", "pid": 1, "host": "h", "started_at": now, "updated_at": now, "healthy": True,
        "spool_bytes": 0, "queues": {"lines": 0, "batches": 0}, "lag_bytes": 0, "files": {}, "counters": {},
        "journal": {"enabled": True, "entries_read": 9, "acked_cursor": "c"},
    }  # fmt: skip
    assert "torn" not in render(status), "a status file from an older agent renders"
    status["journal"] |= {"entries_reread": 2, "entries_incomplete": 1}
    assert "2 entries printed torn and read again by cursor, 1 still torn" in render(status)


def test_a_reading_that_cannot_start_leaves_the_entry_as_it_was(monkeypatch, caplog):
    # Out of file descriptors (or threads): the entry is passed on torn and said so; the journal goes on.
    from iact.collector.sources import journal_whole

    def no_fd(*_a, **_k):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(journal_whole.subprocess, "Popen", no_fd)
    caplog.set_level(logging.WARNING)
    rereader = journal_whole.Rereader("journalctl", 65536, threading.Event())
    torn = json.dumps(entry(1, MESSAGE=True)).encode() + b"\n"
    assert rereader.whole(torn, "s=1;i=1") == (torn, 0)
    assert rereader.incomplete == 1
    assert "Too many open files" in caplog.records[-1].getMessage()
