"""Benchmark of CassandraHandler (run on demand: `python bench/applog_bench.py`).

Prints the calling-thread cost of logger.info(...) with extras against stdlib QueueHandler
measured in the same run, sustained records/s into a real 1-node Cassandra (and into the lab
cluster when IACT_BENCH_HOSTS is set), and memory held by a full queue.
"""

from __future__ import annotations

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
    logger = logging.getLogger(f"bench.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    results = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for i in range(CALLS):
            logger.info("order %s shipped to %s", i, "customer", extra=EXTRA)
        results.append((time.perf_counter() - start) / CALLS * 1e6)
        handler.flush()
    logger.removeHandler(handler)
    return statistics.median(results)


def throughput(settings: dict, n: int = 50_000) -> float:
    """Records/s from the first emit until flush() confirms all n are written."""
    handler = CassandraHandler(**settings, queue_maxsize=n + 10, batch_size=100)
    logger = logging.getLogger(f"bench.tp.{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    start = time.perf_counter()
    for i in range(n):
        logger.warning("throughput %d", i, extra=EXTRA)
    handler.flush(600)
    elapsed = time.perf_counter() - start
    stats = handler.get_stats()
    logger.removeHandler(handler)
    handler.close()
    assert stats["logs_written"] == n, stats
    return n / elapsed


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


def main() -> None:
    """Start a node, measure, print the table."""
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
