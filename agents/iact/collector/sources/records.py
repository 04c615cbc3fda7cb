"""What sources put on the line queue: raw bytes plus where they came from (for ids and acks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class RawLine:
    """One line of a file; `end` is the offset just after its newline (the checkpoint position)."""

    source: str
    key: str
    offset: int
    end: int
    data: bytes
    cut: int  # bytes dropped because the line was longer than max_line_bytes
    fmt: str
    fallback_ts: str | None  # time of the line before `offset` (or when the file was first seen)
    host: str | None = None  # pinned per file generation, so a re-read line keeps its row key
    tz: str | None = None  # zone name for stamps without one, pinned likewise
    follows: bool = False  # fallback_ts is a previous line's time (not the file's first sighting)
    empty: bool = False  # an empty line: no row, but its end must be acknowledged (the file's last line)


@dataclass(slots=True)
class RawJournal:
    """One `journalctl -o json` line."""

    data: bytes
    cut: int


@dataclass(slots=True)
class MetricSample:
    """Host health at one instant, already structured."""

    ts: datetime
    message: str
    fields: dict[str, str]
