"""The admin lists every row behind the figures, so any number can be traced to its events."""

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from iact.dora.loginguard import ThrottledAdminAuthenticationForm
from iact.dora.metrics.data import attributed
from iact.dora.models import ApiToken, Commit, Deployment, Incident, Service, Throttle, WebhookDelivery

# The admin's login counts failures like the dashboard's (see loginguard.py).
admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    """Services."""

    list_display = ["name", "created_at"]
    search_fields = ["name"]


class CommitInline(admin.TabularInline):
    """The commits a deployment shipped."""

    model = Commit
    extra = 0


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    """Deployments."""

    list_display = ["service", "environment", "version", "sha", "status", "started_at", "finished_at", "source"]
    list_filter = ["environment", "status", "service", "source"]
    search_fields = ["version", "sha", "external_id"]
    date_hierarchy = "finished_at"
    inlines = [CommitInline]


@admin.register(Commit)
class CommitAdmin(admin.ModelAdmin):
    """Commits."""

    list_display = ["sha", "service", "committed_at", "deployment"]
    list_filter = ["service"]
    search_fields = ["sha"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents."""

    list_display = ["title", "service", "opened_at", "restored_at", "deployment", "counts_against", "source"]
    list_filter = ["service", "source"]
    search_fields = ["title", "external_id"]
    date_hierarchy = "opened_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Incident]:
        """Each row with the deployment it counts against, in the same query as the list."""
        return attributed(super().get_queryset(request), tuple(settings.DORA_PRODUCTION_ENVIRONMENTS))

    @admin.display(description="counts against")
    def counts_against(self, incident: Incident) -> str:
        """Which deployment's change failure this incident is: named by the sender, or attributed."""
        if incident.deployment_id:
            return f"deployment {incident.deployment_id} (linked)"
        if settings.DORA_INCIDENT_ATTRIBUTION == "none":
            return "none (attribution off)"
        pk = getattr(incident, "attributed", None)
        return f"deployment {pk} (latest before it opened)" if pk else "none (no earlier deployment)"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens (hashes only; create them with `iact-dora dora_token NAME`)."""

    list_display = ["name", "source", "services", "created_at", "last_used_at"]
    readonly_fields = ["digest", "created_at", "last_used_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """GitHub deliveries already processed (replays of them are ignored)."""

    list_display = ["delivery_id", "event", "received_at"]
    search_fields = ["delivery_id"]


@admin.register(Throttle)
class ThrottleAdmin(admin.ModelAdmin):
    """Login lockouts and token request counts; delete a row to lift a lockout."""

    list_display = ["key", "window_start", "count", "blocked_until"]
    search_fields = ["key"]
