"""iact-alert's configuration (/etc/iact/alerting.yaml): Cassandra, rules file, schedule, channels."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from iact.alerting.notify import SECURITY
from iact.alerting.rules import Rule, RuleError, load_rules, parse_duration, parse_rules
from iact.cassandra.names import cql_identifier
from iact.cassandra.settings import ConnectionSettings, SettingsError
from iact.yamlconfig import ConfigError, Section


@dataclass(frozen=True)
class SlackConfig:
    """An incoming webhook."""

    webhook_url: str = field(repr=False)
    timeout: float = 10.0


@dataclass(frozen=True)
class EmailConfig:
    """A relay the operator names; there is no default host. Verified TLS unless `security` is none."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: str = "starttls"  # starttls | tls (implicit, port 465) | none (no login allowed)
    ca_file: str | None = None  # PEM CA for the relay's certificate; None: the system's CAs


@dataclass(frozen=True)
class AlertConfig:
    """Everything one run needs."""

    connection: ConnectionSettings
    rules: tuple[Rule, ...]
    keyspace: str = "logging"
    name: str = "iact"
    interval: int = 300
    query_delay: int = 120
    # How long the evaluation lease outlives its holder: a run renews it every third of this while
    # it works, so only a holder that died (kill -9, host lost) lets it lapse, and the next run
    # takes over once it has. Default: the interval, at least a minute.
    lease_ttl: int = 300
    max_catchup: int = 3600
    dashboard_url: str = ""
    # Built-in rules' notices name their runbook: docs/runbooks/alert-<rule>.md, or under this base
    # (e.g. https://git.example.internal/iact/blob/main/docs/runbooks) for a clickable link.
    runbook_base: str = ""
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    log_path: str | None = "/var/log/iact/log_alerts.log"
    attempts: int = 3
    backoff: float = 2.0


def _check_ca(s: Section, path: str, signs: str) -> None:
    """Load a CA file once at start, so a run never fails on a file it could have refused up front."""
    try:
        ssl.create_default_context(cafile=path)
    except OSError as exc:  # ssl.SSLError included
        reason = "no PEM certificate in it" if isinstance(exc, ssl.SSLError) else exc.strerror
        raise ConfigError(
            f"{s.key('ca_file')}: cannot load {path} ({reason}); give the PEM file of the CA that signed {signs}"
        ) from None


def _connection(s: Section) -> ConnectionSettings:
    hosts = s.get("hosts", (list, str), None) or os.environ.get("IACT_CASSANDRA_HOSTS", "")
    if isinstance(hosts, str):
        hosts = [h for h in hosts.split(",") if h.strip()]
    username = s.get("username", str, None)
    ca_file = s.get("ca_file", str, None) or None
    if ca_file:
        _check_ca(s, ca_file, "the cluster's certificates (the appliance CA)")
    try:
        conn = ConnectionSettings(
            contact_points=tuple(str(h).strip() for h in hosts),
            port=s.count("port", 9042),
            username=username,
            password=s.get("password", str, None) or (os.environ.get("IACT_CASSANDRA_PASSWORD") if username else None),
            ca_file=ca_file,
            local_dc=s.get("local_dc", str, None),
        )
    except SettingsError as exc:
        raise ConfigError(f"cassandra: {exc}") from exc
    return conn


_SECURITY_HELP = "starttls (port 25 or 587), tls (implicit TLS, port 465) or none (a relay on this host, no login)"


def _email(s: Section) -> EmailConfig | None:
    """channels.email, checked whole here so that a run never meets a setting it cannot honour."""
    if not s.data:
        return None
    host, to, sender = s.get("host", str, None), s.get("to", (list, str), None), s.get("from", str, None)
    if not host:
        raise ConfigError(f"{s.key('host')}: name your SMTP relay (there is no default mail server)")
    if not to or not sender:
        raise ConfigError(f"{s.path}: set `from` and `to` (a list of addresses)")
    to = [to] if isinstance(to, str) else to
    for name, values in (("from", [sender]), ("to", to)):
        if not all(isinstance(v, str) and v.isprintable() for v in values):
            raise ConfigError(f"{s.key(name)}: an address holds a control character (a line break?) or is no string")
    if "starttls" in s.data:
        s.used.add("starttls")
        raise ConfigError(
            f"{s.key('starttls')}: replaced by `security`; write security: starttls (verified), "
            "or tls for implicit TLS on port 465, or none for a plain relay on this host"
        )
    security = s.get("security", str, "starttls")
    if security not in SECURITY:
        raise ConfigError(f"{s.key('security')}: {security!r} must be one of {', '.join(SECURITY)}: {_SECURITY_HELP}")
    username, password = s.get("username", str, None), s.get("password", str, None)
    if password and not username:
        raise ConfigError(f"{s.key('password')}: set username too, or remove the password")
    if username and security == "none":
        raise ConfigError(
            f"{s.key('username')}: the relay password would cross the network in clear; set security: starttls "
            "(or tls, port 465), or remove username and password for a relay that needs no login"
        )
    ca_file = s.get("ca_file", str, None)
    if ca_file and security == "none":
        raise ConfigError(f"{s.key('ca_file')}: set, but security is none; set security: starttls or tls")
    if ca_file:
        _check_ca(s, ca_file, "the relay's certificate")
    conf = EmailConfig(
        host=host, port=s.count("port", 465 if security == "tls" else 25), sender=sender, to=tuple(to),
        username=username, password=password, security=security, ca_file=ca_file or None,
    )  # fmt: skip
    s.done()
    return conf


def from_mapping(data: object, base_dir: Path | None = None) -> AlertConfig:
    """Validate a parsed YAML document (rules inline under `rules:` or in `rules_file`)."""
    top = Section(data, "")
    cassandra = top.section("cassandra")
    connection = _connection(cassandra)
    keyspace = cassandra.get("keyspace", str, "logging")
    cassandra.done()
    try:
        cql_identifier(keyspace, "keyspace")
    except SettingsError as exc:
        raise ConfigError(f"cassandra: {exc}") from exc
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
    email = _email(channels.section("email"))
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

    configured = {name for name, on in (("slack", slack), ("email", email), ("log", log_path)) if on}
    for rule in rules:
        for i, step in enumerate(rule.escalation):
            missing = [c for c in step.channels if c not in configured]
            if missing:
                raise ConfigError(
                    f"rule {rule.name!r}: escalation[{i}]: channels: {missing[0]} is not configured, so the step "
                    f"would reach nobody; configure channels.{missing[0]} or name a configured channel "
                    f"({', '.join(sorted(configured)) or 'none is'})"
                )
    interval = seconds("interval", "5m")
    conf = AlertConfig(
        connection=connection,
        rules=tuple(rules),
        keyspace=keyspace,
        name=top.get("name", str, "iact"),
        interval=interval,
        query_delay=seconds("query_delay", "2m"),
        lease_ttl=seconds("lease_ttl", f"{max(interval, 60)}s"),
        max_catchup=seconds("max_catchup", "1h"),
        dashboard_url=top.get("dashboard_url", str, ""),
        runbook_base=top.get("runbook_base", str, ""),
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
