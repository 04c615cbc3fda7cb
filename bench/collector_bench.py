"""Benchmark of iact-collector (run on demand: `python bench/collector_bench.py`).

Prints, each against a baseline measured in the same run:
- parse throughput per line format on one core (baseline: decoding and splitting the same lines);
- end-to-end ingest of a file into a real Cassandra node, against the write ceiling for the same
  rows (the shared sink writing pre-built rows, same batching: Cassandra's side of the pipeline).
  cassandra-stress is not published on Maven Central for 5.0 and so is not in the lab tarball;
- CPU and RSS of the agent process while it follows a file growing by 1,000 lines/s;
- bytes per stored line on disk after flush and major compaction (nodetool tablestats).

`--tls` measures instead the cost of TLS on ingest (bench/tls_compare.py says how): the sink alone and
the agent end to end, each with TLS off (no ca_file, the baseline) and on (ca_file), alternating on one
node that accepts both; it prints rows/s of every run, the pooled rates and TLS/plaintext.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))

from cassandra_node import CassandraNode
from tls_compare import Run, abba, connection, cpu_seconds, local_ports, report, tls_node, transport

from iact.cassandra.session import open_session
from iact.cassandra.settings import ConnectionSettings
from iact.collector.parse import parse_line
from iact.collector.parse.journal import parse_journal
from iact.collector.rows import COLUMNS, PARTITION_KEY, RowBuilder
from iact.collector.sources.records import RawLine
from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams
from iact.sink.cassandra import CassandraSink

N_PARSE = 200_000
N_INGEST = 200_000


def sample_lines(n: int) -> dict[str, list[str]]:
    """Realistic shapes, varied so caches do not make it trivial."""
    progs = ["sshd[2211]", "CRON[1234]", "systemd[1]", "kernel", "postfix/smtpd[3301]", "sudo"]
    now = datetime.now(UTC)
    trad, hp, r5424, kern, journal = [], [], [], [], []
    for i in range(n):
        p = progs[i % len(progs)]
        s = i % 60
        msg = f"session {i} opened for user deploy from 10.0.{i % 255}.{i % 7} port {40000 + i % 20000}"
        trad.append(f"Nov {1 + i % 28:>2} 03:{i % 60:02d}:{s:02d} cass1 {p}: {msg}")
        hp.append(f"2026-11-23T03:{i % 60:02d}:{s:02d}.{i % 1000000:06d}+00:00 cass1 {p}: {msg}")
        r5424.append(f'<165>1 2026-11-23T03:17:{s:02d}.003Z cass1 app {i} ID47 [meta seq="{i}"] {msg}')
        kern.append(f"Nov 23 03:17:{s:02d} cass1 kernel: [{i}.{i % 999999:06d}] eth0: link up {msg}")
        journal.append(json.dumps({
            "__CURSOR": f"s=abc;i={i:x}", "__REALTIME_TIMESTAMP": str(int(now.timestamp() * 1e6) + i),
            "PRIORITY": "6", "SYSLOG_IDENTIFIER": "sshd", "_PID": "812", "_COMM": "sshd",
            "_SYSTEMD_UNIT": "ssh.service", "_HOSTNAME": "cass1", "MESSAGE": msg, "_TRANSPORT": "syslog",
        }))  # fmt: skip
    return {"syslog (Debian traditional)": trad, "syslog (high precision)": hp, "RFC 5424": r5424,
            "kernel (kern.log)": kern, "journal JSON": journal}  # fmt: skip


def rate(fn: Callable[[bytes], object], items: list[bytes]) -> float:
    """Items per CPU-second of one thread."""
    start = time.process_time()
    for x in items:
        fn(x)
    return len(items) / (time.process_time() - start)


def parse_rates() -> list[tuple[str, float, float]]:
    """(format, ours, baseline) in lines per CPU-second."""
    out = []
    for name, lines in sample_lines(N_PARSE).items():
        data = [x.encode() for x in lines]
        baseline = rate(lambda b: b.decode("utf-8", "replace").split(" ", 5), data)
        if name == "journal JSON":
            ours = rate(lambda b: parse_journal(json.loads(b)), data)
        else:
            ours = rate(lambda b: parse_line(b.decode("utf-8", "replace")), data)
        out.append((name, ours, baseline))
    return out


def generate(path: Path, n: int, host: str) -> int:
    """n high-precision syslog lines (about 110 bytes each); returns bytes written."""
    with open(path, "a") as f:
        for i in range(n):
            stamp = datetime.now(UTC).isoformat()
            f.write(f"{stamp} {host} sshd[{1000 + i % 500}]: Accepted publickey for deploy from 10.0.{i % 255}.7 "
                    f"port {40000 + i % 20000} ssh2 seq={i}\n")  # fmt: skip
    return path.stat().st_size


def agent_config(tmp: Path, port: int, log: Path, host: str, ca_file: str | None = None) -> Path:
    """A collector.yaml following one file into the bench node (over verified TLS when given a CA file).

    The status file, which says when the last line is acknowledged, is written every 0.2 s rather
    than every 2 s, so that the end of a run is seen within 0.2 s.
    """
    cassandra: dict = {"hosts": ["127.0.0.1"], "port": port, "consistency": "ONE"}
    if ca_file:
        cassandra["ca_file"] = ca_file
    conf = {
        "host": host, "cassandra": cassandra,
        "sources": {"files": [{"path": str(log), "source": "bench", "format": "syslog"}],
                    "journal": {"enabled": False}},
        "start_position": "beginning", "state_dir": str(tmp / "state"), "metrics": {"interval": 0},
        "poll_interval": 0.1, "status_interval": 0.2,
    }  # fmt: skip
    path = tmp / "collector.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def status(tmp: Path) -> dict:
    """The running agent's status file."""
    try:
        return json.loads((tmp / "state" / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def run_agent(config: Path) -> subprocess.Popen[bytes]:
    """The agent as systemd would run it; its own log goes to agent.log next to its config."""
    with open(config.parent / "agent.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "iact.collector.cli", "run", "--config", str(config)], stderr=log, stdout=log
        )


def ingest(port: int) -> tuple[float, int]:
    """Lines/s from agent start until every line of a prepared file is acknowledged; bytes per line."""
    run, size = ingest_run(port, N_INGEST, "ingest")
    return run.rate, size // N_INGEST


def ingest_run(
    port: int, n: int, host: str, ca_file: str | None = None, observer: object = None, node_pid: int | None = None
) -> tuple[Run, int]:
    """One agent ingesting a prepared file of n lines, timed from its start to the last acknowledgement.

    With an observer session, the node is asked whether the agent's connections used TLS, just
    before the agent stops. Also returns the file's size.
    """
    tmp = Path(tempfile.mkdtemp(prefix="iact-bench-ingest-"))
    log = tmp / "bench.log"
    size = generate(log, n, host)
    node_cpu = cpu_seconds(node_pid) if node_pid else 0.0
    agent = run_agent(agent_config(tmp, port, log, host, ca_file))
    start = time.perf_counter()
    while status(tmp).get("counters", {}).get("rows_acknowledged", 0) < n:
        if agent.poll() is not None:
            raise RuntimeError(f"the agent exited with {agent.returncode} before acknowledging {n:,} lines: "
                               f"see {tmp / 'agent.log'}")  # fmt: skip
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    client_cpu = cpu_seconds(agent.pid)
    node_cpu = cpu_seconds(node_pid) - node_cpu if node_pid else None
    wire = transport(observer, local_ports(agent.pid, port), ca_file is not None) if observer is not None else ""
    agent.terminate()
    agent.wait(30)
    return Run("ingest end to end (agent process)", ca_file is not None, n, elapsed, client_cpu, node_cpu, wire), size


def prebuilt_rows(n: int, host: str) -> list[dict]:
    """n rows as the agent builds them from n generated lines."""
    tmp = Path(tempfile.mkdtemp(prefix="iact-bench-rows-"))
    generate(tmp / "c.log", n, host)
    builder = RowBuilder(host)
    rows, off = [], 0
    with open(tmp / "c.log", "rb") as f:
        for line in f:
            rows.append(builder.build(RawLine("bench", "k", off, off + len(line), line[:-1], 0, "syslog", None))[0])
            off += len(line)
    return rows


def ceiling(port: int) -> float:
    """The shared sink alone writing the same rows, pre-built: the best of 1,000 and 5,000 per call."""
    rows = prebuilt_rows(N_INGEST, "ceiling")
    conn = ConnectionSettings(contact_points=("127.0.0.1",), port=port)
    sink = CassandraSink(conn, "logging", "infrastructure_logs", COLUMNS, PARTITION_KEY, consistency="ONE",
                         max_batch_rows=1000)  # fmt: skip
    sink.write(rows[:100])
    best = 0.0
    for per_call in (1000, 5000):  # the agent sends up to 5,000 rows per delivery when backlogged
        start = time.perf_counter()
        for i in range(0, len(rows), per_call):
            sink.write(rows[i : i + per_call])
        best = max(best, len(rows) / (time.perf_counter() - start))
    sink.close()
    return best


def steady_state(port: int, per_second: int = 1000, seconds: int = 30) -> tuple[float, float]:
    """CPU % of one core and RSS (MB) of the agent following a file growing at per_second lines/s."""
    tmp = Path(tempfile.mkdtemp(prefix="iact-bench-steady-"))
    log = tmp / "steady.log"
    log.touch()
    agent = run_agent(agent_config(tmp, port, log, "steady"))
    proc = psutil.Process(agent.pid)
    tick = 0.1
    next_at = time.monotonic()
    cpu_start = None
    end = time.monotonic() + seconds + 5
    while time.monotonic() < end:
        generate(log, int(per_second * tick), "steady")
        if cpu_start is None and time.monotonic() > end - seconds:
            cpu_start = (proc.cpu_times(), time.monotonic())
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    times, t0 = cpu_start
    now = proc.cpu_times()
    cpu = ((now.user + now.system) - (times.user + times.system)) / (time.monotonic() - t0) * 100
    rss = proc.memory_info().rss / 1e6
    agent.terminate()
    agent.wait(30)
    return cpu, rss


def bytes_per_line(node: CassandraNode) -> tuple[float, int]:
    """Live SSTable bytes per row after flush and major compaction."""
    nodetool = [str(node.home / "bin" / "nodetool"), "-h", "127.0.0.1", "-p", str(node.jmx_port)]
    subprocess.run([*nodetool, "flush", "logging", "infrastructure_logs"], check=True)
    subprocess.run([*nodetool, "compact", "logging", "infrastructure_logs"], check=True)
    out = subprocess.run([*nodetool, "tablestats", "logging.infrastructure_logs"], check=True, capture_output=True,
                         text=True).stdout  # fmt: skip
    live = next(int(line.split(":")[1]) for line in out.splitlines() if "Space used (live)" in line)
    with open_session(ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)) as s:
        rows = s.execute("SELECT count(*) FROM logging.infrastructure_logs").one()[0]
    return live / rows, rows


def sink_run(port: int, rows: list[dict], ca_file: str | None, observer: object, node_pid: int) -> Run:
    """The shared sink alone writing pre-built rows, 5,000 per call as a backlogged agent delivers them.

    Its connection is made before the clock starts (a 100-row write), as a running agent's is.
    """
    before = local_ports(os.getpid(), port)  # the observer's own connections
    sink = CassandraSink(connection(port, ca_file), "logging", "infrastructure_logs", COLUMNS, PARTITION_KEY,
                         consistency="ONE", max_batch_rows=1000)  # fmt: skip
    try:
        sink.write(rows[:100])
        cpu, node_cpu, start = time.process_time(), cpu_seconds(node_pid), time.perf_counter()
        for i in range(0, len(rows), 5000):
            sink.write(rows[i : i + 5000])
        elapsed = time.perf_counter() - start
        cpu, node_cpu = time.process_time() - cpu, cpu_seconds(node_pid) - node_cpu
        wire = transport(observer, local_ports(os.getpid(), port) - before, ca_file is not None)
    finally:
        sink.close()
    return Run("sink alone, pre-built rows (CL ONE)", ca_file is not None, len(rows), elapsed, cpu, node_cpu, wire)


def tls_main(rounds: int, lines: int) -> None:
    """TLS off and on against one node, alternating: the sink alone, then the agent end to end."""
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"({os.cpu_count()} CPUs)", flush=True)  # fmt: skip
    order = abba(rounds)
    runs: list[Run] = []
    with tls_node() as (node, ca_file, observer):
        assert node.proc is not None
        pid = node.proc.pid
        rows = prebuilt_rows(lines, "sink")
        # Warm-up, not counted: the node's JIT and the first memtable, for both transports.
        for tls in (False, True):
            sink_run(node.port, rows[: lines // 4], ca_file if tls else None, observer, pid)
        for tls in order:
            runs.append(sink_run(node.port, rows, ca_file if tls else None, observer, pid))
        for i, tls in enumerate(order):
            run, _size = ingest_run(node.port, lines, f"run{i:02d}", ca_file if tls else None, observer, pid)
            runs.append(run)
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(
        f"{lines:,} rows per run, {rounds} rounds in ABBA order; TLS: verified against the node's CA "
        "(ca_file); client CPU: the agent process (end to end) or this process (sink alone)\n"
    )
    report(runs)


def main() -> None:
    """Start a node, measure, print the table (with --tls: the TLS comparison only)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tls", action="store_true", help="compare TLS on and off on ingest (only that)")
    ap.add_argument("--rounds", type=int, default=3, help="--tls: pairs of runs per measure (default 3)")
    ap.add_argument("--lines", type=int, default=50_000, help="--tls: rows per run (default 50,000)")
    args = ap.parse_args()
    if args.tls:
        tls_main(args.rounds, args.lines)
        return
    parse = parse_rates()
    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-bench-")), heap_mb=1024)
    node.start()
    try:
        conn = ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)
        params = SchemaParams(replication=(("dc1", 1),))
        with open_session(conn) as s:
            apply_migrations(s, params, load_migrations(find_cql_dir(), params), lambda _l: None)
        ceil = ceiling(node.port)
        ingest_rate, line_bytes = ingest(node.port)
        cpu, rss = steady_state(node.port)
        per_line, rows = bytes_per_line(node)
    finally:
        node.cleanup()

    print(f"{'measure':52} {'value':>16} {'baseline / target':>22}")
    for name, ours, baseline in parse:
        print(f"{'parse ' + name:52} {ours:>11,.0f} l/s {f'{ours / 150_000:.2f}x 150k target':>22}")
        print(
            f"{'  baseline: decode + split the same lines':52} {baseline:>11,.0f} l/s {f'{ours / baseline:.3f}x':>22}"
        )
    print(f"{'write ceiling: shared sink, pre-built rows (CL ONE)':52} {ceil:>11,.0f} r/s")
    print(f"{f'ingest end to end, {N_INGEST:,} lines of {line_bytes} B':52} {ingest_rate:>11,.0f} l/s "
          f"{f'{ingest_rate / ceil:.2f}x ceiling (>= 0.70)':>22}")  # fmt: skip
    print(f"{'agent CPU at 1,000 lines/s (one core)':52} {cpu:>13.1f} %")
    print(f"{'agent RSS at 1,000 lines/s':52} {rss:>12.1f} MB {'target < 60 MB':>22}")
    print(f"{f'on disk per stored line ({rows:,} rows, compacted)':52} {per_line:>13.1f} B {'target <= 120 B':>22}")


if __name__ == "__main__":
    main()
