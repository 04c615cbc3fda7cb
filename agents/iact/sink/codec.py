"""JSON encoding of rows for the spool: the typed columns (dates, timestamps, uuids) as strings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class RowCodec:
    """Which columns need converting; every other value must already be JSON-safe."""

    dates: Sequence[str] = ()
    timestamps: Sequence[str] = ()
    uuids: Sequence[str] = ()

    def encode(self, row: dict[str, Any]) -> dict[str, Any]:
        """Row -> JSON-safe dict."""
        out = dict(row)
        for name in (*self.dates, *self.timestamps):
            if out.get(name) is not None:
                out[name] = out[name].isoformat()
        for name in self.uuids:
            if out.get(name) is not None:
                out[name] = str(out[name])
        return out

    def decode(self, data: dict[str, Any]) -> dict[str, Any]:
        """Inverse of encode."""
        row = dict(data)
        for name in self.dates:
            if row.get(name) is not None:
                row[name] = date.fromisoformat(row[name])
        for name in self.timestamps:
            if row.get(name) is not None:
                row[name] = datetime.fromisoformat(row[name])
        for name in self.uuids:
            if row.get(name) is not None:
                row[name] = uuid.UUID(row[name])
        return row
