"""Delivery events: every figure on the dashboard is computed from these rows and nothing else.

Each event keeps the id it had in the system that sent it (`source`, `external_id`), so a retried
webhook or CI step updates its row instead of counting twice.
"""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class Service(models.Model):
    """Something a team deploys; metrics are shown per service and overall."""

    name = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Deployment(models.Model):
    """One deployment of a service to an environment, with the commits it shipped."""

    SUCCESS, FAILED, ROLLED_BACK = "success", "failed", "rolled_back"
    STATUSES = [(SUCCESS, "success"), (FAILED, "failed"), (ROLLED_BACK, "rolled back")]

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    environment = models.CharField(max_length=64, default="production")
    version = models.CharField(max_length=128, blank=True)
    sha = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=STATUSES, default=SUCCESS)
    source = models.CharField(max_length=32, default="api")
    external_id = models.CharField(max_length=191)
    url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The sender's time of the state stored (GitHub's updated_at): an older state never overwrites it.
    sender_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-finished_at"]
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="dora_deployment_event_id")]
        indexes = [models.Index(fields=["environment", "finished_at"]), models.Index(fields=["service", "finished_at"])]

    def __str__(self) -> str:
        return f"{self.service} {self.version or self.sha[:12]} to {self.environment} ({self.status})"

    @property
    def failed(self) -> bool:
        """Failed or rolled back: the change needed remediation."""
        return self.status in (self.FAILED, self.ROLLED_BACK)


class Commit(models.Model):
    """A change shipped by a deployment; its time starts the lead-time clock."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="commits")
    sha = models.CharField(max_length=64)
    committed_at = models.DateTimeField()
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="commits")

    class Meta:
        ordering = ["committed_at"]
        constraints = [models.UniqueConstraint(fields=["service", "sha"], name="dora_commit_sha")]

    def __str__(self) -> str:
        return self.sha[:12]


class Incident(models.Model):
    """A failure in production, linked (when known) to the deployment that caused it."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="incidents")
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    title = models.CharField(max_length=300, blank=True)
    opened_at = models.DateTimeField()
    restored_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=32, default="api")
    external_id = models.CharField(max_length=191)
    url = models.URLField(max_length=500, blank=True)
    sender_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="dora_incident_event_id")]
        indexes = [models.Index(fields=["opened_at"])]

    def __str__(self) -> str:
        return self.title or f"incident {self.external_id}"


class DataChange(models.Model):
    """One row per write to the delivery events: their version is (how many rows, the newest id).

    The dashboard keeps the rows it loaded while the version stays the same (metrics/data.py): reading
    a 90-day window of tens of thousands of rows through the database driver is most of a page's
    time, and the rows change only when an event is recorded. Each write inserts a row here in its
    own transaction, so the version changes exactly when the write commits (and not at all if it rolls
    back). Inserts, unlike updates of one shared row, never wait for one another: concurrent writers
    cannot deadlock on it. The count is part of the version because ids are handed out at insert time,
    not in commit order: a transaction that commits after a later id was committed changes the count,
    not the newest id. Old rows are pruned as new ones arrive.
    """

    id = models.BigAutoField(primary_key=True)

    def __str__(self) -> str:
        return str(self.id)


def hash_token(token: str) -> str:
    """Tokens are stored hashed: a database dump does not hand out API access."""
    return hashlib.sha256(token.encode()).hexdigest()


GITHUB_SOURCE = "github"


def not_github(value: str) -> None:
    """Only the signed webhook writes `github` rows: no token may claim that source."""
    if value == GITHUB_SOURCE:
        raise ValidationError("'github' rows come only from the signed GitHub webhook; name the token's own source")


class ApiToken(models.Model):
    """A bearer token for CI/CD and incident tooling to record events.

    `source` ties the token to the rows of one sender: its events are stored under that source and
    it cannot touch another's (empty: any source, as tokens did before scopes; never `github`, which
    only the signed webhook writes). `services`, when set, limits which services it may record.
    """

    name = models.CharField(max_length=100, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    source = models.SlugField(
        max_length=32,
        blank=True,
        default="",
        validators=[not_github],
        help_text="the only source this token records; empty: any but github",
    )
    services = models.CharField(
        max_length=1000, blank=True, default="", help_text="comma-separated service names; empty: any service"
    )

    def __str__(self) -> str:
        return self.name

    @property
    def service_names(self) -> tuple[str, ...]:
        """The services this token may record; () for any."""
        return tuple(sorted({s.strip() for s in self.services.split(",") if s.strip()}))

    @staticmethod
    def generate() -> str:
        """A new random token (shown once, stored hashed)."""
        return "dora_" + secrets.token_urlsafe(32)


class WebhookDelivery(models.Model):
    """A GitHub delivery already processed (X-GitHub-Delivery): a replay of it changes nothing."""

    delivery_id = models.CharField(max_length=100, unique=True)
    event = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id}"


class Throttle(models.Model):
    """A fixed-window counter (failed logins of a user name from an address, requests of a token).

    In the database, so every gunicorn worker sees the same count and no cache server is needed.
    """

    key = models.CharField(max_length=191, unique=True)
    window_start = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=0)
    blocked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.key


class LogConsole(models.Model):
    """No table: the holder of the log console's two permissions (Django attaches permissions to a model).

    Log rows hold auth.log lines and user ids, so reading them is a right of its own, not a login's.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_logs", "Can read log rows in the log console"),
            ("manage_alerts", "Can acknowledge, silence and unsilence alerts"),
        ]
