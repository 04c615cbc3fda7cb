"""What a DORA notice says: the event, where it happened, and where to look next.

Everything in it but the labels comes from a sender (a CI job's version string, an incident tool's
title), so every value is made printable before it reaches a subject line or a Slack message; Slack's
control sequences are escaped by the channel itself (notify.slack_text).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from iact.alerting.notify import Notification, printable
from iact.dora.models import Deployment, Incident


@dataclass
class DoraNotice(Notification):
    """A DORA event in the alerter's Notification shape, so its channels and `deliver()` send it unchanged.

    The inherited fields keep a meaning (rule: the kind of event, key: the service, window: the event's
    times, link: the dashboard) for anything that reads them; the title, body and log record are the event's.
    """

    event: str = ""
    headline: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    record: dict[str, Any] = field(default_factory=dict)

    def title(self) -> str:
        """`[DORA]` first: mail filters and Slack searches can tell these from the log alerts."""
        return f"[DORA] {self.headline}"

    def text(self) -> str:
        """The title, one `Label: value` line per fact, the dashboard link."""
        lines = [self.title(), *(f"{label}: {value}" for label, value in self.facts)]
        if self.link:
            lines.append(f"Dashboard: {self.link}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The JSON log line: the event's own fields (raw; JSON escapes them), not the alert-rule ones."""
        return {"type": "dora", "event": self.event, **self.record, "dashboard": self.link}


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def dashboard_link(base: str, service: str) -> str:
    """The dashboard filtered on the service (any query the operator's URL has is kept)."""
    if not base:
        return ""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "service"] + [("service", service)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _facts(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """Only the facts the sender gave, each made printable."""
    return tuple((label, printable(value)) for label, value in pairs if value)


def deployment_notice(d: Deployment, dashboard_url: str) -> DoraNotice:
    """A production deployment that failed or was rolled back."""
    service = d.service.name
    what = "rolled back" if d.status == Deployment.ROLLED_BACK else "failed"
    release = d.version or d.sha[:12] or d.external_id
    return DoraNotice(
        rule=f"dora-deployment-{d.status}".replace("_", "-"),
        key=service,
        status="firing",
        severity="critical",
        count=1,
        threshold=0,
        kind="dora",
        window_start=_iso(d.started_at) or "",
        window_end=_iso(d.finished_at) or "",
        link=dashboard_link(dashboard_url, service),
        event=f"deployment_{d.status}",
        headline=printable(f"Deployment {what}: {service} {release} to {d.environment}"),
        facts=_facts(
            ("Service", service),
            ("Environment", d.environment),
            ("Deployment", f"{d.external_id} (source {d.source})"),
            ("Version", d.version),
            ("Commit", d.sha),
            ("Status", d.get_status_display()),
            ("Started", _when(d.started_at)),
            ("Finished", _when(d.finished_at)),
            ("Details", d.url),
        ),
        record={
            "service": service,
            "environment": d.environment,
            "deployment_id": d.external_id,
            "source": d.source,
            "version": d.version,
            "sha": d.sha,
            "status": d.status,
            "started_at": _iso(d.started_at),
            "finished_at": _iso(d.finished_at),
            "url": d.url,
        },
    )


def incident_notice(i: Incident, dashboard_url: str) -> DoraNotice:
    """An incident recorded for the first time."""
    service = i.service.name
    cause = i.deployment
    caused_by = ""
    if cause:
        release = cause.version or cause.sha[:12]
        caused_by = f"deployment {cause.external_id} to {cause.environment}" + (f", {release}" if release else "")
    return DoraNotice(
        rule="dora-incident-opened",
        key=service,
        status="firing",
        severity="critical",
        count=1,
        threshold=0,
        kind="dora",
        window_start=_iso(i.opened_at) or "",
        window_end=_iso(i.restored_at) or "",
        link=dashboard_link(dashboard_url, service),
        event="incident_opened",
        headline=printable(f"Incident opened: {service}: {i.title or i.external_id}"),
        facts=_facts(
            ("Service", service),
            ("Incident", f"{i.external_id} (source {i.source})"),
            ("Title", i.title),
            ("Opened", _when(i.opened_at)),
            ("Restored", _when(i.restored_at)),
            ("Caused by", caused_by),
            ("Details", i.url),
        ),
        record={
            "service": service,
            "incident_id": i.external_id,
            "source": i.source,
            "title": i.title,
            "opened_at": _iso(i.opened_at),
            "restored_at": _iso(i.restored_at),
            "deployment_id": cause.external_id if cause else None,
            "url": i.url,
        },
    )
