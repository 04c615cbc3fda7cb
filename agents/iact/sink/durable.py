"""Cassandra when it answers, the disk spool while it does not, always in order.

Both agents (the logging handler and the collector) deliver through this one class, so they
share one behaviour: while anything is spooled, new rows queue behind it in the spool, and the
spool is replayed (with exponential backoff between attempts) before new rows go direct.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iact.sink.cassandra import CassandraSink, SinkError
from iact.sink.deadletter import DeadLetter
from iact.sink.spool import Spool


@dataclass
class DeliveryStats:
    """Counters; each is written by the delivering thread only."""

    written: int = 0
    spooled: int = 0
    batches: int = 0
    write_errors: int = 0
    last_error: str | None = None


class DurableSink:
    """deliver() returns how many rows (a prefix) are now safe: written, or fsynced to the spool."""

    def __init__(
        self,
        sink: CassandraSink,
        spool: Spool,
        orphans: Sequence[Spool] = (),
        replay_chunk: int = 1000,
        max_backoff: float = 30.0,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        self.sink, self.spool = sink, spool
        self.dead_letter = dead_letter or DeadLetter(None)
        self.orphans = list(orphans)
        self.replay_chunk = replay_chunk
        self.max_backoff = max_backoff
        self.stats = DeliveryStats()
        self._retry_at = 0.0
        self._backoff = 0.5

    def spooled(self) -> bool:
        """Anything waiting on disk (ours or a dead process's)?"""
        return self.spool.pending_bytes() > 0 or any(o.pending_bytes() > 0 for o in self.orphans)

    def pending_bytes(self) -> int:
        """Bytes waiting in the spools."""
        return self.spool.pending_bytes() + sum(o.pending_bytes() for o in self.orphans)

    def in_backoff(self) -> bool:
        """True while the last failure is too recent to try Cassandra again."""
        return time.monotonic() < self._retry_at

    def deliver(self, rows: Sequence[dict[str, Any]]) -> int:
        """Write rows, or spool them behind what is already spooled; return how many are safe.

        Fewer than len(rows) means the spool is full: the caller keeps the rest and retries.
        """
        if not rows:
            return 0
        if self.spooled() and not self.replay():
            return self._to_spool(rows)
        try:
            self._write(rows)
            return len(rows)
        except SinkError as exc:
            self._failed(exc)
            return self._to_spool(rows)

    def replay(self, force: bool = False) -> bool:
        """Send spooled rows in order; False while Cassandra is still away (or in backoff)."""
        if not self.spooled():
            return True
        if not force and self.in_backoff():
            return False
        for spool in [*self.orphans, self.spool]:
            for rows, end in spool.chunks(self.replay_chunk):
                try:
                    self._write(rows)
                except SinkError as exc:
                    self._failed(exc)
                    return False
                spool.ack(end)
        self._backoff = 0.5
        return True

    def close(self) -> None:
        """Release Cassandra connections and the spools (their locks go with them)."""
        self.sink.close()
        for spool in [*self.orphans, self.spool]:
            spool.close()

    def _write(self, rows: Sequence[dict[str, Any]]) -> None:
        before = self.sink.rejected
        self.stats.written += self.sink.write(rows, self.dead_letter) - (self.sink.rejected - before)
        self.stats.batches += 1

    def _failed(self, exc: Exception) -> None:
        self.stats.write_errors += 1
        self.stats.last_error = str(exc)
        # Jitter: after an outage, a fleet of agents must not replay at the same instant.
        self._retry_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(self._backoff * 2, self.max_backoff)

    def _to_spool(self, rows: Sequence[dict[str, Any]]) -> int:
        kept = self.spool.append(list(rows))
        self.stats.spooled += kept
        if self.spool.last_error:
            self.stats.last_error = self.spool.last_error
        return kept
