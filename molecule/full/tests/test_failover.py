"""Failure drill: Cassandra nodes go away and come back while every host keeps logging.

One test, in phases, because each phase starts from the state the previous one left: one node down
(QUORUM writes go on, nothing spools), all three down (agents spool), all back (spools drain), then
the rolling restart playbook under load from the agents and from an application using the logging
handler. At the end every line written during the drill is stored exactly once. A second test then
breaks one node on purpose to show that the rolling restart stops there.
"""

from __future__ import annotations

import uuid

from conftest import (
    NODES,
    App,
    Writers,
    agent_status,
    ca_file,
    playbook,
    podman,
    ring_up,
    secret,
    unit_started,
    wait_until,
    written,
)


def cassandra(action: str, *nodes: str) -> None:
    for node in nodes:
        podman("exec", "-d", node, "systemctl", action, "cassandra")


def test_failure_drill_loses_and_duplicates_nothing(connect, tmp_path):
    run = uuid.uuid4().hex[:8]
    writers = Writers(run)
    writers.start()
    try:
        # 1. One node down: QUORUM (2 of 3) still holds, so the agents keep writing and spool nothing.
        cassandra("stop", "cass3")
        wait_until(lambda: ring_up(2) or None, 120, "cass3 to leave the ring (2 UN)")
        marks = {n: written(n) for n in ("cass1", "cass2")}
        wait_until(
            lambda: all(written(n) > marks[n] + 20 for n in marks) or None,
            60,
            "cass1 and cass2's agents to keep writing with cass3 down",
        )
        assert all(agent_status(n)["spool_bytes"] == 0 for n in ("cass1", "cass2")), "nothing spooled at QUORUM"

        # 2. All three down: the agents spool to disk.
        cassandra("stop", "cass1", "cass2")
        wait_until(
            lambda: all(agent_status(n).get("spool_bytes", 0) > 0 for n in NODES) or None,
            120,
            "every agent to spool with the whole cluster down",
        )

        # 3. All back: the spools drain into Cassandra.
        cassandra("start", *NODES)
        wait_until(lambda: ring_up(3) or None, 300, "all three nodes UN again", interval=5)
        wait_until(
            lambda: all(agent_status(n).get("spool_bytes", 1) == 0 for n in NODES) or None,
            180,
            "every spool to drain",
            interval=3,
        )

        # 4. The rolling restart playbook under load, with an application logging through the handler
        # too. One node: the migrate scenario's TLS migration rolls a whole cluster three times under load.
        app = App(run, str(tmp_path / "spool"), str(ca_file()))
        app.start()
        restart = playbook("playbooks/cassandra_rolling_restart.yml", "--limit", "cass2")
        app.finish()
    finally:
        counts = writers.stop()
    assert restart.returncode == 0, restart.stdout[-4000:] + restart.stderr[-2000:]
    # Whitespace normalized: the YAML callback folds the long report line.
    assert " ".join(restart.stdout.split()).count("hints delivered in") == 1, "cass2 restarted and reported its time"
    app.assert_delivered_once(connect("iact_reader", secret("cassandra_reader_password")), writers, counts)


def test_rolling_restart_stops_at_the_first_node_that_does_not_come_back():
    """cass2 hangs on start (a drop-in runs `sleep` instead of Cassandra): the run stops there, cass3 is untouched."""
    dropin = "/etc/systemd/system/cassandra.service.d/zz-drill-hang.conf"

    cass3_before = unit_started("cass3")
    unit = "[Service]\\nExecStart=\\nExecStart=/bin/sleep infinity\\n"
    podman("exec", "cass2", "sh", "-c", f"mkdir -p {dropin.rsplit('/', 1)[0]} && printf '{unit}' > {dropin}")
    podman("exec", "cass2", "systemctl", "daemon-reload")
    try:
        limit = ("--limit", "cass2,cass3", "-e", "cassandra_cluster_start_timeout=20")
        run = playbook("playbooks/cassandra_rolling_restart.yml", *limit)
    finally:
        podman("exec", "cass2", "sh", "-c", f"rm -f {dropin} && systemctl daemon-reload && systemctl restart cassandra")
    assert run.returncode != 0, run.stdout[-3000:]
    assert "fatal: [cass2]" in run.stdout and "did not serve CQL" in run.stdout, run.stdout[-3000:]
    assert "hints delivered in" not in " ".join(run.stdout.split()), "no node finished its turn"
    assert unit_started("cass3") == cass3_before, "cass3, after the failed node, was not restarted"
    wait_until(lambda: ring_up(3) or None, 300, "cass2 back UN once its unit is fixed", interval=5)
