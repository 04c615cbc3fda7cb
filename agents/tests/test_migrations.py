from pathlib import Path

import pytest

from iact.cassandra.settings import SettingsError
from iact.schema.migrations import find_cql_dir, load_migrations, split_statements
from iact.schema.params import SchemaParams

REPO_CQL = Path(__file__).resolve().parents[2] / "cql"


def test_split_statements_drops_comments_and_keeps_multiline():
    text = "-- note\nCREATE TABLE t (\n  a int PRIMARY KEY\n);\n\nALTER TABLE t WITH x = 1;\n"
    assert split_statements(text) == ["CREATE TABLE t (\n  a int PRIMARY KEY\n)", "ALTER TABLE t WITH x = 1"]


def test_split_statements_rejects_an_unterminated_statement():
    with pytest.raises(SettingsError, match="does not end with ';'"):
        split_statements("CREATE TABLE t (a int PRIMARY KEY)")


def test_repository_cql_renders_with_every_placeholder_filled():
    migrations = load_migrations(REPO_CQL, SchemaParams())
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert [m.name for m in migrations][:2] == ["keyspace", "schema_versions"]
    text = "\n".join(s for m in migrations for s in m.statements)
    assert "${" not in text
    assert "'compaction_window_size': 3" in text
    assert "default_time_to_live = 7776000" in text
    assert "read_repair = 'NONE'" in text
    assert "ALLOW FILTERING" not in text


def test_log_tables_partition_by_host_day_and_hour():
    migrations = {m.name: m for m in load_migrations(REPO_CQL, SchemaParams())}
    for name in ("application_logs", "infrastructure_logs"):
        create = migrations[name].statements[0]
        assert "PRIMARY KEY ((host, day, hour), ts," in create
        assert "CLUSTERING ORDER BY (ts DESC" in create


def test_checksum_follows_parameters():
    a = load_migrations(REPO_CQL, SchemaParams(ttl_days=90))
    b = load_migrations(REPO_CQL, SchemaParams(ttl_days=30))
    assert a[0].checksum == b[0].checksum  # the keyspace file does not use the TTL
    assert a[2].checksum != b[2].checksum


def test_unknown_placeholder_names_the_file(tmp_path):
    (tmp_path / "0001_keyspace.cql").write_text("CREATE KEYSPACE ${nope};\n")
    with pytest.raises(SettingsError, match=r"0001_keyspace.cql uses an unknown placeholder \$\{nope\}"):
        load_migrations(tmp_path, SchemaParams())


def test_duplicate_versions_are_refused(tmp_path):
    (tmp_path / "0001_a.cql").write_text("SELECT 1;\n")
    (tmp_path / "0001_b.cql").write_text("SELECT 2;\n")
    with pytest.raises(SettingsError, match="share a version"):
        load_migrations(tmp_path, SchemaParams())


def test_find_cql_dir_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("IACT_CQL_DIR", str(tmp_path))
    assert find_cql_dir() == tmp_path
    monkeypatch.delenv("IACT_CQL_DIR")
    assert find_cql_dir() == REPO_CQL
