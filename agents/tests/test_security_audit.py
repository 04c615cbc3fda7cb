"""What the security audit of issue 15 keeps true: secrets stay out of git and out of Ansible's
output, names formatted into CQL are plain identifiers, and a spool planted by another local
user is never replayed as ours.

bandit and pip-audit run in scripts/test; these are the checks that are about this repository's
own files and code rather than about patterns or published vulnerabilities.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from test_applog_resilience import reaped_pid, spool_with

from iact.applog import CassandraHandler
from iact.applog import config as applog_config
from iact.applog.config import HandlerConfig
from iact.cassandra.settings import ConnectionSettings, SettingsError
from iact.collector.config import ConfigError, from_mapping
from iact.schema.params import SchemaParams
from iact.sink.cassandra import CassandraSink

ROOT = Path(__file__).resolve().parents[2]
VAULT_HEADER = b"$ANSIBLE_VAULT;"


# -- vault files -----------------------------------------------------------------------------------
def is_vault_name(path: str) -> bool:
    """vault.yml, prod.vault.yml, vault-db.yaml ...; not the committed *.example templates."""
    name = os.path.basename(path)
    return not name.endswith(".example") and re.fullmatch(r".*vault.*\.ya?ml", name) is not None


def git(*args: str) -> str:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout (git ls-files)")
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize(
    ("path", "vault"),
    [
        ("inventories/prod/group_vars/all/vault.yml", True),
        ("inventories/prod/group_vars/all/vault.yml.example", False),
        ("group_vars/db/prod.vault.yml", True),
        ("host_vars/a/vault_smtp.yaml", True),
        ("roles/x/defaults/main.yml", False),
    ],
)
def test_vault_file_names(path, vault):
    assert is_vault_name(path) is vault


def test_every_tracked_vault_file_is_encrypted():
    tracked = [p for p in git("ls-files", "-z").split("\0") if p and is_vault_name(p)]
    plain = []
    for path in tracked:
        with open(ROOT / path, "rb") as fh:
            if fh.read(len(VAULT_HEADER)) != VAULT_HEADER:
                plain.append(path)
    assert not plain, (
        f"unencrypted vault files are tracked by git: {plain}. Encrypt them (ansible-vault encrypt FILE) "
        "or remove them from the index (git rm --cached FILE); only *.example templates may be plain"
    )


@pytest.mark.parametrize(
    "path",
    [
        "inventories/prod/group_vars/all/vault.yml",
        "inventories/lab/group_vars/all/vault.yml",
        "inventories/prod/host_vars/app1/db.vault.yml",
    ],
)
def test_gitignore_keeps_vault_files_out(path):
    assert ignored(path), f"{path} is not ignored by .gitignore: an unencrypted vault could be committed"


def test_gitignore_lets_vault_examples_in():
    assert not ignored("inventories/prod/group_vars/all/vault.yml.example"), "the template must stay committable"


def ignored(path: str) -> bool:
    """git check-ignore: 0 ignored, 1 not ignored (a `!` pattern included), 128 an error."""
    git("--version")  # skips without a checkout
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


# -- no_log on secret options ----------------------------------------------------------------------
# A name holds a secret when a part of it says so. "token" only at the end: num_tokens and
# allocate_tokens_rf are Cassandra's vnode layout, counts, not credentials. "key" only at the end:
# *_key_src, *_key_file, *_apt_key_url name where a key is, not the key. A webhook URL carries its
# secret in the URL itself.
SECRET_NAME = re.compile(r"(^|_)(password|passphrase|secret|webhook|credentials?)(_|$)|_tokens?$|_key$")
NOT_SECRET = {"cassandra_cluster_num_tokens": "vnodes per node, a count"}
# Paths and file metadata: the secret is in the file Ansible copies, not in the option's value.
PATH_NAME = re.compile(r"_(file|src|path|dir|owner|group|mode)$")


def is_secret_option(name: str) -> bool:
    return name not in NOT_SECRET and not PATH_NAME.search(name) and SECRET_NAME.search(name) is not None


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("alerting_cassandra_password", True),
        ("alerting_slack_webhook_url", True),
        ("django_dora_api_tokens", True),
        ("django_dora_github_webhook_secret", True),
        ("django_dora_secret_key", True),
        ("iact_pki_ca_key_passphrase", True),
        ("cassandra_cluster_num_tokens", False),
        ("cassandra_cluster_allocate_tokens_rf", False),
        ("cassandra_cluster_tls_key_src", False),
        ("django_dora_tls_key_file", False),
        ("cassandra_cluster_apt_key_url", False),
        ("cassandra_cluster_keyspace", False),
        ("alerting_email_username", False),
        ("cassandra_cluster_password_file", False),
    ],
)
def test_secret_option_names(name, secret):
    assert is_secret_option(name) is secret


def spec_options(options: dict, where: str):
    for name, spec in (options or {}).items():
        yield f"{where}.{name}", name, spec
        yield from spec_options(spec.get("options"), f"{where}.{name}")


def secret_options_without_no_log() -> list[str]:
    missing = []
    for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        role = path.parts[-3]
        for entry, spec in yaml.safe_load(path.read_text())["argument_specs"].items():
            for where, name, option in spec_options(spec.get("options"), f"{role}:{entry}"):
                if is_secret_option(name) and option.get("no_log") is not True:
                    missing.append(where)
    return missing


def test_every_secret_option_has_no_log():
    missing = secret_options_without_no_log()
    assert not missing, (
        f"secret options without `no_log: true` in meta/argument_specs.yml: {missing}. Add no_log: true to "
        "each, so Ansible masks the value in what the role's argument check reports"
    )


# -- names formatted into CQL ----------------------------------------------------------------------
BAD_NAMES = ["logging; DROP KEYSPACE logging", "logs.x", "1logs", "a" * 49, "", "logs--"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_sink_refuses_a_keyspace_table_or_column_that_is_not_a_cql_identifier(bad):
    settings = ConnectionSettings(contact_points=("127.0.0.1",))
    with pytest.raises(SettingsError, match=r"keyspace .* not a valid Cassandra name"):
        CassandraSink(settings, bad, "t", ("a",), ("a",))
    with pytest.raises(SettingsError, match=r"table .* not a valid Cassandra name"):
        CassandraSink(settings, "logging", bad, ("a",), ("a",))
    with pytest.raises(SettingsError, match=r"column .* not a valid Cassandra name"):
        CassandraSink(settings, "logging", "t", ("a", bad), ("a",))
    assert CassandraSink(settings, "Logging_2", "infrastructure_logs", ("a",), ("a",)).keyspace == "Logging_2"


@pytest.mark.parametrize("key", ["keyspace", "table"])
def test_collector_config_names_a_bad_keyspace_or_table(key):
    data = {"cassandra": {"hosts": ["10.0.0.1"], key: "logs WITH x"}, "sources": {"files": ["/var/log/syslog"]}}
    with pytest.raises(ConfigError, match=f"cassandra: {key} 'logs WITH x' is not a valid Cassandra name"):
        from_mapping(data)


@pytest.mark.parametrize("key", ["keyspace", "table"])
def test_handler_config_names_a_bad_keyspace_or_table(key):
    with pytest.raises(SettingsError, match=rf"CassandraHandler {key} .* not a valid Cassandra name"):
        HandlerConfig(hosts="h", **{key: "x'y"})


@pytest.mark.parametrize("dc", ["dc1'", "dc 1", "a'}; DROP"])
def test_schema_refuses_a_datacenter_name_that_would_leave_the_cql_string(dc):
    with pytest.raises(SettingsError, match=r"datacenter name .* is invalid: pass --rf DC:N"):
        SchemaParams(replication=((dc, 3),))
    assert SchemaParams(replication=(("eu-west.1_a", 3),)).replication_literal.endswith("'eu-west.1_a': 3}")


# -- spools in $TMPDIR (versions before /var/lib/iact/applog) ----------------------------------------
def test_only_our_own_legacy_tmpdir_spools_are_replayed(tmp_path, monkeypatch):
    """$TMPDIR is writable by every local user: a spool planted there would be replayed into
    Cassandra as this application's logs. Only regular files this user owns are adopted."""
    if os.geteuid() != 0:
        pytest.skip("making a file owned by another user needs root")
    monkeypatch.setattr(applog_config, "SYSTEM_SPOOL_DIR", str(tmp_path / "var-lib"))
    (tmp_path / "var-lib").mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    app = f"shop{uuid.uuid4().hex[:6]}"
    legacy = tmp / f"iact-applog-{app}"

    spool_with(f"{legacy}.{reaped_pid()}.spool", ["ours"], app=app).close()
    forged = f"{legacy}.{reaped_pid()}.spool"
    spool_with(forged, ["planted by another user"], app=app).close()
    for path in tmp.glob(f"{Path(forged).name}*"):
        os.chown(path, 65534, 65534)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spool_with(elsewhere / "x.1.spool", ["through a symlink"], app=app).close()
    link = Path(f"{legacy}.{reaped_pid()}.spool")
    link.symlink_to(elsewhere / "x.1.spool")
    # Our own spool, but with a companion (the write-ahead log) another user put beside it.
    mixed = f"{legacy}.{reaped_pid()}.spool"
    spool_with(mixed, ["ours, next to a planted companion"], app=app).close()
    Path(f"{mixed}-wal").write_bytes(b"")
    os.chown(f"{mixed}-wal", 65534, 65534)

    handler = CassandraHandler(hosts="127.0.0.1", port=1, app=app, batch_size=100, flush_interval=0.05)
    handler._start_writer()
    stored = []
    handler._writer.durable.sink.write = lambda rows, reject=None: (
        stored.extend(r["message"] for r in rows) or len(rows)
    )
    try:
        assert handler.flush(10)
        assert stored == ["ours"]
        assert Path(forged).exists() and link.is_symlink() and Path(mixed).exists(), "what is not ours is left alone"
    finally:
        handler.close()
