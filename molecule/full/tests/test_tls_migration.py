"""playbooks/cassandra_enable_tls.yml on a running plaintext cluster, under load, loses and duplicates nothing.

The scenario converges in plaintext. While a writer on every node (lab.WRITER: syslog lines, as
`logger` sends them) feeds the agents and an application logs through the handler (in plaintext,
as it was configured before), the playbook moves the nodes to accept TLS, then to send it, switches
the agents; its gate then waits while the application is still connected in plaintext, until the
test reconfigures the application with the CA as an operator would; then the nodes turn TLS-only.
At the end: every line stored exactly once, the application's records too, and a plaintext client
refused on 9042 and 7000 from another host.
"""

from __future__ import annotations

import subprocess
import uuid

from conftest import (
    NODES,
    ROOT,
    Writers,
    ca_file,
    inventory,
    node_ip,
    operator_env,
    podman,
    secret,
    speaks_tls,
    wait_until,
)
from test_failover import App

GATE = "Wait until no client is connected in plaintext"

# Run on cass1: what it gets from another node's ports in plaintext (bytes answered, or why none).
PLAIN_PROBE = r"""
import socket, sys
ip, port = sys.argv[1], int(sys.argv[2])
try:
    with socket.create_connection((ip, port), timeout=5) as s:
        s.sendall(bytes([0x05, 0, 0, 1, 0x05, 0, 0, 0, 0]) if port == 9042 else bytes.fromhex("ca552dfa") + bytes(8))
        s.settimeout(5)
        print(s.recv(64).hex() or "closed")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("refused:" + type(e).__name__)
"""


def plaintext_answer(source: str, target: str, port: int) -> str:
    return podman("exec", source, "python3", "-c", PLAIN_PROBE, node_ip(target), str(port)).stdout.strip()


def test_tls_migration_under_load_stores_every_line_once(connect, tmp_path, closing):
    ips = {n: node_ip(n) for n in NODES}
    assert not speaks_tls(ips["cass1"]), "the scenario starts from a plaintext cluster"
    assert plaintext_answer("cass1", "cass2", 9042).startswith("8"), "a plaintext CQL client gets an answer before"

    run = uuid.uuid4().hex[:8]
    writers = Writers(run, program="tlsmig")
    writers.start()
    app = closing(App(run, str(tmp_path / "spool")))  # an application configured before TLS: plaintext
    app.start()
    log = tmp_path / "enable_tls.log"
    try:
        with log.open("w") as out:
            migration = subprocess.Popen(
                [
                    "ansible-playbook",
                    "playbooks/cassandra_enable_tls.yml",
                    "-i",
                    str(inventory()),
                    "-e",
                    "cassandra_enable_tls_clients_timeout=900",
                ],
                cwd=ROOT,
                env=operator_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

        # The gate waits for the application, still connected in plaintext (it has found it once and
        # retries); the operator now gives it the CA. (The agents were switched by the playbook.)
        def gate_holds() -> bool:
            text = log.read_text()
            at = text.find(f"TASK [{GATE}")
            return (at >= 0 and "FAILED - RETRYING" in text[at:]) or migration.poll() is not None

        wait_until(gate_holds, 1800, "the plaintext-clients gate to hold for the application", interval=1)
        assert migration.poll() is None, "the gate let the plaintext application through\n" + log.read_text()[-4000:]
        old = app.switch(str(tmp_path / "spool-tls"), str(ca_file()))
        assert migration.wait(1800) == 0, log.read_text()[-6000:]
        app.finish()
    finally:
        if migration.poll() is None:
            migration.kill()
        counts = writers.stop()
    text = log.read_text()
    assert "TLS only; serves" in text, text[-3000:]

    # The plaintext handler drained and closed (App.switch); write errors (a node restarting on a
    # loaded machine) are retried or spooled and replayed: the loss would be a dropped record.
    assert old.stats.logs_dropped == 0, old.stats

    assert speaks_tls(ips["cass1"]), "the native port speaks TLS"
    for port in (9042, 7000):
        answer = plaintext_answer("cass1", "cass2", port)
        assert answer == "closed" or answer.startswith(("refused:", "15")), f"plaintext on {port} got {answer}"

    reader = connect("iact_reader", secret("cassandra_reader_password"))
    app.assert_delivered_once(reader, writers, counts)
