"""The collector against a real Cassandra node: exactly once through kills, rotations and an outage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cassandra


def wait_for(condition, timeout, what, diag=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f"\n{diag()}" if diag else ""))


class Agent:
    """iact-collector as a real process, the way systemd runs it."""

    def __init__(self, tmp_path: Path, port: int, host: str, **overrides) -> None:
        self.dir = tmp_path
        self.log = tmp_path / "gen.log"
        self.config = tmp_path / "collector.yaml"
        conf = {
            "host": host,
            "cassandra": {"hosts": ["127.0.0.1"], "port": port},
            "sources": {"files": [{"path": str(self.log), "source": "gen", "format": "syslog"}],
                        "journal": {"enabled": False}},
            "start_position": "beginning",
            "poll_interval": 0.05,
            "rotate_wait": 0.5,
            "state_dir": str(tmp_path / "state"),
            "batch": {"max_wait": 0.2},
            "metrics": {"interval": 0},
            "stats_interval": 5,
        }  # fmt: skip
        conf.update(overrides)
        self.config.write_text(yaml.safe_dump(conf))
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = open(tmp_path / "agent.stderr", "ab")  # noqa: SIM115 - closed in close()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iact.collector.cli", "run", "--config", str(self.config)],
            stderr=self.stderr,
            stdout=self.stderr,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def status(self) -> dict:
        try:
            return json.loads((self.dir / "state" / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def acked(self) -> int:
        """Rows this process (not an earlier one) has acknowledged; -1 before it wrote a status."""
        s = self.status()
        if not s or self.proc is None or s.get("pid") != self.proc.pid:
            return -1
        return s["counters"]["rows_acknowledged"]

    def wait_acked(self, at_least: int) -> None:
        """Until this process has provably read and delivered lines: a kill after it is a real mid-stream kill."""
        wait_for(
            lambda: self.acked() >= at_least, 60, f"the agent (pid {self.proc.pid}) to acknowledge {at_least} rows"
        )

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill()
        self.stderr.close()


class Generator:
    """Writes numbered syslog lines and rotates the file like logrotate (rename, then a new file)."""

    def __init__(self, path: Path, host: str) -> None:
        self.path, self.host, self.n = path, host, 0

    def write(self, upto: int) -> None:
        with open(self.path, "a") as f:
            while self.n < upto:
                stamp = datetime.now(UTC).isoformat()
                f.write(f"{stamp} {self.host} gen[42]: seq={self.n:07d} payload {'x' * (self.n % 50)}\n")
                self.n += 1
                if self.n % 500 == 0:
                    f.flush()

    def rotate(self) -> None:
        rotated = [p for p in self.path.parent.glob(self.path.name + ".*")]
        for p in sorted(rotated, reverse=True):
            n = int(p.name.rsplit(".", 1)[1])
            p.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.rename(self.path.with_name(self.path.name + ".1"))
        self.path.touch()


def stored(session, host: str, since: datetime) -> Counter:
    counts: Counter = Counter()
    hour = since.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    query = session.prepare("SELECT message FROM logging.infrastructure_logs WHERE host=? AND day=? AND hour=?")
    while hour <= datetime.now(UTC) + timedelta(hours=1):
        for row in session.execute(query, (host, hour.date(), hour.hour)):
            counts[row.message.split(" ", 1)[0]] += 1
        hour += timedelta(hours=1)
    return counts


@pytest.fixture
def agent_factory(tmp_path, cassandra_node):
    agents = []

    def make(**overrides):
        agent = Agent(tmp_path, cassandra_node.port, f"test-{uuid.uuid4().hex[:8]}", **overrides)
        agents.append(agent)
        return agent

    yield make
    for a in agents:
        a.close()


def test_100k_lines_exactly_once_through_three_kills_and_two_rotations(agent_factory, session):
    agent = agent_factory()
    host = yaml.safe_load(agent.config.read_text())["host"]
    gen = Generator(agent.log, host)
    t0 = datetime.now(UTC)
    agent.start()
    gen.write(20_000)
    agent.wait_acked(1000)
    agent.kill()  # 1: SIGKILL mid-stream
    gen.write(25_000)
    agent.start()
    agent.wait_acked(1)
    gen.write(33_000)
    gen.rotate()  # 1: rename rotation while the agent runs (it provably does: it acknowledged rows)
    gen.write(50_000)
    agent.wait_acked(5000)
    agent.kill()  # 2: mid-stream, with the rotated file possibly not read to its end
    gen.rotate()  # 2: rotated while the agent is down
    gen.write(60_000)
    agent.start()
    gen.write(80_000)
    agent.wait_acked(2000)
    agent.kill()  # 3
    agent.start()
    gen.write(100_000)

    def all_stored():
        counts = stored(session, host, t0)
        return counts if len(counts) >= 100_000 else None

    def diag():
        counts = stored(session, host, t0)
        missing = sorted({f"seq={i:07d}" for i in range(100_000)} - set(counts))
        tail = (agent.dir / "agent.stderr").read_text()[-3000:]
        return f"stored {len(counts)}; missing {len(missing)}: {missing[:5]}..{missing[-5:]}\n{agent.status()}\n{tail}"

    counts = wait_for(all_stored, 120, "all 100,000 lines in Cassandra", diag)
    assert set(counts) == {f"seq={i:07d}" for i in range(100_000)}
    duplicates = {k: v for k, v in counts.items() if v > 1}
    assert not duplicates, f"{len(duplicates)} lines stored more than once, e.g. {list(duplicates.items())[:3]}"
    assert agent.terminate() == 0, "SIGTERM must end the agent cleanly"


def test_cassandra_outage_spools_then_replays_everything(agent_factory, session, cassandra_node, cassandra_settings):
    agent = agent_factory()
    host = yaml.safe_load(agent.config.read_text())["host"]
    gen = Generator(agent.log, host)
    t0 = datetime.now(UTC)
    agent.start()
    gen.write(2_000)
    wait_for(lambda: len(stored(session, host, t0)) == 2_000, 60, "lines before the outage")
    cassandra_node.stop()
    try:
        gen.write(5_000)
        wait_for(lambda: agent.status().get("spool_bytes", 0) > 0, 60, "the agent to spool while Cassandra is down")
        gen.write(7_000)
    finally:
        cassandra_node.start()
    from iact.cassandra.session import open_session

    with open_session(cassandra_settings) as fresh:
        counts = wait_for(
            lambda: (c := stored(fresh, host, t0)) and len(c) == 7_000 and c, 180, "every line after the outage"
        )
    assert max(counts.values()) == 1, "replay must not duplicate"
    wait_for(lambda: agent.status().get("spool_bytes") == 0, 60, "the spool to drain")
    # A bad configuration on SIGHUP is refused and the agent keeps running.
    agent.config.write_text("cassandra: {}\n")
    agent.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)  # the signal is handled asynchronously; nothing to wait on but the log line below
    wait_for(lambda: b"keeping the running configuration" in (agent.dir / "agent.stderr").read_bytes(), 10, "reload")
    assert agent.proc.poll() is None
    assert agent.terminate() == 0
    assert os.path.exists(agent.dir / "state" / "checkpoints.json")
