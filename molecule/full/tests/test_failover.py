"""Failure drill: Cassandra nodes go away and come back while every host keeps logging.

One test, in phases, because each phase starts from the state the previous one left: one node down
(QUORUM writes go on, nothing spools), all three down (agents spool), all back (spools drain), then
the rolling restart playbook under load from the agents and from an application using the logging
handler. At the end every line written during the drill is stored exactly once. A second test then
breaks one node on purpose to show that the rolling restart stops there.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime

from cassandra.query import SimpleStatement
from conftest import (
    NODES,
    TRANSIENT_READ_ERRORS,
    Writers,
    agent_status,
    ca_file,
    node_ip,
    playbook,
    podman,
    ring_up,
    secret,
    unit_started,
    wait_until,
    written,
)

from iact.applog.handler import CassandraHandler


def cassandra(action: str, *nodes: str) -> None:
    for node in nodes:
        podman("exec", "-d", node, "systemctl", action, "cassandra")


class App(threading.Thread):
    """An application logging through CassandraHandler at ~50 records/s until stopped."""

    def __init__(self, run: str, spool: str, ca: str | None = None) -> None:
        super().__init__(daemon=True)
        self.sent = 0
        self.run_id = run
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.handler = self.new_handler(spool, ca)
        self.retired: list[CassandraHandler] = []  # handlers switch() replaced
        self.log = logging.getLogger(f"drill.{run}")
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        self.log.addHandler(self.handler)

    def new_handler(self, spool: str, ca: str | None) -> CassandraHandler:
        return CassandraHandler(
            hosts=",".join(node_ip(n) for n in NODES),
            username="iact_writer",
            password=secret("cassandra_writer_password"),
            ca_file=ca,
            app=f"drill-{self.run_id}",
            host="drill",
            spool_path=spool,
        )

    def switch(self, spool: str, ca: str) -> CassandraHandler:
        """Reconfigure as an operator would: the new handler (TLS) takes over, the old one drains and closes."""
        new = self.new_handler(spool, ca)
        with self.lock:
            old, self.handler = self.handler, new
            self.log.addHandler(new)
            self.log.removeHandler(old)
            to_old = self.sent
        self.retired.append(old)
        assert old.flush(60), "the plaintext handler drained its queue (into Cassandra or its spool)"
        # What it spooled (a write timeout while a node restarted) must be replayed before it closes:
        # its spool is its own, and nothing else would replay it. Each flush() forces a replay.
        wait_for_handler(old, lambda: old.stats.logs_written >= to_old, 180, f"all {to_old} plaintext records written")
        old.close()
        return old

    def run(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                self.sent += 1
                self.log.info("drill record %d", self.sent)
            time.sleep(0.02)

    def assert_delivered_once(self, reader, writers, counts) -> None:
        """Every line of the nodes' writers (lab.WRITER) and every record of the application is stored
        exactly once, and the handler dropped none."""
        assert writers.stored_once(reader, counts), "no line stored twice"
        self.assert_stored_once(reader, writers.started)

    def assert_stored_once(self, reader, since: date, timeout: float = 300) -> Counter:
        """Wait until every record sent is stored, then close the handler; none stored twice, none dropped.

        The handler stays open meanwhile: flush() promises records *written or spooled*, and what a
        write timeout spooled (a node draining on a loaded machine) replays in the background. A
        write error is not a failure here; a dropped or missing record is.
        """
        found = {"stored": 0}

        def all_stored() -> bool:
            found["stored"] = len(self.stored(reader, since))
            return found["stored"] >= self.sent

        try:
            wait_for_handler(self.handler, all_stored, timeout, f"all {self.sent} records stored", found)
        finally:
            self.close()
        stored = self.stored(reader, since)  # after close: what its last replays wrote counts too
        assert self.handler.stats.logs_dropped == 0, self.handler.stats
        assert len(stored) == self.sent, f"{len(stored)} distinct records stored of {self.sent} sent"
        assert max(stored.values()) == 1, f"stored twice: {[m for m, n in stored.items() if n > 1][:5]}"
        return stored

    def stored(self, reader, since: date) -> Counter:
        """How many times each of this application's records is stored (a run may cross midnight, UTC)."""
        records = SimpleStatement(
            "SELECT message FROM logging.application_logs WHERE day = %s AND app = %s", fetch_size=5000
        )
        days = sorted({since, datetime.now(UTC).date()})
        return Counter(r.message for day in days for r in reader.execute(records, (day, f"drill-{self.run_id}")))

    def finish(self) -> None:
        """Stop logging and drain the queue; the handler stays open (assert_stored_once closes it)."""
        self.stop()
        assert self.handler.flush(60), "the handler drained its queue (into Cassandra or its spool)"

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(10)

    def close(self) -> None:
        """Stop logging and close every handler (idempotent): a test that failed early must not leave
        one connected, retrying, for the drills after it."""
        self.stop()
        for handler in (*self.retired, self.handler):
            handler.close()


def wait_for_handler(handler: CassandraHandler, done, timeout: float, what: str, found: dict | None = None) -> None:
    """Poll done() while the handler replays what it spooled (each flush() forces a replay).

    Fails at once when the handler dropped a record (no wait can bring it back); a read that times
    out on a loaded lab is "not yet", and the last such error is in the timeout's message.
    """
    last: list[str] = []

    def check() -> bool | None:
        assert handler.stats.logs_dropped == 0, f"the handler dropped records: {handler.stats}"
        handler.flush(10)
        try:
            return done() or None
        except TRANSIENT_READ_ERRORS as exc:
            last[:] = [f"{type(exc).__name__}: {exc}"]
            return None

    try:
        wait_until(check, timeout, what, interval=3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; found {found or {}}; last read error {last}; handler {handler.stats}") from None


def test_failure_drill_loses_and_duplicates_nothing(connect, tmp_path, closing):
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
        # too. One node: test_tls_migration already rolled the whole cluster three times under load.
        app = closing(App(run, str(tmp_path / "spool"), str(ca_file())))
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
