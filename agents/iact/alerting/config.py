"""iact-alert's configuration (/etc/iact/alerting.yaml): Cassandra, rules file, schedule, channels."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from iact.alerting.rules import Rule, RuleError, load_rules, parse_duration, parse_rules
from iact.cassandra.settings import ConnectionSettings, SettingsError
from iact.yamlconfig import ConfigError, Section


@dataclass(frozen=True)
class SlackConfig:
    """An incoming webhook."""

    webhook_url: str = field(repr=False)
    timeout: float = 10.0


@dataclass(frozen=True)
class EmailConfig:
    """A relay the operator names; there is no default host."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False


@dataclass(frozen=True)
class AlertConfig:
    """Everything one run needs."""

    connection: ConnectionSettings
    rules: tuple[Rule, ...]
    keyspace: str = "logging"
    name: str = "iact"
    interval: int = 300
    query_delay: int = 120
    max_catchup: int = 3600
    dashboard_url: str = ""
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    log_path: str | None = "/var/log/iact/log_alerts.log"
    attempts: int = 3
    backoff: float = 2.0


def _connection(s: Section) -> ConnectionSettings:
    hosts = s.get("hosts", (list, str), None) or os.environ.get("IACT_CASSANDRA_HOSTS", "")
    if isinstance(hosts, str):
        hosts = [h for h in hosts.split(",") if h.strip()]
    username = s.get("username", str, None)
    try:
        conn = ConnectionSettings(
            contact_points=tuple(str(h).strip() for h in hosts),
            port=s.count("port", 9042),
            username=username,
            password=s.get("password", str, None) or (os.environ.get("IACT_CASSANDRA_PASSWORD") if username else None),
            ca_file=s.get("ca_file", str, None),
            local_dc=s.get("local_dc", str, None),
        )
    except SettingsError as exc:
        raise ConfigError(f"cassandra: {exc}") from exc
    return conn


def from_mapping(data: object, base_dir: Path | None = None) -> AlertConfig:
    """Validate a parsed YAML document (rules inline under `rules:` or in `rules_file`)."""
    top = Section(data, "")
    cassandra = top.section("cassandra")
    connection = _connection(cassandra)
    keyspace = cassandra.get("keyspace", str, "logging")
    cassandra.done()
    try:
        rules_file = top.get("rules_file", str, None)
        if rules_file:
            path = Path(rules_file) if base_dir is None else base_dir / rules_file
            rules = load_rules(path)
        else:
            rules = parse_rules(top.get("rules", list, None), top.get("builtin_rules", bool, True))
        top.used.update({"rules", "builtin_rules"})
    except RuleError as exc:
        raise ConfigError(str(exc)) from exc
    channels = top.section("channels")
    slack_s = channels.section("slack")
    slack = None
    if slack_s.data:
        url = slack_s.get("webhook_url", str, None)
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigError("channels.slack.webhook_url: give the incoming webhook URL (https://hooks.slack.com/...)")
        slack = SlackConfig(url, slack_s.positive("timeout", 10.0))
        slack_s.done()
    email_s = channels.section("email")
    email = None
    if email_s.data:
        host = email_s.get("host", str, None)
        to = email_s.get("to", (list, str), None)
        sender = email_s.get("from", str, None)
        if not host:
            raise ConfigError("channels.email.host: name your SMTP relay (there is no default mail server)")
        if not to or not sender:
            raise ConfigError("channels.email: set `from` and `to` (a list of addresses)")
        email = EmailConfig(
            host=host, port=email_s.count("port", 25), sender=sender,
            to=tuple([to] if isinstance(to, str) else to), username=email_s.get("username", str, None),
            password=email_s.get("password", str, None), starttls=email_s.get("starttls", bool, False),
        )  # fmt: skip
        email_s.done()
    log_s = channels.section("log")
    log_path = log_s.get("path", str, "/var/log/iact/log_alerts.log") if log_s.get("enabled", bool, True) else None
    log_s.done()
    channels.done()

    def seconds(name: str, default: str) -> int:
        top.used.add(name)
        try:
            return parse_duration(top.data.get(name, default), name)
        except RuleError as exc:
            raise ConfigError(str(exc)) from exc

    conf = AlertConfig(
        connection=connection,
        rules=tuple(rules),
        keyspace=keyspace,
        name=top.get("name", str, "iact"),
        interval=seconds("interval", "5m"),
        query_delay=seconds("query_delay", "2m"),
        max_catchup=seconds("max_catchup", "1h"),
        dashboard_url=top.get("dashboard_url", str, ""),
        slack=slack,
        email=email,
        log_path=log_path,
        attempts=top.count("retry_attempts", 3),
        backoff=top.positive("retry_backoff", 2.0),
    )
    top.done()
    return conf


def load(path: str | os.PathLike[str]) -> AlertConfig:
    """Read and validate; ConfigError names the file, key and fix."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; pass --config with the right file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return from_mapping(data, Path(path).parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
