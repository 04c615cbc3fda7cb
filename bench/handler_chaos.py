"""Random fault schedules for CassandraHandler, on demand (CI plays 20 fixed ones).

    python bench/handler_chaos.py --schedules 200 --seed 1000

Starts a real node from the cached tarball (or uses --port of a running one with the schema),
plays schedules seed, seed+1, ... (agents/tests/applog_chaos.py says what a schedule is and
what the oracle checks), prints each failing seed with its steps and the app's stderr, then the
totals. Replay one with --schedules 1 --seed <failing seed>. Needs root (a tmpfs per schedule).
Exit status 1 when any schedule failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents" / "tests"))

from applog_chaos import describe, run_schedule
from cassandra_node import schema_session


def main() -> int:
    """Parse arguments, play the schedules, report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=50, help="how many schedules (default 50)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="first seed (default: the time)")
    parser.add_argument("--port", type=int, help="a running node's native port (schema applied); else start one")
    args = parser.parse_args()

    with schema_session(args.port) as (port, session):
        workroot = Path(tempfile.mkdtemp(prefix="iact-chaos-run-"))
        totals = dict.fromkeys(("logged", "stored", "duplicated", "dropped", "missing"), 0)
        failed: list[int] = []
        exercised: Counter[str] = Counter()
        started = time.monotonic()
        for seed in range(args.seed, args.seed + args.schedules):
            out = run_schedule(seed, port, session, workroot)
            for key in totals:
                totals[key] += getattr(out, key)
            exercised.update(out.notes)
            status = "ok  " if out.ok else "FAIL"
            print(
                f"{status} seed {seed}: logged {out.logged} stored {out.stored} dropped {out.dropped} "
                f"missing {out.missing} duplicated {out.duplicated} ({out.seconds:.1f} s)",
                flush=True,
            )
            if not out.ok:
                failed.append(seed)
                print(describe(out), flush=True)
        print(
            f"\n{args.schedules} schedules in {time.monotonic() - started:.0f} s: "
            + ", ".join(f"{k} {v}" for k, v in totals.items())
        )
        print("exercised: " + ", ".join(f"{k} {v}" for k, v in sorted(exercised.items())))
        if failed:
            print(f"failing seeds: {failed}\nwork files of failing seeds: {workroot}")
            return 1
        print("no failing seed")
        shutil.rmtree(workroot, ignore_errors=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
