"""Channels: Slack incoming webhook, e-mail through a relay, and a local JSON-lines alert log.

A channel that fails is retried with backoff within the run and then reported; it never stops
the others, nor the run's state save. Webhook URLs and SMTP passwords are never written to logs
or errors. Keys come from log rows (a logger or program name anyone able to log can choose), so
they are made printable before they reach a subject, a title or a Slack message.
"""

from __future__ import annotations

import json
import logging
import shlex
import smtplib
import ssl
import time
import traceback
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import requests

log = logging.getLogger(__name__)

# How the e-mail channel protects the connection to the relay (channels.email.security).
SECURITY = ("starttls", "tls", "none")


def printable(text: str, keep: str = "") -> str:
    """`text` with every non-printable character (CR, LF, NUL, ESC, U+2028...) written as an escape.

    Escaped rather than dropped, so two keys that differ only there stay two keys to the reader.
    """
    return "".join(c if c.isprintable() or c in keep else ascii(c)[1:-1] for c in text)


@dataclass
class Notification:
    """One message: a rule started firing, is still firing (re-notify), was escalated, or resolved."""

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
    escalation: int = 0  # the escalation step this message is (1, 2...); 0: not an escalation
    since: str = ""  # when the key started firing (escalations say how long ago)
    runbook: str = ""  # what it means and what to do (iact.alerting.runbooks); empty: none

    def title(self) -> str:
        """One printable line (it becomes an e-mail subject): what and where."""
        what = "RESOLVED" if self.status == "resolved" else self.severity.upper()
        key = "" if self.key == "*" else f" [{printable(self.key)}]"
        again = f" (escalation {self.escalation})" if self.escalation else " (still firing)" if self.renotify else ""
        return f"[{what}] {self.rule}{key}{again}"

    def text(self) -> str:
        """The body every channel sends."""
        cmp = ">" if self.kind == "frequency" else "<"
        lines = [
            self.title(),
            f"{self.count} records in {self.window_start} .. {self.window_end} (fires when {cmp} {self.threshold})",
        ]
        if self.escalation:
            key = "" if self.key == "*" else f" {shlex.quote(printable(self.key))}"
            lines.append(
                f"Escalation step {self.escalation}: firing since {self.since} and not acknowledged. Acknowledge it "
                f"on the dashboard's /alerts/ page or with `iact-alert ack {self.rule}{key}` to stop escalating."
            )
        if self.samples:
            lines.append("Recent lines:")
            lines.extend(f"  {printable(s, keep=chr(9))}" for s in self.samples)
        if self.query:
            lines.append(f"See the rest: {self.query}")
        if self.link:
            lines.append(f"Lines behind it: {self.link}")
        if self.runbook:
            lines.append(f"Runbook: {self.runbook}")
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


def slack_text(n: Notification) -> str:
    """The body with Slack's control sequences escaped: a logged `<!channel>` must not page everyone.

    Every sequence opens with `<` (and `&` starts an entity); a lone `>` is only text.
    """
    return n.text().replace("&", "&amp;").replace("<", "&lt;")


class SlackChannel:
    """POST {"text": ...} to an incoming webhook."""

    name = "slack"

    def __init__(self, webhook_url: str, timeout: float = 10.0) -> None:
        self._url = webhook_url
        self.timeout = timeout

    def send(self, n: Notification) -> None:
        """One POST; non-2xx raises."""
        try:
            r = requests.post(self._url, json={"text": slack_text(n)}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ChannelError(f"Slack webhook unreachable: {type(exc).__name__}") from None
        if not 200 <= r.status_code < 300:
            raise ChannelError(f"Slack webhook answered HTTP {r.status_code}")


class EmailChannel:
    """One message per notification through the configured relay (never an external default).

    With `starttls` or `tls` the relay's certificate and name are verified (system CAs, or
    `ca_file`); a login without TLS is refused, so the relay password never crosses in clear.
    """

    name = "email"

    def __init__(
        self, host: str, port: int, sender: str, to: list[str], username: str | None = None,
        password: str | None = None, security: str = "starttls", ca_file: str | None = None, timeout: float = 10.0,
    ) -> None:  # fmt: skip
        if security not in SECURITY:
            raise ValueError(f"security must be one of {', '.join(SECURITY)}, not {security!r}")
        self.host, self.port, self.sender, self.to = host, port, sender, to
        self.username, self._password, self.security, self.timeout = username, password, security, timeout
        self.ca_file = ca_file
        self._tls: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        """Verifying context (chain and host name), built on first use; the config check loaded it once already."""
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.ca_file)
        return self._tls

    def _message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = n.title()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg.set_content(n.text())
        return msg

    def send(self, n: Notification) -> None:
        """Connect (implicit TLS, STARTTLS or plain), log in if configured, send; every failure is a ChannelError."""
        where = f"SMTP relay {self.host}:{self.port}"
        if self.username and self.security == "none":
            raise ChannelError(
                f"{where}: refusing to log in without TLS (the password would cross in clear); "
                "set channels.email.security to starttls or tls"
            )
        step, smtp, sent = "connect", None, False
        try:
            msg = self._message(n)
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.security == "starttls":
                step = "STARTTLS"
                smtp.starttls(context=self._context())
            if self.username:
                step = "login"
                smtp.login(self.username, self._password or "")
            step = "send"
            smtp.send_message(msg)
            sent = True
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(
                f"{where}: certificate not verified ({exc.verify_message}) at {step}; "
                "set channels.email.ca_file to the CA that signed it, or fix the relay's name"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise ChannelError(f"{where}: the relay does not offer {step} (nothing was sent)") from None
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            detail = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else type(exc).__name__
            raise ChannelError(f"{where}: {step} failed ({detail})") from None
        finally:
            if smtp is not None:
                _close(smtp, polite=sent)


def _close(smtp: smtplib.SMTP, polite: bool) -> None:
    """QUIT after a sent message (a relay hanging up then is no failure); after an error just drop the socket,
    which may be half-way through a failed TLS handshake."""
    if polite:
        try:
            smtp.quit()
            return
        except (smtplib.SMTPException, OSError):
            pass
    smtp.close()


class LogChannel:
    """Appends one JSON object per line (logrotate-friendly: opened per write)."""

    name = "log"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def send(self, n: Notification) -> None:
        """Append and flush."""
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **n.as_dict()}
        line = json.dumps(record, ensure_ascii=False)
        # JSON leaves these raw, but line readers (str.splitlines, many tools) break lines on them.
        line = line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
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
        except Exception as exc:  # a channel's bug must stop neither the other channels nor the state save
            # Its message may hold a secret (a URL, a password): name the type and where it was raised only.
            where = "; ".join(f"{f.filename}:{f.lineno}" for f in traceback.extract_tb(exc.__traceback__)[-3:])
            log.error(
                "%s: unexpected %s for %s, not retried (at %s)", channel.name, type(exc).__name__, n.title(), where
            )
            return f"unexpected {type(exc).__name__} (a bug; see the run log), not retried"
    return error
