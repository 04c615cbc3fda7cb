"""URL map; the /api/dora/ paths are a contract with existing links and CI scripts."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic.base import RedirectView

from iact.dora.loginguard import ThrottledAuthenticationForm
from iact.dora.views import alerts, api, charts, dashboard, export, health, logs, webhooks

urlpatterns = [
    path("", RedirectView.as_view(url="/api/dora/dashboard/", permanent=False)),
    path("api/dora/dashboard/", dashboard.dashboard, name="dashboard"),
    path("api/dora/charts/deployment-frequency/", charts.deployment_frequency, name="chart-deployment-frequency"),
    path("api/dora/charts/lead-time-trends/", charts.lead_time_trends, name="chart-lead-time"),
    path("api/dora/charts/change-failure-rate/", charts.change_failure_rate, name="chart-change-failure-rate"),
    path("api/dora/charts/mttr/", charts.mttr, name="chart-mttr"),
    path("api/dora/export.csv", export.export_csv, name="export-csv"),
    path("api/dora/drilldown", export.drilldown, name="drilldown"),
    path("api/dora/metrics", api.metrics, name="metrics"),
    path("api/dora/metrics/", api.metrics),
    path("api/dora/webhooks/github", webhooks.github_webhook, name="github-webhook"),
    path("healthz", dashboard.healthz, name="healthz"),
    path("health/", health.health, name="health"),
    path("logs/", logs.search, name="logs"),
    path("logs/volume/", logs.volume, name="log-volume"),
    path("logs/row/", logs.row, name="log-row"),
    path("logs/trace/<str:request_id>/", logs.trace, name="log-trace"),
    path("alerts/", alerts.alerts, name="alerts"),
    path(
        "accounts/login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
