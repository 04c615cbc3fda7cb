"""Podman connection with pipelining, for the lab's and Molecule's systemd containers.

Why: containers.podman.podman runs every module task as four or five `podman` processes (mount,
mkdir, copy, exec, rm), about 0.7 s a task on the CI machine; a converge of site.yml is some
thousand tasks per scenario. `podman exec -i` forwards stdin, so Ansible can pipe the module into
the remote Python instead (one `podman exec` a task), and the container's filesystem is mounted only
for the tasks that copy files. The collection's plugin disables
pipelining only because it runs `podman exec` without `-i`.

Run as root, even that one `podman exec` (podman, conmon and runc: some PODMAN_EXEC_CPU of CPU a
task on the CI machine, which the verify spends thousands of times) is replaced by `nsenter` into
the namespaces of the container's init, with the init's environment (what `podman exec` gives).
The init's PID comes from `podman inspect` once per container and is kept in a small cache, checked
against the process's start time on every use, so a stopped or re-created container falls back to
`podman exec` and reports what podman reports. Files go through /proc/PID/root. See `entry()`.
"""

from __future__ import annotations

DOCUMENTATION = """
name: iact_podman
short_description: Run tasks in podman containers, with pipelining
description:
  - containers.podman.podman with pipelining (C(podman exec -i)), mounting the container only to copy files.
author: IACT Observability
options:
  remote_addr:
    description: The container's ID or name.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  remote_user:
    description: The user in the container (the image's default when unset).
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
    keyword:
      - name: remote_user
  podman_extra_args:
    description: Extra arguments to pass to the podman command line.
    default: ""
    ini:
      - section: defaults
        key: podman_extra_args
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
  podman_executable:
    description: The podman executable.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  pipelining:
    description: Pipe modules into the remote Python instead of copying them.
    default: true
    type: boolean
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
"""

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the PID, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5); fields[0] is field 3


def _cache_file(podman: str, extra_args: str, container: str) -> Path:
    key = hashlib.sha256(f"{podman}\0{extra_args}\0{container}".encode()).hexdigest()[:32]
    return Path(tempfile.gettempdir()) / f"iact-podman-{os.getuid()}" / key


def entry(container: str, podman: str = "podman", extra_args: str = "") -> int | None:
    """The host PID of the container's init when this process can enter it with nsenter, else None.

    None (use `podman exec`) when IACT_PODMAN_NSENTER=0, when not root, without nsenter, when the
    container does not run, or when it has a user namespace of its own (rootless podman, --userns):
    entering that one needs the mappings podman sets up.
    """
    if os.geteuid() != 0 or not shutil.which("nsenter") or os.environ.get("IACT_PODMAN_NSENTER") == "0":
        return None
    cache = _cache_file(podman, extra_args, container)
    try:
        pid_text, started = cache.read_text().split()
        if _start_time(int(pid_text)) == started:
            return int(pid_text)
    except (OSError, ValueError):
        pass
    found = subprocess.run(
        [podman, *shlex.split(extra_args), "inspect", "--type", "container", "-f", "{{.State.Pid}}", container],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        pid = int(found.stdout.strip()) if found.returncode == 0 else 0
        if pid <= 0 or os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
            return None
    except (OSError, ValueError):
        return None
    started = _start_time(pid)
    if started is None:
        return None
    cache.parent.mkdir(mode=0o700, exist_ok=True)
    partial = cache.with_name(f"{cache.name}.{os.getpid()}")
    partial.write_text(f"{pid} {started}\n")
    partial.replace(cache)
    return pid


# Capability numbers of linux/capability.h, for setpriv's names.
_CAPABILITIES = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
]


def _bounding_set(pid: int) -> list[str]:
    """setpriv's arguments that give a command the capabilities of the container's processes
    (podman drops some, e.g. sys_admin), or none when the container keeps them all."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd:")), 16)
    if mask & ((1 << len(_CAPABILITIES)) - 1) == (1 << len(_CAPABILITIES)) - 1:
        return []
    kept = ",".join(f"+{name}" for bit, name in enumerate(_CAPABILITIES) if mask >> bit & 1)
    return ["setpriv", "--inh-caps", "-all", "--bounding-set", f"-all{',' if kept else ''}{kept}", "--"]


def nsenter(
    pid: int, argv: list[str], in_data: bytes | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[bytes] | None:
    """Run argv in the container whose init is `pid`, as `podman exec` would: its namespaces, root,
    working directory, environment and capabilities (not its seccomp filter). None when the
    container stopped before argv ran (the caller then asks podman, which says so)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        capabilities = _bounding_set(pid)
    except (OSError, StopIteration, ValueError):
        return None
    env = dict(item.split(b"=", 1) for item in environ if b"=" in item)
    env.pop(b"container_uuid", None)  # systemd's, not part of the container's configured environment
    env.setdefault(b"HOME", b"/root")
    command = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--", *capabilities, *argv]
    done = subprocess.run(
        command,
        input=in_data,
        stdin=subprocess.DEVNULL if in_data is None else None,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0 and done.stderr.startswith(b"nsenter: ") and not Path(f"/proc/{pid}").exists():
        return None
    return done


class Connection(PodmanConnection):
    """The collection's connection, plus `podman exec -i` for pipelined modules."""

    transport = "iact_podman"
    has_pipelining = True
    _mounted = False

    def _connect(self) -> Connection:
        # The parent mounts the container's filesystem here, for every task; only file transfers
        # use the mount, so it is made on the first of those instead.
        self._connected = True
        return self

    def _mount(self) -> None:
        if not self._mounted:
            self._mounted = True
            super()._connect()

    def _entry(self) -> int | None:
        if self.user and self.user != "root":
            return None
        return entry(self._container_id, self.get_option("podman_executable"), self.get_option("podman_extra_args"))

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy through /proc/PID/root, else the container's mounted filesystem (mounted on first use)."""
        pid = self._entry()
        if pid is not None:
            shutil.copyfile(in_path, f"/proc/{pid}/root{out_path}")
            return
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Fetch through /proc/PID/root, else the container's mounted filesystem (mounted on first use)."""
        pid = self._entry()
        if pid is not None:
            shutil.copyfile(f"/proc/{pid}/root{in_path}", out_path)
            return
        self._mount()
        super().fetch_file(in_path, out_path)

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = False) -> tuple[int, Any, Any]:
        """Run the command through nsenter when the container can be entered, else `podman exec`
        (with input, a pipelined module, keeping stdin open with `-i`)."""
        self._connected = True
        pid = self._entry()
        done = None if pid is None else nsenter(pid, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
        if done is not None:
            return done.returncode, done.stdout, done.stderr
        if in_data is None:
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec", "-i"] + (["--user", self.user] if self.user else [])
        rc, out, err = self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
        # Without pipelining the first command (mkdir of the temporary directory) meets a missing or
        # stopped container and Ansible reports the host unreachable; keep that, rather than a
        # module failure, so `ignore_unreachable` and `is unreachable` still mean what they say.
        if rc == 125 and any(m in err for m in (b"no such container", b"container state improper", b"not running")):
            raise AnsibleConnectionFailure(f"container {self._container_id}: {to_native(err).strip()}")
        return rc, out, err
