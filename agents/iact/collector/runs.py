"""Which starts of the agent followed a crash, remembered across restarts.

systemd restarts a crashing agent within seconds, so "is it running?" says nothing about a
crash loop. Each start appends a record; a graceful stop marks its own record clean. A start
whose previous record is not clean followed a crash, a kill -9 or an abort; `status` and
health.yml report those within the last minutes, while a deliberate restart (an upgrade) is not
counted.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

KEEP = 50


class Runs:
    """runs.json: [{"started": epoch, "clean": bool, "after_crash": bool}, ...], newest last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.records: list[dict[str, object]] = json.loads(path.read_text())["runs"]
        except (OSError, ValueError, KeyError, TypeError):
            self.records = []

    def start(self) -> None:
        """Record this start (and whether the previous run ended without stopping cleanly)."""
        after_crash = bool(self.records) and not self.records[-1].get("clean")
        self.records = [
            *self.records[-(KEEP - 1) :],
            {"started": time.time(), "clean": False, "after_crash": after_crash},
        ]
        self._save()

    def stopped_cleanly(self) -> None:
        """A graceful stop: the next start is not a crash restart."""
        if self.records:
            self.records[-1]["clean"] = True
            self._save()

    def crash_restarts(self) -> list[float]:
        """Start times (epoch) that followed a crash."""
        return [float(r["started"]) for r in self.records if r.get("after_crash")]  # type: ignore[arg-type]

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"runs": self.records}))
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk must not stop the agent from starting
            log.error("cannot record this run in %s (%s); crash restarts may go uncounted", self.path, exc)
