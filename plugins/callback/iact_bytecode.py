"""Ansible callback: ship each module's Python with its bytecode, so the target does not compile it.

Why: every task runs its module from a zip (AnsiballZ), and Python cannot cache bytecode for code
imported from a zip: each task compiled the module and all of its module_utils (basic.py and some
thirty others) from source on the target. On the lab's containers that was most of the 0.35 s of
CPU a module run cost, some 900 s of CPU in a CI run. zipimport uses a `name.pyc` it finds beside
`name.py` in the zip: this callback adds one, compiled once per module per run on the controller,
as an unchecked hash-based pyc (PEP 552: no timestamps to compare). A target whose Python has
another bytecode version rejects the pyc by its magic number and compiles the source, as before.

What differs on the target (why this is for the lab and Molecule, not enabled in ansible.cfg): the
bytecode names its files by their path inside the zip (`ansible/module_utils/basic.py`), since the
payload's directory on the target is random and Python 3.11's zipimport does not correct the name.
So tracebacks show those relative paths, ansible-core cannot tell which collection a module's
deprecation comes from (the warning loses its collection and version), debugger and coverage
extensions cannot map the files, and `assert`s follow the controller's optimization level (`-O`)
rather than the target's PYTHONOPTIMIZE. Results of modules are otherwise the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: iact_bytecode
type: aggregate
short_description: Ship modules to the targets with their bytecode (a speed-up; nothing else changes)
description:
  - Adds to each module payload (AnsiballZ) the bytecode of its Python files, compiled on the controller,
    which the target's Python uses when its bytecode version is the controller's and ignores otherwise.
  - Compiled files are kept between runs in C(IACT_BYTECODE_CACHE) (default C(~/.cache/iact-ansible-bytecode)),
    keyed by the Python's bytecode version and each file's name and source.
  - Enabled for the Molecule scenarios (ANSIBLE_CALLBACKS_ENABLED). Modules return the same results; on the
    target, code reports its path inside the payload (tracebacks), module deprecations lose their collection
    and version, and assertions follow the controller's optimization level.
requirements:
  - enable it with callbacks_enabled = iact_bytecode
"""

_PATCHED = False


def _cache_dir() -> Path:
    """Where compiled payload files are kept between runs (IACT_BYTECODE_CACHE, else the user's cache)."""
    configured = os.environ.get("IACT_BYTECODE_CACHE")
    base = Path(configured) if configured else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base if configured else base / "iact-ansible-bytecode"


def _hash_pyc(name: str, source: bytes) -> bytes | None:
    """The pyc of one payload file, from the cache when this Python compiled the same file before.

    Each ansible-playbook run builds its payloads afresh (Ansible caches them per run), and compiling
    a module's module_utils cost the controller about as much as the bytecode saved a target running
    a module two or three times: a verify runs dozens of short playbooks. Keyed by this Python's
    bytecode version, the name (the code carries it) and the source's hash.
    """
    from importlib import _bootstrap_external  # type: ignore[attr-defined]

    # The optimization level (-O) changes what compile() makes of the same source.
    salt = importlib.util.MAGIC_NUMBER + str(sys.flags.optimize).encode() + b"\0" + name.encode() + b"\0"
    key = hashlib.sha256(salt + source).hexdigest()
    try:
        cached: Path | None = _cache_dir() / key[:2] / f"{key}.pyc"
    except RuntimeError:  # no home directory to keep a cache in
        cached = None
    if cached is not None and (pyc := _read_cached(cached)) is not None:
        return pyc
    try:
        code = compile(source, name, "exec", dont_inherit=True)
        pyc = bytes(_bootstrap_external._code_to_hash_pyc(code, importlib.util.source_hash(source), checked=False))
    except Exception:  # a source that does not compile here: the target reports it from the source, as before
        return None
    if cached is not None:
        _store(cached, pyc)
    return pyc


def _private(directory: Path) -> bool:
    """Ours and writable by no one else: bytecode from the cache runs on the targets, often as root."""
    st = directory.stat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _read_cached(path: Path) -> bytes | None:
    """A cached pyc, whole and of this Python, from a private directory; else None (and a bad file goes)."""
    try:
        if not _private(path.parent):
            return None
        data = path.read_bytes()
    except OSError:
        return None
    try:  # a file cut short (a crash before the rename reached the disk) would crash the module on the target
        if data[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(data[4:8], "little") != 0b01:
            raise ValueError("not an unchecked hash-based pyc of this Python")
        marshal.loads(data[16:])
    except (ValueError, EOFError, TypeError):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return data


def _store(path: Path, pyc: bytes) -> None:
    """Written whole or not at all (a temp file of its own, renamed): several runs' workers may race."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(path.parent):
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:  # no cache: compiled again next time
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pyc)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


class _BytecodeZipFile(zipfile.ZipFile):
    """ZipFile that writes name.pyc beside every name.py written with writestr."""

    def writestr(self, zinfo_or_arcname: Any, data: Any, *args: Any, **kwargs: Any) -> None:
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)
        name = zinfo_or_arcname.filename if isinstance(zinfo_or_arcname, zipfile.ZipInfo) else zinfo_or_arcname
        if not name.endswith(".py"):
            return
        source = data.encode() if isinstance(data, str) else bytes(data)
        pyc = _hash_pyc(name, source)
        if pyc is None:
            return
        info: zipfile.ZipInfo | str = name + "c"
        if isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            info = zipfile.ZipInfo(name + "c", date_time=zinfo_or_arcname.date_time)
            info.compress_type = zinfo_or_arcname.compress_type
        super().writestr(info, pyc, *args, **kwargs)


class _ZipfileModule:
    """What module_common sees as `zipfile`: the real module, with ZipFile writing bytecode too."""

    def __getattr__(self, name: str) -> Any:
        return _BytecodeZipFile if name == "ZipFile" else getattr(zipfile, name)


def _patch() -> None:
    """module_common builds the payload with `zipfile.ZipFile(...)`; only its name is replaced."""
    global _PATCHED
    if _PATCHED:
        return
    from ansible.executor import module_common

    if getattr(module_common, "zipfile", None) is zipfile:
        module_common.zipfile = _ZipfileModule()  # type: ignore[assignment]
    _PATCHED = True


class CallbackModule(CallbackBase):
    """Installs the patch when Ansible loads the callback, before the workers fork."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "iact_bytecode"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _patch()
