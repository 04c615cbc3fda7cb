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
        "    print(json.dumps({'__CURSOR': f's=1;i={i}', 'MESSAGE': f'entry {i}', 'SYSLOG_IDENTIFIER': 'fake'}))\n"
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
