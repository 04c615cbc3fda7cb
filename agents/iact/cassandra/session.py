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


class CassandraTLSRefused(CassandraUnavailable):
    """The node answered with a certificate this client does not trust: a setting to fix, not an outage."""


class CassandraAuthFailed(RuntimeError):
    """The node answered but refused the credentials."""


def _is_auth_failure(exc: NoHostAvailable) -> bool:
    return any(isinstance(e, AuthenticationFailed) or "AuthenticationFailed" in repr(e) for e in exc.errors.values())


def _is_certificate_failure(exc: NoHostAvailable) -> bool:
    errors = exc.errors.values()
    return any(isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in repr(e) for e in errors)


def _first_error(exc: NoHostAvailable) -> str:
    text = str(next(iter(exc.errors.values()), ""))
    return text.split("Last error: ")[-1][:200]


def tls_context(settings: ConnectionSettings) -> ssl.SSLContext | None:
    """TLS that verifies the node's certificate and the address it is reached at, or None (plaintext).

    A CA file is what switches TLS on: a client that is told which CA to trust never falls back to
    plaintext, and a node whose certificate does not name the address in use is refused.
    """
    if not settings.ca_file:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cert_file and settings.key_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


def build_cluster(settings: ConnectionSettings) -> Cluster:
    """A Cluster with token-aware, DC-aware routing (writes go straight to a replica)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc)),
        request_timeout=30,
        retry_policy=IdempotentWriteRetryPolicy(),
    )
    ssl_context = tls_context(settings)
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
            if _is_certificate_failure(exc):
                raise CassandraTLSRefused(
                    f"the Cassandra node at {', '.join(settings.contact_points)} port {settings.port} presented a "
                    f"certificate this client does not trust ({_first_error(exc)}): check that ca_file "
                    f"({settings.ca_file}) is the CA that signed the nodes' certificates (the appliance's is "
                    "/etc/iact/pki/ca.crt.pem) and that the certificate names the address you connect to"
                ) from exc
            hint = "" if settings.ca_file else "; if the cluster requires TLS, set ca_file (--ca-file)"
            raise CassandraUnavailable(
                f"no Cassandra node answered at {', '.join(settings.contact_points)} port {settings.port}: "
                "check that the nodes run (`nodetool status`), that this host reaches the native port, "
                f"and the contact points you passed{hint}"
            ) from exc
        yield session
    finally:
        cluster.shutdown()
