"""Parsed entries -> rows of logging.infrastructure_logs, with keys that depend only on the line.

The primary key is ((host, day, hour), ts, line_id), so a line read twice (after a crash, an
upgrade, a config change) must get the same host, ts and line_id or it is stored twice:
- line_id is uuid5(host, source, file generation, byte offset), or uuid5(host, cursor) for the journal;
- host, source and the time zone are pinned per file generation in the checkpoint (the journal
  keeps a short history of host names, by time);
- a stamp without year or zone is resolved against the previous line's time in the same file
  (or the time the file was first seen), which the checkpoint stores with every acknowledged
  offset; a line without a stamp takes the previous line's time.
Values the table cannot hold (a pid over 2^31, text that is not valid Unicode) are coerced here,
the original kept in `fields`, so no row can stop delivery.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from iact.collector.checkpoint import Position
from iact.collector.parse.journal import micros_to_datetime, parse_journal
from iact.collector.parse.model import Parsed, severity_name
from iact.collector.parse.syslog import local_stamp, parse_line, resolve_stamp
from iact.collector.sources.records import MetricSample, RawJournal, RawLine
from iact.collector.zone import host_zone_name, zone
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


INT32 = (-(2**31), 2**31 - 1)
TEXT_COLUMNS = ("host", "source", "facility", "severity", "program", "unit", "message")
CHAIN_KEYS = 4096  # file generations whose previous-line time is kept in memory
PLAUSIBLE = timedelta(days=400)  # a full stamp further than this from the previous line's time is a claim


def _text(value: str) -> str:
    """Valid UTF-8 text: lone surrogates (from JSON escapes) cannot be sent to Cassandra."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


def coerce(row: dict[str, Any], text_is_valid: bool = False) -> bool:
    """Make every value fit its column's type; True if anything had to change.

    The original of a value that does not fit goes to `fields` under the column's name, so
    nothing the line said is lost and the row still binds. Text decoded from bytes with
    errors="replace" (a file line) is valid Unicode already: `text_is_valid` skips its check.
    """
    changed = False
    extra: dict[str, str] = {}
    pid = row.get("pid")
    if pid is not None and not (type(pid) is int and INT32[0] <= pid <= INT32[1]):
        extra["pid"], row["pid"] = str(pid), None
    code = row.get("severity_code")
    if code is not None and not (type(code) is int and 0 <= code <= 7):
        extra["severity_code"], row["severity_code"], row["severity"] = str(code), None, severity_name(None)
    for name in () if text_is_valid else TEXT_COLUMNS:
        value = row.get(name)
        if value is None or (type(value) is str and value.isascii()):
            continue
        safe = _text(value if type(value) is str else str(value))
        if safe is not value:
            row[name], changed = safe, True
    fields = None if text_is_valid else row.get("fields")
    if fields and not all(type(k) is str and type(v) is str and k.isascii() and v.isascii() for k, v in fields.items()):
        clean = {_text(str(k)): _text(str(v)) for k, v in fields.items() if v is not None}
        changed |= clean != fields
        row["fields"] = clean
    if extra:
        row["fields"] = {**(row.get("fields") or {}), **extra}
        changed = True
    return changed


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


class _Chain:
    """The previous line of one file generation: where it ended, its stamp as written, and its time."""

    __slots__ = ("end", "raw", "ts")

    def __init__(self, end: int, raw: tuple[str, str, str] | None, ts: datetime) -> None:
        self.end, self.raw, self.ts = end, raw, ts


class RowBuilder:
    """The parse stage: one raw item in, one row (and the position it acknowledges) out."""

    def __init__(self, host: str, journal_hosts: list[tuple[str, str]] | None = None) -> None:
        self.host = host
        self.journal_hosts = [(datetime.fromisoformat(since), h) for since, h in journal_hosts or []]
        self._chains: dict[str, _Chain] = {}  # insertion-ordered: the oldest generation goes first
        self._ref, self._follows, self._tz = datetime.now(UTC), False, None  # the line being built
        self._last_raw: tuple[str, str, str] | None = None
        self._seen: tuple[str, str, str] | None = None
        self.parse_errors = 0
        self.coerced = 0

    def build(self, item: RawLine | RawJournal | MetricSample) -> tuple[dict[str, Any], Position | None]:
        """One row; raises only on a bug, which the caller's supervisor sets aside with the item."""
        now = datetime.now(UTC)
        if isinstance(item, RawLine):
            row, pos = self._file_line(item, now)
        elif isinstance(item, RawJournal):
            row, pos = self._journal(item, now)
        else:
            row, pos = self._metric(item, now)
        if coerce(row, text_is_valid=isinstance(item, RawLine)):
            self.coerced += 1
        return row, pos

    def _file_line(self, item: RawLine, now: datetime) -> tuple[dict[str, Any], Position]:
        text = item.data.decode("utf-8", "replace")
        chain = self._chains.get(item.key)
        if chain is not None and chain.end <= item.offset:
            self._ref, self._follows, self._last_raw = chain.ts, True, chain.raw
        else:  # the first line read of this generation, or read again from an earlier offset
            self._ref = datetime.fromisoformat(item.fallback_ts) if item.fallback_ts else now
            self._follows, self._last_raw = item.follows, None
        self._tz = item.tz
        self._seen = None
        try:
            p = parse_line(text, item.fmt, resolve=self._resolve)
        except Exception:  # parse_line must not raise; if it does, keep the line raw
            p = Parsed(message=text)
        if item.cut:
            p.message += TRUNCATED.format(item.cut)
        if p.format == "raw":
            self.parse_errors += 1
        ref = self._ref
        if p.ts is not None and self._seen is None and abs(p.ts - ref) > PLAUSIBLE:
            # A full stamp far from its neighbours (year 1, 1970, 2999): one hostile line must not move
            # the reference of every line after it, nor hide itself in a partition nobody reads.
            p.fields = {**(p.fields or {}), "claimed_ts": p.ts.isoformat()}
            p.ts = None
        ts = p.ts or ref
        chains = self._chains
        chains[item.key] = _Chain(item.end, self._seen if p.ts else None, ts)
        if len(chains) > CHAIN_KEYS:
            del chains[next(iter(chains))]
        host = item.host or self.host
        line_id = uuid.uuid5(_NAMESPACE, f"{host}|{item.source}|{item.key}|{item.offset}")
        row = _row(host, item.source, line_id, ts, p, now)
        return row, Position(item.key, item.end, ts.isoformat())

    def _resolve(self, month: str, day: str, clock: str) -> datetime | None:
        """A traditional stamp, against this file's pinned zone and previous line (set by _file_line)."""
        raw = (month, day, clock)
        self._seen = raw
        if raw == self._last_raw:
            return self._ref  # the same second as the previous line: no search
        stamp = local_stamp(month, day, clock)
        if stamp is None:
            return None
        return resolve_stamp(stamp, zone(self._tz or host_zone_name()), self._ref, self._follows)

    def skip_position(self, item: RawLine) -> Position:
        """The position of a line that makes no row (empty, or set aside), with the previous line's time.

        That time is what the next line's stamp is resolved against after a restart, so it must
        be the same one the chain in memory holds.
        """
        chain = self._chains.get(item.key)
        if chain is not None and chain.end <= item.offset:
            return Position(item.key, item.end, chain.ts.isoformat())
        return Position(item.key, item.end, item.fallback_ts if item.follows else None)

    def _journal_host(self, ts: datetime) -> str:
        """The host name in force when the entry was written (a rename applies to later entries)."""
        host = self.journal_hosts[0][1] if self.journal_hosts else self.host
        for since, name in self.journal_hosts:
            if ts >= since:
                host = name
        return host

    def _journal(self, item: RawJournal, now: datetime) -> tuple[dict[str, Any], Position | None]:
        try:
            entry = json.loads(item.data)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            p = parse_journal(entry)
            cursor = str(entry.get("__CURSOR") or "")
        except (ValueError, RecursionError):
            # Cut short (over the size limit) or garbled: keep it raw, with what can be recovered.
            self.parse_errors += 1
            m_ts, m_cur = _TS_FIELD.search(item.data), _CURSOR_FIELD.search(item.data)
            p = Parsed(message=item.data.decode("utf-8", "replace").rstrip("\n"), format="raw")
            p.ts = micros_to_datetime(int(m_ts.group(1))) if m_ts else None
            cursor = m_cur.group(1).decode("utf-8", "replace") if m_cur else ""
        if item.cut:
            p.message += TRUNCATED.format(item.cut)
        ts = p.ts or now
        key = cursor or f"no-cursor|{ts.isoformat()}|{p.message[:200]}"
        host = self._journal_host(ts)
        row = _row(host, "journal", uuid.uuid5(_NAMESPACE, f"{host}|journal|{key}"), ts, p, now)
        return row, (Position("journal", cursor, ts.isoformat()) if cursor else None)

    def _metric(self, item: MetricSample, now: datetime) -> tuple[dict[str, Any], None]:
        p = Parsed(
            message=item.message, program="iact-collector", severity_code=6, fields=item.fields, format="metrics"
        )
        line_id = uuid.uuid5(_NAMESPACE, f"{self.host}|metrics|{item.ts.isoformat()}")
        return _row(self.host, "metrics", line_id, item.ts, p, now), None
