"""The e-mail channel against real aiosmtpd relays on loopback: STARTTLS, implicit TLS and plain.

Certificates come from a throwaway CA made with `cryptography` (pki.py), plus a second CA nobody
trusts, so "verified" means the relay's chain and name were checked, not that TLS merely ran.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pki import Issued, TestCA

from iact.alerting.cli import channels as build_channels
from iact.alerting.config import from_mapping
from iact.alerting.notify import ChannelError, EmailChannel, Notification, deliver
from iact.yamlconfig import ConfigError

# --- a throwaway PKI (agents/tests/pki.py) ----------------------------------------------------


def server_context(cert: Issued) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


@dataclass
class Pki:
    ca: Path  # what the alerter is told to trust
    good: ssl.SSLContext  # signed by that CA, for 127.0.0.1 and localhost
    rogue: ssl.SSLContext  # the right names, signed by a CA nobody trusts
    wrong_name: ssl.SSLContext  # signed by the trusted CA, for another host


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, other = TestCA(d / "trusted"), TestCA(d / "rogue", name="rogue CA")
    return Pki(
        ca=ca.ca_file,
        good=server_context(ca.issue("relay")),
        rogue=server_context(other.issue("relay")),
        wrong_name=server_context(ca.issue("elsewhere", dns=("relay.example.org",), ips=())),
    )


# --- relays ----------------------------------------------------------------------------------


@dataclass
class Relay:
    """An aiosmtpd relay recording what reached it: messages, over TLS or not, and logins."""

    port: int = 0
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    over_tls: list[bool] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, _server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        self.over_tls.append(session.ssl is not None)
        return "250 OK"

    def authenticate(self, _server, _session, _envelope, _mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


def _free_port() -> int:
    with socket.socket() as probe:  # aiosmtpd checks its own port on start, so it needs a real one
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def relay():
    """relay(starttls=ctx | implicit=ctx | neither, auth=bool): a started relay, stopped after the test."""
    started: list[Controller] = []

    def start(starttls: ssl.SSLContext | None = None, implicit: ssl.SSLContext | None = None, auth: bool = False):
        box = Relay(port=_free_port())
        kwargs: dict[str, object] = {}
        if starttls is not None:
            kwargs["tls_context"] = starttls
        if implicit is not None:
            kwargs["ssl_context"] = implicit
        if auth:
            # A relay that would take a password in clear: only the client can refuse to send it.
            kwargs.update(authenticator=box.authenticate, auth_require_tls=False)
        controller = Controller(box, hostname="127.0.0.1", port=box.port, **kwargs)
        controller.start()
        started.append(controller)
        return box

    yield start
    for controller in started:
        controller.stop()


def notice(key: str = "app.db") -> Notification:
    return Notification("logger-loop", key, "firing", "warning", 150, 100, "frequency",
                        "2026-11-23T10:00:00+00:00", "2026-11-23T10:05:00+00:00", ["l1"], "SELECT ...")  # fmt: skip


def email_conf(port: int, **email_keys: object) -> dict:
    return {"cassandra": {"hosts": ["h"]},
            "channels": {"email": {"host": "127.0.0.1", "port": port, "from": "alerts@lab", "to": ["ops@lab"],
                                   **email_keys}}}  # fmt: skip


def email_channel(port: int, **email_keys: object) -> EmailChannel:
    """Built the way `iact-alert run` builds it: from a validated configuration."""
    channel = build_channels(from_mapping(email_conf(port, **email_keys)))["email"]
    assert isinstance(channel, EmailChannel)
    return channel


# --- verified TLS ----------------------------------------------------------------------------


def test_starttls_to_a_trusted_relay_delivers_and_logs_in_over_tls(pki, relay):
    box = relay(starttls=pki.good, auth=True)
    channel = email_channel(box.port, security="starttls", ca_file=str(pki.ca), username="alerter", password="s3cret")
    channel.send(notice())
    assert box.over_tls == [True] and box.logins == [("alerter", "s3cret")]
    assert box.messages[0]["Subject"] == "[WARNING] logger-loop [app.db]"


def test_implicit_tls_to_a_trusted_relay_delivers(pki, relay):
    box = relay(implicit=pki.good, auth=True)
    channel = email_channel(box.port, security="tls", ca_file=str(pki.ca), username="alerter", password="s3cret")
    channel.send(notice())
    assert len(box.messages) == 1 and box.logins == [("alerter", "s3cret")]


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.parametrize(
    ("cert", "why"),
    [
        ("rogue", r"certificate not verified \(.*issuer"),
        ("wrong_name", r"certificate not verified \(.*mismatch, certificate is not valid for .127.0.0.1."),
    ],
)
def test_an_unverified_relay_is_refused_and_reported(pki, relay, security, cert, why):
    ctx = getattr(pki, cert)
    box = relay(starttls=ctx, auth=True) if security == "starttls" else relay(implicit=ctx, auth=True)
    channel = email_channel(box.port, security=security, ca_file=str(pki.ca), username="alerter", password="s3cret")
    with pytest.raises(ChannelError, match=why) as refused:
        channel.send(notice())
    assert "s3cret" not in str(refused.value)
    # Reported like any failed send, after its retries; nothing raised past the channel.
    error = deliver(channel, notice(), attempts=2, backoff=0.01)
    assert error is not None and f"127.0.0.1:{box.port}" in error
    assert box.messages == [] and box.logins == [], "nothing, least of all the password, reached the relay"


def test_the_system_trust_store_is_used_without_a_ca_file(pki, relay):
    box = relay(starttls=pki.good)
    with pytest.raises(ChannelError, match="certificate not verified"):
        email_channel(box.port, security="starttls").send(notice())
    assert box.messages == []


def test_starttls_not_offered_is_refused_not_downgraded(relay):
    box = relay(auth=True)
    channel = email_channel(box.port, security="starttls", username="alerter", password="s3cret")
    with pytest.raises(ChannelError, match="STARTTLS"):
        channel.send(notice())
    assert box.messages == [] and box.logins == []


def test_starttls_is_the_default(pki, relay):
    box = relay(starttls=pki.good)
    email_channel(box.port, ca_file=str(pki.ca)).send(notice())
    assert box.over_tls == [True]


# --- no password in clear --------------------------------------------------------------------


def test_a_username_without_tls_is_a_configuration_error(relay):
    with pytest.raises(ConfigError, match=r"channels\.email\.username: .*in clear.*security: starttls"):
        from_mapping(email_conf(25, security="none", username="alerter", password="s3cret"))


def test_a_username_without_tls_is_refused_at_send_time_too(relay):
    box = relay(auth=True)
    channel = EmailChannel("127.0.0.1", box.port, "alerts@lab", ["ops@lab"], username="alerter",
                           password="s3cret", security="none")  # fmt: skip
    with pytest.raises(ChannelError, match="in clear"):
        channel.send(notice())
    assert box.logins == [] and box.messages == []


def test_a_plain_relay_without_login_still_works(relay):
    box = relay()
    email_channel(box.port, security="none").send(notice())
    assert box.over_tls == [False] and len(box.messages) == 1


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"security": "ssl"}, r"channels\.email\.security: 'ssl' must be one of starttls, tls, none"),
        ({"starttls": True}, r"channels\.email\.starttls: replaced by .*security: starttls"),
        ({"ca_file": "/nonexistent/ca.pem"}, r"channels\.email\.ca_file: cannot load /nonexistent/ca.pem"),
        ({"security": "none", "ca_file": "x.pem"}, r"channels\.email\.ca_file: .*security is none"),
        ({"password": "s3cret"}, r"channels\.email\.password: set username"),
        ({"from": "a@b\r\nBcc: x@y"}, r"channels\.email\.from: .*control character"),
        ({"to": ["ops@lab", "x@y\nBcc: z@w"]}, r"channels\.email\.to: .*control character"),
    ],
)
def test_email_settings_are_validated_at_start(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message) as refused:
        from_mapping(email_conf(25, **keys))
    assert "s3cret" not in str(refused.value)


def test_a_ca_file_that_is_not_pem_is_a_configuration_error(tmp_path):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"channels\.email\.ca_file: cannot load .*PEM"):
        from_mapping(email_conf(25, ca_file=str(bad)))


def test_the_port_follows_the_security_unless_given():
    plain = {"host": "relay", "from": "a@b", "to": ["c@d"]}
    for security, port in (("starttls", 25), ("tls", 465), ("none", 25)):
        conf = from_mapping({"cassandra": {"hosts": ["h"]}, "channels": {"email": {**plain, "security": security}}})
        assert conf.email is not None and conf.email.port == port, security


# --- hostile keys ----------------------------------------------------------------------------


def test_control_characters_in_a_key_reach_no_header(relay):
    box = relay()
    evil = "app.evil\r\nBcc: victim@elsewhere\x00\x1b[31m\u2028\tend"
    email_channel(box.port, security="none").send(notice(evil))
    [msg] = box.messages
    assert box.recipients == [["ops@lab"]] and "Bcc" not in msg
    subject = msg["Subject"]
    assert all(c.isprintable() for c in subject), repr(subject)
    assert subject == r"[WARNING] logger-loop [app.evil\r\nBcc: victim@elsewhere\x00\x1b[31m\u2028\tend]"
    assert subject in msg.get_content(), "the body names the key the same way"


class Broken:
    """A channel with a bug: every send raises something that is not a ChannelError."""

    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def send(self, n: Notification) -> None:
        self.calls += 1
        raise ValueError("https://hooks.example/secret-token in a bug's message")


def test_an_unexpected_failure_of_a_channel_is_reported_not_raised():
    channel = Broken()
    error = deliver(channel, notice(), attempts=3, backoff=0.01)
    assert error is not None and "ValueError" in error and "secret-token" not in error
    assert channel.calls == 1, "a bug is not retried"
