"""The handler's settings, validated once when the handler is built (dictConfig kwargs)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field

from iact.cassandra.names import cql_identifier
from iact.cassandra.settings import ConnectionSettings, SettingsError

# Where spools live by default: state that must survive a restart. Not $TMPDIR, which systemd's
# PrivateTmp (set on our own units and on many others) empties whenever the service restarts,
# exactly when a spool written during an outage is still waiting to be replayed.
SYSTEM_SPOOL_DIR = "/var/lib/iact/applog"


def default_spool_dir() -> str:
    """/var/lib/iact/applog if this process may write there, else the user's XDG state directory."""
    if os.path.isdir(SYSTEM_SPOOL_DIR) and os.access(SYSTEM_SPOOL_DIR, os.W_OK | os.X_OK):
        return SYSTEM_SPOOL_DIR
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):  # the XDG spec says to ignore a relative value
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "iact")


@dataclass(frozen=True)
class HandlerConfig:
    """Everything the writer needs; defaults follow the issue's contract.

    `spool_path` is the path prefix of the spool files (`<spool_path>.<pid>.spool`, one per
    process, each with a `.lock` sidecar). Empty means `<dir>/<app>` where dir is
    /var/lib/iact/applog when it exists and this process may write there (systemd:
    `StateDirectory=iact/applog`), else `$XDG_STATE_HOME/iact` or `~/.local/state/iact`: a
    spool must outlive a restart, so never $TMPDIR, which PrivateTmp discards at every restart.
    """

    hosts: str = ""
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    local_dc: str | None = None
    keyspace: str = "logging"
    table: str = "application_logs"
    app: str = "app"
    host: str = field(default_factory=socket.gethostname)
    queue_maxsize: int = 10_000
    batch_size: int = 100
    flush_interval: float = 1.0
    ttl_seconds: int | None = None
    consistency: str = "LOCAL_QUORUM"
    spool_path: str = ""
    spool_max_bytes: int = 64 * 1024 * 1024
    close_timeout: float = 5.0
    drop_report_interval: float = 60.0

    def __post_init__(self) -> None:
        for name in ("queue_maxsize", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingsError(f"CassandraHandler {name}={getattr(self, name)} must be at least 1")
        if self.flush_interval <= 0 or self.close_timeout <= 0:
            raise SettingsError("CassandraHandler flush_interval and close_timeout must be positive seconds")
        if self.spool_max_bytes < 4096:
            raise SettingsError("CassandraHandler spool_max_bytes must be at least 4096")
        cql_identifier(self.keyspace, "CassandraHandler keyspace")
        cql_identifier(self.table, "CassandraHandler table")

    def connection(self) -> ConnectionSettings:
        """Connection settings, with IACT_CASSANDRA_* variables filling what was not passed."""
        return ConnectionSettings.from_env(
            self.hosts or None,
            self.port,
            username=self.username,
            password=self.password,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            local_dc=self.local_dc,
        )

    def spool_base(self) -> str:
        """Path prefix of this app's spools; decided when a writer starts (the directory may appear later)."""
        if self.spool_path:
            return self.spool_path
        return os.path.join(default_spool_dir(), re.sub(r"[^A-Za-z0-9._-]", "_", self.app) or "app")

    def spool_file(self, attempt: int = 0) -> str:
        """Per-process spool, so gunicorn workers never interleave one file.

        `attempt` > 0 names an alternative for when a live process in another pid namespace (a
        container sharing the directory) already owns the file named after our pid.
        """
        suffix = f"{os.getpid()}-{attempt}" if attempt else str(os.getpid())
        return f"{self.spool_base()}.{suffix}.spool"
