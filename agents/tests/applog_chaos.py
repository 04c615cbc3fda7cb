"""Fault schedules for CassandraHandler, each played against a real app process and a real node.

A schedule is drawn from random.Random(seed), so a seed names it exactly: bursts of numbered
records, Cassandra cut and restored (a TcpProxy between the app and the node), the spool's
filesystem (its own small tmpfs) filled and freed, a writer error injected, a fork whose child
logs too, flush() with a short timeout, pauses. At the end everything is restored and the app
exits. The oracle: every record logged is stored exactly once or counted in logs_dropped, no
logging call blocked, no flush() overran its timeout, and the app and its children exit 0.

Used by test_applog_faults.py (fixed seeds, in CI) and bench/handler_chaos.py (on demand).
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diskfull import fill
from tcp_proxy import TcpProxy

from iact.sink.spool import Spool

APP = Path(__file__).with_name("applog_chaos_app.py")
# A logging call slower than this blocked the application. Wall time, so it carries slack like
# FLUSH_SLACK: in CI these tests share 2 cores with three Cassandra nodes under rolling restarts, and
# a runnable thread waited 0.62 s for a core there (CI run 13). A real block waits on the writer's
# I/O, whose timeouts are seconds. Exact would be wall time minus CPU and run-queue time
# (/proc/thread-self/schedstat); not done yet.
MAX_EMIT_SECONDS = 1.5
FLUSH_SLACK = 1.0  # flush(t) may return this much after t on a loaded 2-core runner
TMPFS_SIZE = "4m"


@dataclass
class Outcome:
    """What one schedule did and what the oracle found."""

    seed: int
    steps: list[dict[str, Any]]
    settings: dict[str, Any]
    logged: int = 0
    stored: int = 0
    duplicated: int = 0
    dropped: int = 0
    missing: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)  # what was exercised: spooled, writer errors, ...
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        """True when the oracle found nothing wrong."""
        return not self.problems


def make_schedule(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Handler settings and steps, derived from the seed only."""
    rng = random.Random(seed)
    settings = {
        "queue_maxsize": rng.choice([100, 1000, 10000]),
        "batch_size": rng.choice([10, 50]),
        "flush_interval": rng.choice([0.02, 0.1]),
        "spool_max_bytes": rng.choice([64 * 1024, 1024 * 1024]),
    }
    steps: list[dict[str, Any]] = [{"op": "burst", "n": rng.choice([10, 100])}]
    cut = full = False
    for _ in range(rng.randint(5, 9)):
        op = rng.choices(["burst", "outage", "disk", "error", "fork", "flush", "pause"], weights=[5, 3, 3, 2, 2, 2, 2])[
            0
        ]
        if op == "burst":
            steps.append(
                {"op": "burst", "n": rng.choice([20, 100, 400, 1500]), "rate": rng.choice([None, 20000, 5000])}
            )
        elif op == "outage":
            steps.append({"op": "restore" if cut else "cut"})
            cut = not cut
        elif op == "disk":
            steps.append({"op": "free" if full else "fill"})
            full = not full
        elif op == "error":
            steps.append({"op": "error", "when": rng.choice(["before", "after"])})
        elif op == "fork":
            steps.append({"op": "fork", "n": rng.choice([10, 100, 300]), "rate": 5000})
        elif op == "flush":
            steps.append({"op": "flush", "timeout": rng.choice([0.05, 0.2, 0.5])})
        else:
            steps.append({"op": "pause", "seconds": rng.choice([0.05, 0.2, 0.5])})
    steps.append({"op": "burst", "n": rng.choice([10, 100])})
    return settings, steps


class _App:
    """The app process: JSON commands in, JSON replies out, read by a thread so waits are bounded."""

    def __init__(self, config: dict[str, Any], stderr_path: Path) -> None:
        self._stderr = open(stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,  # its forked children too can be killed as a group
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def send(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One command and its reply; TimeoutError when the app does not answer in time."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer to {cmd} within {timeout} s") from None
        if line is None:
            raise RuntimeError(f"the app exited during {cmd}")
        return json.loads(line)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Wait for the exit code, killing the group if it does not come; None if killed."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(10)
            return None
        finally:
            self._stderr.close()


def _left_in_spools(spool_dir: Path) -> tuple[int, list[str]]:
    """Rows still in the spool files once every process has exited, and those files' names."""
    files = sorted(p for p in spool_dir.glob("*.spool"))
    rows = 0
    for path in files:
        spool = Spool(path, 10**9)
        try:
            rows += sum(len(chunk) for chunk, _ in spool.chunks(1000))
        finally:
            spool.close()
    return rows, [p.name for p in files]


def _next_process(config: dict[str, Any], workdir: Path, spool_dir: Path, out: Outcome) -> None:
    """What the app's next start does with spools left behind: adopt and replay them.

    Rows stay in a spool at a clean exit only when replaying them failed until the end (an
    injected error during the last replay, an orphan adopted while its disk was full and not
    reopened since). They are safe on disk, and the next process of the app stores them; the
    oracle counts them once that process has run, and notes how many there were.
    """
    left, names = _left_in_spools(spool_dir)
    if left:
        out.notes["rows replayed by the next process"] += left
        nxt = _App(config, workdir / "stderr-next.txt")
        try:
            answer = nxt.send({"op": "exit", "children_timeout": 1, "flush_timeout": 60}, timeout=120)
            out.dropped += answer["stats"]["logs_dropped"]
        except (TimeoutError, RuntimeError) as exc:
            out.problems.append(f"the next process hung or died: {exc}")
        if nxt.stop() != 0:
            out.problems.append("the next process did not exit 0")
        left, names = _left_in_spools(spool_dir)
        if left:
            out.problems.append(f"{left} row(s) still in spools after the next process replayed them: {names}")
    # A clean exit removes its spool and replayed orphans; one that could not be opened at the
    # time (a full disk; the spool retries once a second) may stay behind, empty.
    out.notes["empty spool files left"] += len(names)


def stored_messages(session: Any, app: str) -> list[str]:
    """Every stored message of one app: the SAI index on app, no partition key, no ALLOW FILTERING."""
    return [r.message for r in session.execute("SELECT message FROM logging.application_logs WHERE app = %s", (app,))]


def run_schedule(seed: int, cassandra_port: int, session: Any, workroot: Path) -> Outcome:
    """Play one schedule against the node behind a fresh proxy; judge it."""
    settings, steps = make_schedule(seed)
    out = Outcome(seed, steps, settings)
    started = time.monotonic()
    app = f"chaos-{seed}-{uuid.uuid4().hex[:8]}"
    workdir = workroot / f"seed-{seed}"
    spool_dir = workdir / "spool"
    spool_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(spool_dir)], check=True)
    proxy = TcpProxy(cassandra_port)
    ballast: Path | None = None
    config = dict(
        settings,
        hosts="127.0.0.1",
        port=proxy.port,
        app=app,
        consistency="ONE",
        spool_path=str(spool_dir / "app"),
        close_timeout=2.0,
        drop_report_interval=5.0,
        workdir=str(workdir),
    )
    proc = _App(config, workdir / "stderr.txt")
    exit_code: int | None = None
    final: dict[str, Any] = {}
    try:
        for step in [*steps, {"op": "restore"}, {"op": "free"}]:
            op = step["op"]
            if op == "cut":
                proxy.cut()
            elif op == "restore":
                proxy.restore()
            elif op == "fill":
                ballast = fill(spool_dir)
            elif op == "free":
                if ballast is not None:
                    ballast.unlink()
                    ballast = None
            elif op == "pause":
                time.sleep(step["seconds"])
            elif op == "burst":
                answer = proc.send(step, timeout=30)
                if answer["slowest_emit"] > MAX_EMIT_SECONDS:
                    out.problems.append(f"a logging call took {answer['slowest_emit']:.3f} s: emit() blocked")
            elif op == "flush":
                answer = proc.send(step, timeout=step["timeout"] + 30)
                out.notes["short flushes returning False"] += not answer["flushed"]
                if answer["took"] > step["timeout"] + FLUSH_SLACK:
                    out.problems.append(f"flush({step['timeout']}) took {answer['took']:.2f} s")
            else:  # error, fork
                proc.send(step, timeout=30)
        final = proc.send({"op": "exit", "children_timeout": 30, "flush_timeout": 60}, timeout=120)
        exit_code = proc.stop()
    except (TimeoutError, RuntimeError) as exc:
        out.problems.append(f"the app hung or died: {exc}")
        exit_code = proc.stop(timeout=0.1)
    finally:
        try:
            if exit_code == 0 and final:
                _next_process(config, workdir, spool_dir, out)
        finally:
            proxy.close()
            subprocess.run(["umount", "-l", str(spool_dir)], check=False)
    if exit_code != 0:
        out.problems.append(f"the app exited with {exit_code}")
    out.stderr_tail = (workdir / "stderr.txt").read_text(errors="replace")[-4000:]
    if not final:
        out.seconds = time.monotonic() - started
        return out
    if not final["flushed"]:
        out.problems.append(f"the final flush (everything restored) returned False: {final['stats']}")
    logged = {"P": final["logged"]}
    out.dropped += final["stats"]["logs_dropped"]
    stats = [final["stats"]]
    for child, code in final["children"].items():
        if code != 0:
            out.problems.append(f"child {child} exited with {code}")
            continue
        report = json.loads((workdir / f"{child}.json").read_text())
        logged[child] = report["logged"]
        out.dropped += report["stats"]["logs_dropped"]
        stats.append(report["stats"])
        if report["slowest_emit"] > MAX_EMIT_SECONDS:
            out.problems.append(f"child {child}: a logging call took {report['slowest_emit']:.3f} s")
    out.notes["children"] += len(final["children"])
    for key in ("logs_spooled", "write_errors", "writer_errors"):
        out.notes[key] += sum(st[key] for st in stats)
    counts = Counter(stored_messages(session, app))
    expected = {f"{label}:{i}" for label, n in logged.items() for i in range(n)}
    out.logged = len(expected)
    out.stored = sum(1 for m in counts if m in expected)
    out.duplicated = sum(n - 1 for n in counts.values() if n > 1)
    out.missing = len(expected) - out.stored
    unknown = [m for m in counts if m not in expected]
    if out.duplicated:
        out.problems.append(f"{out.duplicated} record(s) stored more than once")
    if unknown:
        out.problems.append(f"{len(unknown)} stored record(s) were never logged, e.g. {unknown[:3]}")
    if out.missing > out.dropped:
        out.problems.append(f"{out.missing} record(s) missing but only {out.dropped} counted in logs_dropped")
    out.seconds = time.monotonic() - started
    if out.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def describe(out: Outcome) -> str:
    """A failing schedule, in enough detail to replay it by its seed."""
    return (
        f"seed {out.seed}: {'; '.join(out.problems)}\n  settings {out.settings}\n  steps {out.steps}\n"
        f"  logged {out.logged} stored {out.stored} dropped {out.dropped} missing {out.missing}\n"
        f"  app stderr (tail):\n{out.stderr_tail}"
    )
