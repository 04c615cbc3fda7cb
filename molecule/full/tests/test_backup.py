"""Backups a careful DBA would trust (playbooks/backup.yml, restore.yml) on the converged lab.

A complete set streams every archive (no slurp) and restores; a set with one archive's bytes flipped
is refused before anything changes; a node that fails its snapshot makes a set that is marked
partial, fails the run, is refused by restore, and never pushes a complete set out of retention.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import testinfra
import yaml
from cassandra.query import SimpleStatement
from conftest import NODES, ROOT, operator_env, playbook, podman, recap, secret, wait_until

PARTS = {f"cassandra/{n}.tar.gz" for n in NODES} | {"dora/app1.sql.gz"}
ADD_SERVICE = "INSERT INTO dora_service (name, created_at) VALUES ('{}', NOW())"


def tag_at(when: datetime) -> str:
    return f"iact-backup-{when:%Y%m%dT%H%M%SZ}"


def set_files(set_dir: Path) -> set[str]:
    return {str(p.relative_to(set_dir)) for p in set_dir.rglob("*") if p.is_file()}


def manifest(set_dir: Path) -> dict:
    return json.loads((set_dir / "manifest.json").read_text())


def service_names() -> list[str]:
    app1 = testinfra.get_host("podman://app1")
    return app1.check_output("mariadb -N -B dora -e 'SELECT name FROM dora_service'").split()


def add_service(name: str) -> None:
    testinfra.get_host("podman://app1").check_output(f"mariadb dora -e {ADD_SERVICE.format(name)!r}")


def clear_snapshots(tag: str) -> None:
    for node in NODES:
        podman("exec", node, "nodetool", "clearsnapshot", "-t", tag, "--", "logging", check=False)


def failed(run: subprocess.CompletedProcess) -> str:
    return run.stdout[-5000:] + run.stderr[-2000:]


@pytest.fixture(scope="module")
def marker(connect):
    """A log line stored before the backup, and a query for it (one row per source: journal, syslog)."""
    line = f"backup-{uuid.uuid4()}"
    testinfra.get_host("podman://cass1").run(f"logger -t backuptest {line}")
    reader = connect("iact_reader", secret("cassandra_reader_password"))
    query = SimpleStatement("SELECT message FROM logging.infrastructure_logs WHERE day = %s AND program = 'backuptest'")

    def rows() -> list:
        return [r for r in reader.execute(query, (datetime.now(UTC).date(),)) if r.message == line]

    wait_until(lambda: len(rows()) == 2, 60, f"{line} stored (journal and syslog) before the backup", interval=1)
    return line, rows


@pytest.fixture(scope="module")
def complete_set(tmp_path_factory, marker):
    """One real backup of the whole lab (verbose, to see how the archives travel)."""
    backup_dir = tmp_path_factory.mktemp("backups")
    kept = f"kept-{marker[0]}"
    add_service(kept)
    tag = tag_at(datetime.now(UTC))
    run = playbook("playbooks/backup.yml", "-vvv", "-e", f"backup_dir={backup_dir}", "-e", f"backup_tag={tag}")
    yield backup_dir / tag, run, kept
    clear_snapshots(tag)


def disaster(admin, rows, name: str) -> None:
    """The table is emptied and a dashboard row appears that the backup does not have."""
    admin.execute("TRUNCATE logging.infrastructure_logs")
    assert not rows()
    add_service(name)


def test_a_backup_streams_every_part_and_seals_a_complete_set(complete_set):
    set_dir, run, _ = complete_set
    assert run.returncode == 0, failed(run)
    assert set_files(set_dir) == PARTS | {"manifest.json", "SHA256SUMS"}
    seal = manifest(set_dir)
    assert seal["status"] == "complete" and seal["missing"] == {}
    assert set(seal["files"]) == PARTS
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=set_dir, check=True)
    # Streamed by the connection (a file copy out of the mounted container here, sftp/scp over SSH), not
    # slurp: `fetch` reads through slurp, in memory, only under become, so no fetch of the playbook may
    # become. Where the connection's -vvv lines show (the lab's inventory), the run proves it too.
    for task in tasks_of(yaml.safe_load((ROOT / "playbooks" / "backup.yml").read_text())):
        if "ansible.builtin.fetch" in task:
            assert task.get("become") is False, f"{task['name']}: fetch under become goes through slurp"
    # "Using module file .../<module>.py" is printed at -vvv whether the module is copied or pipelined.
    modules = set(re.findall(r"Using module file \S+/(\w+)\.py", run.stdout))
    if modules:
        assert "stat" in modules and "slurp" not in modules, sorted(modules)
        fetched = {line.rsplit(" TO ", 1)[-1] for line in run.stdout.splitlines() if " FETCH /var/tmp/" in line}
        assert fetched == {str(set_dir / part) for part in PARTS}, fetched


def tasks_of(plays: list[dict]):
    """Every task of the plays, blocks and their rescue/always included."""
    stack = [t for play in plays for t in play.get("tasks", [])]
    while stack:
        task = stack.pop()
        yield task
        for key in ("block", "rescue", "always"):
            stack.extend(task.get(key, []))


def test_restore_refuses_a_set_with_one_archive_corrupted_and_changes_nothing(
    complete_set, tmp_path: Path, admin, marker
):
    set_dir, run, kept = complete_set
    assert run.returncode == 0, failed(run)
    corrupt = tmp_path / set_dir.name
    shutil.copytree(set_dir, corrupt)
    archive = corrupt / "cassandra" / "cass2.tar.gz"
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    archive.write_bytes(bytes(data))
    line, rows = marker
    lost = f"lost-{line}-corrupt"
    disaster(admin, rows, lost)

    restore = playbook("playbooks/restore.yml", "-e", f"backup_dir={tmp_path}", "-e", f"restore_tag={corrupt.name}")
    assert restore.returncode != 0, failed(restore)
    assert "cassandra/cass2.tar.gz: sha256 checksum mismatch" in restore.stdout, failed(restore)
    assert set(recap(restore.stdout)) == {"localhost"}, "no host was touched"
    assert not rows(), "no SSTable was imported: the emptied table is still empty"
    names = service_names()
    assert lost in names and kept in names, "the dashboard's database was not replaced"


def test_backup_then_restore_brings_back_logs_and_dashboard_rows(complete_set, admin, marker):
    set_dir, run, kept = complete_set
    assert run.returncode == 0, failed(run)
    line, rows = marker
    lost = f"lost-{line}"
    disaster(admin, rows, lost)

    restore = playbook(
        "playbooks/restore.yml", "-e", f"backup_dir={set_dir.parent}", "-e", f"restore_tag={set_dir.name}",
        "-e", '{"restore_tables": ["infrastructure_logs"]}',
    )  # fmt: skip
    assert restore.returncode == 0, failed(restore)
    assert len(rows()) == 2, "the line is back, once per source"
    names = service_names()
    assert kept in names and lost not in names


def older_set(source: Path, backup_dir: Path, when: datetime, status: str) -> str:
    """A copy of a real set (hard links) that says it was made at `when`; a partial one lacks cass3."""
    name = tag_at(when) + ("-partial" if status == "partial" else "")
    target = backup_dir / name
    shutil.copytree(source, target, copy_function=os.link)
    (target / "manifest.json").unlink()  # a new file, not a write through the link
    seal = manifest(source) | {"tag": tag_at(when), "created": f"{when:%Y-%m-%dT%H:%M:%SZ}", "status": status}
    if status == "partial":
        (target / "cassandra" / "cass3.tar.gz").unlink()
        seal["missing"] = {"cassandra/cass3.tar.gz": "cass3: down"}
    (target / "manifest.json").write_text(json.dumps(seal))
    return name


def test_a_failed_node_makes_a_partial_set_that_never_prunes_a_complete_one(complete_set, tmp_path: Path):
    set_dir, run, _ = complete_set
    assert run.returncode == 0, failed(run)
    now = datetime.now(UTC)
    days = timedelta(days=1)
    c1, p1, c2, p2, c3 = (
        older_set(set_dir, tmp_path, now - 4 * days, "complete"),
        older_set(set_dir, tmp_path, now - 3 * days, "partial"),
        older_set(set_dir, tmp_path, now - 2 * days, "complete"),
        older_set(set_dir, tmp_path, now - 1.5 * days, "partial"),
        older_set(set_dir, tmp_path, now - days, "complete"),
    )
    # cass3's snapshot fails: a snapshot with the run's tag is already there (Cassandra refuses to overwrite it).
    tag = tag_at(now + timedelta(seconds=1))
    podman("exec", "cass3", "nodetool", "snapshot", "--tag", tag, "logging")
    try:
        backup = playbook(
            "playbooks/backup.yml", "-e", f"backup_dir={tmp_path}", "-e", f"backup_tag={tag}",
            "-e", "backup_retention_sets=2",
        )  # fmt: skip
    finally:
        clear_snapshots(tag)

    assert backup.returncode != 0, "a partial backup fails the run"
    partial = tmp_path / f"{tag}-partial"
    assert f"PARTIAL backup set {partial.name}" in backup.stdout, failed(backup)
    assert "cassandra/cass3.tar.gz (cass3: Flush memtables and take the snapshot" in backup.stdout, failed(backup)
    assert not (tmp_path / tag).exists()
    seal = manifest(partial)
    assert seal["status"] == "partial"
    assert list(seal["missing"]) == ["cassandra/cass3.tar.gz"]
    assert "already exists" in seal["missing"]["cassandra/cass3.tar.gz"], seal["missing"]
    kept_parts = PARTS - {"cassandra/cass3.tar.gz"}
    assert set(seal["files"]) == kept_parts, "what arrived is kept"
    assert set_files(partial) == kept_parts | {"manifest.json", "SHA256SUMS"}
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=partial, check=True)

    # Retention (2): the two newest complete sets and everything newer stay; the partial runs do not count.
    assert {p.name for p in tmp_path.iterdir()} == {c2, p2, c3, partial.name}, f"pruned {c1} and {p1} only"

    restore = playbook("playbooks/restore.yml", "-e", f"backup_dir={tmp_path}", "-e", f"restore_tag={partial.name}")
    assert restore.returncode != 0, failed(restore)
    assert "is a PARTIAL backup" in restore.stdout and "restore_allow_partial=true" in restore.stdout, failed(restore)
    assert set(recap(restore.stdout)) == {"localhost"}, "no host was touched"


def test_unreachable_hosts_are_recorded_missing_and_the_set_is_still_sealed(tmp_path: Path):
    """Without ignore_unreachable, Ansible would end the run before the seal once a whole group is
    unreachable, leaving a set without a manifest; here every host is gone (containers that do not exist)."""
    hosts = {"cassandra": ["iact-gone-c1", "iact-gone-c2"], "dora": ["iact-gone-app"]}
    inventory = {
        "all": {
            "children": {group: {"hosts": dict.fromkeys(names)} for group, names in hosts.items()},
            "vars": {"ansible_connection": "iact_podman"},
        }
    }
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    run = subprocess.run(
        [
            "ansible-playbook",
            "playbooks/backup.yml",
            "-i",
            str(tmp_path / "hosts.yml"),
            "-e",
            f"backup_dir={backup_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=operator_env(),
    )
    assert run.returncode != 0
    (partial,) = backup_dir.iterdir()
    assert partial.name.endswith("-partial") and f"PARTIAL backup set {partial.name}" in run.stdout, failed(run)
    seal = manifest(partial)
    assert seal["status"] == "partial" and seal["files"] == {}
    assert set(seal["missing"]) == {
        "cassandra/iact-gone-c1.tar.gz",
        "cassandra/iact-gone-c2.tar.gz",
        "dora/iact-gone-app.sql.gz",
    }
    assert all("unreachable" in reason for reason in seal["missing"].values()), seal["missing"]
