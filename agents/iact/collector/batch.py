"""Rows grouped for one delivery, with the positions each row acknowledges once delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iact.collector.checkpoint import Position


@dataclass
class Batch:
    """Rows in read order; positions[i] is what rows[i] moves when it is safe (or None)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    positions: list[Position | None] = field(default_factory=list)

    def add(self, row: dict[str, Any], position: Position | None) -> None:
        """Append one row."""
        self.rows.append(row)
        self.positions.append(position)

    def extend(self, other: Batch) -> None:
        """Append another batch's rows (read after this one's)."""
        self.rows.extend(other.rows)
        self.positions.extend(other.positions)

    def __len__(self) -> int:
        return len(self.rows)

    def acknowledged(self, count: int) -> dict[str, Position]:
        """The furthest position per source among the first `count` rows (all are in order)."""
        out: dict[str, Position] = {}
        for pos in self.positions[:count]:
            if pos is not None:
                out[pos.key] = pos
        return out
