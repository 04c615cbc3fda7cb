"""The delivery events' version, so that loaded rows can be kept until an event changes (metrics/data.py).

Every save or delete of a service, deployment, commit or incident (the API, the webhook, the admin,
cascades) inserts a DataChange row inside the writing transaction, through model signals; the few
bulk writes (`queryset.update`, `bulk_create`) call bump() themselves. The version is the number of
rows and the newest id: it changes when a write commits, in any process, and a write that rolls
back leaves it as it was. A data migration that rewrites events must call bump() too (historical
models send no signals).
"""

from __future__ import annotations

from django.db.models import Count, Max
from django.db.models.signals import post_delete, post_save

_UID = "iact.dora.metrics.version"
KEEP = 1000  # change rows kept; older ones are pruned every KEEP writes


def bump() -> None:
    """The events changed: a new change row (and, now and then, old ones pruned)."""
    from iact.dora.models import DataChange

    change = DataChange.objects.create()
    if change.id % KEEP == 0:
        DataChange.objects.filter(id__lt=change.id - KEEP).delete()


def current() -> str:
    """The version the committed data has now (one small aggregate)."""
    from iact.dora.models import DataChange

    agg = DataChange.objects.aggregate(n=Count("id"), last=Max("id"))
    return f"{agg['n']}-{agg['last'] or 0}"


def _changed(**_kwargs: object) -> None:
    bump()


def connect() -> None:
    """Bump on every save and delete of the models the metrics read."""
    from iact.dora.models import Commit, Deployment, Incident, Service

    for model in (Service, Deployment, Commit, Incident):
        post_save.connect(_changed, sender=model, dispatch_uid=f"{_UID}.save.{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"{_UID}.delete.{model.__name__}")
