"""Journal entries as `journalctl -o json` prints them -> Parsed.

Field meanings are from systemd.journal-fields(7): PRIORITY is the syslog severity,
__REALTIME_TIMESTAMP microseconds since the epoch, _SYSTEMD_UNIT the unit, _PID/_COMM the
process. Binary fields arrive as arrays of byte values and are decoded with replacement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from iact.collector.parse.model import Parsed, facility_name

# Trusted fields copied into `fields` when present (the rest of the entry is noise for a log store).
_KEPT = ("_COMM", "_EXE", "_UID", "_BOOT_ID", "_TRANSPORT", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_FUNC")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):  # binary data, or the same field several times
        if value and all(isinstance(b, int) for b in value):
            return bytes(b & 0xFF for b in value).decode("utf-8", "replace")
        return " ".join(t for t in (_text(v) for v in value) if t)
    return str(value)


def _int(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text and text.isascii() and text.isdigit() else None


def micros_to_datetime(micros: int | None) -> datetime | None:
    """Microseconds since the epoch -> UTC, None when out of datetime's range (a hostile entry)."""
    if micros is None:
        return None
    try:
        return datetime.fromtimestamp(micros / 1e6, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_journal(entry: dict[str, Any]) -> Parsed:
    """One decoded JSON entry; never raises (a missing field just stays empty)."""
    micros = _int(entry.get("__REALTIME_TIMESTAMP"))
    priority = _int(entry.get("PRIORITY"))
    p = Parsed(
        message=_text(entry.get("MESSAGE")) or "",
        ts=micros_to_datetime(micros),
        hostname=_text(entry.get("_HOSTNAME")),
        program=_text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")),
        pid=_int(entry.get("_PID")) or _int(entry.get("SYSLOG_PID")),
        facility=facility_name(_int(entry.get("SYSLOG_FACILITY"))),
        severity_code=priority if priority is not None and priority < 8 else None,
        unit=_text(entry.get("_SYSTEMD_UNIT")) or _text(entry.get("UNIT")),
        format="journal",
    )
    fields = {k.lstrip("_").lower(): t for k in _KEPT if (t := _text(entry.get(k))) is not None}
    p.fields = fields or None
    if p.program == "kernel" and p.facility is None:
        p.facility = "kern"
    return p
