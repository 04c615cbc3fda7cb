"""Parsed entries -> rows of logging.infrastructure_logs, with deterministic ids.

The id of a file line is uuid5(host, source, file generation, byte offset) and of a journal
entry uuid5(host, cursor); its time comes from the line, or from the previous line of the same
file when it has none. Re-reading a line therefore rebuilds the same primary key, and Cassandra
overwrites instead of storing it twice.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from iact.collector.checkpoint import Position
from iact.collector.parse.journal import parse_journal
from iact.collector.parse.model import Parsed, severity_name
from iact.collector.parse.syslog import parse_line
from iact.collector.sources.records import MetricSample, RawJournal, RawLine
from iact.sink.codec import RowCodec

COLUMNS = (
    "host", "day", "hour", "ts", "line_id", "source", "facility", "severity", "severity_code", "program", "pid",
    "unit", "message", "fields", "received_at",
)  # fmt: skip
PARTITION_KEY = ("host", "day", "hour")
CODEC = RowCodec(dates=("day",), timestamps=("ts", "received_at"), uuids=("line_id",))
TRUNCATED = "…[truncated {} bytes]"
_NAMESPACE = uuid.UUID("0b8c5a52-2f7e-4d4c-8f55-2d6a0f3e9b71")
_TS_FIELD = re.compile(rb'"__REALTIME_TIMESTAMP"\s*:\s*"(\d+)"')
_CURSOR_FIELD = re.compile(rb'"__CURSOR"\s*:\s*"([^"]+)"')


def _row(host: str, source: str, line_id: uuid.UUID, ts: datetime, p: Parsed, now: datetime) -> dict[str, Any]:
    fields = p.fields
    if p.hostname and p.hostname != host:
        fields = {**(fields or {}), "hostname": p.hostname}
    if p.severity_inferred:
        fields = {**(fields or {}), "severity_inferred": "true"}
    return {
        "host": host,
        "day": date(ts.year, ts.month, ts.day),
        "hour": ts.hour,
        "ts": ts,
        "line_id": line_id,
        "source": source,
        "facility": p.facility,
        "severity": severity_name(p.severity_code),
        "severity_code": p.severity_code,
        "program": p.program,
        "pid": p.pid,
        "unit": p.unit,
        "message": p.message,
        "fields": fields,
        "received_at": now,
    }


class RowBuilder:
    """The parse stage: one raw item in, one row (and the position it acknowledges) out."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._last_ts: dict[str, datetime] = {}
        self.parse_errors = 0

    def build(self, item: RawLine | RawJournal | MetricSample) -> tuple[dict[str, Any], Position | None]:
        """Never raises for any input bytes."""
        now = datetime.now(UTC)
        if isinstance(item, RawLine):
            return self._file_line(item, now)
        if isinstance(item, RawJournal):
            return self._journal(item, now)
        return self._metric(item, now)

    def _file_line(self, item: RawLine, now: datetime) -> tuple[dict[str, Any], Position]:
        text = item.data.decode("utf-8", "replace")
        p = parse_line(text, item.fmt)
        if item.cut:
            p.message += TRUNCATED.format(item.cut)
        if p.format == "raw":
            self.parse_errors += 1
        ts = p.ts or self._last_ts.get(item.key)
        if ts is None:
            ts = datetime.fromisoformat(item.fallback_ts) if item.fallback_ts else now
        self._last_ts[item.key] = ts
        line_id = uuid.uuid5(_NAMESPACE, f"{self.host}|{item.source}|{item.key}|{item.offset}")
        row = _row(self.host, item.source, line_id, ts, p, now)
        return row, Position(item.key, item.end, ts.isoformat())

    def _journal(self, item: RawJournal, now: datetime) -> tuple[dict[str, Any], Position | None]:
        try:
            entry = json.loads(item.data)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            p = parse_journal(entry)
            cursor = str(entry.get("__CURSOR") or "")
        except ValueError:
            # Cut short (over the size limit) or garbled: keep it raw, with what can be recovered.
            self.parse_errors += 1
            m_ts, m_cur = _TS_FIELD.search(item.data), _CURSOR_FIELD.search(item.data)
            p = Parsed(message=item.data.decode("utf-8", "replace").rstrip("\n"), format="raw")
            p.ts = datetime.fromtimestamp(int(m_ts.group(1)) / 1e6, UTC) if m_ts else None
            cursor = m_cur.group(1).decode() if m_cur else ""
        if item.cut:
            p.message += TRUNCATED.format(item.cut)
        ts = p.ts or now
        key = cursor or f"no-cursor|{ts.isoformat()}|{p.message[:200]}"
        row = _row(self.host, "journal", uuid.uuid5(_NAMESPACE, f"{self.host}|journal|{key}"), ts, p, now)
        return row, (Position("journal", cursor, ts.isoformat()) if cursor else None)

    def _metric(self, item: MetricSample, now: datetime) -> tuple[dict[str, Any], None]:
        p = Parsed(
            message=item.message, program="iact-collector", severity_code=6, fields=item.fields, format="metrics"
        )
        line_id = uuid.uuid5(_NAMESPACE, f"{self.host}|metrics|{item.ts.isoformat()}")
        return _row(self.host, "metrics", line_id, item.ts, p, now), None
