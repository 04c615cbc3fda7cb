"""Apply the versioned CQL files of cql/ idempotently.

A file is applied when it was never applied or when its rendered text changed (new TTL, RF or
statements); every statement in it is written to be safe to run again (IF NOT EXISTS, ALTER).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from cassandra.cluster import Session

from iact.cassandra.settings import SettingsError
from iact.schema.params import SchemaParams

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")


@dataclass(frozen=True)
class Migration:
    """One cql/ file rendered with this run's parameters."""

    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


def find_cql_dir() -> Path:
    """cql/ of the checkout this package runs from, or IACT_CQL_DIR."""
    if env := os.environ.get("IACT_CQL_DIR"):
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "cql"
        if (candidate / "0001_keyspace.cql").is_file():
            return candidate
    raise SettingsError("cannot find the cql/ directory: pass --cql-dir or set IACT_CQL_DIR")


def split_statements(text: str) -> list[str]:
    """Split CQL text on ';' ending a line, dropping '--' comments and blank lines."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    statements, current = [], []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(current).strip().rstrip(";").strip()
            if stmt:
                statements.append(stmt)
            current = []
    if "\n".join(current).strip():
        raise SettingsError(f"CQL text does not end with ';': {' '.join(current).strip()[:80]}")
    return statements


def load_migrations(cql_dir: Path, params: SchemaParams) -> list[Migration]:
    """Render every NNNN_name.cql file in version order."""
    if not cql_dir.is_dir():
        raise SettingsError(f"{cql_dir} is not a directory: pass --cql-dir pointing at the repository's cql/")
    migrations = []
    values = params.template_values()
    for path in sorted(cql_dir.iterdir()):
        match = _FILE_NAME.match(path.name)
        if not match:
            continue
        try:
            rendered = Template(path.read_text(encoding="utf-8")).substitute(values)
        except KeyError as exc:
            raise SettingsError(f"{path.name} uses an unknown placeholder ${{{exc.args[0]}}}") from exc
        migrations.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                statements=tuple(split_statements(rendered)),
                checksum=hashlib.sha256(rendered.encode()).hexdigest(),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise SettingsError(f"two cql/ files share a version number in {cql_dir}")
    if not migrations:
        raise SettingsError(f"no NNNN_name.cql files in {cql_dir}")
    return migrations


def applied_checksums(session: Session, keyspace: str) -> dict[int, str]:
    """Versions already recorded, or nothing while the bookkeeping table does not exist yet."""
    exists = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = 'schema_versions'",
        (keyspace,),
    ).one()
    if not exists:
        return {}
    rows = session.execute(f"SELECT version, checksum FROM {keyspace}.schema_versions")  # nosec B608 # SchemaParams checked the name
    return {row.version: row.checksum for row in rows}


def apply_migrations(
    session: Session, params: SchemaParams, migrations: list[Migration], say: Callable[[str], None]
) -> list[Migration]:
    """Apply what is new or changed; return the migrations applied in this run.

    They are recorded after all ran, because the bookkeeping table is itself created by a
    migration (0002) that runs after the keyspace (0001).
    """
    done = applied_checksums(session, params.keyspace)
    applied = []
    for migration in migrations:
        label = f"{migration.version:04d}_{migration.name}"
        if done.get(migration.version) == migration.checksum:
            say(f"{label}: already applied")
            continue
        say(f"{label}: applying {len(migration.statements)} statement(s)")
        for statement in migration.statements:
            session.execute(statement, timeout=120)
        applied.append(migration)
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    insert = (
        session.prepare(
            f"INSERT INTO {params.keyspace}.schema_versions (version, name, checksum, applied_at, applied_by) "  # nosec B608 # SchemaParams checked the name
            "VALUES (?, ?, ?, ?, ?)"
        )
        if applied
        else None
    )
    for migration in applied:
        session.execute(insert, (migration.version, migration.name, migration.checksum, datetime.now(UTC), who))
    return applied
