"""Seal, prune and verify the backup sets on the controller (playbooks/backup.yml and restore.yml).

A set is only as good as its weakest part: when a node's snapshot or a copy fails, the set is sealed
as *partial* (manifest status, and the directory renamed to <tag>-partial) so that nobody mistakes
it for a backup of the whole appliance, and retention never counts it: the newest N *complete* sets
are kept whatever partial runs happened since. Restore checks every sum before touching anything.
Standard library only: it runs with the controller's Python (ansible_playbook_python).

  backup_set.py seal SET_DIR        < {"tag", "keyspace", "parts": [{"host", "file", "ok", "error"}]}
  backup_set.py prune BACKUP_DIR --keep N [--protect NAME] [--expect FILE ...]
  backup_set.py verify SET_DIR      < {"allow_partial", "cassandra": [hosts], "dora": [hosts]}
Each prints one JSON object; verify exits 1 with the reasons on stderr when the set must not be restored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
PREFIX = "iact-backup-"
PARTIAL_SUFFIX = "-partial"


def sha256(path: Path) -> str:
    """The file's sha256, read in chunks: archives are as large as the keyspace, memory is not."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_sums(set_dir: Path) -> dict[str, str]:
    """SHA256SUMS as {relative path: sha256} (the `sha256sum` format, so `sha256sum -c` works too)."""
    sums = {}
    for line in (set_dir / SUMS).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def write_atomically(path: Path, text: str) -> None:
    """The manifest appears whole or not at all: its presence is what 'sealed' means."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def seal(set_dir: Path, spec: dict) -> dict:
    """Sum what arrived, drop what arrived broken, write the manifest; partial sets are renamed."""
    files: dict[str, dict[str, object]] = {}
    missing: dict[str, str] = {}
    for part in spec["parts"]:
        path = set_dir / part["file"]
        if not part.get("ok"):
            missing[part["file"]] = f"{part['host']}: {part.get('error') or 'no result (unreachable?)'}"
            path.unlink(missing_ok=True)  # half a copy is not a backup
        elif not path.is_file():
            missing[part["file"]] = f"{part['host']}: reported done, but the file is not on the controller"
        else:
            files[part["file"]] = {"host": part["host"], "sha256": sha256(path), "bytes": path.stat().st_size}
    status = "partial" if missing else "complete"
    sums = "".join(f"{meta['sha256']}  {name}\n" for name, meta in sorted(files.items()))
    write_atomically(set_dir / SUMS, sums)
    manifest = {
        "tag": spec["tag"],
        "keyspace": spec["keyspace"],
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "status": status,
        "files": files,
        "missing": missing,
    }
    final = set_dir
    if status == "partial" and not set_dir.name.endswith(PARTIAL_SUFFIX):
        final = set_dir.with_name(set_dir.name + PARTIAL_SUFFIX)
        set_dir.rename(final)
    write_atomically(final / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return {"set_dir": str(final), "set": final.name, "status": status, "missing": missing}


def describe(set_dir: Path, expect: list[str]) -> dict:
    """A set's status and creation time. Sets sealed before sets had a status count as complete only
    if their sums cover every expected file; a set without a manifest was never sealed."""
    manifest_path = set_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        mtime = datetime.fromtimestamp(set_dir.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"set": set_dir.name, "status": "unsealed", "created": mtime}
    status = manifest.get("status")
    if status is None:
        try:
            covered = set(read_sums(set_dir))
        except (OSError, ValueError):
            covered = set()
        status = "complete" if expect and set(expect) <= covered else "partial"
    return {"set": set_dir.name, "status": status, "created": manifest.get("created", "")}


def prune(backup_dir: Path, keep: int, protect: str | None, expect: list[str]) -> dict:
    """Keep the newest `keep` complete sets and whatever is newer than the oldest of them; delete the rest.

    Partial and unsealed sets never count, so a run of failed backups cannot push the last good
    sets out; they are deleted only once `keep` newer complete sets exist.
    """
    if keep < 1:
        raise SystemExit("backup_retention_sets must be at least 1: pruning every complete set is never wanted")
    sets = sorted(
        (describe(p, expect) for p in backup_dir.iterdir() if p.is_dir() and p.name.startswith(PREFIX)),
        key=lambda s: (s["created"], s["set"]),
        reverse=True,
    )
    complete = [s for s in sets if s["status"] == "complete"]
    pruned = []
    if len(complete) >= keep:
        oldest_kept = complete[keep - 1]
        for s in sets:
            if (s["created"], s["set"]) < (oldest_kept["created"], oldest_kept["set"]) and s["set"] != protect:
                shutil.rmtree(backup_dir / s["set"])
                pruned.append(s)
    kept = [s for s in sets if s not in pruned]
    return {"kept": kept, "pruned": pruned}


def verify(set_dir: Path, spec: dict) -> tuple[dict, list[str]]:
    """Which archive each host gets back, and every reason not to restore (empty when it is safe)."""
    problems: list[str] = []
    if not set_dir.is_dir():
        return {}, [f"{set_dir}: no such backup set"]
    try:
        manifest = json.loads((set_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return {}, [f"{set_dir.name}: no readable {MANIFEST} ({exc}): the backup never sealed it; do not restore it"]
    try:
        sums = read_sums(set_dir)
    except (OSError, ValueError) as exc:
        return {}, [f"{set_dir.name}: no readable {SUMS} ({exc}); do not restore it"]
    for name, expected in sorted(sums.items()):
        path = set_dir / name
        if not path.is_file():
            problems.append(f"{name}: listed in {SUMS} but missing from the set")
        elif (actual := sha256(path)) != expected:
            problems.append(f"{name}: sha256 checksum mismatch (expected {expected}, got {actual}): corrupt")
    for name in manifest.get("files", {}):
        if name not in sums:
            problems.append(f"{name}: in the manifest but not covered by {SUMS}")
    parts = {"cassandra": {}, "dora": {}}
    absent = []
    for group, suffix in (("cassandra", ".tar.gz"), ("dora", ".sql.gz")):
        for host in spec.get(group, []):
            name = f"{group}/{host}{suffix}"
            if name in sums:
                parts[group][host] = name
            else:
                absent.append(manifest.get("missing", {}).get(name, f"{host}: no {name} in the set"))
    partial = manifest.get("status") == "partial" or bool(absent)
    if partial and not spec.get("allow_partial"):
        reasons = "; ".join(absent or manifest.get("missing", {}).values()) or "marked partial"
        problems.append(
            f"{set_dir.name} is a PARTIAL backup ({reasons}). Restoring it leaves those parts as they are now; "
            "pick a complete set, or run again with -e restore_allow_partial=true to restore what it holds"
        )
    return {"status": "partial" if partial else "complete", **parts}, problems


def main() -> None:
    """Dispatch the sub-command; JSON in on stdin (seal, verify), JSON out on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("seal").add_argument("set_dir", type=Path)
    pruning = sub.add_parser("prune")
    pruning.add_argument("backup_dir", type=Path)
    pruning.add_argument("--keep", type=int, required=True)
    pruning.add_argument("--protect")
    pruning.add_argument("--expect", nargs="*", default=[])
    sub.add_parser("verify").add_argument("set_dir", type=Path)
    args = parser.parse_args()

    if args.command == "seal":
        print(json.dumps(seal(args.set_dir, json.load(sys.stdin))))
    elif args.command == "prune":
        print(json.dumps(prune(args.backup_dir, args.keep, args.protect, args.expect)))
    else:
        parts, problems = verify(args.set_dir, json.load(sys.stdin))
        print(json.dumps(parts))
        if problems:
            print("\n".join(problems), file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
