"""The period and service filters every page and chart takes, parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from iact.dora.metrics.benchmarks import get as benchmark
from iact.dora.metrics.data import load
from iact.dora.metrics.period import PERIODS, Window
from iact.dora.metrics.report import Report
from iact.dora.models import Service

DEFAULT_PERIOD = 30


class BadFilter(ValueError):
    """A filter value the client must fix."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details

    def as_json(self) -> dict:
        """The 400 body: the message and what the client may use instead."""
        return {"error": str(self)} | self.details


@dataclass(frozen=True)
class Filters:
    """?period=7|30|60|90&service=NAME"""

    period: int
    service: str | None

    @classmethod
    def from_request(cls, request: HttpRequest) -> Filters:
        """Parse and check the query string.

        An unknown service is refused rather than shown as "no data": a typo must not look like
        a service that never deployed.
        """
        raw = request.GET.get("period", str(DEFAULT_PERIOD))
        try:
            period = int(raw)
        except ValueError:
            period = -1
        if period not in PERIODS:
            raise BadFilter(f"period={raw!r}: use one of {', '.join(map(str, PERIODS))} (days)")
        service = request.GET.get("service") or None
        if service is not None and not Service.objects.filter(name=service).exists():
            names = list(Service.objects.values_list("name", flat=True))
            raise BadFilter(
                f"service={service!r}: no such service; use one of {', '.join(names) or '(none recorded yet)'} "
                "or leave service out for all services",
                services=names,
            )
        return cls(period, service)

    def report(self, previous: bool = False) -> Report:
        """Load the rows and build the report for these filters, ending now (or the same length before)."""
        window = Window.last(self.period, timezone.now(), ZoneInfo(settings.TIME_ZONE))
        if previous:
            window = window.previous()
        deployments, failures = load(
            window, tuple(settings.DORA_PRODUCTION_ENVIRONMENTS), self.service, settings.DORA_INCIDENT_ATTRIBUTION
        )
        known = () if self.service else tuple(Service.objects.values_list("name", flat=True))
        return Report(window, self.service, deployments, failures, benchmark(settings.DORA_BENCHMARK), known)
