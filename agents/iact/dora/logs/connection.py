"""The console's read-only Cassandra session: one per process, made on the first request.

gunicorn forks its workers after importing the app; a driver session made before the fork would be
shared by processes that cannot share its sockets, so each worker makes its own, lazily.
"""

from __future__ import annotations

import threading

from django.conf import settings

from iact.cassandra.session import build_cluster
from iact.cassandra.settings import ConnectionSettings
from iact.dora.logs.search import LogSearch


class ConsoleOff(RuntimeError):
    """The console has no Cassandra account configured; the message says what to set."""


_lock = threading.Lock()
_search: LogSearch | None = None


def get_search() -> LogSearch:
    """The process's LogSearch, connecting on first use (CassandraUnavailable and friends propagate)."""
    global _search
    with _lock:
        if _search is None:
            logs, cassandra = settings.IACT_LOGS, settings.IACT_CASSANDRA
            if not logs.password or not cassandra.hosts:
                raise ConsoleOff(
                    "the log console has no Cassandra account: set logs.password (and cassandra.hosts) in "
                    "/etc/iact/dora/dora.yaml, i.e. django_dora_logs_password in the inventory"
                )
            conn = ConnectionSettings(
                contact_points=tuple(h.strip() for h in cassandra.hosts.split(",")),
                username=logs.username,
                password=logs.password,
                ca_file=cassandra.ca_file or None,
            )
            session = build_cluster(conn).connect()
            _search = LogSearch(session, logs.keyspace, logs.scan_limit)
        return _search


def set_search(search: LogSearch | None) -> None:
    """Use this LogSearch (tests), or forget the current one."""
    global _search
    with _lock:
        _search = search
