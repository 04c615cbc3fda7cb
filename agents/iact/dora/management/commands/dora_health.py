"""`iact-dora dora_health`: database, Cassandra, disk and the app's own HTTP check, every 5 minutes.

Writes the verdict as JSON to the status file (atomically, for other tools to read) and exits 1 on
any failure, so cron mails or the systemd timer marks the run failed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from iact.dora import fleet


def check_database() -> tuple[bool, str]:
    """SELECT 1 through Django's connection."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "ok"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def check_cassandra(hosts: tuple[str, ...], port: int) -> tuple[bool, str]:
    """A majority of the contact points accept TCP on the CQL port (QUORUM writes need that)."""
    if not hosts:
        return True, "not configured"
    up = []
    for host in hosts:
        try:
            with socket.create_connection((host, port), timeout=3):
                up.append(host)
        except OSError:
            pass
    ok = len(up) > len(hosts) // 2
    return ok, f"{len(up)}/{len(hosts)} reachable" + (
        "" if ok else f" (down: {', '.join(sorted(set(hosts) - set(up)))})"
    )


def check_disk(paths: tuple[str, ...], max_percent: float) -> tuple[bool, str]:
    """Every path's filesystem below the threshold."""
    notes, ok = [], True
    for path in paths:
        usage = shutil.disk_usage(path)
        percent = 100 * usage.used / usage.total
        ok &= percent < max_percent
        notes.append(f"{path} {percent:.0f}%")
    return ok, ", ".join(notes) + f" (limit {max_percent:.0f}%)"


def check_http(url: str) -> tuple[bool, str]:
    """The app answers through its own HTTP path."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return False, f"{url} is not an http(s) URL: set health.url to the app's http://.../healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # nosec B310 # scheme checked above
            body = json.loads(response.read() or b"{}")
            return response.status == 200 and body.get("status") == "ok", f"HTTP {response.status}"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def fleet_file(status_file: str) -> Path:
    """The fleet snapshot lives beside the health verdict (both read by /health/)."""
    return Path(status_file).with_name("fleet.json")


class Command(BaseCommand):
    """Run every check, write the status file, fail loudly."""

    def _fleet(self, status_file: str) -> None:
        """The fleet snapshot for /health/, when the log console has its Cassandra account. Its own
        failure is reported but fails the run only through the checks above."""
        from iact.dora.logs.connection import ConsoleOff, get_search

        try:
            search = get_search()
            data = fleet.snapshot(search.session, search.keyspace)
            fleet.write(fleet_file(status_file), data)
            self.stdout.write(f"ok   fleet      {data['state']}, {len(data['items'])} item(s)")
        except ConsoleOff:
            self.stdout.write("ok   fleet      not configured (set django_dora_logs_password)")
        except Exception as exc:
            self.stdout.write(f"FAIL fleet      {type(exc).__name__}: {exc}"[:300])

    help = "Check database, Cassandra, disk and HTTP; write the status file; exit 1 on failure."

    def handle(self, *args: Any, **options: Any) -> None:
        """Print one line per check."""
        cfg = settings.DORA_HEALTH
        checks = {
            "database": check_database(),
            "cassandra": check_cassandra(cfg.cassandra_hosts, cfg.cassandra_port),
            "disk": check_disk(cfg.disk_paths, cfg.disk_max_percent),
            "http": check_http(cfg.url),
        }
        ok = all(passed for passed, _ in checks.values())
        status = {
            "ok": ok,
            "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "checks": {name: {"ok": passed, "detail": detail} for name, (passed, detail) in checks.items()},
        }
        directory = os.path.dirname(cfg.status_file) or "."
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as fh:
            json.dump(status, fh, indent=2)
        os.chmod(fh.name, 0o644)
        os.replace(fh.name, cfg.status_file)
        for name, (passed, detail) in checks.items():
            self.stdout.write(f"{'ok  ' if passed else 'FAIL'} {name:<10} {detail}")
        self._fleet(cfg.status_file)
        if not ok:
            raise CommandError(f"unhealthy: see {cfg.status_file}")
