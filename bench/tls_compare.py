"""TLS on against TLS off in one run, on one node: shared by `collector_bench.py --tls` and `applog_bench.py --tls`.

The node is started with client encryption `optional` (as a cluster is mid-migration), so the same
node, data and JVM serve both kinds of client and the comparison measures the transport alone.
Runs alternate in ABBA order (off, on, on, off, ...): a drift over the run (memtables filling,
compaction starting, other work on the machine) then weighs on both sides alike instead of always
on the second. Every run checks on the node (`system_views.clients`) that the client it measured
really spoke TLS, or really did not: a plaintext fallback would otherwise pass for a free TLS.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))

from cassandra_node import CassandraNode
from pki import TestCA

from iact.cassandra.session import open_session
from iact.cassandra.settings import ConnectionSettings
from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams


def abba(rounds: int) -> list[bool]:
    """TLS flags of 2 x rounds runs: off, on, on, off, off, on, ..."""
    return [bool((i + i // 2) % 2) for i in range(2 * rounds)]


@contextmanager
def tls_node(heap_mb: int = 1024) -> Iterator[tuple[CassandraNode, str, Any]]:
    """(node, CA file, plaintext session) on a node with the schema that accepts TLS and plaintext clients.

    The session is the bench's own observer; it stays plaintext so it never counts as a TLS client.
    """
    ca = TestCA(Path(tempfile.mkdtemp(prefix="iact-bench-ca-")))
    issued = ca.issue("node")
    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-bench-")), heap_mb=heap_mb, tls=(issued.bundle, ca.ca_file))
    node.start()
    try:
        with open_session(ConnectionSettings(contact_points=("127.0.0.1",), port=node.port)) as session:
            params = SchemaParams(replication=(("dc1", 1),))
            apply_migrations(session, params, load_migrations(find_cql_dir(), params), lambda _line: None)
            yield node, str(ca.ca_file), session
    finally:
        node.cleanup()


def connection(port: int, ca_file: str | None) -> ConnectionSettings:
    """Loopback settings; a CA file is what switches the clients to verified TLS."""
    return ConnectionSettings(contact_points=("127.0.0.1",), port=port, ca_file=ca_file)


def local_ports(pid: int, node_port: int) -> set[int]:
    """Local ports of the process's TCP connections to the node (how the node's client table names them)."""
    conns = psutil.Process(pid).net_connections("tcp")
    return {c.laddr.port for c in conns if c.raddr and c.raddr.port == node_port}


def transport(session: Any, ports: set[int], tls: bool) -> str:
    """What the node says about these client connections, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384 x3".

    Raises when there is none or when any of them is not what the run is meant to measure.
    """
    query = "SELECT port, ssl_enabled, ssl_protocol, ssl_cipher_suite FROM system_views.clients"
    rows = [r for r in session.execute(query) if r.port in ports]
    if not rows:
        raise RuntimeError(f"the node lists none of the measured client's connections (local ports {sorted(ports)})")
    wrong = [r for r in rows if bool(r.ssl_enabled) != tls]
    if wrong:
        raise RuntimeError(f"{len(wrong)} of {len(rows)} measured connection(s) had ssl_enabled={not tls}: "
                           "the run did not measure what it says")  # fmt: skip
    kinds = {(r.ssl_protocol, r.ssl_cipher_suite) if tls else ("plaintext", "") for r in rows}
    return ", ".join(" ".join(filter(None, k)) for k in sorted(kinds)) + f" x{len(rows)}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the node's launcher execs the JVM, or forks it)."""
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        with suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


@dataclass(frozen=True)
class Run:
    """One timed run of one measure."""

    measure: str
    tls: bool
    count: int
    seconds: float
    client_cpu: float | None = None
    node_cpu: float | None = None
    wire: str = ""

    @property
    def rate(self) -> float:
        """Rows (or records) per second."""
        return self.count / self.seconds


def _us_per(cpu: float | None, count: int) -> str:
    return "" if cpu is None else f"{cpu / count * 1e6:>8.1f}"


def report(runs: list[Run], unit: str = "rows/s") -> None:
    """Every run in order, then per measure: both sides pooled (total rows / total seconds) and TLS/plaintext.

    The plaintext runs are the baseline, measured in the same run on the same node; the per-pair
    ratios show how much of the difference is noise.
    """
    print(f"{'run':4} {'measure':36} {'TLS':4} {unit:>12} {'client µs/row':>14} {'node µs/row':>12}  "
          "transport (the node's view)")  # fmt: skip
    for i, r in enumerate(runs, 1):
        print(f"{i:<4} {r.measure:36} {'on' if r.tls else 'off':4} {r.rate:>12,.0f} "
              f"{_us_per(r.client_cpu, r.count):>14} {_us_per(r.node_cpu, r.count):>12}  {r.wire}")  # fmt: skip
    print()
    print(f"{'measure':36} {'plaintext (baseline)':>21} {'TLS':>12} {'TLS/plaintext':>14} {'per pair':>18}")
    for measure in dict.fromkeys(r.measure for r in runs):
        mine = [r for r in runs if r.measure == measure]
        off = [r for r in mine if not r.tls]
        on = [r for r in mine if r.tls]
        pooled_off = sum(r.count for r in off) / sum(r.seconds for r in off)
        pooled_on = sum(r.count for r in on) / sum(r.seconds for r in on)
        pairs = [b.rate / a.rate if b.tls else a.rate / b.rate for a, b in zip(mine[::2], mine[1::2], strict=True)]
        print(f"{measure:36} {pooled_off:>14,.0f} {unit:6} {pooled_on:>12,.0f} {pooled_on / pooled_off:>13.3f}x "
              f"{' '.join(f'{p:.3f}' for p in pairs):>18}")  # fmt: skip
        for what, attr in (("client CPU", "client_cpu"), ("node CPU", "node_cpu")):
            if any(getattr(r, attr) is None for r in mine):
                continue
            a = sum(getattr(r, attr) for r in off) / sum(r.count for r in off) * 1e6
            b = sum(getattr(r, attr) for r in on) / sum(r.count for r in on) * 1e6
            print(f"{'  ' + what + ' per row':36} {a:>14.1f} µs/row {b:>12.1f} {b / a:>13.3f}x")
