"""The handler never loses a record silently, never blocks the caller, never stops after an error.

One test per defect it once had: a writer thread killed by one exception, rows lost (and
flush() saying all is well) when the spool's disk is full during an outage, abandoned spools
found by pid, a fork deadlocking the child, the default spool in $TMPDIR.
"""

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from diskfull import fill
from tcp_proxy import TcpProxy
from test_applog_cassandra import rows_of

from iact.applog import CassandraHandler
from iact.applog import config as applog_config
from iact.applog.config import HandlerConfig
from iact.applog.rows import build_row, row_from_json, row_to_json
from iact.sink.cassandra import SinkError
from iact.sink.spool import Spool, try_lock


def attach(handler, name=None):
    logger = logging.getLogger(name or f"test.resilience.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger


def offline_handler(tmp_path, **overrides):
    """A handler whose Cassandra is a closed port; tests replace the sink's write."""
    settings = dict(hosts="127.0.0.1", port=1, batch_size=1, flush_interval=0.05, spool_path=str(tmp_path / "app"))
    settings.update(overrides)
    handler = CassandraHandler(**settings)
    handler._start_writer()
    return handler


def make_rows(messages, app="tests"):
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    return [build_row(record, m, None, app, "h", i) for i, m in enumerate(messages)]


@pytest.fixture
def tmpfs():
    """Mount a small tmpfs (we run as root) and always unmount it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a full or read-only filesystem) needs root")
    mounted = []

    def mount(path: Path, size: str = "64k", options: str = "") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size}" + (f",{options}" if options else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


# -- 1. the writer survives an unexpected exception ---------------------------------------------
def test_writer_survives_an_unexpected_exception_and_later_records_are_stored(tmp_path, capsys):
    handler = offline_handler(tmp_path)
    stored, calls = [], []

    def write(rows, reject=None):
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("injected: not a SinkError")
        stored.extend(r["message"] for r in rows)
        return len(rows)

    handler._writer.durable.sink.write = write
    logger = attach(handler)
    try:
        logger.error("first")
        assert handler.flush(10), "flush retries within its timeout, so one error is ridden out"
        logger.error("second")
        assert handler.flush(10)
        assert stored == ["first", "second"], "the record in hand during the error is kept, not lost"
        stats = handler.get_stats()
        assert stats["writer_errors"] == 1 and stats["logs_dropped"] == 0
        assert handler._writer.is_alive()
        err = capsys.readouterr().err
        assert "unexpected error while delivering 1 record(s): RuntimeError: injected: not a SinkError" in err
        assert "the writer goes on" in err and "Traceback" in err
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_a_batch_that_always_fails_is_given_up_counted_and_the_writer_goes_on(tmp_path, capsys):
    handler = offline_handler(tmp_path, drop_report_interval=0.0)
    stored = []

    def write(rows, reject=None):
        if any(r["message"] == "poison" for r in rows):
            raise TypeError("cannot handle this row")
        stored.extend(r["message"] for r in rows)
        return len(rows)

    handler._writer.durable.sink.write = write
    logger = attach(handler)
    try:
        logger.error("poison")
        handler.flush(5)
        logger.error("after")
        assert handler.flush(10)
        assert stored == ["after"]
        stats = handler.get_stats()
        assert stats["logs_dropped"] == 1 and stats["writer_errors"] >= 3
        assert "dropped 1 record(s) (counted in logs_dropped)" in capsys.readouterr().err
    finally:
        logger.removeHandler(handler)
        handler.close()


# -- 2. a full spool disk during an outage --------------------------------------------------------
@pytest.mark.cassandra
def test_full_spool_disk_during_an_outage_keeps_records_pending_and_says_why(cassandra_node, tmp_path, tmpfs, capsys):
    spool_dir = tmpfs(tmp_path / "spool", size="64k")
    proxy = TcpProxy(cassandra_node.port)
    host = f"test-{uuid.uuid4().hex[:8]}"
    since = datetime.now(UTC)
    handler = CassandraHandler(
        hosts="127.0.0.1",
        port=proxy.port,
        host=host,
        app="tests",
        consistency="ONE",
        spool_path=str(spool_dir / "app"),
        queue_maxsize=100,
        batch_size=20,
        flush_interval=0.05,
        close_timeout=60,
        drop_report_interval=0.0,
    )
    logger = attach(handler)
    ballast = None
    try:
        logger.warning("warm-up")
        assert handler.flush(30), "Cassandra is up: the warm-up record is written (and the spool opened)"
        proxy.cut()
        ballast = fill(spool_dir)
        slowest = 0.0
        for i in range(1000):
            start = time.perf_counter()
            logger.warning("outage %d", i)
            slowest = max(slowest, time.perf_counter() - start)
        assert slowest < 0.5, f"emit() must never block the caller (slowest call {slowest:.3f} s)"
        assert not handler.flush(1.0), "nothing took the rows: flush() must not report success"
        stats = handler.get_stats()
        assert stats["logs_dropped"] > 0 and stats["logs_pending"] > 0, stats
        err = capsys.readouterr().err
        assert "cannot be written" in err and "No space left on device" in err, err[-2000:]
        assert "Cassandra is unreachable" in err
        assert "app logs faster" not in err, "the drop message must blame the disk, not the app or Cassandra alone"

        proxy.restore()
        ballast.unlink()
        ballast = None
        assert handler.flush(60), handler.get_stats()
        stats = handler.get_stats()
        messages = [r.message for r in rows_of_fresh(cassandra_node, host, since)]
        outage = [m for m in messages if m.startswith("outage ")]
        assert "warm-up" in messages
        assert len(outage) == len(set(outage)), "a record stored twice"
        assert set(outage) <= {f"outage {i}" for i in range(1000)}
        assert 1000 - len(outage) == stats["logs_dropped"], "every record not stored is counted, and only those"
    finally:
        logger.removeHandler(handler)
        if ballast is not None:
            ballast.unlink()
        proxy.restore()
        handler.close()
        proxy.close()


def rows_of_fresh(cassandra_node, host, since):
    from iact.cassandra.session import open_session
    from iact.cassandra.settings import ConnectionSettings

    with open_session(ConnectionSettings(contact_points=("127.0.0.1",), port=cassandra_node.port)) as session:
        return rows_of(session, host, since)


# -- 3. abandoned spools are found by their lock, not by pid -----------------------------------------
def spool_with(path, messages, app="tests"):
    spool = Spool(path, 10**6, row_to_json, row_from_json)
    spool.append(make_rows(messages, app))
    return spool


def reaped_pid():
    """A pid that no process has right now."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_orphans_are_found_by_their_lock_not_by_their_pid(tmp_path):
    base = tmp_path / "app"
    # Named after pid 1, which is alive (pid reuse), but nobody holds its lock: its owner died.
    spool_with(f"{base}.1.spool", ["orphan a", "orphan b"]).close()
    # Named after a pid that does not exist here, but its lock is held: a live owner, say in
    # another pid namespace. It must be left alone.
    alive = spool_with(f"{base}.{reaped_pid()}.spool", ["alive a"])
    handler = offline_handler(tmp_path, batch_size=100)
    stored = []
    handler._writer.durable.sink.write = lambda rows, reject=None: (
        stored.extend(r["message"] for r in rows) or len(rows)
    )
    try:
        assert handler.flush(10)
        assert stored == ["orphan a", "orphan b"]
        assert not Path(f"{base}.1.spool").exists(), "a replayed orphan's files are removed"
        assert not Path(f"{base}.1.spool.lock").exists()
        assert alive.pending_bytes() > 0 and [r["message"] for rows, _ in alive.chunks(10) for r in rows] == ["alive a"]
    finally:
        handler.close()
        alive.close()


def test_orphan_scan_matches_spool_files_only(tmp_path):
    base = tmp_path / "app"
    # Another app whose name starts with ours ("app.eu"), its owner dead: not ours to replay.
    other = f"{base}.eu.{reaped_pid()}.spool"
    spool_with(other, ["other app"], app="app.eu").close()
    # Companions of a spool, without the spool itself: nothing to adopt, nothing to create.
    for companion in ("77.spool.lock", "77.spool-wal", "77.spool-shm", "78.spool.corrupt-1700000000"):
        Path(f"{base}.{companion}").write_bytes(b"")
    handler = offline_handler(tmp_path, batch_size=100)
    stored = []
    handler._writer.durable.sink.write = lambda rows, reject=None: (
        stored.extend(r["message"] for r in rows) or len(rows)
    )
    try:
        assert handler.flush(10)
        assert stored == []
        assert handler._writer.durable.orphans == []
        assert not Path(f"{base}.77.spool").exists() and not Path(f"{base}.78.spool").exists()
        assert try_lock(Path(f"{other}.lock")) is not None, "the other app's spool was not opened"
    finally:
        handler.close()


def test_a_clean_close_leaves_no_spool_file(tmp_path):
    handler = offline_handler(tmp_path)
    handler._writer.durable.sink.write = lambda rows, reject=None: len(rows)
    logger = attach(handler)
    logger.error("x")
    assert handler.flush(10)
    logger.removeHandler(handler)
    handler.close()
    assert list(tmp_path.iterdir()) == []


# -- 4. a fork while another thread holds the start lock ---------------------------------------------
FORK_APP = textwrap.dedent(
    """
    import logging, os, select, signal, sys, threading
    from iact.applog import CassandraHandler
    from iact.sink.spool import try_lock

    handler = CassandraHandler(hosts="127.0.0.1", port=1, spool_path=sys.argv[1], close_timeout=2)
    log = logging.getLogger("forky")
    log.propagate = False
    log.addHandler(handler)
    log.error("from the parent")  # the parent's writer runs and owns its spool
    assert handler.flush(5)
    parent_lock = handler._writer.durable.spool.lock_path
    held, release = threading.Event(), threading.Event()

    def hold():
        with handler._start_lock:
            held.set()
            release.wait()

    threading.Thread(target=hold).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        log.error("from the child")  # deadlocked here when the child inherited the held lock
        stats = handler.get_stats()
        flushed = handler.flush(5)
        still_held = try_lock(parent_lock) is None  # the child let go of its copy, not of the parent's lock
        os._exit(0 if (stats["logs_queued"], flushed, still_held) == (1, True, True) else 3)
    release.set()
    pidfd = os.pidfd_open(pid)
    if not select.select([pidfd], [], [], 20)[0]:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.exit("the child did not exit within 20 s: deadlocked")
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_fork_while_another_thread_holds_the_start_lock_does_not_deadlock_the_child(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", FORK_APP, str(tmp_path / "app")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_forked_child_gets_fresh_counters_and_its_own_spool(tmp_path):
    handler = offline_handler(tmp_path, close_timeout=2)
    handler._writer.durable.sink.write = lambda rows, reject=None: len(rows)
    logger = attach(handler)
    logger.error("parent")
    assert handler.flush(5)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            fresh = handler.get_stats()["logs_queued"] == 0 and handler._writer is None
            logger.error("child")
            spool = str(handler._writer.durable.spool.path) if handler.flush(5) else ""
            os.write(w, f"{int(fresh)} {spool}".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as pipe:
        fresh, child_spool = pipe.read().split(" ", 1)
    os.waitpid(pid, 0)
    try:
        assert fresh == "1"
        assert child_spool.endswith(f".{pid}.spool"), child_spool
        assert handler.get_stats()["logs_queued"] == 1
    finally:
        logger.removeHandler(handler)
        handler.close()


# -- 5. the default spool survives a restart (not under $TMPDIR) -------------------------------------
def test_default_spool_is_under_var_lib_when_writable_else_xdg_state(tmp_path, monkeypatch, tmpfs):
    var_lib = tmp_path / "var-lib-iact-applog"
    monkeypatch.setattr(applog_config, "SYSTEM_SPOOL_DIR", str(var_lib))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    config = HandlerConfig(hosts="h", app="shop")
    pid = os.getpid()

    assert config.spool_file() == f"{tmp_path}/home/.local/state/iact/shop.{pid}.spool", "no /var/lib dir yet"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert config.spool_file() == f"{tmp_path}/state/iact/shop.{pid}.spool"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # the XDG spec: ignore a relative path
    assert config.spool_file() == f"{tmp_path}/home/.local/state/iact/shop.{pid}.spool"

    tmpfs(var_lib, options="ro")  # exists, but this process may not write there
    assert config.spool_file().startswith(f"{tmp_path}/home/.local/state/iact/")
    subprocess.run(["umount", str(var_lib)], check=True)
    assert config.spool_file() == f"{var_lib}/shop.{pid}.spool"

    assert HandlerConfig(hosts="h", app="a/b c").spool_file() == f"{var_lib}/a_b_c.{pid}.spool"
    assert HandlerConfig(hosts="h", spool_path="/srv/x/app").spool_file() == f"/srv/x/app.{pid}.spool"
    assert not config.spool_file().startswith(str(tmp_path / "tmp"))


def test_an_unopenable_spool_does_not_stop_records_reaching_cassandra(tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    handler = offline_handler(tmp_path, spool_path=str(blocker / "app"), drop_report_interval=0.0)
    stored = []
    handler._writer.durable.sink.write = lambda rows, reject=None: (
        stored.extend(r["message"] for r in rows) or len(rows)
    )
    logger = attach(handler)
    try:
        logger.error("direct")
        assert handler.flush(10)
        assert stored == ["direct"]
        assert "cannot be opened" in capsys.readouterr().err
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_a_fork_waits_until_the_writer_is_out_of_sqlite(tmp_path, monkeypatch):
    """Found by the fault harness: a fork that lands while the writer is inside SQLite copies its
    process-wide mutexes locked into the child, whose first spool open then hangs for good."""
    inside, leave = threading.Event(), threading.Event()
    real_append = Spool.append

    def slow_append(self, rows):
        inside.set()
        leave.wait(10)
        return real_append(self, rows)

    monkeypatch.setattr(Spool, "append", slow_append)
    handler = offline_handler(tmp_path)

    def unreachable(rows, reject=None):
        raise SinkError("Cassandra is away: the rows go to the spool")

    handler._writer.durable.sink.write = unreachable
    logger = attach(handler)
    try:
        logger.error("spooled")
        assert inside.wait(10), "the writer never reached the spool"
        threading.Timer(0.3, leave.set).start()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only exits
            os._exit(0)
        waited = time.monotonic() - started
        os.waitpid(pid, 0)
        assert waited >= 0.25, f"the fork happened while the writer was inside SQLite (after {waited:.3f} s)"
    finally:
        leave.set()
        logger.removeHandler(handler)
        handler.close()
