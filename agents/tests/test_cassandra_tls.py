"""Every client of Cassandra speaks verified TLS when given the CA: the driver settings shared by the
collector, the handler, the alerter and the schema CLI, against a real node that accepts TLS.

The session node accepts plaintext too (as a node does mid-migration), so each test checks on
the server side, in system_views.clients, that its own connection is encrypted.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import uuid

import pytest
from pki import TestCA

from iact.alerting.config import from_mapping as alert_config
from iact.applog import CassandraHandler
from iact.cassandra.session import CassandraTLSRefused, open_session, tls_context
from iact.cassandra.settings import ConnectionSettings, SettingsError
from iact.collector.config import from_mapping as collector_config
from iact.schema import cli


def test_ca_file_switches_on_verified_tls(cassandra_node, tls_ca):
    settings = ConnectionSettings(contact_points=("127.0.0.1",), port=cassandra_node.port, ca_file=str(tls_ca.ca_file))
    with open_session(settings) as session:
        row = session.execute(
            "SELECT ssl_enabled, ssl_protocol FROM system_views.clients WHERE address = '127.0.0.1' ALLOW FILTERING"
        )
        mine = [r for r in row if r.ssl_enabled]
        assert mine, "the node saw no TLS connection from this client"
        assert mine[0].ssl_protocol in ("TLSv1.2", "TLSv1.3")


def test_a_node_signed_by_another_ca_is_refused(cassandra_node, tmp_path):
    other = TestCA(tmp_path / "other", name="not the appliance CA")
    settings = ConnectionSettings(contact_points=("127.0.0.1",), port=cassandra_node.port, ca_file=str(other.ca_file))
    with pytest.raises(CassandraTLSRefused, match="check that ca_file") as refused, open_session(settings):
        pass
    assert "certificate verify failed" in str(refused.value)


def test_a_server_whose_certificate_names_another_address_is_refused(tls_ca):
    """Hostname verification: a certificate from the right CA, but for another address, is refused."""
    issued = tls_ca.issue("elsewhere", dns=("elsewhere.example",), ips=("127.0.0.2",))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(issued.cert, issued.key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(OSError), server_ctx.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        context = tls_context(ConnectionSettings(contact_points=("127.0.0.1",), ca_file=str(tls_ca.ca_file)))
        assert context is not None
        with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
        thread.join(10)


def test_no_ca_file_means_plaintext_and_tls_is_at_least_1_2(tls_ca):
    assert tls_context(ConnectionSettings(contact_points=("h",))) is None
    context = tls_context(ConnectionSettings(contact_points=("h",), ca_file=str(tls_ca.ca_file)))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_client_certificate_settings_are_checked_at_start(tls_ca, tmp_path):
    issued = tls_ca.issue("client")
    with pytest.raises(SettingsError, match="needs its key"):
        ConnectionSettings(contact_points=("h",), ca_file=str(tls_ca.ca_file), cert_file=str(issued.cert))
    with pytest.raises(SettingsError, match="only sent over TLS"):
        ConnectionSettings(contact_points=("h",), cert_file=str(issued.cert), key_file=str(issued.key))
    with pytest.raises(SettingsError, match="does not exist"):
        ConnectionSettings(
            contact_points=("h",), ca_file=str(tls_ca.ca_file), cert_file=str(tmp_path / "no"), key_file=str(issued.key)
        )


def test_handler_ships_over_tls(cassandra_node, tls_ca, session, tmp_path):
    host = f"tls-{uuid.uuid4().hex[:8]}"
    handler = CassandraHandler(
        hosts="127.0.0.1",
        port=cassandra_node.port,
        ca_file=str(tls_ca.ca_file),
        host=host,
        app="tls",
        consistency="ONE",
        spool_path=str(tmp_path / "spool"),
        close_timeout=60,
    )
    logger = logging.getLogger(f"iact.test.{host}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("over TLS")
        assert handler.flush(timeout=60)
    finally:
        logger.removeHandler(handler)
        handler.close()
    rows = list(session.execute("SELECT message, host FROM logging.application_logs WHERE app = 'tls' ALLOW FILTERING"))
    assert any(r.host == host and r.message == "over TLS" for r in rows)


def test_collector_and_alerter_configs_carry_the_ca_to_the_driver(cassandra_node, tls_ca):
    collector = collector_config(
        {"cassandra": {"hosts": ["127.0.0.1"], "port": cassandra_node.port, "ca_file": str(tls_ca.ca_file)}}
    )
    alerter = alert_config(
        {"cassandra": {"hosts": ["127.0.0.1"], "port": cassandra_node.port, "ca_file": str(tls_ca.ca_file)}}
    )
    for settings in (collector.cassandra.connection(), alerter.connection):
        with open_session(settings) as s:
            rows = list(s.execute("SELECT ssl_enabled FROM system_views.clients"))
            assert any(r.ssl_enabled for r in rows)


def test_schema_cli_verifies_over_tls(cassandra_node, tls_ca, capsys):
    rc = cli.main(
        [
            "--contact-points",
            "127.0.0.1",
            "--port",
            str(cassandra_node.port),
            "--ca-file",
            str(tls_ca.ca_file),
            "verify",
            "--rf",
            "dc1:1",
        ]
    )
    assert rc == 0, capsys.readouterr()


def test_clients_gate_names_plaintext_connections_and_passes_once_none_remain(cassandra_node, tls_ca, capsys):
    argv = ["--contact-points", "127.0.0.1", "--port", str(cassandra_node.port), "--ca-file", str(tls_ca.ca_file)]
    plain = ConnectionSettings(contact_points=("127.0.0.1",), port=cassandra_node.port)
    with open_session(plain):
        assert cli.main([*argv, "clients", "--require-tls"]) == 1
        out = capsys.readouterr().out
        assert "plaintext client: 127.0.0.1" in out
    # Other tests' sessions may hold plaintext connections; the gate passes exactly when the node
    # reports none.
    rc = cli.main([*argv, "clients", "--require-tls"])
    out = capsys.readouterr().out
    assert (rc == 0) == (", 0 in plaintext" in out), out
