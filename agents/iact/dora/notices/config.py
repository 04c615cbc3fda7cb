"""The dashboard's `alerts:` section: whether DORA events are sent, and through which channels.

`alerts.channels` is the alerter's `channels:` mapping (alerting.yaml) with the same keys, read by the
alerter's own e-mail parser: an operator copies one block between the two files and meets the same
checks and the same messages. The dashboard keeps its own copy rather than reading alerting.yaml,
which belongs to another service user and may live on another host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from iact.alerting.config import EmailConfig, SlackConfig
from iact.alerting.config import _email as alerting_email  # the alerter's parser, so both files read alike
from iact.yamlconfig import ConfigError, Section

# In the service's log directory: the unit may write there (ProtectSystem=strict), logrotate rotates it.
DEFAULT_LOG_PATH = "/var/log/iact/dora/dora_alerts.log"


@dataclass(frozen=True)
class AlertsConfig:
    """Off by default: turning it on is a decision about who gets paged, not a side effect of an upgrade."""

    enabled: bool = False
    # The page each message links to (filtered on the event's service); empty: no link.
    dashboard_url: str = ""
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    log_path: str | None = DEFAULT_LOG_PATH
    attempts: int = 3
    backoff: float = 2.0
    # Notices waiting per channel; beyond it a notice is dropped (and logged), never the request held.
    queue_size: int = 100

    def channel_names(self) -> tuple[str, ...]:
        """The configured channels, in delivery order."""
        named = (("slack", self.slack), ("email", self.email), ("log", self.log_path))
        return tuple(name for name, conf in named if conf)


def _slack(s: Section) -> SlackConfig | None:
    """channels.slack as the alerter reads it (an incoming webhook and its timeout)."""
    if not s.data:
        return None
    url = s.get("webhook_url", str, None)
    if not url or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{s.key('webhook_url')}: give the incoming webhook URL (https://hooks.slack.com/...)")
    conf = SlackConfig(url, s.positive("timeout", 10.0))
    s.done()
    return conf


def _log_path(s: Section, enabled: bool) -> str | None:
    path = s.get("path", str, DEFAULT_LOG_PATH) if s.get("enabled", bool, True) else None
    s.done()
    # Checked only when alerts are on: a developer's `iact-dora runserver` has no /var/log/iact/dora.
    if enabled and path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ConfigError(
            f"{s.key('path')}: the directory of {path} does not exist; create it (writable by the dashboard's "
            f"user) or set {s.key('enabled')}: false"
        )
    return path


def from_section(s: Section) -> AlertsConfig:
    """Validate `alerts:` whole at start, on or off, so that turning it on later meets no new error."""
    enabled = s.get("enabled", bool, False)
    dashboard_url = s.get("dashboard_url", str, "")
    parts = urlsplit(dashboard_url)
    if dashboard_url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ConfigError(
            f"{s.key('dashboard_url')}: {dashboard_url!r} is not an http(s) URL; give the dashboard's address as "
            "users open it, e.g. https://dora.example.internal/api/dora/dashboard/, or leave it empty for no link"
        )
    channels = s.section("channels")
    slack = _slack(channels.section("slack"))
    email = alerting_email(channels.section("email"))
    log_path = _log_path(channels.section("log"), enabled)
    channels.done()
    conf = AlertsConfig(
        enabled=enabled,
        dashboard_url=dashboard_url,
        slack=slack,
        email=email,
        log_path=log_path,
        attempts=s.count("retry_attempts", 3),
        backoff=s.positive("retry_backoff", 2.0),
        queue_size=s.count("queue_size", 100),
    )
    s.done()
    if enabled and not conf.channel_names():
        raise ConfigError(
            f"{s.key('enabled')}: true, but every channel is off; set {channels.key('slack')}.webhook_url, "
            f"{channels.key('email')} (host, from, to) or {channels.key('log')}.path, or set enabled: false"
        )
    return conf
