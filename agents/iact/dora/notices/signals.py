"""When a DORA notice is due: once per transition, and only after the commit.

pre_save remembers what the deployment's row held; post_save compares, and when a production
deployment has just become failed or rolled back, or an incident was just created, asks for the
notice on commit. So a transaction rolled back (a batch with one bad event) sends nothing, and a
retried webhook or CI step that saves the same state again finds nothing new to say. Rows saved by
`loaddata` (raw) never notify: a restored fixture is not news.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_save, pre_save

from iact.dora.models import Deployment, Incident
from iact.dora.notices import outbox
from iact.dora.notices.config import AlertsConfig
from iact.dora.notices.message import deployment_notice, incident_notice

# Where pre_save leaves the row's previous (environment, status) for post_save on the same instance.
_BEFORE = "_dora_notice_before"


def _config() -> AlertsConfig:
    return settings.DORA_ALERTS


def _alarming(environment: str, status: str) -> str | None:
    """The status worth a notice, or None: only production counts, as for the four keys."""
    if status in (Deployment.FAILED, Deployment.ROLLED_BACK) and environment in settings.DORA_PRODUCTION_ENVIRONMENTS:
        return status
    return None


def remember_deployment(sender: type[Deployment], instance: Deployment, raw: bool, using: str, **_: Any) -> None:
    """Read the stored state before it is overwritten (one query per save, only with alerts on)."""
    if raw or not _config().enabled:
        return
    before = None
    if instance.pk is not None:
        before = Deployment.objects.using(using).filter(pk=instance.pk).values_list("environment", "status").first()
    instance.__dict__[_BEFORE] = before


def deployment_saved(
    sender: type[Deployment], instance: Deployment, created: bool, raw: bool, using: str, **_: Any
) -> None:
    """A notice on the transition into failed or rolled back in production (failed -> rolled back is one too)."""
    before = instance.__dict__.pop(_BEFORE, None)
    config = _config()
    if raw or not config.enabled:
        return
    now = _alarming(instance.environment, instance.status)
    if now is None or (before is not None and _alarming(*before) == now):
        return
    notice = deployment_notice(instance, config.dashboard_url)
    transaction.on_commit(partial(outbox.submit, notice), using=using, robust=True)


def incident_saved(sender: type[Incident], instance: Incident, created: bool, raw: bool, using: str, **_: Any) -> None:
    """A notice when an incident is first recorded; its updates (restored, retitled) are not news."""
    config = _config()
    if not created or raw or not config.enabled:
        return
    notice = incident_notice(instance, config.dashboard_url)
    transaction.on_commit(partial(outbox.submit, notice), using=using, robust=True)


def settings_changed(setting: str, **_: Any) -> None:
    """A new `DORA_ALERTS` (a test's override) ends the workers of the old one, sending what they hold."""
    if setting == "DORA_ALERTS":
        outbox.shutdown()


def connect() -> None:
    """Called once from the app's ready(); dispatch_uid keeps a second call harmless."""
    pre_save.connect(remember_deployment, sender=Deployment, dispatch_uid="iact.dora.notices.remember_deployment")
    post_save.connect(deployment_saved, sender=Deployment, dispatch_uid="iact.dora.notices.deployment_saved")
    post_save.connect(incident_saved, sender=Incident, dispatch_uid="iact.dora.notices.incident_saved")
    setting_changed.connect(settings_changed, dispatch_uid="iact.dora.notices.settings_changed")
