"""What every parser returns, and the syslog vocabularies (RFC 5424 section 6.2.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
UNKNOWN = "unknown"
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
    "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5",
    "local6", "local7",
)  # fmt: skip


def severity_name(code: int | None) -> str:
    """0..7 -> emerg..debug; anything else is unknown."""
    return SEVERITIES[code] if code is not None and 0 <= code < 8 else UNKNOWN


def facility_name(code: int | None) -> str | None:
    """0..23 -> kern..local7."""
    return FACILITIES[code] if code is not None and 0 <= code < len(FACILITIES) else None


@dataclass(slots=True)
class Parsed:
    """One log entry. ts None means the line carried no usable time (the row builder fills one in)."""

    message: str
    ts: datetime | None = None
    hostname: str | None = None
    program: str | None = None
    pid: int | None = None
    facility: str | None = None
    severity_code: int | None = None
    unit: str | None = None
    fields: dict[str, str] | None = None
    format: str = "raw"
    severity_inferred: bool = False
