"""Channels: Slack incoming webhook, e-mail through a relay, and a local JSON-lines alert log.

A channel that fails is retried with backoff within the run and then reported; it never stops
the others. Webhook URLs and SMTP passwords are never written to logs or errors.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import requests

log = logging.getLogger(__name__)


@dataclass
class Notification:
    """One message: a rule started firing, is still firing (re-notify), or resolved."""

    rule: str
    key: str
    status: str  # firing | resolved
    severity: str
    count: int
    threshold: int
    kind: str
    window_start: str
    window_end: str
    samples: list[str] = field(default_factory=list)
    query: str = ""
    link: str = ""
    renotify: bool = False

    def title(self) -> str:
        """One line: what and where."""
        what = "RESOLVED" if self.status == "resolved" else self.severity.upper()
        key = "" if self.key == "*" else f" [{self.key}]"
        again = " (still firing)" if self.renotify else ""
        return f"[{what}] {self.rule}{key}{again}"

    def text(self) -> str:
        """The body every channel sends."""
        cmp = ">" if self.kind == "frequency" else "<"
        lines = [
            self.title(),
            f"{self.count} records in {self.window_start} .. {self.window_end} (fires when {cmp} {self.threshold})",
        ]
        if self.samples:
            lines.append("Recent lines:")
            lines.extend(f"  {s}" for s in self.samples)
        if self.query:
            lines.append(f"See the rest: {self.query}")
        if self.link:
            lines.append(f"Dashboard: {self.link}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON alert log."""
        return {k: v for k, v in self.__dict__.items()}


class Channel(Protocol):
    """Sends one notification or raises."""

    name: str

    def send(self, n: Notification) -> None:
        """Deliver, or raise an exception whose text holds no secret."""


class ChannelError(RuntimeError):
    """A send failed; the message is safe to log."""


class SlackChannel:
    """POST {"text": ...} to an incoming webhook."""

    name = "slack"

    def __init__(self, webhook_url: str, timeout: float = 10.0) -> None:
        self._url = webhook_url
        self.timeout = timeout

    def send(self, n: Notification) -> None:
        """One POST; non-2xx raises."""
        try:
            r = requests.post(self._url, json={"text": n.text()}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ChannelError(f"Slack webhook unreachable: {type(exc).__name__}") from None
        if not 200 <= r.status_code < 300:
            raise ChannelError(f"Slack webhook answered HTTP {r.status_code}")


class EmailChannel:
    """One message per notification through the configured relay (never an external default)."""

    name = "email"

    def __init__(
        self, host: str, port: int, sender: str, to: list[str], username: str | None = None,
        password: str | None = None, starttls: bool = False, timeout: float = 10.0,
    ) -> None:  # fmt: skip
        self.host, self.port, self.sender, self.to = host, port, sender, to
        self.username, self._password, self.starttls, self.timeout = username, password, starttls, timeout

    def send(self, n: Notification) -> None:
        """SMTP with optional STARTTLS and login."""
        msg = EmailMessage()
        msg["Subject"] = n.title()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg.set_content(n.text())
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            detail = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else type(exc).__name__
            raise ChannelError(f"SMTP relay {self.host}:{self.port} refused the message ({detail})") from None


class LogChannel:
    """Appends one JSON object per line (logrotate-friendly: opened per write)."""

    name = "log"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def send(self, n: Notification) -> None:
        """Append and flush."""
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **n.as_dict()}
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise ChannelError(f"cannot write {self.path}: {exc.strerror}") from None


def deliver(channel: Channel, n: Notification, attempts: int, backoff: float) -> str | None:
    """Send with retries; None on success, else the last (secret-free) error."""
    error = None
    for attempt in range(attempts):
        try:
            channel.send(n)
            return None
        except ChannelError as exc:
            error = str(exc)
            log.warning("%s: attempt %d/%d for %s failed: %s", channel.name, attempt + 1, attempts, n.title(), error)
            if attempt + 1 < attempts:
                time.sleep(backoff * (2**attempt))
    return error
