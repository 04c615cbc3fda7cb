"""JSON lines for the file layer, with the same fields as the Cassandra rows."""

from __future__ import annotations

import json
import logging
import socket

from iact.applog.rows import build_row


class JsonFormatter(logging.Formatter):
    """One JSON object per record: what lands in Cassandra, readable by jq and the collector."""

    def __init__(self, app: str = "app", host: str | None = None) -> None:
        super().__init__()
        self.app = app
        self.host = host or socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        """Serialize the record's row (ids and dates as strings)."""
        exc_text = self.formatException(record.exc_info) if record.exc_info else None
        row = build_row(record, record.getMessage(), exc_text, self.app, self.host, 0)
        row.pop("log_id")
        row["day"] = row["day"].isoformat()
        row["ts"] = row["ts"].isoformat()
        return json.dumps(row, ensure_ascii=False, default=str)
