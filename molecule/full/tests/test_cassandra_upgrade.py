"""playbooks/cassandra_upgrade.yml moves the cluster one patch release up under ingest, losing and duplicating nothing.

The scenario converges the previous patch release (IACT_CASSANDRA_UPGRADE_FROM, 5.0.8; converge.yml)
while the inventory names the current one (the role's cassandra_cluster_version, 5.0.9): the role
keeps an installed node on its version (the TLS migration before this test ran the role without
moving it), and only the upgrade playbook moves it. While a writer on every node (lab.WRITER) feeds
the agents and an application logs through the handler, the playbook runs twice:

1. cass1's unit is made to start the old release whatever the link says (a stale drop-in): the
   node comes back UN but reports the old version, the version gate stops the run at cass1, and
   cass2 and cass3 are not touched.
2. The drop-in gone, the run resumes: cass1 (still reporting the old version) and then the others
   are upgraded; every node reports the target, SSTables need no rewrite (same format).

At the end every line is stored exactly once, the application's records too.
"""

from __future__ import annotations

import os
import re
import uuid

import yaml
from conftest import (
    NODES,
    ROOT,
    Writers,
    ca_file,
    playbook,
    podman,
    ring_up,
    secret,
    unit_started,
    wait_until,
)
from test_failover import App

UPGRADE = "playbooks/cassandra_upgrade.yml"
FROM = os.environ.get("IACT_CASSANDRA_UPGRADE_FROM", "5.0.8")
DEFAULTS = ROOT / "roles" / "cassandra_cluster" / "defaults" / "main.yml"
TARGET = str(yaml.safe_load(DEFAULTS.read_text())["cassandra_cluster_version"])  # what the inventory names
DROPIN = "/etc/systemd/system/cassandra.service.d/zz-drill-old-release.conf"


def flat(out: str) -> str:
    """Playbook output with YAML's line wrapping undone, to find a message whole."""
    return " ".join(out.split())


def running_version(node: str) -> str:
    out = podman("exec", node, "nodetool", "version", check=False).stdout
    match = re.search(r"ReleaseVersion:\s*(\S+)", out)
    return match.group(1) if match else ""


def installed_link(node: str) -> str:
    return podman("exec", node, "readlink", "/opt/cassandra").stdout.strip()


def start_old_release(node: str) -> None:
    """A drop-in that starts the old release's launcher and libraries, whatever /opt/cassandra points at."""
    old = f"/opt/apache-cassandra-{FROM}"
    unit = f"[Service]\\nEnvironment=CASSANDRA_HOME={old}\\nExecStart=\\nExecStart={old}/bin/cassandra -f\\n"
    podman("exec", node, "sh", "-c", f"printf '{unit}' > {DROPIN} && systemctl daemon-reload")


def test_upgrade_under_load_gates_each_node_and_stores_every_line_once(connect, tmp_path, closing):
    assert FROM != TARGET, "the scenario converges an older release than the inventory names"
    assert {n: running_version(n) for n in NODES} == dict.fromkeys(NODES, FROM), "converged on the previous release"

    run = uuid.uuid4().hex[:8]
    writers = Writers(run, program="upgrade")
    writers.start()
    app = closing(App(run, str(tmp_path / "spool"), str(ca_file())))
    app.start()
    try:
        # 1. The version gate: cass1 restarts on the old release; the run stops there.
        before = {n: unit_started(n) for n in ("cass2", "cass3")}
        start_old_release("cass1")
        try:
            stopped = playbook(UPGRADE)
        finally:
            podman("exec", "cass1", "sh", "-c", f"rm -f {DROPIN} && systemctl daemon-reload")
        assert stopped.returncode != 0, stopped.stdout[-3000:]
        assert f"Version gate: cass1 reports Cassandra {FROM}" in flat(stopped.stdout), stopped.stdout[-4000:]
        assert {n: unit_started(n) for n in before} == before, "cass2 and cass3, after cass1, untouched"
        assert (running_version("cass2"), running_version("cass3")) == (FROM, FROM)
        wait_until(lambda: ring_up(3) or None, 300, "cass1 back UN (on the old release) after the stopped run", 5)

        # 2. Run again: cass1 is upgraded (it still reports the old version), then cass2 and cass3.
        upgraded = playbook(UPGRADE)
        app.finish()
    finally:
        counts = writers.stop()
    out = flat(upgraded.stdout)
    assert upgraded.returncode == 0, upgraded.stdout[-5000:] + upgraded.stderr[-2000:]
    assert out.count(f"to {TARGET} in") == 3, "each node upgraded once and reported its time"
    assert out.count("no upgradesstables needed") == 3, "a patch release keeps the SSTable format"
    for node in NODES:
        assert running_version(node) == TARGET, f"{node} runs {TARGET}"
        assert installed_link(node) == f"/opt/apache-cassandra-{TARGET}"
        snapshots = podman("exec", node, "nodetool", "listsnapshots").stdout
        assert f"upgrade-{FROM}-to-{TARGET}-" in snapshots, f"{node} kept a snapshot of its data as drained"

    app.assert_delivered_once(connect("iact_reader", secret("cassandra_reader_password")), writers, counts)
