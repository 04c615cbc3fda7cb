"""Podman connection with pipelining, for the lab's and Molecule's systemd containers.

Why: containers.podman.podman runs every module task as four or five `podman` processes (mount,
mkdir, copy, exec, rm), about 0.7 s a task on the CI machine; a converge of site.yml is some
thousand tasks per scenario. `podman exec -i` forwards stdin, so Ansible can pipe the module into
the remote Python instead (one `podman exec` a task), and the container's filesystem is mounted only
for the tasks that copy files. The collection's plugin disables
pipelining only because it runs `podman exec` without `-i`.
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

import shlex
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


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

    def put_file(self, in_path: str, out_path: str) -> None:
        """Copy through the container's mounted filesystem (mounted on first use)."""
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """Fetch through the container's mounted filesystem (mounted on first use)."""
        self._mount()
        super().fetch_file(in_path, out_path)

    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = False) -> tuple[int, Any, Any]:
        """Run the command; with input (a pipelined module), keep stdin open with `-i`."""
        if in_data is None:
            return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._connected = True
        args = ["exec", "-i"] + (["--user", self.user] if self.user else [])
        rc, out, err = self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
        # Without pipelining the first command (mkdir of the temporary directory) meets a missing or
        # stopped container and Ansible reports the host unreachable; keep that, rather than a
        # module failure, so `ignore_unreachable` and `is unreachable` still mean what they say.
        if rc == 125 and any(m in err for m in (b"no such container", b"container state improper", b"not running")):
            raise AnsibleConnectionFailure(f"container {self._container_id}: {to_native(err).strip()}")
        return rc, out, err
