"""Benchmark of CassandraHandler (run on demand: `python bench/applog_bench.py`).

Prints the calling-thread cost of logger.info(...) with extras against stdlib QueueHandler
measured in the same run, sustained records/s into a real 1-node Cassandra (and into the lab
cluster when IACT_BENCH_HOSTS is set), and memory held by a full queue.

`--tls` measures instead the cost of TLS on the handler (bench/tls_compare.py says how), on one node
that accepts both, with TLS off (no ca_file, the baseline) and on (ca_file) alternating: the
calling-thread cost of logger.info() (which should not change, the write being on the writer thread;
QueueHandler measured in the same run as before) and records/s delivered end to end.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))

from cassandra_node import CassandraNode
from tls_compare import Run, abba, cpu_seconds, local_ports, report, tls_node, transport

from iact.applog import CassandraHandler
from iact.cassandra.session import open_session
from iact.cassandra.settings import ConnectionSettings
from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams

CALLS = 20_000
ROUNDS = 5
EXTRA = {"request_id": "req-1", "user_id": "42", "order_id": 1234}


def per_call_us(handler: logging.Handler) -> float:
    """Median over rounds of the mean cost of one logger.info call on the calling thread."""
    return per_call(handler)[0]


def per_call(handler: logging.Handler) -> tuple[float, float]:
    """Medians over rounds of the mean wall time and mean CPU time of the calling thread per logger.info call.

    Wall time is what the application waits, waits for the GIL included; the thread's CPU time
    is the work done on it, which other load on the machine does not inflate.
    """
    logger = logging.getLogger(f"bench.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    wall, cpu = [], []
    for _ in range(ROUNDS):
        start, start_cpu = time.perf_counter(), time.thread_time()
        for i in range(CALLS):
            logger.info("order %s shipped to %s", i, "customer", extra=EXTRA)
        cpu.append((time.thread_time() - start_cpu) / CALLS * 1e6)
        wall.append((time.perf_counter() - start) / CALLS * 1e6)
        handler.flush()
    logger.removeHandler(handler)
    return statistics.median(wall), statistics.median(cpu)


def queue_handler_call() -> tuple[float, float]:
    """per_call() of stdlib QueueHandler (its listener discarding): the baseline."""
    q: queue.Queue = queue.Queue(-1)
    listener = logging.handlers.QueueListener(q, logging.NullHandler())
    listener.start()
    try:
        return per_call(logging.handlers.QueueHandler(q))
    finally:
        listener.stop()


def throughput(settings: dict, n: int = 50_000) -> float:
    """Records/s from the first emit until flush() confirms all n are written."""
    return delivery(settings, n).rate


def delivery(settings: dict, n: int, observer: object = None, node_pid: int | None = None) -> Run:
    """n records from the first emit until flush() confirms all are written, with this process's CPU.

    With an observer session, the node is asked whether the writer's connections used TLS (as
    settings' ca_file says they must) before the handler closes.
    """
    port = settings["port"]
    before = local_ports(os.getpid(), port) if observer is not None else set()
    handler = CassandraHandler(**settings, queue_maxsize=n + 10, batch_size=100)
    logger = logging.getLogger(f"bench.tp.{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    node_cpu = cpu_seconds(node_pid) if node_pid else 0.0
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(n):
        logger.warning("throughput %d", i, extra=EXTRA)
    handler.flush(600)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    node_cpu = cpu_seconds(node_pid) - node_cpu if node_pid else None
    tls = bool(settings.get("ca_file"))
    wire = transport(observer, local_ports(os.getpid(), port) - before, tls) if observer is not None else ""
    stats = handler.get_stats()
    logger.removeHandler(handler)
    handler.close()
    assert stats["logs_written"] == n, stats
    return Run("delivered end to end (flush)", tls, n, elapsed, cpu, node_cpu, wire)


def sink_ceiling(port: int, n: int = 20_000) -> float:
    """Rows/s of the shared sink alone, rows pre-built, 1,000 per call: Cassandra's side."""
    from iact.applog.rows import COLUMNS, PARTITION_KEY, build_row
    from iact.sink.cassandra import CassandraSink

    record = logging.LogRecord("bench", logging.WARNING, __file__, 1, "ceiling %d", (1,), None)
    rows = [build_row(record, f"ceiling {i}", None, "bench", "ceiling", i) for i in range(n)]
    conn = ConnectionSettings(contact_points=("127.0.0.1",), port=port)
    sink = CassandraSink(conn, "logging", "application_logs", COLUMNS, PARTITION_KEY, consistency="ONE")
    sink.write(rows[:100])
    start = time.perf_counter()
    for i in range(0, n, 1000):
        sink.write(rows[i : i + 1000])
    elapsed = time.perf_counter() - start
    sink.close()
    return n / elapsed


def full_queue_bytes(settings: dict) -> tuple[int, float]:
    """Bytes allocated while the writer is held and the queue fills to queue_maxsize."""
    handler = CassandraHandler(**settings, queue_maxsize=10_000, batch_size=1)
    handler._start_writer()
    release = threading.Event()
    handler._writer.durable.sink.write = lambda rows, reject=None: release.wait(60) and len(rows)
    logger = logging.getLogger("bench.mem")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(12_000):
        logger.info("queued %d", i, extra=EXTRA)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    depth = handler.get_stats()["queue_depth"]
    release.set()
    logger.removeHandler(handler)
    handler._writer.durable.sink.write = lambda rows, reject=None: len(rows)
    handler.close()
    return used, depth


def tls_main(rounds: int, records: int) -> None:
    """TLS off and on against one node, alternating: per-call cost, then delivery."""
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"({os.cpu_count()} CPUs)", flush=True)  # fmt: skip
    for name in ("IACT_CASSANDRA_CA_FILE", "IACT_CASSANDRA_CERT_FILE", "IACT_CASSANDRA_KEY_FILE"):
        os.environ.pop(name, None)  # the handler falls back to these: the plaintext runs must stay plaintext
    order = abba(rounds)
    calls: list[tuple[bool, tuple[float, float], tuple[float, float], str]] = []
    runs: list[Run] = []
    with tls_node() as (node, ca_file, observer):
        assert node.proc is not None
        settings = dict(hosts="127.0.0.1", port=node.port, app="bench", consistency="ONE", close_timeout=120)

        def mode(tls: bool) -> dict:
            spool = os.path.join(tempfile.mkdtemp(), "spool")
            return dict(settings, spool_path=spool, ca_file=ca_file if tls else None)

        for tls in order:  # each run next to a baseline of its own, as the load on the machine varies
            baseline = queue_handler_call()
            before = local_ports(os.getpid(), node.port)
            handler = CassandraHandler(**mode(tls), queue_maxsize=CALLS * 2)
            us = per_call(handler)
            calls.append((tls, baseline, us, transport(observer, local_ports(os.getpid(), node.port) - before, tls)))
            handler.close()
        delivery(mode(False), records // 4)  # warm-up, not counted
        delivery(mode(True), records // 4)
        runs.extend(delivery(mode(tls), records, observer, node.proc.pid) for tls in order)
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{rounds} rounds in ABBA order; TLS: verified against the node's CA (ca_file)\n")
    print(f"per call of logger.info on the calling thread (median of {ROUNDS} x {CALLS:,} calls, the writer "
          "delivering meanwhile),")  # fmt: skip
    print("wall and thread CPU; baseline: stdlib QueueHandler measured just before each run")
    print(f"{'run':4} {'TLS':4} {'QueueHandler µs':>16} {'CassandraHandler µs':>20} {'x QueueHandler':>15}  "
          "transport (the node's view)")  # fmt: skip
    for i, (tls, (bw, bc), (w, c), wire) in enumerate(calls, 1):
        print(f"{i:<4} {'on' if tls else 'off':4} {bw:>7.2f} {bc:>4.2f} cpu {w:>10.2f} {c:>4.2f} cpu "
              f"{w / bw:>6.2f} {c / bc:>4.2f} cpu  {wire}")  # fmt: skip
    for what, k in (("wall", 0), ("thread CPU", 1)):
        off = statistics.median(us[k] for tls, _b, us, _w in calls if not tls)
        on = statistics.median(us[k] for tls, _b, us, _w in calls if tls)
        rel_off = statistics.median(us[k] / b[k] for tls, b, us, _w in calls if not tls)
        rel_on = statistics.median(us[k] / b[k] for tls, b, us, _w in calls if tls)
        print(f"{what:>10}: median off {off:.2f} µs ({rel_off:.2f}x QueueHandler), on {on:.2f} µs "
              f"({rel_on:.2f}x QueueHandler); TLS/plaintext {on / off:.3f}x")  # fmt: skip
    print()
    print(f"delivery of {records:,} records per run; client CPU: this process (logging thread + writer + driver)")
    report(runs, unit="rec/s")


def main() -> None:
    """Start a node, measure, print the table (with --tls: the TLS comparison only)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tls", action="store_true", help="compare TLS on and off on the handler (only that)")
    ap.add_argument("--rounds", type=int, default=3, help="--tls: pairs of runs per measure (default 3)")
    ap.add_argument("--records", type=int, default=50_000, help="--tls: records delivered per run (default 50,000)")
    args = ap.parse_args()
    if args.tls:
        tls_main(args.rounds, args.records)
        return
    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-bench-")), heap_mb=1024)
    node.start()
    try:
        conn = ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)
        params = SchemaParams(replication=(("dc1", 1),))
        with open_session(conn) as s:
            apply_migrations(s, params, load_migrations(find_cql_dir(), params), lambda _l: None)
        settings = dict(
            hosts="127.0.0.1",
            port=node.port,
            app="bench",
            consistency="ONE",
            spool_path=os.path.join(tempfile.mkdtemp(), "spool"),
            close_timeout=120,
        )

        q: queue.Queue = queue.Queue(-1)
        listener = logging.handlers.QueueListener(q, logging.NullHandler())
        listener.start()
        baseline = per_call_us(logging.handlers.QueueHandler(q))
        listener.stop()
        ours_handler = CassandraHandler(**settings, queue_maxsize=CALLS * 2)
        ours = per_call_us(ours_handler)
        ours_handler.close()

        ceiling = sink_ceiling(node.port)
        rate_1 = throughput(settings)
        rate_3 = None
        if hosts := os.environ.get("IACT_BENCH_HOSTS"):
            rate_3 = throughput(
                dict(
                    settings,
                    hosts=hosts,
                    port=9042,
                    consistency="LOCAL_QUORUM",
                    username=os.environ.get("IACT_CASSANDRA_USERNAME"),
                    password=os.environ.get("IACT_CASSANDRA_PASSWORD"),
                )
            )
        mem, depth = full_queue_bytes(settings)
    finally:
        node.cleanup()

    print(f"{'measure':48} {'value':>14}")
    print(f"{'QueueHandler per call (baseline)':48} {baseline:>11.2f} µs")
    print(f"{'CassandraHandler per call':48} {ours:>11.2f} µs")
    print(f"{'ratio CassandraHandler / QueueHandler':48} {ours / baseline:>13.2f}x")
    print(f"{'sink alone, pre-built rows (Cassandra ceiling)':48} {ceiling:>10,.0f} rec/s")
    print(f"{'sustained, 1-node Cassandra (CL ONE)':48} {rate_1:>10,.0f} rec/s")
    print(f"{'ratio handler / ceiling':48} {rate_1 / ceiling:>13.2f}x")
    if rate_3 is not None:
        print(f"{'sustained, 3-node lab cluster (LOCAL_QUORUM)':48} {rate_3:>10,.0f} rec/s")
    print(f"{'memory held by a full queue (' + str(depth) + ' records)':48} {mem / 2**20:>11.1f} MiB")


if __name__ == "__main__":
    main()
