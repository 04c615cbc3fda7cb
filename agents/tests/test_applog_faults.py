"""The handler fault harness in CI: 20 fixed schedules (applog_chaos.py) against the real node.

Each seed names one schedule of bursts, outages, a full spool disk, injected writer errors,
forks and short flushes, played by a real app process; the oracle wants every record stored
exactly once or counted in logs_dropped. More schedules on demand: bench/handler_chaos.py.
"""

import os

import pytest
from applog_chaos import describe, run_schedule

pytestmark = pytest.mark.cassandra

SEEDS = range(20)


@pytest.fixture(scope="module")
def totals(request):
    """Sum the outcomes and print one line at the end (the harness's counts, for the CI log)."""
    outcomes = []
    yield outcomes
    keys = ("logged", "stored", "duplicated", "dropped", "missing")
    line = ", ".join(f"{k} {sum(getattr(o, k) for o in outcomes)}" for k in keys)
    seconds = sum(o.seconds for o in outcomes)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and outcomes:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nhandler fault harness: {len(outcomes)} schedules, {line}; {seconds:.1f} s")


@pytest.mark.skipif(os.geteuid() != 0, reason="the harness mounts a tmpfs per schedule (a full spool disk)")
@pytest.mark.parametrize("seed", SEEDS)
def test_fault_schedule(seed, cassandra_node, session, tmp_path, totals):
    outcome = run_schedule(seed, cassandra_node.port, session, tmp_path)
    totals.append(outcome)
    assert outcome.ok, describe(outcome)
