"""plugins/callback/iact_bytecode.py: module payloads carry their bytecode, and modules still run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
import zipimport
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "callback"))

import iact_bytecode  # noqa: E402


def test_every_python_file_gets_an_unchecked_hash_based_pyc_that_zipimport_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("IACT_BYTECODE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "payload.zip"
    with iact_bytecode._BytecodeZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("pkg/__init__.py", date_time=(2020, 1, 1, 0, 0, 0)), b"")
        zf.writestr("pkg/mod.py", "ANSWER = 6 * 7\n")
        zf.writestr("pkg/broken.py", b"def (:\n")
        zf.writestr("pkg/data.txt", b"not python")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        pyc = zf.read("pkg/mod.pyc")
    assert {"pkg/__init__.pyc", "pkg/mod.pyc"} <= names
    assert "pkg/broken.pyc" not in names and "pkg/data.txtc" not in names  # no bytecode: the source, as before
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked: no timestamps to match
    importer = zipimport.zipimporter(f"{path}/pkg/")
    assert importer.get_filename("mod").endswith("mod.pyc")  # taken from the bytecode, not compiled
    namespace: dict[str, object] = {}
    exec(importer.get_code("mod"), namespace)
    assert namespace["ANSWER"] == 42


def test_compiled_files_are_reused_from_the_cache_and_a_new_source_is_compiled_anew(tmp_path, monkeypatch):
    monkeypatch.setenv("IACT_BYTECODE_CACHE", str(tmp_path / "cache"))
    first = iact_bytecode._hash_pyc("m.py", b"X = 1\n")
    [cached] = (tmp_path / "cache").rglob("*.pyc")
    assert cached.read_bytes() == first
    assert iact_bytecode._hash_pyc("m.py", b"X = 1\n") == first
    assert iact_bytecode._hash_pyc("m.py", b"X = 2\n") != first  # another source, another file
    assert len(list((tmp_path / "cache").rglob("*.pyc"))) == 2
    cached.write_bytes(first[: len(first) // 2])  # cut short, as a crash before the rename reached the disk
    assert iact_bytecode._hash_pyc("m.py", b"X = 1\n") == first  # not shipped: compiled again, and stored whole
    assert cached.read_bytes() == first
    monkeypatch.setenv("IACT_BYTECODE_CACHE", "/proc/no-cache-here")
    assert iact_bytecode._hash_pyc("m.py", b"X = 3\n")  # no cache: compiled all the same


def test_bytecode_of_another_python_is_ignored_and_the_source_runs(tmp_path):
    path = tmp_path / "payload.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mod.py", "ANSWER = 42\n")
        zf.writestr("mod.pyc", b"\x00\x00\r\n" + bytes(12) + b"garbage")  # another bytecode version's magic
    importer = zipimport.zipimporter(str(path))
    namespace: dict[str, object] = {}
    exec(importer.get_code("mod"), namespace)
    assert namespace["ANSWER"] == 42


PROBE = """
from ansible.module_utils import basic


def main():
    module = basic.AnsibleModule(argument_spec={})
    module.exit_json(changed=False, origin=basic.__spec__.origin)


if __name__ == "__main__":
    main()
"""


def test_a_playbook_runs_its_modules_from_payloads_with_bytecode(tmp_path):
    """Through ansible-playbook itself: the patch takes (module_common builds with it) and modules work."""
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "probe.py").write_text(PROBE)
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.copy: {{content: hello, dest: '{tmp_path}/out', mode: '0600'}}\n"
        f"    - ansible.builtin.lineinfile: {{path: '{tmp_path}/out', line: world}}\n"
        "    - ansible.builtin.command: 'true'\n      changed_when: false\n"
        "    - probe: {}\n      register: probed\n"
        f"    - ansible.builtin.copy: {{content: '{{{{ probed.origin }}}}', dest: '{tmp_path}/origin', mode: '0600'}}\n"
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "plugins" / "callback"),
        ANSIBLE_CALLBACKS_ENABLED="iact_bytecode",
        ANSIBLE_KEEP_REMOTE_FILES="0",
        ANSIBLE_LIBRARY=str(tmp_path / "library"),
        IACT_BYTECODE_CACHE=str(tmp_path / "cache"),
    )
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "out").read_text() == "hello\nworld\n"
    # A module reports where its module_utils came from: the payload's bytecode.
    assert (tmp_path / "origin").read_text().endswith("ansible/module_utils/basic.pyc")
