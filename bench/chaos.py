"""Random fault schedules for the collector, on demand: `python bench/chaos.py --schedules N`.

Each schedule is drawn from its seed (see agents/tests/chaos_collector.py); every failing seed is
printed so it can be replayed exactly with `--seeds SEED [SEED ...]`. Starts its own Cassandra
node from the lab's cached tarball, or uses a running one with `--port`.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))

from cassandra_node import schema_session
from chaos_collector import run_schedules, totals


def main() -> int:
    """Run the schedules, print the totals and each failing seed; exit 1 if any failed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=50, help="how many random seeds to run")
    ap.add_argument("--seeds", type=int, nargs="*", help="replay these seeds instead")
    ap.add_argument("--port", type=int, help="use the Cassandra node already listening on this port")
    ap.add_argument("--workers", type=int, default=6, help="schedules run at once")
    ap.add_argument("--keep", type=Path, help="keep each schedule's files under this directory")
    args = ap.parse_args()
    seeds = args.seeds or [random.randrange(10**6, 10**9) for _ in range(args.schedules)]
    with schema_session(args.port) as (port, session):
        base = args.keep or Path(tempfile.mkdtemp(prefix="iact-chaos-runs-"))
        base.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        outcomes = run_schedules(seeds, base, port, session, workers=args.workers)
        elapsed = time.monotonic() - t0
    print(f"{totals(outcomes)} in {elapsed:.0f} s")
    for o in outcomes:
        if not o.ok:
            print("FAILED", o.summary())
    failing = [o.seed for o in outcomes if not o.ok]
    if failing:
        print("replay: python bench/chaos.py --seeds " + " ".join(map(str, failing)))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
