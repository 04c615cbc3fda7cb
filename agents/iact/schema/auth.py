"""Turn on authentication without locking anyone out, in the order Cassandra's docs give.

1. `prepare`: replicate system_auth (and the other system keyspaces that hold cluster state) with
   NetworkTopologyStrategy before any node requires passwords, so a lost node never takes the
   only replica of a role with it.
2. The role restarts the nodes with PasswordAuthenticator: one at a time on a ring with data, all
   at once on a ring the same run formed (no data, no client yet).
3. `bootstrap`: log in as the default `cassandra` role once, create the operator's superuser,
   then strip the default role of login and superuser.
4. `roles`: least-privilege writer and reader roles with their grants.
5. `maintainer`: the role the nodes' maintenance jobs log in as to take the cluster-wide lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cassandra.cluster import Session

from iact.cassandra.session import CassandraAuthFailed, open_session
from iact.cassandra.settings import ConnectionSettings

SYSTEM_KEYSPACES = ("system_auth", "system_distributed", "system_traces")
DEFAULT_ROLE = "cassandra"


def _replication_of(session: Session, keyspace: str) -> dict[str, str]:
    row = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)).one()
    return dict(row.replication) if row else {}


def prepare_system_keyspaces(
    session: Session, replication: tuple[tuple[str, int], ...], say: Callable[[str], None]
) -> bool:
    """Replicate the system keyspaces per datacenter; True when something was altered."""
    wanted = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy"}
    wanted.update({dc: str(rf) for dc, rf in replication})
    literal = "{'class': 'NetworkTopologyStrategy', " + ", ".join(f"'{dc}': {rf}" for dc, rf in replication) + "}"
    changed = False
    for keyspace in SYSTEM_KEYSPACES:
        if _replication_of(session, keyspace) == wanted:
            say(f"{keyspace}: already replicated as {literal}")
            continue
        say(f"{keyspace}: ALTER KEYSPACE replication = {literal}")
        session.execute(f"ALTER KEYSPACE {keyspace} WITH replication = {literal}", timeout=60)
        changed = True
    return changed


def _connect_with_retry(settings: ConnectionSettings, deadline_s: float) -> bool:
    """Try the credentials until the deadline; the default role appears some seconds after start."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            with open_session(settings):
                return True
        except CassandraAuthFailed:
            if time.monotonic() >= end:
                return False
            time.sleep(2)


def bootstrap_superuser(
    base: ConnectionSettings, name: str, password: str, say: Callable[[str], None], wait_s: float = 90
) -> bool:
    """Create the operator's superuser and disable the default one; True when anything changed."""
    changed = False
    mine = base.with_credentials(name, password)
    try:
        with open_session(mine):
            say(f"superuser {name}: can log in")
    except CassandraAuthFailed:
        say(f"superuser {name}: cannot log in yet, creating it as the default role")
        default = base.with_credentials(DEFAULT_ROLE, DEFAULT_ROLE)
        if not _connect_with_retry(default, wait_s):
            raise CassandraAuthFailed(
                f"neither {name} nor the default role can log in. If {name} exists with another password, "
                f"set cassandra_cluster_superuser_password to it (change passwords with ALTER ROLE, then the variable)"
            ) from None
        with open_session(default) as session:
            session.execute(
                f"CREATE ROLE IF NOT EXISTS {name} WITH PASSWORD = %s AND SUPERUSER = true AND LOGIN = true",
                (password,),
            )
        changed = True
        say(f"superuser {name}: created")
    with open_session(mine) as session:
        row = session.execute(
            "SELECT is_superuser, can_login FROM system_auth.roles WHERE role = %s", (DEFAULT_ROLE,)
        ).one()
        if row and (row.is_superuser or row.can_login):
            session.execute(f"ALTER ROLE {DEFAULT_ROLE} WITH SUPERUSER = false AND LOGIN = false")
            say(f"default role {DEFAULT_ROLE}: SUPERUSER = false AND LOGIN = false")
            changed = True
        else:
            say(f"default role {DEFAULT_ROLE}: already disabled")
    return changed


def _can_login(base: ConnectionSettings, name: str, password: str) -> bool:
    try:
        with open_session(base.with_credentials(name, password)):
            return True
    except CassandraAuthFailed:
        return False


def ensure_login_role(
    session: Session, base: ConnectionSettings, name: str, password: str, say: Callable[[str], None]
) -> bool:
    """A LOGIN role with this password; True when created or its password was reset."""
    exists = session.execute("SELECT role FROM system_auth.roles WHERE role = %s", (name,)).one()
    if not exists:
        session.execute(f"CREATE ROLE {name} WITH PASSWORD = %s AND LOGIN = true AND SUPERUSER = false", (password,))
        say(f"role {name}: created")
        return True
    if _can_login(base, name, password):
        say(f"role {name}: exists, password current")
        return False
    session.execute(f"ALTER ROLE {name} WITH PASSWORD = %s AND LOGIN = true", (password,))
    say(f"role {name}: password reset to the configured one")
    return True


def ensure_grants(
    session: Session, role: str, keyspace: str, permissions: tuple[str, ...], say: Callable[[str], None]
) -> bool:
    """Grant exactly the listed permissions on the keyspace (extra ones are revoked)."""
    resource = f"<keyspace {keyspace}>"
    rows = session.execute(f"LIST ALL PERMISSIONS ON KEYSPACE {keyspace} OF {role} NORECURSIVE")
    have = {r.permission for r in rows if r.resource == resource}
    changed = False
    for permission in sorted(set(permissions) - have):
        session.execute(f"GRANT {permission} ON KEYSPACE {keyspace} TO {role}")
        say(f"role {role}: GRANT {permission} ON KEYSPACE {keyspace}")
        changed = True
    for permission in sorted(have - set(permissions)):
        session.execute(f"REVOKE {permission} ON KEYSPACE {keyspace} FROM {role}")
        say(f"role {role}: REVOKE {permission} ON KEYSPACE {keyspace}")
        changed = True
    if not changed:
        say(f"role {role}: has exactly {', '.join(sorted(permissions)) or 'no permissions'} on {keyspace}")
    return changed


WRITER_PERMISSIONS = ("MODIFY",)
READER_PERMISSIONS = ("SELECT",)
# The dashboard's fleet page reads each node's pending hints through CQL (iact.dora.fleet) with the
# reader's account: virtual tables need their own grant, even to read.
READER_VIEWS = ("pending_hints",)
# The dashboard's /alerts/ page acknowledges and silences with the reader's account: MODIFY on those two
# tables only (cql/0005_alerting.cql, 0007_alert_console.cql); logs and the alerter's state stay read-only.
READER_WRITES = ("alert_acks", "alert_silences")
# iact-alert reads every log table and writes only its own state, acks (`iact-alert ack`) and history.
ALERTER_PERMISSIONS = ("SELECT",)
ALERTER_TABLES = ("alert_state", "alert_silences", "alert_runs", "alert_acks", "alert_events")


def ensure_table_grants(
    session: Session, role: str, keyspace: str, tables: tuple[str, ...], permission: str, say: Callable[[str], None]
) -> bool:
    """Grant one permission on each listed table (in addition to the keyspace-level grants)."""
    changed = False
    for table in tables:
        rows = session.execute(f"LIST {permission} ON TABLE {keyspace}.{table} OF {role} NORECURSIVE")
        if not any(r.resource == f"<table {keyspace}.{table}>" for r in rows):
            session.execute(f"GRANT {permission} ON TABLE {keyspace}.{table} TO {role}")
            say(f"role {role}: GRANT {permission} ON TABLE {keyspace}.{table}")
            changed = True
    return changed


# The nodes' maintenance jobs read and write the lock row (cql/0006_maintenance_lock.cql) and nothing else:
# the credentials sit in a root-only file on every node, so a leaked file exposes no logs.
MAINTAINER_TABLES = ("maintenance_lock",)
MAINTAINER_PERMISSIONS = ("SELECT", "MODIFY")


def ensure_maintainer(
    session: Session, base: ConnectionSettings, name: str, password: str, keyspace: str, say: Callable[[str], None]
) -> bool:
    """A LOGIN role with SELECT and MODIFY on the lock table only; True when anything changed."""
    changed = ensure_login_role(session, base, name, password, say)
    changed |= ensure_grants(session, name, keyspace, (), say)
    for permission in MAINTAINER_PERMISSIONS:
        changed |= ensure_table_grants(session, name, keyspace, MAINTAINER_TABLES, permission, say)
    return changed
