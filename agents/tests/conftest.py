"""Session fixtures: one real Cassandra node with the repository's schema applied."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from cassandra_node import CassandraNode
from hypothesis import settings
from pki import TestCA

from iact.cassandra.session import open_session
from iact.cassandra.settings import ConnectionSettings
from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
from iact.schema.params import SchemaParams

# CI replays the same examples every run (a red run can be replayed); `HYPOTHESIS_PROFILE=explore`
# draws new ones, many more of them.
settings.register_profile("ci", derandomize=True, max_examples=300, deadline=None)
settings.register_profile("explore", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The suite runs beside the `full` scenario in CI, on a machine at 99 % CPU: the session node may
# take longer than the production default of 10 s to answer its first connection.
TEST_CONNECT_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def tls_ca():
    """The CA that signed the session node's certificate (127.0.0.1 and localhost)."""
    return TestCA(Path(tempfile.mkdtemp(prefix="iact-ca-")))


@pytest.fixture(scope="session")
def cassandra_node(tls_ca):
    """One node for the session; it accepts TLS clients (verified against `tls_ca`) and plaintext ones."""
    issued = tls_ca.issue("node")
    node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-cassandra-")), tls=(issued.bundle, tls_ca.ca_file))
    try:
        node.start()
        settings = ConnectionSettings(
            contact_points=("127.0.0.1",), port=node.port, connect_timeout=TEST_CONNECT_TIMEOUT
        )
        params = SchemaParams(replication=(("dc1", 1),))
        with open_session(settings) as session:
            apply_migrations(session, params, load_migrations(find_cql_dir(), params), lambda _line: None)
        yield node
    finally:
        node.cleanup()


@pytest.fixture(scope="session")
def cassandra_settings(cassandra_node):
    return ConnectionSettings(
        contact_points=("127.0.0.1",), port=cassandra_node.port, connect_timeout=TEST_CONNECT_TIMEOUT
    )


@pytest.fixture
def session(cassandra_settings):
    with open_session(cassandra_settings) as s:
        yield s


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    """Start one MariaDB server for the session and point Django's connection at its socket."""
    from django.conf import settings
    from django.db import connections
    from mariadb_server import MariaDBServer

    server = MariaDBServer(Path(tempfile.mkdtemp(prefix="iact-mariadb-")))
    server.start()
    settings.DATABASES["default"]["HOST"] = server.socket
    connections["default"].settings_dict["HOST"] = server.socket
    try:
        yield server
    finally:
        connections.close_all()
        server.cleanup()
