"""Turn a captured log record into a row of logging.application_logs (on the writer thread)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime
from typing import Any

from iact.sink.codec import RowCodec

# Limits of what is stored, so one huge record cannot produce a row Cassandra rejects.
MAX_MESSAGE_CHARS = 64 * 1024
MAX_EXCEPTION_CHARS = 64 * 1024
MAX_EXTRA_VALUE_CHARS = 4 * 1024
MAX_EXTRA_FIELDS = 64
TRUNCATED = "…[truncated {} chars]"

_ROW_NAMESPACE = uuid.UUID("5f2b8f0e-6a51-4c1e-9a59-7d3c2b1a0e11")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_CONTEXT = ("request_id", "user_id", "session_id")

COLUMNS = (
    "host", "day", "hour", "ts", "log_id", "app", "level", "levelno", "logger", "message", "module", "func",
    "lineno", "process", "thread", "request_id", "user_id", "session_id", "exception", "extra",
)  # fmt: skip
PARTITION_KEY = ("host", "day", "hour")


def clean_text(value: str, limit: int) -> str:
    """Valid UTF-8 (lone surrogates replaced) and at most `limit` characters, marked when cut."""
    text = value.encode("utf-8", "replace").decode("utf-8") if not value.isascii() else value
    if len(text) > limit:
        return text[:limit] + TRUNCATED.format(len(text) - limit)
    return text


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # a __str__ that raises must not lose the record
        return f"<unprintable {type(value).__name__}>"


def build_row(
    record: logging.LogRecord, message: str | bytes, exc_text: str | None, app: str, host: str, seq: int
) -> dict:
    """The row for one record; log_id is fixed by (host, pid, record time, sequence)."""
    created = datetime.fromtimestamp(record.created, UTC)
    extra: dict[str, str] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key in _CONTEXT or key.startswith("_"):
            continue
        if len(extra) >= MAX_EXTRA_FIELDS:
            extra["_truncated"] = "more extra fields than stored"
            break
        extra[clean_text(key, 128)] = clean_text(_as_text(value), MAX_EXTRA_VALUE_CHARS)
    context = {k: getattr(record, k, None) for k in _CONTEXT}
    return {
        "host": host,
        "day": date(created.year, created.month, created.day),
        "hour": created.hour,
        "ts": created,
        "log_id": uuid.uuid5(_ROW_NAMESPACE, f"{host}|{record.process}|{record.created!r}|{seq}"),
        "app": app,
        "level": record.levelname,
        "levelno": record.levelno,
        "logger": record.name,
        "message": clean_text(_as_text(message), MAX_MESSAGE_CHARS),
        "module": record.module,
        "func": record.funcName,
        "lineno": record.lineno,
        "process": record.process,
        "thread": record.threadName,
        "request_id": None if context["request_id"] is None else clean_text(_as_text(context["request_id"]), 128),
        "user_id": None if context["user_id"] is None else clean_text(_as_text(context["user_id"]), 128),
        "session_id": None if context["session_id"] is None else clean_text(_as_text(context["session_id"]), 128),
        "exception": None if exc_text is None else clean_text(exc_text, MAX_EXCEPTION_CHARS),
        "extra": extra or None,
    }


CODEC = RowCodec(dates=("day",), timestamps=("ts",), uuids=("log_id",))
row_to_json = CODEC.encode
row_from_json = CODEC.decode
