"""/health/: the fleet at a glance, read from the files the jobs write (never a query or a command per view).

The fleet snapshot and the dashboard's checks come from the health job (fleet.json, health.json);
each cron job's last run from the status file iact-dora-job leaves (iact.dora.jobs).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from iact.dora.jobs import judge

STALE = timedelta(minutes=15)  # the health job runs every few minutes


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@require_GET
@login_required
def health(request: HttpRequest) -> HttpResponse:
    """Nodes, collectors, alert runs, the dashboard's own checks and cron jobs, each green, amber or red with why."""
    status_file = Path(settings.DORA_HEALTH.status_file)
    fleet = _read(status_file.with_name("fleet.json"))
    checks = _read(status_file)
    notice = ""
    if fleet is None:
        notice = (f"No fleet snapshot yet ({status_file.with_name('fleet.json')}): the health job writes it every few "
                  "minutes once django_dora_logs_password is set.")  # fmt: skip
    elif datetime.now(UTC) - datetime.fromisoformat(fleet["taken_at"]) > STALE:
        notice = f"The fleet snapshot is from {fleet['taken_at']}: the health job (cron) has not run since."
    rows = []
    if checks:
        for name, check in checks.get("checks", {}).items():
            rows.append({"name": name, "state": "green" if check["ok"] else "red", "reason": check["detail"]})
    context = {"fleet": fleet, "checks": rows, "checked_at": checks.get("checked_at") if checks else None,
               "jobs": judge.lines(settings.DORA_JOBS), "notice": notice}  # fmt: skip
    return render(request, "dora/health.html", context)
