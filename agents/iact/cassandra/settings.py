"""How to reach Cassandra, shared by every agent and CLI so they all accept the same options."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A setting is missing or wrong; the message says which one and what to set."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Contact points, credentials and TLS, validated once when built.

    Passwords come from the environment rather than the command line so they never show in
    `ps` output or in Ansible's logged command lines.
    """

    contact_points: tuple[str, ...]
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    # A client certificate and its key, for clusters that set require_client_auth.
    cert_file: str | None = None
    key_file: str | None = None
    local_dc: str | None = None
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.contact_points or not all(p.strip() for p in self.contact_points):
            raise SettingsError(
                "no Cassandra contact points: pass --contact-points host1,host2 or set IACT_CASSANDRA_HOSTS"
            )
        if not 0 < self.port < 65536:
            raise SettingsError(f"port {self.port} is not a TCP port: pass --port 9042 or set IACT_CASSANDRA_PORT")
        if bool(self.username) != bool(self.password):
            raise SettingsError(
                "a Cassandra username needs a password and the other way round: "
                "set both IACT_CASSANDRA_USERNAME and IACT_CASSANDRA_PASSWORD, or neither"
            )
        if self.ca_file and not os.path.isfile(self.ca_file):
            raise SettingsError(f"CA file {self.ca_file} does not exist: fix --ca-file or IACT_CASSANDRA_CA_FILE")
        if bool(self.cert_file) != bool(self.key_file):
            raise SettingsError(
                "a client certificate needs its key and the other way round: set both cert_file and key_file "
                "(IACT_CASSANDRA_CERT_FILE and IACT_CASSANDRA_KEY_FILE), or neither"
            )
        if self.cert_file and not self.ca_file:
            raise SettingsError("a client certificate is only sent over TLS: set ca_file (IACT_CASSANDRA_CA_FILE) too")
        for what, path in (("certificate", self.cert_file), ("key", self.key_file)):
            if path and not os.path.isfile(path):
                raise SettingsError(f"client {what} file {path} does not exist: fix the {what} file setting")

    @classmethod
    def from_env(
        cls, contact_points: str | None = None, port: int | None = None, **overrides: object
    ) -> ConnectionSettings:
        """Build settings from arguments, falling back to IACT_CASSANDRA_* variables."""
        hosts = contact_points or os.environ.get("IACT_CASSANDRA_HOSTS", "")
        values: dict[str, object] = {
            "contact_points": tuple(h.strip() for h in hosts.split(",") if h.strip()),
            "port": port or int(os.environ.get("IACT_CASSANDRA_PORT", "9042")),
            "username": os.environ.get("IACT_CASSANDRA_USERNAME") or None,
            "password": os.environ.get("IACT_CASSANDRA_PASSWORD") or None,
            "ca_file": os.environ.get("IACT_CASSANDRA_CA_FILE") or None,
            "cert_file": os.environ.get("IACT_CASSANDRA_CERT_FILE") or None,
            "key_file": os.environ.get("IACT_CASSANDRA_KEY_FILE") or None,
            "local_dc": os.environ.get("IACT_CASSANDRA_LOCAL_DC") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def with_credentials(self, username: str | None, password: str | None) -> ConnectionSettings:
        """The same endpoints under another role (used while bootstrapping auth)."""
        return ConnectionSettings(
            contact_points=self.contact_points,
            port=self.port,
            username=username,
            password=password,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            local_dc=self.local_dc,
            connect_timeout=self.connect_timeout,
        )
