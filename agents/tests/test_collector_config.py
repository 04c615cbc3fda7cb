"""Configuration errors name the key and the fix; a valid file yields typed values."""

from __future__ import annotations

import pytest

from iact.collector.cli import main
from iact.collector.config import ConfigError, from_mapping, load

BASE = {"cassandra": {"hosts": ["10.0.0.1"]}, "sources": {"files": ["/var/log/syslog"]}}


def with_(**changes):
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    data.update(changes)
    return data


def test_defaults_and_types():
    conf = from_mapping(
        with_(spool={"max_bytes": "128MiB"}, batch={"max_rows": 500, "max_wait": 2}, sources={"files": [
            {"path": "/var/log/auth.log", "source": "auth"}, "/var/log/syslog"]}),
    )  # fmt: skip
    assert conf.spool_max_bytes == 128 * 1024**2
    assert conf.batch_max_rows == 500 and conf.batch_max_wait == 2.0
    assert [(f.path, f.source) for f in conf.files] == [("/var/log/auth.log", "auth"), ("/var/log/syslog", "syslog")]
    assert conf.cassandra.consistency == "LOCAL_QUORUM" and conf.journal is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_(batchs={}), r"batchs: unknown key; known keys here are"),
        (with_(batch={"max_rows": "many"}), r"batch.max_rows: expected int, got 'many'"),
        (with_(batch={"max_rows": 5000}), r"batch.max_rows: at most 1000"),
        (with_(spool={"max_bytes": "lots"}), r"spool.max_bytes: 'lots' is not a size"),
        (with_(cassandra={}), r"cassandra.hosts: list the Cassandra contact points"),
        (with_(cassandra={"hosts": ["h"], "consistency": "MOST"}), r"cassandra.consistency: 'MOST'"),
        (with_(cassandra={"hosts": ["h"], "username": "u"}), r"needs a password"),
        (with_(sources={"files": [{"path": "relative.log"}]}), r"sources.files\[0\].path: give an absolute path"),
        (with_(sources={"files": [{"path": "/x", "format": "json"}]}), r"sources.files\[0\].format: 'json'"),
        (with_(sources={"journal": {"enabled": False}}), r"nothing to collect"),
        (with_(start_position="middle"), r"start_position: 'middle' must be"),
        ([1, 2], r"expected a mapping"),
    ],
)
def test_errors_name_the_key(data, message, monkeypatch):
    monkeypatch.delenv("IACT_CASSANDRA_HOSTS", raising=False)
    with pytest.raises(ConfigError, match=message):
        from_mapping(data)


def test_file_errors_and_cli_exit_code(tmp_path, capsys):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cassandra: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)
    assert main(["check-config", "--config", str(bad)]) == 2
    assert "configuration error" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("cassandra: {hosts: [10.0.0.1]}\nsources: {files: [/var/log/syslog]}\n")
    assert main(["check-config", "--config", str(good)]) == 0
