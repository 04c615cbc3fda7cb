"""`iact-dora dora_seed --deployments N`: a synthetic delivery history, for demos and the benchmark.

Deterministic for a given --seed, written with bulk inserts so 10,000 deployments take seconds.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from iact.dora.metrics import version
from iact.dora.models import Commit, Deployment, Incident, Service


class Command(BaseCommand):
    """Insert deployments (with commits) and incidents spread over the last --days days."""

    help = "Insert a synthetic delivery history (source 'seed')."

    def add_arguments(self, parser: CommandParser) -> None:
        """Sizes and the random seed."""
        parser.add_argument("--deployments", type=int, default=500)
        parser.add_argument("--services", type=int, default=5)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=1)

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        """Generate and insert."""
        rng = random.Random(options["seed"])
        now = timezone.now()
        services = [Service.objects.get_or_create(name=f"service-{i + 1}")[0] for i in range(options["services"])]
        start = Deployment.objects.filter(source="seed").count()
        deployments = []
        for i in range(start, start + options["deployments"]):
            finished = now - timedelta(seconds=rng.uniform(60, options["days"] * 86400))
            status = rng.choices(["success", "failed", "rolled_back"], [90, 6, 4])[0]
            deployments.append(
                Deployment(
                    service=rng.choice(services),
                    environment="production",
                    version=f"1.{i // 100}.{i % 100}",
                    sha=f"{rng.getrandbits(160):040x}",
                    started_at=finished - timedelta(minutes=rng.uniform(2, 30)),
                    finished_at=finished,
                    status=status,
                    source="seed",
                    external_id=f"seed-{i}",
                )
            )
        Deployment.objects.bulk_create(deployments, batch_size=1000)
        saved = Deployment.objects.filter(source="seed", external_id__in=[d.external_id for d in deployments])
        commits, incidents = [], []
        for d in saved.iterator():
            for _ in range(rng.randint(1, 4)):
                commits.append(
                    Commit(
                        service_id=d.service_id,
                        sha=f"{rng.getrandbits(160):040x}",
                        committed_at=d.finished_at - timedelta(hours=rng.lognormvariate(2.5, 1.0)),
                        deployment=d,
                    )
                )
            if d.status == "success" and rng.random() < 0.05:
                opened = d.finished_at + timedelta(minutes=rng.uniform(1, 120))
                restored = opened + timedelta(minutes=rng.lognormvariate(4, 1)) if rng.random() < 0.9 else None
                incidents.append(
                    Incident(
                        service_id=d.service_id,
                        deployment=d,
                        title=f"incident after {d.version}",
                        opened_at=opened,
                        restored_at=restored if restored and restored < now else None,
                        source="seed",
                        external_id=f"seed-inc-{d.external_id}",
                    )
                )
        Commit.objects.bulk_create(commits, batch_size=1000)
        Incident.objects.bulk_create(incidents, batch_size=1000)
        version.bump()  # bulk inserts send no signals
        self.stdout.write(f"{len(deployments)} deployments, {len(commits)} commits, {len(incidents)} incidents")
