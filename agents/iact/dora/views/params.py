"""The period and service filters every page and chart takes, parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from iact.dora.metrics.data import load
from iact.dora.metrics.period import PERIODS, Window
from iact.dora.metrics.report import Report

DEFAULT_PERIOD = 30


class BadFilter(ValueError):
    """A filter value the client must fix."""


@dataclass(frozen=True)
class Filters:
    """?period=7|30|60|90&service=NAME"""

    period: int
    service: str | None

    @classmethod
    def from_request(cls, request: HttpRequest) -> Filters:
        """Parse and check the query string."""
        raw = request.GET.get("period", str(DEFAULT_PERIOD))
        try:
            period = int(raw)
        except ValueError:
            period = -1
        if period not in PERIODS:
            raise BadFilter(f"period={raw!r}: use one of {', '.join(map(str, PERIODS))} (days)")
        return cls(period, request.GET.get("service") or None)

    def report(self) -> Report:
        """Load the rows and build the report for these filters, ending now."""
        window = Window.last(self.period, timezone.now(), ZoneInfo(settings.TIME_ZONE))
        deployments, failures = load(window, tuple(settings.DORA_PRODUCTION_ENVIRONMENTS), self.service)
        return Report(window, self.service, deployments, failures)
