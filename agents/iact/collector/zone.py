"""The host's time zone as an IANA name, so it can be pinned in a checkpoint and reloaded.

Traditional syslog stamps carry neither year nor zone. Their UTC time depends on the zone the
writer used; pinning the zone's name per file generation (not the current offset) keeps a
re-read line's time, and so its row key, the same even if the host's zone changes meanwhile,
and keeps DST transitions right within the file.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONEINFO_DIRS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")


def _key_from_path(path: str) -> str | None:
    real = os.path.realpath(path)
    for base in _ZONEINFO_DIRS:
        if real.startswith(base):
            key = real[len(base) :]
            return key.removeprefix("posix/").removeprefix("right/")
    return None


_cached: tuple[float, str] = (-1.0, "UTC")


def host_zone_name() -> str:
    """The host's zone name, looked up at most once a minute (it is read for every parsed line)."""
    global _cached
    now = time.monotonic()
    if now - _cached[0] > 60 or _cached[0] < 0:
        _cached = (now, _lookup_zone_name())
    return _cached[1]


def _lookup_zone_name() -> str:
    """TZ if set (as glibc reads it), else /etc/localtime's target, else /etc/timezone, else UTC."""
    tz = os.environ.get("TZ")
    if tz:
        tz = tz.removeprefix(":")
        if tz.startswith("/"):
            return _key_from_path(tz) or "UTC"
        return tz if zone(tz) is not UTC or tz.upper() in ("UTC", "UTC0") else "UTC"
    key = _key_from_path("/etc/localtime") if os.path.exists("/etc/localtime") else None
    if key:
        return key
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        return "UTC"


@lru_cache(maxsize=64)
def zone(name: str | None) -> tzinfo:
    """ZoneInfo for a name; UTC for None or a name the system's tzdata does not know."""
    if not name or name.upper() in ("UTC", "UTC0", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC
