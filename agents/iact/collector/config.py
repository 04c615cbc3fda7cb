"""The collector's configuration: one YAML file, validated once at start (and on SIGHUP).

Every error names the key and says what to put there, because the reader is an operator
looking at a failed systemd unit, not at this code.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from iact.cassandra.names import cql_identifier
from iact.cassandra.settings import ConnectionSettings, SettingsError
from iact.yamlconfig import ConfigError, Section

__all__ = ["CollectorConfig", "ConfigError", "FileSource", "from_mapping", "load"]

FORMATS = ("auto", "syslog", "kernel", "raw")
START_POSITIONS = ("end", "beginning")


@dataclass(frozen=True)
class FileSource:
    """One path or glob to follow."""

    path: str
    source: str
    format: str = "auto"


@dataclass(frozen=True)
class CassandraConfig:
    """Where rows go."""

    hosts: tuple[str, ...]
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    local_dc: str | None = None
    keyspace: str = "logging"
    table: str = "infrastructure_logs"
    consistency: str = "LOCAL_QUORUM"
    ttl_seconds: int | None = None

    def connection(self) -> ConnectionSettings:
        """Driver settings; IACT_CASSANDRA_PASSWORD fills a password left out of the file."""
        return ConnectionSettings(
            contact_points=self.hosts,
            port=self.port,
            username=self.username,
            password=self.password or (os.environ.get("IACT_CASSANDRA_PASSWORD") if self.username else None),
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            local_dc=self.local_dc,
        )


@dataclass(frozen=True)
class CollectorConfig:
    """Everything the agent reads from /etc/iact/collector.yaml."""

    cassandra: CassandraConfig
    host: str = field(default_factory=socket.gethostname)
    files: tuple[FileSource, ...] = ()
    journal: bool = True
    journal_command: str = "journalctl"
    start_position: str = "end"
    poll_interval: float = 0.25
    rotate_wait: float = 5.0
    max_line_bytes: int = 64 * 1024
    batch_max_rows: int = 1000
    batch_max_bytes: int = 60 * 1024
    batch_max_wait: float = 1.0
    queue_lines: int = 10_000
    queue_batches: int = 4
    state_dir: str = "/var/lib/iact/collector"
    spool_max_bytes: int = 256 * 1024**2
    metrics_interval: float = 60.0
    metrics_disks: tuple[str, ...] = ("/",)
    stats_interval: float = 60.0
    status_interval: float = 2.0
    shutdown_timeout: float = 10.0
    log_file: str | None = None
    log_level: str = "INFO"

    @property
    def checkpoint_file(self) -> Path:
        """Acknowledged positions of every source."""
        return Path(self.state_dir) / "checkpoints.json"

    @property
    def status_file(self) -> Path:
        """What `iact-collector status` reads."""
        return Path(self.state_dir) / "status.json"

    @property
    def spool_file(self) -> Path:
        """Rows waiting for Cassandra."""
        return Path(self.state_dir) / "spool" / "rows.spool"

    @property
    def dead_letter_file(self) -> Path:
        """Rows Cassandra can never take, with their error (see `status`)."""
        return Path(self.state_dir) / "dead-letter.jsonl"

    @property
    def runs_file(self) -> Path:
        """Starts and clean stops, to tell a crash loop from a restart."""
        return Path(self.state_dir) / "runs.json"


def _hosts(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(h, str) and h.strip() for h in value) or not value:
        raise ConfigError("cassandra.hosts: list the Cassandra contact points, e.g. [10.0.0.1, 10.0.0.2]")
    return tuple(h.strip() for h in value)


def _cassandra(s: Section) -> CassandraConfig:
    conf = CassandraConfig(
        hosts=_hosts(s.get("hosts", (list, str), os.environ.get("IACT_CASSANDRA_HOSTS") or None)),
        port=s.count("port", 9042),
        username=s.get("username", str, None),
        password=s.get("password", str, None),
        ca_file=s.get("ca_file", str, None),
        cert_file=s.get("cert_file", str, None),
        key_file=s.get("key_file", str, None),
        local_dc=s.get("local_dc", str, None),
        keyspace=s.get("keyspace", str, "logging"),
        table=s.get("table", str, "infrastructure_logs"),
        consistency=s.get("consistency", str, "LOCAL_QUORUM").upper(),
        ttl_seconds=s.get("ttl_seconds", int, None),
    )
    s.done()
    try:
        conf.connection()
        cql_identifier(conf.keyspace, "keyspace")
        cql_identifier(conf.table, "table")
    except SettingsError as exc:
        raise ConfigError(f"cassandra: {exc}") from exc
    from cassandra import ConsistencyLevel  # the driver is heavy; only import once the file parsed

    if not hasattr(ConsistencyLevel, conf.consistency):
        raise ConfigError(f"cassandra.consistency: {conf.consistency!r} is not a consistency level; use LOCAL_QUORUM")
    return conf


def _files(value: object) -> tuple[FileSource, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("sources.files: expected a list of {path: ..., source: ...} entries")
    out = []
    for i, item in enumerate(value):
        s = Section({"path": item} if isinstance(item, str) else item, f"sources.files[{i}]")
        path = s.get("path", str, None)
        if not path or not path.startswith("/"):
            raise ConfigError(f"sources.files[{i}].path: give an absolute path or glob, e.g. /var/log/syslog")
        fmt = s.get("format", str, "auto")
        if fmt not in FORMATS:
            raise ConfigError(f"sources.files[{i}].format: {fmt!r} is not one of {', '.join(FORMATS)}")
        default_source = os.path.basename(path).split(".")[0].replace("*", "") or "file"
        source = s.get("source", str, default_source)
        s.done()
        out.append(FileSource(path=path, source=source, format=fmt))
    return tuple(out)


def from_mapping(data: object) -> CollectorConfig:
    """Validate a parsed YAML document."""
    top = Section(data, "")
    cassandra = _cassandra(top.section("cassandra"))
    sources = top.section("sources")
    files = _files(sources.get("files", list, None))
    journal = sources.section("journal")
    journal_on = journal.get("enabled", bool, True)
    journal_cmd = journal.get("command", str, "journalctl")
    journal.done()
    sources.done()
    start = top.get("start_position", str, "end")
    if start not in START_POSITIONS:
        raise ConfigError(f"start_position: {start!r} must be 'end' (skip old lines) or 'beginning'")
    batch = top.section("batch")
    spool = top.section("spool")
    metrics = top.section("metrics")
    disks = metrics.get("disks", list, ["/"])
    if not all(isinstance(d, str) and d.startswith("/") for d in disks):
        raise ConfigError("metrics.disks: list mount points, e.g. ['/', '/var/lib/cassandra']")
    level = str(top.get("log_level", str, "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log_level: {level!r} must be DEBUG, INFO, WARNING or ERROR")
    conf = CollectorConfig(
        cassandra=cassandra,
        host=top.get("host", str, None) or socket.gethostname(),
        files=files,
        journal=journal_on,
        journal_command=journal_cmd,
        start_position=start,
        poll_interval=top.positive("poll_interval", 0.25),
        rotate_wait=top.positive("rotate_wait", 5.0),
        max_line_bytes=top.size("max_line_bytes", 64 * 1024, minimum=256),
        batch_max_rows=batch.count("max_rows", 1000),
        batch_max_bytes=batch.size("max_bytes", 60 * 1024, minimum=1024),
        batch_max_wait=batch.positive("max_wait", 1.0),
        queue_lines=top.count("queue_lines", 10_000),
        queue_batches=top.count("queue_batches", 4),
        state_dir=top.get("state_dir", str, "/var/lib/iact/collector"),
        spool_max_bytes=spool.size("max_bytes", 256 * 1024**2, minimum=64 * 1024),
        metrics_interval=metrics.get("interval", float, 60.0),
        metrics_disks=tuple(disks),
        stats_interval=top.positive("stats_interval", 60.0),
        status_interval=top.positive("status_interval", 2.0),
        shutdown_timeout=top.positive("shutdown_timeout", 10.0),
        log_file=top.get("log_file", str, None),
        log_level=level,
    )
    for s in (batch, spool, metrics, top):
        s.done()
    if not conf.files and not conf.journal:
        raise ConfigError("sources: nothing to collect; list sources.files or set sources.journal.enabled: true")
    if conf.batch_max_rows > 1000:
        raise ConfigError("batch.max_rows: at most 1000 rows per batch (larger batches hurt the coordinator)")
    return conf


def load(path: str | os.PathLike[str]) -> CollectorConfig:
    """Read and validate the file; ConfigError says what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; pass --config with the right file") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
