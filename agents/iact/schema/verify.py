"""Check that the live schema is what cql/ and the parameters ask for; list every difference."""

from __future__ import annotations

from cassandra.cluster import Session

from iact.schema.params import SchemaParams

LOG_TABLES = ("application_logs", "infrastructure_logs")
# Columns the seeds' lookups filter on; each needs a storage-attached index.
INDEXED = {
    "application_logs": ("day", "level", "logger", "request_id", "app"),
    "infrastructure_logs": ("day", "severity", "source", "program"),
}


def verify_schema(session: Session, params: SchemaParams) -> list[str]:
    """Return the problems found; an empty list means the schema is as configured."""
    problems: list[str] = []
    ks = params.keyspace
    row = session.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", (ks,)).one()
    if not row:
        return [f"keyspace {ks} does not exist: run `iact-schema apply`"]
    replication = dict(row.replication)
    if not replication.get("class", "").endswith("NetworkTopologyStrategy"):
        problems.append(f"keyspace {ks} uses {replication.get('class')}, not NetworkTopologyStrategy")
    for dc, rf in params.replication:
        if replication.get(dc) != str(rf):
            problems.append(f"keyspace {ks} has RF {replication.get(dc)} in {dc}, expected {rf}")
    for table in LOG_TABLES:
        t = session.execute(
            "SELECT compaction, compression, default_time_to_live, gc_grace_seconds, read_repair "
            "FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
            (ks, table),
        ).one()
        if not t:
            problems.append(f"table {ks}.{table} does not exist: run `iact-schema apply`")
            continue
        compaction = dict(t.compaction)
        if not compaction.get("class", "").endswith("TimeWindowCompactionStrategy"):
            problems.append(f"{table}: compaction {compaction.get('class')}, expected TimeWindowCompactionStrategy")
        window = f"{compaction.get('compaction_window_size')} {compaction.get('compaction_window_unit')}"
        if window != f"{params.twcs_window_days} DAYS":
            problems.append(f"{table}: TWCS window {window}, expected {params.twcs_window_days} DAYS")
        if t.default_time_to_live != params.ttl_seconds:
            problems.append(f"{table}: default_time_to_live {t.default_time_to_live}, expected {params.ttl_seconds}")
        if t.gc_grace_seconds < params.hint_window_hours * 3600:
            problems.append(f"{table}: gc_grace_seconds {t.gc_grace_seconds} is below the hint window")
        if t.read_repair != "NONE":
            problems.append(f"{table}: read_repair {t.read_repair}, expected NONE")
        if not dict(t.compression).get("class", "").endswith(params.compression):
            problems.append(f"{table}: compression {dict(t.compression).get('class')}, expected {params.compression}")
        indexes = {
            r.options.get("target")
            for r in session.execute(
                "SELECT options FROM system_schema.indexes WHERE keyspace_name = %s AND table_name = %s", (ks, table)
            )
        }
        for column in INDEXED[table]:
            if column not in indexes:
                problems.append(f"{table}: no index on {column}")
    return problems
