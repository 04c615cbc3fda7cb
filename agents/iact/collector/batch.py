"""Rows grouped for one delivery, with the positions each row acknowledges once delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iact.collector.checkpoint import Position


@dataclass
class Batch:
    """Rows in read order; positions[i] is what rows[i] moves when it is safe (or None).

    `skipped` holds positions of lines that produced no row (set aside in the dead-letter file),
    each with the number of rows read before it, so they are acknowledged in read order too.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    positions: list[Position | None] = field(default_factory=list)
    skipped: list[tuple[int, Position]] = field(default_factory=list)

    def add(self, row: dict[str, Any], position: Position | None) -> None:
        """Append one row."""
        self.rows.append(row)
        self.positions.append(position)

    def skip(self, position: Position) -> None:
        """A line with no row: acknowledge it once the rows read before it are safe."""
        self.skipped.append((len(self.rows), position))

    def extend(self, other: Batch) -> None:
        """Append another batch's rows (read after this one's)."""
        shift = len(self.rows)
        self.skipped.extend((n + shift, pos) for n, pos in other.skipped)
        self.rows.extend(other.rows)
        self.positions.extend(other.positions)

    def __len__(self) -> int:
        return len(self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows or self.skipped)

    def acknowledged(self, count: int) -> dict[str, Position]:
        """The furthest position per source among the first `count` rows (all are in order)."""
        out: dict[str, Position] = {}
        skipped = iter(self.skipped)
        nxt = next(skipped, None)
        for i in range(count + 1):
            while nxt is not None and nxt[0] == i:
                out[nxt[1].key] = nxt[1]
                nxt = next(skipped, None)
            if i < count and (pos := self.positions[i]) is not None:
                out[pos.key] = pos
        return out
