"""The one Cassandra writer of the agents: prepared inserts, batched per partition, concurrent.

Rows are plain dicts. Rows of one partition go in UNLOGGED batches (one replica set, one
round trip, no batch log); different partitions go as concurrent requests, never in one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from cassandra import ConsistencyLevel, InvalidRequest
from cassandra.cluster import Cluster, Session
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, BoundStatement, PreparedStatement, Statement

from iact.cassandra.names import cql_identifier
from iact.cassandra.session import build_cluster
from iact.cassandra.settings import ConnectionSettings

Reject = Callable[[dict[str, Any], str], None]
Pair = tuple[dict[str, Any], BoundStatement]


class SinkError(RuntimeError):
    """A write did not reach Cassandra; the rows must be kept (spooled) and retried."""


class CassandraSink:
    """Writes rows of one table; connects lazily and reconnects after a failure."""

    def __init__(
        self,
        settings: ConnectionSettings,
        keyspace: str,
        table: str,
        columns: Sequence[str],
        partition_key: Sequence[str],
        ttl_seconds: int | None = None,
        consistency: str = "LOCAL_QUORUM",
        max_batch_rows: int = 100,
        max_batch_bytes: int = 60 * 1024,
        concurrency: int = 16,
    ) -> None:
        if not hasattr(ConsistencyLevel, consistency):
            raise ValueError(f"consistency {consistency!r} is not a Cassandra consistency level (e.g. LOCAL_QUORUM)")
        self.settings = settings
        # Names are formatted into the CQL text (only values can be bound): each must be a plain identifier.
        self.keyspace, self.table = cql_identifier(keyspace, "keyspace"), cql_identifier(table, "table")
        self.columns = tuple(cql_identifier(c, "column") for c in columns)
        self.partition_key = tuple(partition_key)
        self.ttl_seconds = ttl_seconds
        self.consistency = getattr(ConsistencyLevel, consistency)
        self.max_batch_rows = max_batch_rows
        self.max_batch_bytes = max_batch_bytes
        self.concurrency = concurrency
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._insert: PreparedStatement | None = None
        self.rejected = 0

    def _connect(self) -> None:
        cluster = build_cluster(self.settings)
        try:
            session = cluster.connect()
            ttl = f" USING TTL {int(self.ttl_seconds)}" if self.ttl_seconds else ""
            insert = session.prepare(
                f"INSERT INTO {self.keyspace}.{self.table} ({', '.join(self.columns)}) "  # nosec B608 # names checked in __init__
                f"VALUES ({', '.join('?' for _ in self.columns)}){ttl}"
            )
        except Exception as exc:
            cluster.shutdown()
            raise SinkError(f"cannot connect to Cassandra at {', '.join(self.settings.contact_points)}: {exc}") from exc
        insert.consistency_level = self.consistency
        insert.is_idempotent = True  # each row's id is in its key: a retried write rewrites the same row
        self._cluster, self._session, self._insert = cluster, session, insert

    def close(self) -> None:
        """Release connections; the next write reconnects."""
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = self._insert = None

    def _chunks(self, rows: list[Pair]) -> list[list[Pair]]:
        """Split one partition's rows by count and by (estimated) size below the batch warning."""
        chunks: list[list[Pair]] = [[]]
        size = 0
        for pair in rows:
            row = pair[0]
            est = sum(len(v) if isinstance(v, str) else 16 for v in row.values() if v is not None)
            if chunks[-1] and (len(chunks[-1]) >= self.max_batch_rows or size + est > self.max_batch_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append(pair)
            size += est
        return chunks

    def _values(self, row: dict[str, Any]) -> list[Any]:
        # None would be written as a tombstone per empty column; unset writes nothing at all.
        return [UNSET_VALUE if (v := row.get(c)) is None else v for c in self.columns]

    def write(self, rows: Sequence[dict[str, Any]], reject: Reject | None = None) -> int:
        """Write all rows or raise SinkError (then some may be written: rows are idempotent).

        A row Cassandra can never take (a value its column type cannot hold, refused by the
        server as invalid) is not a reason to hold back the others: it goes to `reject` with the
        error and counts as handled. Without `reject`, such a row raises SinkError like an outage.
        """
        if not rows:
            return 0
        if self._session is None:
            self._connect()
        assert self._session is not None and self._insert is not None
        by_partition: dict[tuple[Any, ...], list[Pair]] = defaultdict(list)
        for row in rows:
            try:
                bound = self._insert.bind(self._values(row))
                key = tuple(row[k] for k in self.partition_key)
            except Exception as exc:  # the driver raises TypeError, ValueError, struct.error, ...
                self._rejected(row, f"cannot be bound to {self.table}: {type(exc).__name__}: {exc}", reject)
                continue
            by_partition[key].append((row, bound))
        statements: list[tuple[Statement, list[Pair]]] = []
        for part_rows in by_partition.values():
            for chunk in self._chunks(part_rows):
                if len(chunk) == 1:
                    statements.append((chunk[0][1], chunk))
                    continue
                batch = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=self.consistency)
                batch.is_idempotent = True
                for _row, bound in chunk:
                    batch.add(bound)
                statements.append((batch, chunk))
        try:
            for i in range(0, len(statements), self.concurrency):
                window = statements[i : i + self.concurrency]
                futures = [self._session.execute_async(s) for s, _ in window]
                for future, (_s, chunk) in zip(futures, window, strict=True):
                    try:
                        future.result()
                    except InvalidRequest:
                        if reject is None:
                            raise
                        self._one_by_one(chunk, reject)
        except Exception as exc:
            self.close()
            raise SinkError(f"write to {self.keyspace}.{self.table} failed: {type(exc).__name__}: {exc}") from exc
        return len(rows)

    def _one_by_one(self, chunk: list[Pair], reject: Reject) -> None:
        """A batch the server refused as invalid: find the row(s) to blame, write the rest."""
        assert self._session is not None
        for row, bound in chunk:
            try:
                self._session.execute(bound)
            except InvalidRequest as exc:
                self._rejected(row, f"refused by Cassandra: {exc}", reject)

    def _rejected(self, row: dict[str, Any], reason: str, reject: Reject | None) -> None:
        if reject is None:
            raise SinkError(f"row not writable: {reason}")
        self.rejected += 1
        reject(row, reason)
