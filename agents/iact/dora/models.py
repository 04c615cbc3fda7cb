"""Delivery events: every figure on the dashboard is computed from these rows and nothing else.

Each event keeps the id it had in the system that sent it (`source`, `external_id`), so a retried
webhook or CI step updates its row instead of counting twice.
"""

from __future__ import annotations

import hashlib
import secrets

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

    class Meta:
        ordering = ["-opened_at"]
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="dora_incident_event_id")]
        indexes = [models.Index(fields=["opened_at"])]

    def __str__(self) -> str:
        return self.title or f"incident {self.external_id}"


def hash_token(token: str) -> str:
    """Tokens are stored hashed: a database dump does not hand out API access."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for CI/CD and incident tooling to record events."""

    name = models.CharField(max_length=100, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def generate() -> str:
        """A new random token (shown once, stored hashed)."""
        return "dora_" + secrets.token_urlsafe(32)
