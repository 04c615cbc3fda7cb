"""The dashboard's configuration (/etc/iact/dora/dora.yaml), validated once before Django starts.

Django settings are module globals; reading them from one typed object means a typo in the file
fails at start with the key's name instead of surfacing as a 500 on the first request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

import yaml

from iact.dora.jobs.schedule import ScheduleError, longest_gap
from iact.dora.jobs.status import NAME as JOB_NAME
from iact.dora.metrics.benchmarks import BENCHMARKS
from iact.dora.metrics.benchmarks import NEWEST as BENCHMARK_NEWEST
from iact.dora.notices.config import AlertsConfig
from iact.dora.notices.config import from_section as alerts_from_section
from iact.yamlconfig import ConfigError, Section

DEFAULT_PATH = "/etc/iact/dora/dora.yaml"
Network = IPv4Network | IPv6Network
LOOPBACK = (ip_network("127.0.0.1/32"), ip_network("::1/128"))


@dataclass(frozen=True)
class DatabaseConfig:
    """MariaDB in production; SQLite only for a developer's `iact-dora runserver`."""

    engine: str = "sqlite"
    name: str = "dora.sqlite3"
    user: str = ""
    password: str = field(default="", repr=False)
    host: str = ""
    port: int = 3306
    socket: str = ""


@dataclass(frozen=True)
class EmailConfig:
    """Mail goes to the console unless the operator names a relay: never an external SMTP by default."""

    backend: str = "console"
    host: str = "localhost"
    port: int = 25
    user: str = ""
    password: str = field(default="", repr=False)
    use_tls: bool = False
    sender: str = "dora@localhost"


@dataclass(frozen=True)
class CassandraLogConfig:
    """Where the dashboard ships its own logs (the iact.applog handler); off when hosts is empty."""

    hosts: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    spool_path: str = ""
    # The CA that signed the nodes' certificates: TLS, verified. Empty: plaintext.
    ca_file: str = ""


@dataclass(frozen=True)
class LogsConfig:
    """The log console's read-only Cassandra account (the cluster's and CA are the `cassandra` section's).

    Off when the password is empty: /logs/ then answers 503 naming what to set.
    """

    username: str = "iact_reader"
    password: str = field(default="", repr=False)
    keyspace: str = "logging"
    # Rows a search may read per page when it filters here (text, non-indexed columns).
    scan_limit: int = 20_000


@dataclass(frozen=True)
class HealthConfig:
    """What the health check probes and where it writes its verdict."""

    status_file: str = "/var/lib/iact/dora/health.json"
    url: str = "http://127.0.0.1:8000/healthz"
    disk_paths: tuple[str, ...] = ("/",)
    disk_max_percent: float = 90.0
    cassandra_hosts: tuple[str, ...] = ()
    cassandra_port: int = 9042


@dataclass(frozen=True)
class JobConfig:
    """One of the dashboard's cron jobs as /health/ shows it: where iact-dora-job records it, how often it runs.

    The role writes these from the same list as /etc/cron.d/iact-dora, so the page judges each job
    by the schedule cron really has.
    """

    name: str
    title: str
    schedule: str  # five cron fields; only minute and hour may be other than *
    status_file: str
    log_file: str = ""

    @property
    def period(self) -> timedelta:
        """The longest wait between two scheduled runs."""
        return longest_gap(self.schedule)


# The role's defaults (roles/django_dora/vars/main.yml, _django_dora_jobs).
DEFAULT_JOBS = (
    JobConfig("sessions", "Session cleanup", "15 */6 * * *", "/var/lib/iact/dora/jobs/sessions.json",
              "/var/log/iact/dora/jobs.log"),
    JobConfig("health", "Health check", "*/5 * * * *", "/var/lib/iact/dora/jobs/health.json",
              "/var/log/iact/dora/health.log"),
    JobConfig("backup", "Database backup", "0 2 * * *", "/var/lib/iact/dora-backup/backup.json",
              "/var/log/iact/dora-backup/backup.log"),
)  # fmt: skip


@dataclass(frozen=True)
class ApiLimits:
    """What one API client may send: bodies are read whole into memory, and every request hits the database."""

    max_body_bytes: int = 2 * 1024**2  # nginx's client_max_body_size in front is 2m too
    rate_limit: int = 600  # requests per token per window
    rate_window_seconds: int = 60


@dataclass(frozen=True)
class LoginLimits:
    """Failed logins per user name and client address before that pair is refused for a while."""

    max_failures: int = 5
    window_seconds: int = 900
    lockout_seconds: int = 900


@dataclass(frozen=True)
class DoraConfig:
    """Everything settings.py needs."""

    secret_key: str = field(repr=False, default="")
    debug: bool = False
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    csrf_trusted_origins: tuple[str, ...] = ()
    https: bool = False
    time_zone: str = "UTC"
    static_root: str = ""
    log_file: str = ""
    cache: str = "locmem"
    production_environments: tuple[str, ...] = ("production",)
    # The DORA report year whose clusters judge the levels (iact.dora.metrics.benchmarks).
    benchmark: str = BENCHMARK_NEWEST
    # An incident naming no deployment counts against the service's latest one before it opened, or not at all.
    incident_attribution: str = "latest_deployment"
    github_webhook_secret: str = field(default="", repr=False)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    cassandra: CassandraLogConfig = field(default_factory=CassandraLogConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    # The cron jobs /health/ shows; the role writes the same list as /etc/cron.d/iact-dora.
    jobs: tuple[JobConfig, ...] = DEFAULT_JOBS
    api: ApiLimits = field(default_factory=ApiLimits)
    login: LoginLimits = field(default_factory=LoginLimits)
    # DORA events through the alerter's channels (iact.dora.notices); off unless alerts.enabled.
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    # Empty: /admin/ answers from anywhere (the login is still rate-limited).
    admin_networks: tuple[Network, ...] = ()
    # Peers whose X-Forwarded-For is believed: nginx on the same host.
    trusted_proxies: tuple[Network, ...] = LOOPBACK
    password_min_length: int = 12


def _strings(s: Section, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = s.get(name, (list, str), None)
    if value is None:
        return default
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return tuple(str(v).strip() for v in value)


def _networks(s: Section, name: str, default: tuple[Network, ...]) -> tuple[Network, ...]:
    """CIDRs (or single addresses), as a list or a comma-separated string."""
    networks = []
    for value in _strings(s, name, tuple(str(n) for n in default)):
        try:
            networks.append(ip_network(value))
        except ValueError as exc:
            raise ConfigError(
                f"{s.key(name)}: {value!r} is not a network ({exc}); write CIDRs such as 10.0.0.0/8 or "
                "192.0.2.7, with the host bits zero"
            ) from exc
    return tuple(networks)


def _choice(s: Section, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = s.get(name, str, default)
    if value not in choices:
        raise ConfigError(f"{s.key(name)}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def _jobs(top: Section) -> tuple[JobConfig, ...]:
    """The `jobs` list: name, title, schedule, status_file and log_file of each."""
    items = top.get("jobs", list, None)
    if items is None:
        return DEFAULT_JOBS
    jobs: list[JobConfig] = []
    for i, item in enumerate(items):
        s = Section(item, f"jobs[{i}]")
        job = JobConfig(
            name=s.get("name", str, ""),
            title=s.get("title", str, ""),
            schedule=s.get("schedule", str, ""),
            status_file=s.get("status_file", str, ""),
            log_file=s.get("log_file", str, ""),
        )
        s.done()
        if not JOB_NAME.match(job.name) or job.name in {j.name for j in jobs}:
            raise ConfigError(f"{s.key('name')}: {job.name!r} must be a new name of lowercase letters, digits, - and _")
        if not job.status_file:
            raise ConfigError(f"{s.key('status_file')}: required, the file iact-dora-job writes (DIR/NAME.json)")
        try:
            longest_gap(job.schedule)
        except ScheduleError as exc:
            raise ConfigError(f"{s.key('schedule')}: {exc}") from exc
        jobs.append(job if job.title else replace(job, title=job.name))
    return tuple(jobs)


def _secret_key(s: Section) -> str:
    """The key itself, or a file holding it (the role generates that file on the host)."""
    key = s.get("secret_key", str, "")
    key_file = s.get("secret_key_file", str, "")
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"secret_key_file: cannot read {key_file} ({exc.strerror}); create it with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > FILE` or fix the path"
            ) from exc
    return key


def from_mapping(data: object) -> DoraConfig:
    """Validate a parsed YAML document."""
    top = Section(data, "")
    db = top.section("database")
    database = DatabaseConfig(
        engine=_choice(db, "engine", "sqlite", ("mysql", "sqlite")),
        name=db.get("name", str, "dora.sqlite3"),
        user=db.get("user", str, ""),
        password=db.get("password", str, "") or os.environ.get("IACT_DORA_DB_PASSWORD", ""),
        host=db.get("host", str, ""),
        port=db.count("port", 3306),
        socket=db.get("socket", str, ""),
    )
    db.done()
    if database.engine == "mysql" and not database.user:
        raise ConfigError("database.user: MariaDB needs a user; set database.user (and database.password)")
    em = top.section("email")
    email = EmailConfig(
        backend=_choice(em, "backend", "console", ("console", "smtp")),
        host=em.get("host", str, "localhost"),
        port=em.count("port", 25),
        user=em.get("user", str, ""),
        password=em.get("password", str, ""),
        use_tls=em.get("use_tls", bool, False),
        sender=em.get("sender", str, "dora@localhost"),
    )
    em.done()
    cs = top.section("cassandra")
    cassandra = CassandraLogConfig(
        hosts=",".join(_strings(cs, "hosts", ())),
        username=cs.get("username", str, ""),
        password=cs.get("password", str, ""),
        spool_path=cs.get("spool_path", str, ""),
        ca_file=cs.get("ca_file", str, ""),
    )
    if cassandra.ca_file and not os.path.isfile(cassandra.ca_file):
        raise ConfigError(f"cassandra.ca_file: {cassandra.ca_file} does not exist; set it to the appliance CA")
    cs.done()
    ls = top.section("logs")
    logs = LogsConfig(
        username=ls.get("username", str, LogsConfig.username),
        password=ls.get("password", str, ""),
        keyspace=ls.get("keyspace", str, LogsConfig.keyspace),
        scan_limit=ls.count("scan_limit", LogsConfig.scan_limit, minimum=100),
    )
    if logs.password and not cassandra.hosts:
        raise ConfigError("logs.password is set but cassandra.hosts is empty: list the nodes under cassandra.hosts")
    ls.done()
    hs = top.section("health")
    health = HealthConfig(
        status_file=hs.get("status_file", str, HealthConfig.status_file),
        url=hs.get("url", str, HealthConfig.url),
        disk_paths=_strings(hs, "disk_paths", ("/",)),
        disk_max_percent=hs.positive("disk_max_percent", 90.0),
        cassandra_hosts=_strings(hs, "cassandra_hosts", ()),
        cassandra_port=hs.count("cassandra_port", 9042),
    )
    hs.done()
    ap = top.section("api")
    api = ApiLimits(
        max_body_bytes=ap.size("max_body_bytes", ApiLimits.max_body_bytes, minimum=1024),
        rate_limit=ap.count("rate_limit", ApiLimits.rate_limit),
        rate_window_seconds=ap.count("rate_window_seconds", ApiLimits.rate_window_seconds),
    )
    ap.done()
    lg = top.section("login")
    login = LoginLimits(
        max_failures=lg.count("max_failures", LoginLimits.max_failures),
        window_seconds=lg.count("window_seconds", LoginLimits.window_seconds),
        lockout_seconds=lg.count("lockout_seconds", LoginLimits.lockout_seconds),
    )
    lg.done()
    alerts = alerts_from_section(top.section("alerts"))
    config = DoraConfig(
        secret_key=_secret_key(top),
        debug=top.get("debug", bool, False),
        allowed_hosts=_strings(top, "allowed_hosts", DoraConfig.allowed_hosts),
        csrf_trusted_origins=_strings(top, "csrf_trusted_origins", ()),
        https=top.get("https", bool, False),
        time_zone=top.get("time_zone", str, "UTC"),
        static_root=top.get("static_root", str, ""),
        log_file=top.get("log_file", str, ""),
        cache=_choice(top, "cache", "locmem", ("locmem", "db")),
        production_environments=_strings(top, "production_environments", ("production",)),
        benchmark=_choice(top, "benchmark", BENCHMARK_NEWEST, tuple(sorted(BENCHMARKS))),
        incident_attribution=_choice(top, "incident_attribution", "latest_deployment", ("latest_deployment", "none")),
        github_webhook_secret=top.get("github_webhook_secret", str, ""),
        database=database,
        email=email,
        cassandra=cassandra,
        logs=logs,
        health=health,
        jobs=_jobs(top),
        api=api,
        login=login,
        alerts=alerts,
        admin_networks=_networks(top, "admin_networks", ()),
        trusted_proxies=_networks(top, "trusted_proxies", LOOPBACK),
        password_min_length=top.count("password_min_length", 12, minimum=8),
    )
    top.done()
    if not config.secret_key and not config.debug:
        raise ConfigError("secret_key: required when debug is off; set secret_key_file (the role generates one)")
    if not config.production_environments:
        raise ConfigError("production_environments: name at least one environment, e.g. [production]")
    return config


def load(path: str | None = None) -> DoraConfig:
    """The configuration from IACT_DORA_CONFIG (or the default path); a developer default without a file."""
    path = path or os.environ.get("IACT_DORA_CONFIG", "")
    if not path:
        if os.path.exists(DEFAULT_PATH):
            path = DEFAULT_PATH
        else:
            return from_mapping({"debug": True, "secret_key": "dev-only-not-secret"})
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror}); set IACT_DORA_CONFIG") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return from_mapping(data)
