"""Fault-injection schedules for the collector: the real agent process, a real Cassandra node.

A schedule is drawn from a seed (random.Random(seed)), so a failing seed replays the same steps:
appends with hostile lines among them, rename rotation, copytruncate, truncation and recycled
inodes (while the agent runs and while it is stopped), kill -9 at points the agent has provably
reached (read from its status file), SIGHUP, graceful stops with a short timeout, Cassandra cut
off and back (a TCP proxy in front of the node), the spool's filesystem full (a small tmpfs),
torn spool writes, and the host's time zone changed between runs across DST changes and a year
boundary.

The oracle: every line written is stored exactly once, with the message the parser must make of
it, nothing is set aside, and the agent is running and healthy at the end.

Used by tests/test_collector_chaos.py (fixed seeds, in CI) and bench/chaos.py (random seeds).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from diskfull import fill
from tcp_proxy import TcpProxy

ZONES = ("UTC", "Asia/Tokyo", "Australia/Sydney", "America/New_York")
# Stamps without year or zone around the year boundary and the DST changes of those zones
# (New York: back 1 Nov, forward 8 Mar; Sydney: back 5 Apr, forward 4 Oct).
EDGE_STAMPS = (
    "Dec 31 23:59:58", "Jan  1 00:00:01", "Nov  1 01:30:00", "Nov  1 01:30:00", "Mar  8 02:30:00",
    "Apr  5 02:30:00", "Oct  4 02:30:00", "Feb 29 12:00:00",
)  # fmt: skip
MAX_LINE = 64 * 1024
TRUNCATED = "…[truncated {} bytes]"
MARKER = re.compile(r"M\d+x\d+\b")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Line:
    """One line as written, and the message the collector must store for it."""

    marker: str
    data: bytes  # without the newline
    expect: str


@dataclass
class Outcome:
    """What a schedule did and found."""

    seed: int
    steps: list[str] = field(default_factory=list)
    written: int = 0
    stored: int = 0
    duplicated: int = 0
    lost: int = 0
    corrupted: int = 0
    crashes: int = 0
    kills: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the oracle holds."""
        return not (self.duplicated or self.lost or self.corrupted or self.crashes or self.problems)

    def summary(self) -> str:
        """One line for a report, with the steps to replay by hand."""
        return (
            f"seed {self.seed}: written {self.written} stored {self.stored} dup {self.duplicated} lost {self.lost} "
            f"corrupted {self.corrupted} crashes {self.crashes} problems {self.problems[:5]} steps {self.steps}"
        )


def _expected_message(prefix: bytes, body: bytes, kind: str) -> str:
    """The stored message of `prefix + body`, cut like the tailer cuts (head kept, marker appended)."""
    line = prefix + body
    cut = max(0, len(line) - MAX_LINE)
    head = line[:MAX_LINE] if cut else line
    text = head.decode("utf-8", "replace")
    kept = text[len(prefix.decode()) :] if kind != "raw" else text
    return kept + (TRUNCATED.format(cut) if cut else "")


class LineMaker:
    """Lines of every shape the parser knows, some hostile, each with a unique marker."""

    def __init__(self, rnd: random.Random, seed: int) -> None:
        self.rnd, self.seed, self.n = rnd, seed, 0

    def _body(self, marker: str) -> bytes:
        r = self.rnd.random()
        if r < 0.05:
            return marker.encode() + b" " + b"x" * self.rnd.choice((70_000, 1024 * 1024))  # over the line limit
        if r < 0.12:
            return marker.encode() + b" bad utf-8 \xff\xfe\xc3( end"
        if r < 0.18:
            return marker.encode() + b" nul \x00 and \x01 control"
        if r < 0.24:
            return marker.encode() + " ünïcödé ✓ 日本語".encode()
        return marker.encode() + b" payload " + b"y" * self.rnd.randrange(0, 200)

    def make(self) -> Line:
        """The next line."""
        marker = f"M{self.seed}x{self.n}"
        self.n += 1
        body = self._body(marker)
        kind = self.rnd.choice(("trad", "trad", "trad", "iso", "rfc5424", "kernel", "raw", "bigpid", "unipid"))
        now = datetime.now(UTC)
        stamp = self.rnd.choice(EDGE_STAMPS) if self.rnd.random() < 0.3 else now.strftime("%b %e %H:%M:%S")
        if kind == "trad":
            prefix = f"{stamp} h{self.seed} app[{self.rnd.randrange(1, 99999)}]: ".encode()
        elif kind == "bigpid":
            prefix = f"{stamp} h{self.seed} x[9999999999]: ".encode()
        elif kind == "unipid":  # the tag does not match: the message keeps it
            prefix = f"{stamp} h{self.seed} ".encode()
            body = "x[²]: ".encode() + body
        elif kind == "iso":
            prefix = f"{now.isoformat()} h{self.seed} app[7]: ".encode()
        elif kind == "rfc5424":
            procid = self.rnd.choice(("123", "²", "-", "99999999999"))
            prefix = f"<13>1 {now.strftime('%Y-%m-%dT%H:%M:%S')}Z h{self.seed} app {procid} ID1 - ".encode()
        elif kind == "kernel":
            prefix = f"{stamp} h{self.seed} kernel: [ 12.345678] ".encode()
        else:
            prefix = b""
        return Line(marker, prefix + body, _expected_message(prefix, body, "raw" if kind == "raw" else kind))


class Agent:
    """iact-collector run --config, the way systemd runs it, under a chosen TZ."""

    def __init__(self, workdir: Path, port: int, name: str, rnd: random.Random, spool_dir_tmpfs: bool) -> None:
        self.dir = workdir
        self.log = workdir / "logs" / "app.log"
        self.log.parent.mkdir(parents=True)
        self.state = workdir / "state"
        self.config = workdir / "collector.yaml"
        self.conf = {
            "host": name,
            "cassandra": {"hosts": ["127.0.0.1"], "port": port},
            "sources": {"files": [{"path": str(self.log), "source": name}], "journal": {"enabled": False}},
            "start_position": "beginning",
            "poll_interval": 0.05,
            "rotate_wait": 0.3,
            "state_dir": str(self.state),
            "batch": {"max_wait": 0.1, "max_rows": rnd.choice((20, 1000))},
            "queue_lines": rnd.choice((50, 10_000)),
            "spool": {"max_bytes": rnd.choice((64 * 1024, 16 * 1024 * 1024))},
            "metrics": {"interval": 0},
            "stats_interval": 60,
            "status_interval": 0.1,
            "shutdown_timeout": rnd.choice((0.3, 5.0)),
        }  # fmt: skip
        self.config.write_text(yaml.safe_dump(self.conf))
        self.tmpfs: Path | None = None
        if spool_dir_tmpfs and os.geteuid() == 0:
            self.tmpfs = self.state / "spool"
            self.tmpfs.mkdir(parents=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(self.tmpfs)], check=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = open(workdir / "agent.stderr", "ab")  # noqa: SIM115 - closed in close()
        self.started_at = 0.0

    def start(self, tz: str) -> None:
        env = {**os.environ, "TZ": tz, "PYTHONPATH": str(ROOT / "agents")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iact.collector.cli", "run", "--config", str(self.config)],
            stdout=self.stderr, stderr=self.stderr, env=env,
        )  # fmt: skip
        self.started_at = time.time()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def fresh_status(self) -> dict[str, Any]:
        """A status written by this process after it started (or {})."""
        s = self.status()
        if not s or not self.proc or s.get("pid") != self.proc.pid:
            return {}
        return s

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.alive():
            self.signal(signal.SIGKILL)
            self.wait_exit(10)
        self.stderr.close()
        if self.tmpfs is not None:
            subprocess.run(["umount", "-l", str(self.tmpfs)], check=False)


def wait_for(cond: Any, timeout: float) -> Any:
    """Poll cond() until truthy; the last value (falsy on timeout)."""
    end = time.monotonic() + timeout
    value = cond()
    while not value and time.monotonic() < end:
        time.sleep(0.05)
        value = cond()
    return value


class Schedule:
    """One seeded run: steps against a fresh agent, then the oracle."""

    def __init__(self, seed: int, workdir: Path, cassandra_port: int, session: Any, steps: int = 8) -> None:
        self.seed = seed
        self.rnd = random.Random(seed)
        self.dir = workdir
        self.session = session
        self.proxy = TcpProxy(cassandra_port)
        self.lines = LineMaker(self.rnd, seed)
        # Host and source unique per run (not per seed), so a replayed seed never meets old rows.
        self.name = f"ch{seed}r{os.urandom(4).hex()}"
        self.agent = Agent(workdir, self.proxy.port, self.name, self.rnd, spool_dir_tmpfs=self.rnd.random() < 0.15)
        self.n_steps = steps
        self.out = Outcome(seed)
        self.expected: dict[str, str] = {}
        self.partial: Line | None = None  # written without its newline, at the end of app.log
        self.filler: Path | None = None
        self.running = False

    # -- the log file, as a writer and logrotate would treat it ---------------------------------
    def _append(self, count: int) -> None:
        with open(self.agent.log, "ab") as f:
            if self.partial is not None:
                f.write(b"\n")
                self.partial = None
            for _ in range(count):
                line = self.lines.make()
                self.expected[line.marker] = line.expect
                if self.rnd.random() < 0.05:
                    f.write(b"\n")  # empty lines store nothing
                f.write(line.data + b"\n")
            if self.rnd.random() < 0.2:
                line = self.lines.make()
                self.expected[line.marker] = line.expect
                f.write(line.data)  # no newline yet
                self.partial = line

    def _shift(self) -> None:
        log = self.agent.log
        rotated = sorted((p for p in log.parent.glob(log.name + ".*") if p.name.rsplit(".", 1)[1].isdigit()),
                         key=lambda p: int(p.name.rsplit(".", 1)[1]), reverse=True)  # fmt: skip
        for p in rotated:
            p.rename(log.with_name(f"{log.name}.{int(p.name.rsplit('.', 1)[1]) + 1}"))

    def _rename_rotate(self) -> None:
        self._shift()
        self.agent.log.rename(self.agent.log.with_name(self.agent.log.name + ".1"))
        self.agent.log.touch()
        self.partial = None  # the rotated file's last line stays without newline: read at its end

    def _copytruncate(self) -> None:
        self._shift()
        shutil.copyfile(self.agent.log, self.agent.log.with_name(self.agent.log.name + ".1"))
        os.truncate(self.agent.log, 0)
        self.partial = None

    def _caught_up(self) -> bool:
        s = self.agent.fresh_status()
        if not s or datetime.fromisoformat(s["updated_at"]).timestamp() < self._last_write + 0.3:
            return False  # written before the agent could have seen the last change
        rotated = any(f.get("rotated") for f in s["files"].values())
        live = s["files"].get(str(self.agent.log))
        try:
            size = self.agent.log.stat().st_size
        except FileNotFoundError:
            return False
        seen = live is not None and live["size"] == size and live["acked_offset"] == size  # read it all, as it is now
        idle = s["files_ready"] and not s["in_flight"] and not any(s["queues"].values()) and not s["spool_bytes"]
        return seen and idle and s["lag_bytes"] == 0 and not rotated

    def _catch_up(self) -> bool:
        """Before a step that destroys unread data: finish the last line, let the agent read everything."""
        if self.partial is not None:
            with open(self.agent.log, "ab") as f:
                f.write(b"\n")
            self.partial = None
        self._last_write = time.time()
        if not self.running:
            self._start()
        self.proxy.restore()
        self._free_disk()
        return bool(wait_for(self._caught_up, 60))

    # -- faults ------------------------------------------------------------------------------------
    def _start(self) -> None:
        tz = self.rnd.choice(ZONES)
        self.out.steps.append(f"start TZ={tz}")
        self.agent.start(tz)
        self.running = True

    def _check_alive(self) -> None:
        if self.running and not self.agent.alive():
            self.out.crashes += 1
            self.out.problems.append(f"agent exited by itself with {self.agent.proc.returncode}")  # type: ignore[union-attr]
            self.running = False
            self._start()  # as systemd would

    def _kill(self) -> None:
        """kill -9 at a point the agent provably reached."""
        point = self.rnd.choice(("acked", "running", "spooling"))
        if point == "acked":
            target = self.rnd.randrange(1, 40)
            wait_for(lambda: self.agent.fresh_status().get("counters", {}).get("rows_acknowledged", 0) >= target, 5)
        elif point == "spooling":
            self.proxy.cut()
            self._append(self.rnd.randrange(20, 300))
            wait_for(lambda: self.agent.fresh_status().get("counters", {}).get("write_errors", 0) > 0, 5)
        else:
            wait_for(self.agent.fresh_status, 5)
        self.out.steps.append(f"kill -9 ({point})")
        self._check_alive()
        self.agent.signal(signal.SIGKILL)
        self.agent.wait_exit(10)
        self.out.kills += 1
        self.running = False

    def _ready(self) -> None:
        """Signals before the agent installed its handlers kill it (as they would under systemd)."""
        wait_for(self.agent.fresh_status, 10)

    def _stop(self) -> None:
        self._ready()
        self.out.steps.append("SIGTERM")
        self.agent.signal(signal.SIGTERM)
        rc = self.agent.wait_exit(60)
        if rc is None:
            self.agent.signal(signal.SIGUSR1)  # its threads' stacks, in agent.stderr
            time.sleep(1)
            self.agent.signal(signal.SIGKILL)
            self.agent.wait_exit(10)
        if rc != 0:
            self.out.problems.append(f"graceful stop exited with {rc}")
        self.running = False

    def _fill_disk(self) -> None:
        if self.agent.tmpfs is None or self.filler is not None:
            return
        self.out.steps.append("spool disk full")
        self.filler = fill(self.agent.tmpfs)

    def _free_disk(self) -> None:
        if self.filler is not None:
            self.filler.unlink(missing_ok=True)
            self.filler = None

    def _tear_wal(self) -> None:
        """A torn write: garbage after the last complete WAL frame, as a crash mid-append leaves."""
        wal = self.agent.state / "spool" / "rows.spool-wal"
        garbage = self.rnd.randbytes(self.rnd.randrange(1, 5000))
        if wal.exists() and wal.stat().st_size:
            try:
                with open(wal, "ab") as f:
                    f.write(garbage)
            except OSError:  # its disk is full: nothing can be torn
                return
            self.out.steps.append("torn WAL")

    # -- the run -----------------------------------------------------------------------------------
    def step(self) -> None:
        """One step, chosen by the seed."""
        self._check_alive()
        op = self.rnd.choices(
            ("append", "rename", "copytruncate", "truncate", "recycle", "kill", "hup", "stop", "outage", "restore",
             "fill", "free", "start"),
            weights=(6, 2, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2),
        )[0]  # fmt: skip
        if op == "append":
            n = self.rnd.randrange(1, 120)
            self.out.steps.append(f"append {n}")
            self._append(n)
        elif op == "rename":
            self.out.steps.append(f"rename-rotate ({'running' if self.running else 'stopped'})")
            self._rename_rotate()
        elif op == "copytruncate":
            self.out.steps.append(f"copytruncate ({'running' if self.running else 'stopped'})")
            self._copytruncate()
        elif op in ("truncate", "recycle"):
            if not self._catch_up():
                self.out.problems.append(f"did not catch up before {op}")
                return
            stop_first = self.rnd.random() < 0.5
            if stop_first:
                self._stop()
            self.out.steps.append(f"{op} ({'stopped' if stop_first else 'running'})")
            if op == "truncate":
                os.truncate(self.agent.log, 0)
            else:
                self.agent.log.unlink()
                self.agent.log.touch()
        elif op == "kill" and self.running:
            self._kill()
        elif op == "hup" and self.running:
            self._ready()
            self.out.steps.append("SIGHUP")
            self.agent.signal(signal.SIGHUP)
        elif op == "stop" and self.running:
            self._stop()
        elif op == "outage":
            self.out.steps.append("Cassandra cut off")
            self.proxy.cut()
        elif op == "restore":
            self.out.steps.append("Cassandra back")
            self.proxy.restore()
        elif op == "fill":
            self._fill_disk()
        elif op == "free":
            self._free_disk()
        elif op == "start" and not self.running:
            if self.rnd.random() < 0.3:
                self._tear_wal()
            self._start()
        self._last_write = time.time()

    def run(self) -> Outcome:
        """All steps, then everything back up, then the oracle."""
        self._last_write = time.time()
        try:
            self.agent.log.touch()
            self._start()
            # The agent is installed before the logs rotate: a file rotated away before the very first
            # run ever saw it is not one the agent is supposed to know about.
            wait_for(lambda: str(self.agent.log) in self.agent.fresh_status().get("files", {}), 20)
            self._append(self.rnd.randrange(1, 50))
            for _ in range(self.n_steps):
                self.step()
                if self.rnd.random() < 0.5:
                    time.sleep(self.rnd.random() * 0.3)  # let the agent be anywhere in its work
            self._check_alive()
            if not self._catch_up():
                self.out.problems.append("did not catch up within 60 s: " + json.dumps(self.agent.status())[:2000])
            self._check_alive()
            self._judge()
            s = self.agent.fresh_status()
            if not s.get("healthy"):
                self.out.problems.append("not healthy at the end")
            counters = s.get("counters", {})
            for name in ("stage_errors", "rows_dead_lettered"):
                if counters.get(name):
                    self.out.problems.append(f"{name} = {counters[name]}")
        except Exception as exc:  # the harness itself failed: report, do not hide
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.out.problems.append(f"harness error: {type(exc).__name__}: {exc} at {where.name}:{where.lineno}")
        finally:
            self.agent.close()
            self.proxy.close()
        return self.out

    def _judge(self) -> None:
        query = "SELECT message FROM logging.infrastructure_logs WHERE source = %s"
        found: Counter[str] = Counter()
        messages: dict[str, str] = {}
        for row in self.session.execute(query, (self.name,)):
            m = MARKER.search(row.message or "")
            if m:
                found[m.group(0)] += 1
                messages[m.group(0)] = row.message
        self.out.written = len(self.expected)
        self.out.stored = sum(1 for k in self.expected if found[k])
        self.out.lost = sum(1 for k in self.expected if not found[k])
        self.out.duplicated = sum(c - 1 for k, c in found.items() if c > 1)
        bad = [k for k, msg in messages.items() if k in self.expected and msg != self.expected[k]]
        self.out.corrupted = len(bad)
        if bad:
            k = bad[0]
            self.out.problems.append(f"{k}: stored {messages[k][:120]!r} expected {self.expected[k][:120]!r}")
        lost = [k for k in self.expected if not found[k]]
        if lost:
            self.out.problems.append(f"lost e.g. {lost[:5]}")


def run_schedules(seeds: list[int], base: Path, cassandra_port: int, session: Any, workers: int = 6) -> list[Outcome]:
    """Run schedules concurrently (each has its own agent, proxy, files and host)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(seed: int) -> Outcome:
        workdir = Path(tempfile.mkdtemp(prefix=f"s{seed}-", dir=base))
        out = Schedule(seed, workdir, cassandra_port, session).run()
        if out.ok:
            shutil.rmtree(workdir, ignore_errors=True)
        return out

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, seeds))


def totals(outcomes: list[Outcome]) -> dict[str, int]:
    """Harness counts for the report."""
    return {
        "schedules": len(outcomes),
        "failed": sum(not o.ok for o in outcomes),
        "lines_written": sum(o.written for o in outcomes),
        "stored": sum(o.stored for o in outcomes),
        "duplicated": sum(o.duplicated for o in outcomes),
        "lost": sum(o.lost for o in outcomes),
        "corrupted": sum(o.corrupted for o in outcomes),
        "crashes": sum(o.crashes for o in outcomes),
        "kills": sum(o.kills for o in outcomes),
    }
