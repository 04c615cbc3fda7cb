"""The sizing guide, computed from measurements (bench/capacity-results.json, written by bench/capacity.py).

    python bench/sizing.py --hosts 250 --lines-avg 3 --lines-peak 40 --app-avg 1 --retention-days 90
    python bench/sizing.py --markdown        # the README's table (10 to 10,000 hosts), from the defaults

What is measured, and used as is:
- the cost of a write on a node: the lab's 3 nodes at RF 3 and LOCAL_QUORUM, loaded to their
  ceiling, used `nodes_cpu` cores for `ceiling x RF` replica writes per second, so one core of
  Cassandra takes `ceiling x RF / nodes_cpu` replica writes per second (TLS, auth, SAI indexes,
  commit log and compaction included);
- bytes per row on disk after compaction, per table (LZ4, SAI indexes included), on loopback.

What is assumed, and said in the output: the cores per node (a node's rate scales with its cores;
Cassandra's write path is CPU-bound at these sizes), a utilization ceiling of 50 % at peak (room for
a node down, repair and compaction bursts), and disk headroom of one TWCS window plus 20 %.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).with_name("capacity-results.json")
DAY = 86400
TARGET_WINDOWS = 30  # cql/ (iact.schema.params): the TTL in about 30 TWCS windows


@dataclass(frozen=True)
class Measured:
    """What capacity.py found: replica writes per Cassandra core-second, bytes per row per table."""

    writes_per_core: float
    infra_bytes: float
    app_bytes: float
    source: str

    @classmethod
    def load(cls, path: Path = RESULTS) -> Measured:
        """From capacity.py's two runs: the lab's (the cost of a write) and the loopback node's (bytes per row)."""
        data = json.loads(path.read_text())
        lab, loop = data["lab"], data["loopback"]
        top = max(lab["steps"], key=lambda s: s["rows_per_s"])
        rf = 3
        per_core = top["rows_per_s"] * rf / top["nodes_cpu"]
        sizes = loop["bytes_per_row"]
        source = (f"{lab['target']}: {top['rows_per_s']:,.0f} rows/s using {top['nodes_cpu']:.2f} cores of "
                  f"Cassandra; {loop['target']}: bytes per row")  # fmt: skip
        return cls(per_core, sizes["infrastructure_logs"], sizes["application_logs"], source)


@dataclass(frozen=True)
class Plan:
    """One installation's figures."""

    hosts: int
    avg_rows: float
    peak_rows: float
    disk_per_node_gb: float
    nodes: int
    nodes_for_writes: int
    nodes_for_disk: int


def plan(
    m: Measured, hosts: int, lines_avg: float, lines_peak: float, app_avg: float, retention_days: int, rf: int,
    cores: int, disk_gb: float, utilization: float = 0.5,
) -> Plan:  # fmt: skip
    """Rows/s, the nodes the write rate and the disk each need, and the disk each node then holds."""
    avg = hosts * (lines_avg + app_avg)
    peak = hosts * (lines_peak + app_avg * lines_peak / max(lines_avg, 1e-9))
    per_node = m.writes_per_core * cores * utilization  # replica writes/s a node takes at peak
    for_writes = math.ceil(peak * rf / per_node)
    daily = hosts * DAY * (lines_avg * m.infra_bytes + app_avg * m.app_bytes)  # bytes a day, one replica
    window = max(1, math.ceil(retention_days / TARGET_WINDOWS))
    # Expired rows stay until their whole window has expired: up to one window more than the retention.
    stored = daily * (retention_days + window) * rf
    headroom = daily * window * rf  # the largest compaction rewrites one window
    total = (stored + headroom) * 1.2
    for_disk = math.ceil(total / (disk_gb * 1e9))
    nodes = max(rf, 3, for_writes, for_disk)
    return Plan(hosts, avg, peak, total / nodes / 1e9, nodes, for_writes, for_disk)


def table(m: Measured, args: argparse.Namespace, sizes: list[int]) -> str:
    """The README's markdown table."""
    out = [
        "| hosts | rows/s (avg / peak) | disk per node | nodes | for the write rate | for the disk |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for hosts in sizes:
        p = plan(m, hosts, args.lines_avg, args.lines_peak, args.app_avg, args.retention_days, args.rf, args.cores,
                 args.disk_gb)  # fmt: skip
        out.append(f"| {hosts:,} | {p.avg_rows:,.0f} / {p.peak_rows:,.0f} | {p.disk_per_node_gb:,.0f} GB | "
                   f"{p.nodes} | {p.nodes_for_writes} | {p.nodes_for_disk} |")  # fmt: skip
    out += [
        "",
        f"Assumed per host: {args.lines_avg:g} log lines/s on average and {args.lines_peak:g} at peak, "
        f"{args.app_avg:g} application records/s (peaking in the same ratio); {args.retention_days} days, "
        f"RF {args.rf}, {args.cores} cores and {args.disk_gb:,.0f} GB of data disk per node, "
        "at most 50 % of a node's write rate used at peak. "
        f"Measured: {m.writes_per_core:,.0f} replica writes per second per core of Cassandra, "
        f"{m.infra_bytes:.0f} bytes per infrastructure row and {m.app_bytes:.0f} per application row on disk "
        f"({m.source}).",
    ]
    return "\n".join(out)


def main() -> int:
    """Print one plan, or the README's table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, nargs="*", default=[10, 100, 1000, 10000])
    ap.add_argument("--lines-avg", type=float, default=2.0, help="log lines/s per host, on average")
    ap.add_argument("--lines-peak", type=float, default=20.0, help="log lines/s per host, at peak")
    ap.add_argument("--app-avg", type=float, default=1.0, help="application records/s per host, on average")
    ap.add_argument("--retention-days", type=int, default=90)
    ap.add_argument("--rf", type=int, default=3)
    ap.add_argument("--cores", type=int, default=8, help="cores per Cassandra node")
    ap.add_argument("--disk-gb", type=float, default=1000, help="usable data disk per node, GB")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--markdown", action="store_true", help="the README's table")
    args = ap.parse_args()
    m = Measured.load(args.results)
    print(table(m, args, args.hosts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
