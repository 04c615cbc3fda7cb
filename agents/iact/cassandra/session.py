"""Open a driver session from ConnectionSettings, turning driver failures into advice."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from iact.cassandra.retry import IdempotentWriteRetryPolicy
from iact.cassandra.settings import ConnectionSettings


class CassandraUnavailable(RuntimeError):
    """No node answered; the message says which endpoints were tried and what to check."""


class CassandraAuthFailed(RuntimeError):
    """The node answered but refused the credentials."""


def _is_auth_failure(exc: NoHostAvailable) -> bool:
    return any(isinstance(e, AuthenticationFailed) or "AuthenticationFailed" in repr(e) for e in exc.errors.values())


def build_cluster(settings: ConnectionSettings) -> Cluster:
    """A Cluster with token-aware, DC-aware routing (writes go straight to a replica)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc)),
        request_timeout=30,
        retry_policy=IdempotentWriteRetryPolicy(),
    )
    ssl_context = None
    if settings.ca_file:
        ssl_context = ssl.create_default_context(cafile=settings.ca_file)
    auth = None
    if settings.username:
        auth = PlainTextAuthProvider(username=settings.username, password=settings.password)
    return Cluster(
        contact_points=list(settings.contact_points),
        port=settings.port,
        auth_provider=auth,
        ssl_context=ssl_context,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.connect_timeout,
        # Cassandra 4.0+ speaks v5; saying so skips the driver's noisy downgrade handshake.
        protocol_version=5,
    )


@contextmanager
def open_session(settings: ConnectionSettings) -> Iterator[Session]:
    """Connect, yield a session and always shut the cluster object down."""
    cluster = build_cluster(settings)
    try:
        try:
            session = cluster.connect()
        except NoHostAvailable as exc:
            if _is_auth_failure(exc):
                raise CassandraAuthFailed(
                    f"Cassandra at {', '.join(settings.contact_points)} refused the credentials of role "
                    f"{settings.username or '(none)'}: check IACT_CASSANDRA_USERNAME/IACT_CASSANDRA_PASSWORD"
                ) from exc
            raise CassandraUnavailable(
                f"no Cassandra node answered at {', '.join(settings.contact_points)} port {settings.port}: "
                "check that the nodes run (`nodetool status`), that this host reaches the native port, "
                "and the contact points you passed"
            ) from exc
        yield session
    finally:
        cluster.shutdown()
