"""The cluster's write ceiling, each agent's share of it, and where a writer's time goes (on demand).

    python bench/capacity.py                 # a 1-node cluster on loopback, from the lab's cached tarball
    python bench/capacity.py --lab           # the lab's 3 nodes (scripts/lab up, or a converged `full`
                                             # scenario): TLS, RF=3, LOCAL_QUORUM, the writer account
    python bench/capacity.py --json bench/capacity-results.json   # the figures bench/sizing.py reads (merged
                                             # under "loopback" or "lab", so both runs share the file)
    python bench/capacity.py --reads         # read latency of the console's and the alerter's queries, idle
                                             # and under write load (--lab: the lab's nodes)
    python bench/capacity.py --driver-only   # one writer and the agents only: run it with each candidate
                                             # driver's interpreter to compare builds (see README, Capacity)

The load is several processes, each running the agents' own writer (iact.sink.CassandraSink) on
pre-built collector rows, added one at a time until rows/s stops growing: that plateau is the
ceiling on this hardware. Printed per step: rows/s, the client's and the nodes' CPU, the client's
p99 per write call (1,000 rows) and the coordinator's p99 write latency (nodetool proxyhistograms).
Then: a cProfile of one writer process (where a client's CPU goes), the writer's variants (batch
size, in-flight requests, protocol version), and the agents end to end (the collector following a
file, the logging handler) as shares of the ceiling.

On a 2-core machine the clients and the nodes share the cores, so the ceiling is the machine's; the
CPU columns say who used it. cassandra-stress is not published for 5.0 (Maven Central has no tools
artifact), so the generator is this one: the same rows and statements the agents send.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import os
import pstats
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "agents" / "tests"), str(ROOT / "agents"), str(ROOT / "bench")]

ROWS_PER_CALL = 1000
N_HANDLER_RECORDS = 50_000  # applog_bench.throughput's records


def _settings(target: dict) -> Any:
    from iact.cassandra.settings import ConnectionSettings

    return ConnectionSettings(
        contact_points=tuple(target["hosts"]), port=target["port"], username=target.get("username"),
        password=target.get("password"), ca_file=target.get("ca_file"),
    )  # fmt: skip


def _rows(n: int, host: str) -> list[dict]:
    from collector_bench import prebuilt_rows

    return prebuilt_rows(n, host)


def writer(target: dict, seconds: float, start_at: float, name: str, variant: dict, out: Any) -> None:
    """One process: the agents' writer on pre-built rows, for `seconds` from `start_at` (a shared clock)."""
    from iact.collector.rows import COLUMNS, PARTITION_KEY
    from iact.sink.cassandra import CassandraSink

    rows = _rows(20_000, name)
    sink = CassandraSink(_settings(target), "logging", "infrastructure_logs", COLUMNS, PARTITION_KEY,
                         consistency=target["consistency"], max_batch_rows=variant.get("max_batch_rows", 100),
                         concurrency=variant.get("concurrency", 16))  # fmt: skip
    sink.write(rows[:100])  # connect and prepare before the clock
    while time.time() < start_at:
        time.sleep(0.01)
    cpu0, done, latencies, i = time.process_time(), 0, [], 0
    end = start_at + seconds
    while time.time() < end:
        # Fresh ids each pass: every row is new to the node, as the agents' rows are (rewriting the same
        # keys would let the memtable absorb them and overstate the ceiling).
        chunk = [dict(r, line_id=uuid.uuid4()) for r in rows[i : i + ROWS_PER_CALL]]
        i = (i + ROWS_PER_CALL) % len(rows)
        t = time.perf_counter()
        sink.write(chunk)
        latencies.append(time.perf_counter() - t)
        done += len(chunk)
    elapsed = time.time() - start_at
    sink.close()
    out.put({"rows": done, "elapsed": elapsed, "cpu": time.process_time() - cpu0, "latencies": latencies})


def run_writers(target: dict, procs: int, seconds: float, variant: dict | None = None) -> dict:
    """procs writer processes at once; aggregate rows/s, client CPU, p99 per call, nodes' CPU."""
    ctx = mp.get_context("spawn")  # no driver state inherited from this process
    out = ctx.Queue()
    start_at = time.time() + 8 + 2 * procs  # every process built its rows and connected
    workers = [ctx.Process(target=writer, args=(target, seconds, start_at, f"cap{p}", variant or {}, out))
               for p in range(procs)]  # fmt: skip
    for w in workers:
        w.start()
    while time.time() < start_at:
        time.sleep(0.05)
    nodes_cpu0 = nodes_cpu(target)
    results = [out.get(timeout=seconds + 120) for _ in workers]
    nodes_used = nodes_cpu(target) - nodes_cpu0
    for w in workers:
        w.join(30)
    rows = sum(r["rows"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    calls = sorted(x for r in results for x in r["latencies"])
    return {
        "procs": procs,
        "rows": rows,
        "rows_per_s": rows / elapsed,
        "client_cpu": sum(r["cpu"] for r in results) / elapsed,
        "nodes_cpu": nodes_used / elapsed,
        "call_p99_ms": 1000 * calls[int(0.99 * (len(calls) - 1))],
        "call_p50_ms": 1000 * statistics.median(calls),
        "coordinator_p99_ms": coordinator_p99(target),
    }


# -- the nodes ------------------------------------------------------------------------------------------


def nodes_cpu(target: dict) -> float:
    """CPU seconds the Cassandra processes have used so far."""
    if target.get("node_pid"):
        import psutil

        t = psutil.Process(target["node_pid"]).cpu_times()
        return t.user + t.system
    total = 0.0
    for name in target.get("containers", ()):
        pid = subprocess.run(["podman", "exec", name, "pgrep", "-f", "CassandraDaemon"], capture_output=True,
                             text=True, check=False).stdout.split()  # fmt: skip
        if pid:
            stat = subprocess.run(["podman", "exec", name, "cat", f"/proc/{pid[0]}/stat"], capture_output=True,
                                  text=True, check=False).stdout.split()  # fmt: skip
            total += (int(stat[13]) + int(stat[14])) / os.sysconf("SC_CLK_TCK")
    return total


def nodetool(target: dict, *args: str) -> str:
    """nodetool on the loopback node, or on the lab's first node (its wrapper passes the JMX password)."""
    if target.get("home"):
        cmd = [str(Path(target["home"]) / "bin" / "nodetool"), "-h", "127.0.0.1", "-p", str(target["jmx_port"]), *args]
    else:
        cmd = ["podman", "exec", target["containers"][0], "nodetool", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120).stdout


def coordinator_p99(target: dict) -> float | None:
    """The coordinator's p99 write latency in ms (nodetool proxyhistograms: since the node started)."""
    out = nodetool(target, "proxyhistograms")
    m = re.search(r"^99%\s+\S+\s+(\S+)", out, re.M)  # columns: read, write, range, ... (micros)
    return float(m.group(1)) / 1000 if m else None


# -- targets -----------------------------------------------------------------------------------------------


def loopback_target() -> tuple[dict, Any]:
    """A fresh 1-node cluster with the appliance's schema (RF 1, CL ONE)."""
    from cassandra_node import CassandraNode

    from iact.cassandra.session import open_session
    from iact.cassandra.settings import ConnectionSettings
    from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
    from iact.schema.params import SchemaParams

    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-capacity-")), heap_mb=1024)
    node.start()
    params = SchemaParams(replication=(("dc1", 1),))
    with open_session(ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)) as session:
        apply_migrations(session, params, load_migrations(find_cql_dir(), params), lambda _line: None)
    assert node.proc is not None
    target = {"name": "1 node on loopback (RF 1, CL ONE)", "hosts": ["127.0.0.1"], "port": node.port,
              "consistency": "ONE", "node_pid": node.proc.pid, "home": str(node.home), "jmx_port": node.jmx_port,
              "nodes": 1}  # fmt: skip
    return target, node


def lab_target() -> dict:
    """The lab's nodes: TLS verified by the lab CA, the writer account, RF 3, LOCAL_QUORUM."""
    sys.path.insert(0, str(ROOT / "molecule" / "shared"))
    from lab import ca_file, node_ip, secret, speaks_tls

    # cass4 once `molecule verify -s add_node` has joined it (before that it is a bare host).
    names = [n for n in ("cass1", "cass2", "cass3", "cass4") if _container_up(n) and _serves_cql(node_ip(n))]
    # TLS when the nodes speak it (`scripts/lab up`; the full scenario converges in plaintext).
    tls = ca_file().is_file() and speaks_tls(node_ip(names[0]))
    # The lab's group_vars stop the nodes' JIT at C1 to start them faster; a ceiling measured so is
    # not production's: say so in the target's name, which the results record.
    jvm = subprocess.run(["podman", "exec", names[0], "cat", "/etc/cassandra/jvm-server.options"],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    if "TieredStopAtLevel=1" in jvm:
        print("WARNING: the lab's nodes run with -XX:TieredStopAtLevel=1 (C1 only); remove it from "
              "inventories/lab/group_vars/cassandra and converge for production's JIT", file=sys.stderr)  # fmt: skip
    jit = ", JIT C1 only" if "TieredStopAtLevel=1" in jvm else ""
    return {"name": f"the lab's {len(names)} nodes ({'TLS' if tls else 'plaintext'}, RF 3, LOCAL_QUORUM{jit})",
            "hosts": [node_ip(n) for n in names], "port": 9042, "consistency": "LOCAL_QUORUM",
            "username": "iact_writer", "password": secret("cassandra_writer_password"),
            "ca_file": str(ca_file()) if tls else None, "containers": names, "nodes": len(names)}  # fmt: skip


def _container_up(name: str) -> bool:
    done = subprocess.run(["podman", "container", "exists", name], check=False)
    return done.returncode == 0


def _serves_cql(ip: str) -> bool:
    try:
        socket.create_connection((ip, 9042), timeout=3).close()
    except OSError:
        return False
    return True


# -- the client --------------------------------------------------------------------------------------------


def profile_one(target: dict, seconds: float) -> tuple[str, int]:
    """Where one writer process's CPU goes: cProfile's top functions by own time."""
    from iact.collector.rows import COLUMNS, PARTITION_KEY
    from iact.sink.cassandra import CassandraSink

    rows = _rows(20_000, "profile")
    sink = CassandraSink(_settings(target), "logging", "infrastructure_logs", COLUMNS, PARTITION_KEY,
                         consistency=target["consistency"])  # fmt: skip
    sink.write(rows[:100])
    prof = cProfile.Profile()
    end, i, written = time.time() + seconds, 0, 100
    prof.enable()
    while time.time() < end:
        written += sink.write([dict(r, line_id=uuid.uuid4()) for r in rows[i : i + ROWS_PER_CALL]])
        i = (i + ROWS_PER_CALL) % len(rows)
    prof.disable()
    sink.close()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
    lines = [ln for ln in text.getvalue().splitlines() if re.match(r"\s*\d", ln) or "ncalls" in ln]
    return "\n".join(lines[:17]), written


def driver_build() -> str:
    """Whether the driver runs its compiled (Cython) code, and which event loop it uses."""
    import cassandra
    from cassandra.cython_deps import HAVE_CYTHON

    try:
        from cassandra.io.libevreactor import LibevConnection  # noqa: F401

        loop = "libev"
    except ImportError:
        loop = "asyncore/asyncio"
    return f"cassandra-driver {cassandra.__version__}, compiled extensions: {HAVE_CYTHON}, event loop: {loop}"


def agents_share(target: dict) -> list[tuple[str, float]]:
    """The agents end to end on a loopback node: the collector following a file, the handler's delivery."""
    if not target.get("home"):
        return []
    from applog_bench import throughput
    from collector_bench import ingest

    collector, _ = ingest(target["port"])
    spool = os.path.join(tempfile.mkdtemp(prefix="iact-capacity-"), "spool")
    handler = throughput({"hosts": "127.0.0.1", "port": target["port"], "app": "capacity", "consistency": "ONE",
                          "spool_path": spool, "close_timeout": 120})  # fmt: skip
    return [("collector agent, one file, end to end", collector), ("logging handler, one process", handler)]


def bytes_per_row(target: dict, handler_records: int) -> dict[str, float]:
    """Live bytes on disk per row after a flush and a major compaction, data and SAI indexes.

    Infrastructure rows: two simulated days of 20 hosts in a keyspace of their own, with the varied
    syslog lines of the retention simulation (agents/tests/retention_sim.py): the load above re-sends
    the same rows with new ids, which compress far better than real ones. Application rows: the
    handler's run above (its records are short: scale by your messages' length).
    """
    from datetime import UTC, datetime, timedelta

    from retention_sim import Simulator, create_keyspace

    from iact.cassandra.session import open_session

    with open_session(_settings(target)) as session:
        create_keyspace(session, "capacity_sim", ttl_days=90)
        sim = Simulator(session, "capacity_sim", ttl_days=90, hosts=20)
        now = datetime.now(UTC)
        infra_rows = sum(sim.day(now - timedelta(days=d), rows_per_host=2000) for d in (0, 1))
    app_rows = realistic_app_records(target, "capacity_sim", 20_000)
    out = {}
    for keyspace, table, rows, label in (("capacity_sim", "infrastructure_logs", infra_rows, "infrastructure_logs"),
                                         ("capacity_sim", "application_logs", app_rows, "application_logs"),
                                         ("logging", "application_logs", handler_records,
                                          "application_logs (short benchmark records)")):  # fmt: skip
        nodetool(target, "flush", keyspace, table)
        nodetool(target, "compact", keyspace, table)
        stats = nodetool(target, "tablestats", "--", f"{keyspace}.{table}")
        m = re.search(r"^\s*Space used \(live\): (\d+)", stats, re.M)
        if m and rows:
            out[label] = int(m.group(1)) / rows
    return out


def realistic_app_records(target: dict, keyspace: str, n: int, seed: int = 7) -> int:
    """`n` records of a web application through CassandraHandler, as Django's and an app's loggers write
    them: request lines with a request id, user and timing, warnings, and one error in 50 with its
    traceback; 4 apps on 6 hosts. Seeded, so runs compare."""
    import logging
    import random

    from iact.applog import CassandraHandler

    rng = random.Random(seed)
    paths = ["/api/orders/{n}", "/api/orders/", "/accounts/login/", "/static/app.{n}.js", "/api/search?q=item{n}",
             "/admin/shop/product/{n}/change/", "/healthz", "/api/carts/{n}/items/"]  # fmt: skip
    spool = os.path.join(tempfile.mkdtemp(prefix="iact-capacity-"), "spool")
    handlers = {}
    for app in ("shop", "billing", "accounts", "search"):
        for host in range(6):
            handlers[app, host] = CassandraHandler(
                hosts=",".join(target["hosts"]), port=target["port"], keyspace=keyspace, consistency="ONE",
                app=app, host=f"web{host:02d}", spool_path=f"{spool}-{app}-{host}", close_timeout=120,
            )  # fmt: skip
    log = logging.getLogger("capacity.realistic")
    log.propagate, log.level = False, logging.DEBUG
    try:
        for i in range(n):
            handler = handlers[rng.choice(list(handlers))]
            log.handlers = [handler]
            ctx = {"request_id": uuid.UUID(int=rng.getrandbits(128)).hex, "user_id": str(rng.randrange(1, 50_000))}
            path = rng.choice(paths).format(n=rng.randrange(1, 100_000))
            roll = rng.random()
            if roll < 0.02:
                try:
                    raise KeyError(f"order {rng.randrange(1, 100_000)} has no line {rng.randrange(1, 20)}")
                except KeyError:
                    log.exception("Internal Server Error: %s", path, extra=ctx)
            elif roll < 0.10:
                log.warning("Slow query (%d ms) on %s: SELECT ... FROM shop_order WHERE id = %d",
                            rng.randrange(500, 5000), path, rng.randrange(1, 100_000), extra=ctx)  # fmt: skip
            elif roll < 0.30:
                log.debug("cache %s for key view:%s:%d", rng.choice(["hit", "miss"]), path, i, extra=ctx)
            else:
                log.info('"%s %s HTTP/1.1" %d %d %.1fms', rng.choice(["GET", "GET", "GET", "POST", "PUT"]), path,
                         rng.choice([200, 200, 200, 201, 204, 302, 404]), rng.randrange(200, 40_000),
                         rng.uniform(2, 400), extra=ctx)  # fmt: skip
    finally:
        for handler in handlers.values():
            handler.close()
    return n - sum(h.stats.logs_dropped for h in handlers.values())


def bytes_only(out: Path | None) -> int:
    """Measure bytes per row alone and merge it into the loopback figures of `out`."""
    from applog_bench import throughput

    target, node = loopback_target()
    try:
        spool = os.path.join(tempfile.mkdtemp(prefix="iact-capacity-"), "spool")
        throughput({"hosts": "127.0.0.1", "port": target["port"], "app": "capacity", "consistency": "ONE",
                    "spool_path": spool, "close_timeout": 120}, N_HANDLER_RECORDS)  # fmt: skip
        sizes = bytes_per_row(target, N_HANDLER_RECORDS)
    finally:
        node.cleanup()
    for table, size in sizes.items():
        print(f"  {table:<22} {size:>6.0f} bytes per row")
    if out:
        merged = json.loads(out.read_text()) if out.exists() else {}
        merged.setdefault("loopback", {})["bytes_per_row"] = sizes
        out.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return 0


# The queries people and the appliance run while ingest goes on: the console's newest rows of a
# host (one partition), a day's errors across hosts (SAI on day and severity), one program over a day
# (SAI), and the alerter's statement (alerting/query.py: SAI on day, a ts range and the rule's field).
READS = {
    "a host's newest 100 rows (the console)":
        "SELECT host, ts, severity, program, message FROM logging.infrastructure_logs "
        "WHERE host = ? AND day = ? AND hour = ? LIMIT 100",
    "a day's errors across hosts (SAI, 100 rows)":
        "SELECT host, ts, message FROM logging.infrastructure_logs WHERE day = ? AND severity = 'err' LIMIT 100",
    "one program over a day (SAI, 100 rows)":
        "SELECT host, ts, message FROM logging.infrastructure_logs WHERE day = ? AND program = 'readprobe' LIMIT 100",
    "errors of the last 5 minutes (the alerter's SAI scan)":
        "SELECT host, ts, message, severity FROM logging.infrastructure_logs "
        "WHERE day = ? AND ts >= ? AND ts < ? AND severity = 'err'",
}  # fmt: skip


def _p99(sorted_values: list[float]) -> float:
    return sorted_values[int(0.99 * (len(sorted_values) - 1))]


def _reader_settings(target: dict) -> Any:
    """The reader account on the lab (the writer may not SELECT); none on loopback."""
    if not target.get("username"):
        return _settings(target)
    sys.path.insert(0, str(ROOT / "molecule" / "shared"))
    from lab import secret

    return _settings(target | {"username": "iact_reader", "password": secret("cassandra_reader_password")})


def reads_under_load(target: dict, procs: int, seconds: float) -> dict[str, dict[str, float]]:
    """p50 and p99 of each READS query, idle and while `procs` writer processes load the nodes.

    The writers' host cap0 is the console's and the alerter's host; 200 error rows of a program of
    their own, written first, are what the SAI queries find among the load's rows."""
    import threading
    from datetime import UTC, datetime, timedelta

    from iact.cassandra.session import open_session
    from iact.collector.rows import COLUMNS, PARTITION_KEY
    from iact.sink.cassandra import CassandraSink

    probe = [dict(r, line_id=uuid.uuid4(), severity="err", severity_code=3, program="readprobe")
             for r in _rows(200, "readprobe")]  # fmt: skip
    sink = CassandraSink(_settings(target), "logging", "infrastructure_logs", COLUMNS, PARTITION_KEY,
                         consistency=target["consistency"])  # fmt: skip
    sink.write(_rows(2000, "cap0") + probe)
    sink.close()
    out: dict[str, dict[str, float]] = {}
    with open_session(_reader_settings(target)) as session:
        from cassandra import ConsistencyLevel

        statements = {label: session.prepare(cql) for label, cql in READS.items()}
        for stmt in statements.values():
            stmt.consistency_level = getattr(ConsistencyLevel, target["consistency"])

        def args(label: str) -> tuple:
            now = datetime.now(UTC)
            if "newest" in label:
                return ("cap0", now.date(), now.hour)
            if "5 minutes" in label:
                return (now.date(), now - timedelta(minutes=5), now)
            return (now.date(),)

        # (started at, seconds) per query; an error is counted, not fatal (a timeout under load is a result).
        samples: dict[str, list[tuple[float, float]]] = {label: [] for label in statements}
        errors: dict[str, int] = dict.fromkeys(statements, 0)

        def measure(stop: threading.Event, until: float) -> None:
            while time.time() < until and not stop.is_set():
                for label, stmt in statements.items():
                    began, t = time.time(), time.perf_counter()
                    try:
                        list(session.execute(stmt, args(label), timeout=30))
                    except Exception:  # counted and reported
                        errors[label] += 1
                        continue
                    samples[label].append((began, time.perf_counter() - t))

        idle_from = time.time()
        measure(threading.Event(), idle_from + seconds)
        idle_until = time.time()
        stop = threading.Event()
        reader = threading.Thread(target=measure, args=(stop, time.time() + 3600), daemon=True)
        load_from = time.time() + 8 + 2 * procs  # run_writers' start_at: the writers run from then for `seconds`
        reader.start()
        try:
            load = run_writers(target, procs, seconds)
        finally:
            stop.set()
            reader.join(120)
        load_until = load_from + seconds
        for label in statements:
            quiet = sorted(s for began, s in samples[label] if idle_from <= began < idle_until)
            busy = sorted(s for began, s in samples[label] if load_from <= began < load_until - 1)
            quiet, busy = quiet or [float("nan")], busy or [float("nan")]
            out[label] = {"idle_p50_ms": 1000 * statistics.median(quiet), "idle_p99_ms": 1000 * _p99(quiet),
                          "load_p50_ms": 1000 * statistics.median(busy), "load_p99_ms": 1000 * _p99(busy),
                          "idle_samples": len(quiet), "load_samples": len(busy), "errors": errors[label],
                          "load_rows_per_s": load["rows_per_s"]}  # fmt: skip
    return out


def _reads(report: dict, target: dict, args: argparse.Namespace) -> int:
    """Read latency idle and under the load of --max-procs writers (2 unless given); --json: "<target>_reads"."""
    procs = 2 if args.max_procs == 4 else args.max_procs  # the default 4 is the ceiling search's
    print(f"{target['name']}; read latency, idle and while {procs} writer processes load the nodes")
    reads = reads_under_load(target, procs, args.seconds)
    print(f"  {'query':<55} {'idle p50':>9} {'idle p99':>9} {'load p50':>9} {'load p99':>9} {'n idle/load':>11} errors")
    for label, r in reads.items():
        print(f"  {label:<55} {r['idle_p50_ms']:>7.1f}ms {r['idle_p99_ms']:>7.1f}ms "
              f"{r['load_p50_ms']:>7.1f}ms {r['load_p99_ms']:>7.1f}ms {r['idle_samples']:>5}/{r['load_samples']:<5} "
              f"{r['errors']:>6}")  # fmt: skip
    rate = next(iter(reads.values()))["load_rows_per_s"]
    print(f"  (the writers meanwhile: {rate:,.0f} rows/s)")
    if args.json:
        merged = json.loads(args.json.read_text()) if args.json.exists() else {}
        merged["lab_reads" if args.lab else "loopback_reads"] = reads | {"_writers": procs, "_target": target["name"]}
        args.json.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return 0


def _driver_only(report: dict, target: dict, args: argparse.Namespace) -> int:
    """One writer's rows/s and client CPU, then the agents end to end: what a driver build changes."""
    one = report["steps"][0]
    print(f"one writer: {one['rows_per_s']:,.0f} rows/s at {one['client_cpu']:.2f} client cores "
          f"= {one['rows_per_s'] / max(one['client_cpu'], 0.01):,.0f} rows per client core-second")  # fmt: skip
    for label, rate in agents_share(target):
        print(f"  {label:<45} {rate:>9,.0f} rows/s")
        report.setdefault("agents", {})[label] = rate
    report["driver"] = driver_build()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


def main() -> int:
    """Measure and print; --json writes the figures for bench/sizing.py."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", action="store_true", help="load the lab's nodes instead of a loopback node")
    ap.add_argument("--seconds", type=float, default=20, help="length of each step")
    ap.add_argument("--max-procs", type=int, default=4, help="writer processes at most")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--bytes-only", action="store_true", help="only bytes per row on disk (a loopback node)")
    ap.add_argument("--reads", action="store_true", help="only the read latency of the queries, idle and under load")
    ap.add_argument(
        "--driver-only",
        action="store_true",
        help="only one writer and the agents (to compare driver builds, one interpreter each)",
    )
    args = ap.parse_args()
    if args.bytes_only:
        return bytes_only(args.json)
    node = None
    if args.lab:
        target = lab_target()
    else:
        target, node = loopback_target()
    report: dict[str, Any] = {"target": target["name"], "nodes": target["nodes"], "cores": os.cpu_count()}
    try:
        if args.reads:
            return _reads(report, target, args)
        print(f"{target['name']}; {os.cpu_count()} cores; {driver_build()}")
        print(f"{'writers':>7} {'rows/s':>9} {'client CPU':>10} {'nodes CPU':>9} {'call p50':>9} {'call p99':>9} "
              f"{'coord p99':>9}")  # fmt: skip
        steps = []
        for procs in range(1, 1 + (1 if args.driver_only else args.max_procs)):
            step = run_writers(target, procs, args.seconds)
            steps.append(step)
            coord = f"{step['coordinator_p99_ms']:.1f}" if step["coordinator_p99_ms"] is not None else "-"
            print(f"{procs:>7} {step['rows_per_s']:>9,.0f} {step['client_cpu']:>9.2f}c {step['nodes_cpu']:>8.2f}c "
                  f"{step['call_p50_ms']:>7.1f}ms {step['call_p99_ms']:>7.1f}ms {coord:>7}ms", flush=True)  # fmt: skip
            if procs > 2 and step["rows_per_s"] < 1.05 * max(s["rows_per_s"] for s in steps[:-1]):
                break  # no longer growing: the plateau
        ceiling = max(s["rows_per_s"] for s in steps)
        one = steps[0]["rows_per_s"]
        report |= {"steps": steps, "ceiling_rows_per_s": ceiling, "one_writer_rows_per_s": one}
        if args.driver_only:
            return _driver_only(report, target, args)
        print(f"ceiling: {ceiling:,.0f} rows/s; one writer process: {one:,.0f} rows/s = {one / ceiling:.2f}x of it")

        print("\none writer process, variants (rows/s, x the agents' settings):")
        base_run = run_writers(target, 1, args.seconds)
        report.setdefault("_variant_runs", []).append(base_run)
        base = base_run["rows_per_s"]
        print(f"  {'the agents settings (100 rows per batch, 16 in flight)':<55} {base:>9,.0f} {1:>6.2f}x")
        for label, variant in (("1,000 rows per partition batch", {"max_batch_rows": 1000}),
                               ("64 requests in flight", {"concurrency": 64}),
                               ("4 requests in flight", {"concurrency": 4})):  # fmt: skip
            run = run_writers(target, 1, args.seconds, variant)
            report.setdefault("_variant_runs", []).append(run)
            rate = run["rows_per_s"]
            report.setdefault("variants", {})[label] = rate
            print(f"  {label:<55} {rate:>9,.0f} {rate / base:>6.2f}x")
        report["variants_base"] = base

        print("\nwhere one writer's CPU goes (cProfile, own time):")
        profile, _ = profile_one(target, min(args.seconds, 10))
        print(profile)

        shares = agents_share(target)
        if shares:
            print("\neach agent end to end, as a share of the ceiling:")
            for label, rate in shares:
                print(f"  {label:<45} {rate:>9,.0f} rows/s = {rate / ceiling:.2f}x")
            report["agents"] = dict(shares)
        report.pop("_variant_runs", None)
        if node is not None:
            report["bytes_per_row"] = bytes_per_row(target, N_HANDLER_RECORDS)
            print("\nbytes per row on disk after compaction (data and SAI indexes, LZ4):")
            for table, size in report["bytes_per_row"].items():
                print(f"  {table:<22} {size:>6.0f}")
    finally:
        if node is not None:
            node.cleanup()
    if args.json:
        merged = json.loads(args.json.read_text()) if args.json.exists() else {}
        merged["lab" if args.lab else "loopback"] = report
        args.json.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
