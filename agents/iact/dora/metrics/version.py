"""The delivery events' version: a token that changes with every write, so loaded rows can be kept.

Every save or delete of a service, deployment, commit or incident (the API, the webhook, the
admin) changes the token inside the writing transaction, through model signals; the few bulk
writes (`queryset.update`, `bulk_create`) call bump() themselves. A reader that sees the new
token therefore also sees the new rows.
"""

from __future__ import annotations

import uuid

from django.db.models.signals import post_delete, post_save

_UID = "iact.dora.metrics.version"


def bump() -> None:
    """The events changed: give the data a new token."""
    from iact.dora.models import DataVersion

    token = uuid.uuid4().hex
    if not DataVersion.objects.filter(pk=1).update(token=token):
        DataVersion.objects.update_or_create(pk=1, defaults={"token": token})


def current() -> str:
    """The token the data has now (one indexed read)."""
    from iact.dora.models import DataVersion

    return DataVersion.objects.filter(pk=1).values_list("token", flat=True).first() or ""


def _changed(**_kwargs: object) -> None:
    bump()


def connect() -> None:
    """Bump on every save and delete of the models the metrics read."""
    from iact.dora.models import Commit, Deployment, Incident, Service

    for model in (Service, Deployment, Commit, Incident):
        post_save.connect(_changed, sender=model, dispatch_uid=f"{_UID}.save.{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"{_UID}.delete.{model.__name__}")
