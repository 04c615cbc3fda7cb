"""The tests enter the containers through nsenter (lab.container_exec, the connection plugin's
command()), and the lab's Ansible runs do too: a command must get there what `podman exec` gives it,
or a test would pass or fail for the wrong reason. Compared here on the scenario's host."""

import os
import subprocess

import pytest
import testinfra
from conftest import APP_HOST, container_exec

# What podman exec sets up for a command: user, umask, limits, cgroups, capabilities, environment,
# working directory, host name and namespaces (seccomp is the one thing nsenter does not give).
PROBE = r"""
id; umask; ulimit -Sn; ulimit -Hn; ulimit -Su; ulimit -Hu
sort /proc/self/cgroup
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Sig(Blk|Ign|Cgt))' /proc/self/status
cat /proc/self/oom_score_adj
read -r pid _ _ _ pgrp sid _ < /proc/$$/stat; [ "$pid" = "$pgrp" ] && [ "$pid" = "$sid" ] && echo "leads its session"
ls -l /proc/$$/fd/0 | sed 's/.* -> //'
env | grep -v '^_=' | sort
pwd; hostname
for ns in cgroup ipc mnt net pid uts; do readlink /proc/self/ns/$ns; done
"""


pytestmark = pytest.mark.skipif(
    os.environ.get("IACT_PODMAN_NSENTER") == "0", reason="IACT_PODMAN_NSENTER=0: the tests use podman exec"
)


def test_a_command_entered_through_nsenter_gets_what_podman_exec_gives_it():
    podman = subprocess.run(["podman", "exec", APP_HOST, "bash", "-c", PROBE], capture_output=True, check=True)
    entered = container_exec(APP_HOST, ["bash", "-c", PROBE])
    assert entered is not None, "the tests run as root: the container must be entered through nsenter"
    assert (entered.returncode, entered.stderr) == (0, b""), entered.stderr
    assert entered.stdout.decode().splitlines() == podman.stdout.decode().splitlines()


@pytest.mark.parametrize(
    ("argv", "rc"),
    [(["sh", "-c", "exit 7"], 7), (["sh", "-c", "kill -TERM $$"], 143), (["no-such-command"], 127)],
)
def test_exit_codes_are_those_of_podman_exec(argv, rc):
    podman = subprocess.run(["podman", "exec", APP_HOST, *argv], capture_output=True, check=False)
    entered = container_exec(APP_HOST, argv)
    assert entered is not None, "the tests run as root: the container must be entered through nsenter"
    assert (podman.returncode, entered.returncode) == (rc, rc)


def test_testinfra_hosts_enter_through_nsenter_and_report_like_podman():
    host = testinfra.get_host(f"podman://{APP_HOST}")
    assert type(host.backend).__name__ == "_PodmanBackend"
    done = host.run("printf '\\377ok'; echo err >&2; exit 3")
    assert (done.rc, done.stdout_bytes, done.stderr) == (3, b"\xffok", "err\n")
