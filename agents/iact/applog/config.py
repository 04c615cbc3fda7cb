"""The handler's settings, validated once when the handler is built (dictConfig kwargs)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from iact.cassandra.settings import ConnectionSettings, SettingsError


@dataclass(frozen=True)
class HandlerConfig:
    """Everything the writer needs; defaults follow the issue's contract."""

    hosts: str = ""
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
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

    def connection(self) -> ConnectionSettings:
        """Connection settings, with IACT_CASSANDRA_* variables filling what was not passed."""
        return ConnectionSettings.from_env(
            self.hosts or None,
            self.port,
            username=self.username,
            password=self.password,
            ca_file=self.ca_file,
            local_dc=self.local_dc,
        )

    def spool_file(self) -> str:
        """Per-process spool, so gunicorn workers never interleave one file."""
        base = self.spool_path or os.path.join(os.environ.get("TMPDIR", "/tmp"), f"iact-applog-{self.app}")
        return f"{base}.{os.getpid()}.spool"
