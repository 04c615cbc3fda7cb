"""Podman connection with pipelining, for the lab's and Molecule's systemd containers.

Why: containers.podman.podman runs every module task as four or five `podman` processes (mount,
mkdir, copy, exec, rm), about 0.7 s a task on the CI machine; a converge of site.yml is some
thousand tasks per scenario. `podman exec -i` forwards stdin, so Ansible can pipe the module into
the remote Python instead (one `podman exec` a task), and the container's filesystem is mounted only
for the tasks that copy files. The collection's plugin disables
pipelining only because it runs `podman exec` without `-i`.

Run as root, even that one `podman exec` is replaced by `nsenter` (`nsenter()`): podman, conmon and
runc took 340 ms of wall time a command on the loaded CI machine against 8 ms, and a CI run spends
thousands of them. The command gets
what `podman exec` gives it: the container's namespaces, root, working directory, cgroups,
environment, capability bounding set, umask and open-files/processes limits; not its seccomp
filter. The init's PID and cgroup come from `podman inspect` once per container and are cached in
/run/iact-podman, checked against the process's start time on every use; a stopped, stopping,
paused or re-created container goes to `podman exec`, which reports what podman reports (a
missing or stopped container is unreachable). Files go through /proc/PID/root.
IACT_PODMAN_NSENTER=0 turns it off. The lab's tests use the same path (command(), nsenter()): a
short bash joins the cgroups and sets the limits before it execs nsenter, so no Python runs between
fork and exec, which a process with threads (the tests' Cassandra driver) must not do.
"""

from __future__ import annotations

DOCUMENTATION = """
name: iact_podman
short_description: Run tasks in podman containers, with pipelining
description:
  - containers.podman.podman with pipelining (C(podman exec -i)), mounting the container only to copy files.
  - Run as root, it enters the container with C(nsenter) instead of C(podman exec) (environment variable
    C(IACT_PODMAN_NSENTER=0) turns that off), and copies files through C(/proc/PID/root).
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
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


@dataclass(frozen=True)
class Entry:
    """How to enter a running container: its init's host PID and its cgroup (podman's CgroupPath)."""

    pid: int
    cgroup: str


# Root-only and emptied at boot (a PID and start time name a process only until the next boot).
CACHE_DIR = Path("/run/iact-podman")
NSENTER = shutil.which("nsenter")
BASH = shutil.which("bash")
ENV = shutil.which("env")
_ENV_RESETS_SIGNALS: bool | None = None


def _env_resets_signals() -> bool:
    """Whether `env --default-signal` works here (coreutils 8.31 and later); asked once per process.
    Without it the commands would keep the caller's ignored signals, so podman exec runs them."""
    global _ENV_RESETS_SIGNALS
    if _ENV_RESETS_SIGNALS is None:
        try:
            probe = subprocess.run([ENV or "env", "--default-signal", "true"], capture_output=True, check=False)
            _ENV_RESETS_SIGNALS = probe.returncode == 0
        except OSError:
            _ENV_RESETS_SIGNALS = False
    return _ENV_RESETS_SIGNALS


# The cgroup hierarchies a `podman exec` joins (runc joins the container's path in each one mounted).
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _process(pid: int) -> tuple[str, str] | None:
    """The process's state and start time (clock ticks since boot: with the PID, one process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None  # fields 3 and 22 of proc(5)


def _live(pid: int, started: str) -> bool:
    """The process is the one cached, and neither a zombie nor dying (an init that exits)."""
    found = _process(pid)
    return found is not None and found[1] == started and found[0] not in ("Z", "X")


def _cache_file(podman: str, extra_args: str, container: str) -> Path | None:
    """The cache entry's path, or None when the directory is not root's alone (never trusted then)."""
    try:
        CACHE_DIR.mkdir(mode=0o700, exist_ok=True)
        info = CACHE_DIR.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        return None
    key = hashlib.sha256(f"{podman}\0{extra_args}\0{container}".encode()).hexdigest()[:32]
    return CACHE_DIR / key


def _frozen(cgroup: str) -> bool:
    """A paused container: podman exec refuses it, and so does this."""
    try:
        return (CGROUP_ROOT / "freezer" / cgroup.lstrip("/") / "freezer.state").read_text().strip() != "THAWED"
    except OSError:
        return False


def entry(container: str, podman: str = "podman", extra_args: str = "") -> Entry | None:
    """How to enter the container with nsenter, else None.

    None (use `podman exec`) when IACT_PODMAN_NSENTER=0, when not root, without nsenter, when the
    container does not run or is paused, or when it has a user namespace of its own (rootless
    podman, --userns): entering that one needs the mappings podman sets up.
    """
    if (
        os.geteuid() != 0
        or not NSENTER
        or not BASH
        or not ENV
        or os.environ.get("IACT_PODMAN_NSENTER") == "0"
        or not _env_resets_signals()
    ):
        return None
    cache = _cache_file(podman, extra_args, container)
    try:
        pid_text, started, cgroup = cache.read_text().split() if cache else ("", "", "")
        if _live(int(pid_text), started):
            return None if _frozen(cgroup) else Entry(int(pid_text), cgroup)
    except (OSError, ValueError):
        pass
    found = subprocess.run(
        [podman, *shlex.split(extra_args), "inspect", "--type", "container", "-f",
         "{{.State.Pid}} {{.State.CgroupPath}}", container],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    try:
        pid_text, cgroup = found.stdout.split() if found.returncode == 0 else ("0", "")
        pid = int(pid_text)
        if pid <= 0 or os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
            return None
    except (OSError, ValueError):
        return None
    process = _process(pid)
    if process is None or not _live(pid, process[1]) or _frozen(cgroup):
        return None
    if cache:
        try:  # a cache that cannot be written costs an inspect a task, nothing else
            fd, partial = tempfile.mkstemp(dir=CACHE_DIR)
            with os.fdopen(fd, "w") as out:
                out.write(f"{pid} {process[1]} {cgroup}\n")
            os.replace(partial, cache)
        except OSError:
            pass
    return Entry(pid, cgroup)


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


def _limits(pid: int) -> list[tuple[str, str, str]]:
    """The init's open-files and processes limits (podman's default_ulimits), as bash's ulimit options."""
    names = {"Max open files": "-n", "Max processes": "-u"}
    limits = []
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        for name, option in names.items():
            if line.startswith(name):
                soft, hard = line[26:].split()[:2]
                limits.append((option, soft, hard))
    return limits


# Run by bash between the caller and nsenter: it joins the container's cgroups (so the command's CPU
# counts against the container's share, as with podman exec) by writing its own PID, takes the
# container's limits (soft, hard, soft again: either order of raising or lowering works; a limit that
# cannot be set stays as it was, as podman exec would fail no command for it), and execs nsenter.
# In a shell rather than in Python between fork and exec (preexec_fn), so that a process with threads
# may call it: the lab's tests, whose Cassandra driver runs threads (CI run 16 hung in a driver's
# query while such a process forked with a preexec_fn).
_JOIN = """
n=$1; shift
while [ "$n" -gt 0 ]; do { echo 0 > "$1"; } 2>/dev/null; shift; n=$((n - 1)); done
n=$1; shift
while [ "$n" -gt 0 ]; do
  ulimit -S "$1" "$2" 2>/dev/null; ulimit -H "$1" "$3" 2>/dev/null; ulimit -S "$1" "$2" 2>/dev/null
  shift 3; n=$((n - 1))
done
exec "$@"
"""


def command(into: Entry, argv: list[str]) -> list[bytes | str] | None:
    """The command line that runs argv in the container as `podman exec` would: in its namespaces,
    root, working directory, cgroups, environment, capabilities and open-files and processes limits
    (not its seccomp filter); run it with umask 022. None when the container's init is gone."""
    try:
        environ = Path(f"/proc/{into.pid}/environ").read_bytes().split(b"\0")
        capabilities = _bounding_set(into.pid)
        limits = _limits(into.pid)
    except (OSError, StopIteration, ValueError):
        return None
    procs = [str(d / into.cgroup.lstrip("/") / "cgroup.procs") for d in CGROUP_ROOT.iterdir()]
    # The environment is set inside, by the container's env: nsenter itself runs with this one.
    env = [item for item in environ if b"=" in item and not item.startswith(b"container_uuid=")]
    if not any(item.startswith(b"HOME=") for item in env):
        env.append(b"HOME=/root")
    namespaces = ["-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w"]
    # podman exec's command leads a session of its own inside the container (runc calls setsid).
    leader = ["/usr/bin/setsid"] if os.path.exists(f"/proc/{into.pid}/root/usr/bin/setsid") else []
    return [
        # Every signal at its default, as podman exec's commands get them: a caller started in the
        # background (CI's jobs, nohup) ignores SIGINT, SIGQUIT or SIGHUP, and an ignored signal is
        # inherited through exec, which bash cannot undo (coreutils' env, 8.31 and later, can).
        ENV, "--default-signal", BASH, "-c", _JOIN, "iact-podman-join", str(len(procs)), *procs,
        str(len(limits)), *(value for limit in limits for value in limit),
        NSENTER, "-t", str(into.pid), *namespaces, "--", "env", "-i", *env, *leader, *capabilities, *argv,
    ]  # fmt: skip


def nsenter(
    into: Entry, argv: list[str], in_data: bytes | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[bytes] | None:
    """Run argv in the container as `podman exec` would (command()). None when the container could
    not be entered, stopped or stopping (the caller then asks podman, which says why)."""
    line = command(into, argv)
    if line is None:
        return None
    done = subprocess.run(
        line,
        input=in_data,
        stdin=subprocess.DEVNULL if in_data is None else None,
        capture_output=True,
        timeout=timeout,
        check=False,
        umask=0o022,
        # Only PATH (for nsenter to find env): the caller's SHELLOPTS, BASH_ENV or a missing locale
        # would change what bash prints or runs; the command's environment is the container's (env -i).
        env={"PATH": os.environ.get("PATH") or os.defpath},
        # Detached from the caller's session and terminal, as podman exec's commands are (conmon's).
        start_new_session=True,
    )
    if done.returncode != 0 and done.stderr.startswith(b"nsenter: ") and b"failed to execute" not in done.stderr:
        return None  # it did not get in: a container on its way out
    if done.returncode < 0:  # killed by a signal: nsenter dies of it too, podman exec exits 128+N
        done.returncode = 128 - done.returncode
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

    def _entry(self) -> Entry | None:
        if self.user and self.user != "root":
            return None
        return entry(self._container_id, self.get_option("podman_executable"), self.get_option("podman_extra_args"))

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy through /proc/PID/root, else the container's mounted filesystem (mounted on first use)."""
        into = self._entry()
        if into is not None:
            try:
                shutil.copyfile(in_path, f"/proc/{into.pid}/root{out_path}")
            except OSError as exc:
                raise AnsibleError(f"could not copy {in_path} to {out_path} in {self._container_id}: {exc}") from exc
            return
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Fetch through /proc/PID/root, else the container's mounted filesystem (mounted on first use)."""
        into = self._entry()
        if into is not None:
            try:
                shutil.copyfile(f"/proc/{into.pid}/root{in_path}", out_path)
            except OSError as exc:
                raise AnsibleError(f"could not fetch {in_path} from {self._container_id}: {exc}") from exc
            return
        self._mount()
        super().fetch_file(in_path, out_path)

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = False) -> tuple[int, Any, Any]:
        """Run the command through nsenter when the container can be entered, else `podman exec`
        (with input, a pipelined module, keeping stdin open with `-i`)."""
        self._connected = True
        into = self._entry()
        argv = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        done = None if into is None else nsenter(into, argv, in_data)
        if done is not None:
            return done.returncode, done.stdout, done.stderr
        if in_data is None:
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec", "-i"] + (["--user", self.user] if self.user else [])
        rc, out, err = self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
        # Without pipelining the first command (mkdir of the temporary directory) meets a missing or
        # stopped container and Ansible reports the host unreachable; keep that, rather than a
        # module failure, so `ignore_unreachable` and `is unreachable` still mean what they say.
        # podman 4.3 exits 125 for a missing container and 255 for a stopped one.
        if rc in (125, 255) and any(
            m in err for m in (b"no such container", b"container state improper", b"not running")
        ):
            raise AnsibleConnectionFailure(f"container {self._container_id}: {to_native(err).strip()}")
        return rc, out, err
