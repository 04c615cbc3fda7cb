"""Cluster-wide checks, run once (they are not parametrized by host)."""

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
import testinfra
from cassandra import ConsistencyLevel, Unauthorized
from cassandra.cluster import NoHostAvailable
from cassandra.query import SimpleStatement
from conftest import NODES, ca_file, playbook, secret, wait_until


def up_normal(node1) -> set[str]:
    out = node1.run("nodetool status").stdout
    return set(re.findall(r"^UN\s+(\S+)", out, re.M))


def test_three_nodes_up_normal(node1, ips):
    assert up_normal(node1) == set(ips.values())


def test_keyspace_is_rf3_with_network_topology(admin):
    row = admin.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'logging'").one()
    assert row.replication["class"].endswith("NetworkTopologyStrategy")
    assert row.replication["dc1"] == "3"


@pytest.mark.parametrize("table", ["application_logs", "infrastructure_logs"])
def test_log_tables_are_tuned_for_time_series(admin, table):
    t = admin.execute(
        "SELECT compaction, compression, default_time_to_live, gc_grace_seconds, read_repair "
        "FROM system_schema.tables WHERE keyspace_name = 'logging' AND table_name = %s",
        (table,),
    ).one()
    assert t.compaction["class"].endswith("TimeWindowCompactionStrategy")
    assert (t.compaction["compaction_window_unit"], t.compaction["compaction_window_size"]) == ("DAYS", "3")
    assert t.default_time_to_live == 90 * 86400
    assert t.compression["class"].endswith("LZ4Compressor")
    assert t.read_repair == "NONE"
    assert 3 * 3600 <= t.gc_grace_seconds < 864000


def test_schema_verify_reports_ok(ips):
    password = secret("cassandra_superuser_password")
    env = dict(os.environ, IACT_CASSANDRA_USERNAME="iact_admin", IACT_CASSANDRA_PASSWORD=password)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "iact.schema.cli",
            "--contact-points",
            ",".join(ips.values()),
            "--ca-file",
            str(ca_file()),
            "verify",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "schema: ok" in out.stdout


def test_default_superuser_cannot_log_in(connect):
    with pytest.raises(NoHostAvailable, match=r"not permitted to log in|Bad credentials"):
        connect("cassandra", "cassandra")


def test_writer_can_write_but_not_drop(connect):
    writer = connect("iact_writer", secret("cassandra_writer_password"))
    writer.execute(
        "INSERT INTO logging.infrastructure_logs (host, day, hour, ts, line_id, message) "
        "VALUES ('test', '2026-01-01', 0, '2026-01-01 00:00:00+0000', uuid(), 'writer ok')"
    )
    with pytest.raises(Unauthorized):
        writer.execute("DROP TABLE logging.application_logs")
    with pytest.raises(Unauthorized):
        writer.execute("SELECT * FROM logging.application_logs LIMIT 1")


def test_reader_can_read_but_not_write(connect):
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    reader.execute("SELECT * FROM logging.application_logs LIMIT 1")
    with pytest.raises(Unauthorized):
        reader.execute(
            "INSERT INTO logging.application_logs (host, day, hour, ts, log_id) "
            "VALUES ('x', '2026-01-01', 0, 0, uuid())"
        )


def test_quorum_write_survives_one_node_down_and_node_rejoins(node1, admin, ips):
    node3 = testinfra.get_host("podman://cass3")
    insert = SimpleStatement(
        "INSERT INTO logging.application_logs (host, day, hour, ts, log_id, message) "
        "VALUES ('quorum', '2026-01-01', 0, toTimestamp(now()), uuid(), 'written with a node down')",
        consistency_level=ConsistencyLevel.QUORUM,
    )
    node3.run_expect([0], "systemctl stop cassandra")
    try:
        wait_until(lambda: ips["cass3"] not in up_normal(node1), 120, "cass3 to leave UN")
        admin.execute(insert)
        read = SimpleStatement(
            "SELECT message FROM logging.application_logs WHERE host='quorum' AND day='2026-01-01' AND hour=0",
            consistency_level=ConsistencyLevel.QUORUM,
        )
        assert [r.message for r in admin.execute(read)][-1] == "written with a node down"
    finally:
        node3.run_expect([0], "systemctl start cassandra")
    wait_until(lambda: up_normal(node1) == set(ips.values()), 240, "cass3 to rejoin UN")


def test_maintenance_times_differ_across_nodes():
    def schedule(name):
        cron = testinfra.get_host(f"podman://{name}").file("/etc/cron.d/cassandra-maintenance").content_string
        return tuple(
            " ".join(line.split()[:5])
            for line in cron.splitlines()
            if "cassandra-maintenance" in line and not line.startswith("#")
        )

    schedules = [schedule(n) for n in NODES]
    assert all(len(s) == 2 for s in schedules), schedules
    repairs = {s[0] for s in schedules}
    cleanups = {s[1] for s in schedules}
    assert len(repairs) == 3 and len(cleanups) == 3, schedules


# Run on app1, another host of the lab network: what a client there gets from each node's ports.
PROBE = r"""
import json, socket, ssl, sys
ip, ca = sys.argv[1], sys.argv[2]

def plaintext(port, payload):
    try:
        with socket.create_connection((ip, port), timeout=5) as s:
            s.sendall(payload)
            s.settimeout(5)
            return s.recv(64).hex()
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "refused:" + type(e).__name__

def tls(port):
    ctx = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection((ip, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=ip) as s:
            return s.version()
    except (OSError, ssl.SSLError) as e:
        return "failed:" + str(e)[:120]


# A CQL v5 OPTIONS frame, and the first bytes of Cassandra's internode handshake (its magic).
options = bytes([0x05, 0, 0, 1, 0x05, 0, 0, 0, 0])
print(json.dumps({
    "cql_plain": plaintext(9042, options),
    "cql_tls": tls(9042),
    "internode_plain": plaintext(7000, bytes.fromhex("ca552dfa") + bytes(8)),
    "internode_tls": tls(7000),
    "jmx": plaintext(7199, b""),
}))
"""


@pytest.mark.parametrize("node", NODES)
def test_another_host_gets_tls_only_on_9042_and_7000_and_no_jmx(node, ips):
    app1 = testinfra.get_host("podman://app1")
    out = app1.run("python3 -c %s %s /etc/iact/pki/ca.crt.pem", PROBE, ips[node])
    assert out.rc == 0, out.stderr
    got = json.loads(out.stdout)
    # Plaintext gets the connection closed at once, at most with a TLS alert (0x15): never an answer,
    # and never a wait for more bytes, which is what a plaintext server does with a partial handshake.
    for port in ("cql_plain", "internode_plain"):
        assert got[port] == "" or got[port].startswith(("refused:", "15")), got
    # The same ports complete a TLS handshake whose certificate the CA signed for this address.
    assert got["cql_tls"] in ("TLSv1.2", "TLSv1.3"), got
    assert got["internode_tls"] in ("TLSv1.2", "TLSv1.3"), got
    # JMX listens on the node's loopback only.
    assert got["jmx"].startswith("refused:"), got


def test_rotating_certificates_reloads_them_without_a_restart(ips):
    """Re-issue every node certificate (as when they near expiry) and reload: new serials served, no restart."""
    nodes = {n: testinfra.get_host(f"podman://{n}") for n in NODES}
    started = {
        n: h.check_output("systemctl show cassandra -p ExecMainStartTimestampMonotonic") for n, h in nodes.items()
    }
    before = {n: served_serial(ips[n]) for n in NODES}
    # Certificates valid 400 days, re-issued when they expire within 380: all of today's are due.
    run = playbook(
        "playbooks/cassandra_rotate_certs.yml",
        "-e",
        "iact_pki_cert_valid_days=400",
        "-e",
        "iact_pki_renew_before_days=380",
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    after = {n: served_serial(ips[n]) for n in NODES}
    assert all(after[n] != before[n] for n in NODES), (before, after)
    assert {
        n: h.check_output("systemctl show cassandra -p ExecMainStartTimestampMonotonic") for n, h in nodes.items()
    } == started
    again = playbook("playbooks/cassandra_rotate_certs.yml", "-e", "iact_pki_cert_valid_days=400")
    recap = again.stdout.split("PLAY RECAP")[-1]
    assert again.returncode == 0 and not re.search(r"changed=[1-9]", recap), again.stdout[-3000:]


def served_serial(ip: str) -> int:
    """The serial number of the certificate a node serves on 9042, verified against the lab CA."""
    import socket
    import ssl

    from cryptography import x509

    context = ssl.create_default_context(cafile=str(ca_file()))
    with socket.create_connection((ip, 9042), timeout=10) as raw, context.wrap_socket(raw, server_hostname=ip) as s:
        return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number


def test_audit_log_records_a_failed_login_and_the_agent_ships_it(connect):
    """A failed login lands in the nodes' audit log (Cassandra's FileAuditLogger) and the agents ship it."""
    who = f"intruder{uuid.uuid4().hex[:8]}"
    with pytest.raises(NoHostAvailable):
        connect(who, "not-a-password")
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    query = SimpleStatement(
        "SELECT host, message FROM logging.infrastructure_logs WHERE day = %s AND source = 'cassandra-audit'",
        fetch_size=5000,
    )

    def shipped():
        rows = reader.execute(query, (datetime.now(UTC).date(),))
        return [r.host for r in rows if who in r.message and "LOGIN_ERROR" in r.message]

    assert wait_until(shipped, 120, f"the failed login of {who} shipped from a node's audit log")
