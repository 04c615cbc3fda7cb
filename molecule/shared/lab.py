"""Helpers and fixtures shared by the Molecule scenarios' tests: addresses, lab secrets, playbook runs.

Each scenario's conftest.py imports everything from here, so pytest sees the fixtures there.
"""

import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import testinfra
import testinfra.backend
import testinfra.backend.podman
from cassandra import OperationTimedOut, ReadFailure, ReadTimeout
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.query import SimpleStatement

NODES = ("cass1", "cass2", "cass3")
# What a read polled by wait_until may meet on a loaded lab (a node restarting, a slow index scan):
# that poll counts as "not yet", not as the test's failure.
TRANSIENT_READ_ERRORS = (OperationTimedOut, ReadTimeout, ReadFailure, NoHostAvailable)
ROOT = Path(__file__).resolve().parents[2]


def secrets_dir() -> Path:
    """Where the lab's group_vars generated the passwords (the inventory Molecule ran with)."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    candidates = [Path(ephemeral) / "inventory" / ".secrets"] if ephemeral else []
    candidates.append(ROOT / "inventories" / "lab" / ".secrets")
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    raise RuntimeError(f"no lab secrets in {candidates}: run converge first")


def secret(name: str) -> str:
    return (secrets_dir() / name).read_text().strip()


def ca_file() -> Path:
    """The lab CA (roles/iact_pki) that signed the nodes' certificates."""
    return secrets_dir() / "pki" / "ca.crt.pem"


def speaks_tls(ip: str, port: int = 9042) -> bool:
    """Whether the node at ip:port completes a TLS handshake verified against the lab CA."""
    context = ssl.create_default_context(cafile=str(ca_file()))
    try:
        with socket.create_connection((ip, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=ip):
            return True
    except (OSError, ssl.SSLError):
        return False


def tls_context_for(ips) -> ssl.SSLContext | None:
    """TLS verified against the lab CA when the cluster speaks it (always, once converged; only
    after playbooks/cassandra_enable_tls.yml in the full scenario, which starts in plaintext)."""
    first = next(iter(ips.values()))
    return ssl.create_default_context(cafile=str(ca_file())) if ca_file().is_file() and speaks_tls(first) else None


def node_ip(name: str) -> str:
    out = subprocess.run(
        ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0]


def wait_until(predicate, timeout: float, what: str, interval: float = 2.0):
    """Poll until predicate() is truthy; fail naming what did not happen."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def node1():
    return testinfra.get_host("podman://cass1")


@pytest.fixture(scope="session")
def ips():
    return {n: node_ip(n) for n in NODES}


@pytest.fixture(scope="session")
def connect(ips):
    """connect(user, password) -> driver session; clusters are shut down at the end."""
    clusters = []

    def _connect(user: str, password: str):
        cluster = Cluster(
            list(ips.values()),
            auth_provider=PlainTextAuthProvider(user, password),
            connect_timeout=15,
            ssl_context=tls_context_for(ips),
        )
        clusters.append(cluster)
        session = cluster.connect()
        # The tests read back whole runs (index scans of 10^5 rows): the driver's 10 s default
        # times out on a loaded 2-core machine.
        session.default_timeout = 60
        return session

    yield _connect
    for cluster in clusters:
        cluster.shutdown()


@pytest.fixture(scope="session")
def admin(connect):
    return connect("iact_admin", secret("cassandra_superuser_password"))


def inventory() -> Path:
    """The inventory Molecule converged with, or the lab's when run by hand against `scripts/lab up`."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    return Path(ephemeral) / "inventory" if ephemeral else ROOT / "inventories" / "lab"


def operator_env() -> dict[str, str]:
    """This process's environment without Molecule's ANSIBLE_CONFIG: the repository's ansible.cfg applies,
    as when an operator runs a playbook (Molecule's generated one does not enable the iact_dora callback).
    """
    # Nor the callbacks Molecule's scenario enables for its own runs (profile_tasks): set in the
    # environment, they would replace ansible.cfg's callbacks_enabled (the iact_dora callback).
    # profile_tasks is kept beside it: the playbooks' logs then show where their minutes go.
    # Nor its roles and collections paths: the default scenario converges from an installed collection,
    # while an operator of this clone gets ansible.cfg's roles/.
    dropped = {"ANSIBLE_CONFIG", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_ROLES_PATH", "ANSIBLE_COLLECTIONS_PATH"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    callbacks = ["iact_dora"]
    if "profile_tasks" in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", ""):
        callbacks.append("ansible.posix.profile_tasks")
    if "iact_bytecode" in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", ""):
        callbacks.append("iact_bytecode")  # a speed-up of the lab's runs, as in Molecule's own
    return env | {"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CALLBACKS_ENABLED": ",".join(callbacks)}


def playbook(path: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one of the repository's playbooks against the lab, as an operator would."""
    return subprocess.run(
        ["ansible-playbook", path, "-i", str(inventory()), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=operator_env() | (env or {}),
    )


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP as {host: {ok: n, changed: n, ...}}."""
    hosts = {}
    for line in stdout.split("PLAY RECAP", 1)[-1].splitlines()[1:]:
        if ":" in line and "=" in line:
            name, counts = line.split(":", 1)
            hosts[name.strip()] = {k: int(v) for k, v in (kv.split("=") for kv in counts.split())}
    return hosts


def _connection_plugin():
    """The lab's connection plugin, for its nsenter path (the venv's ansible has the collection it needs)."""
    spec = importlib.util.spec_from_file_location(
        "iact_podman_for_the_lab_tests", ROOT / "plugins" / "connection" / "iact_podman.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


_ENTER = _connection_plugin()


def container_exec(container: str, argv: list[str]) -> subprocess.CompletedProcess[bytes] | None:
    """argv run in the container through nsenter, as `podman exec` runs it (the connection plugin's
    command(): namespaces, cgroups, environment, capabilities, limits), or None when it cannot be
    entered that way (not root, a stopped or paused container): the caller then asks podman.

    Why: `podman exec` cost 340 ms of wall time and some 0.2 s of CPU (podman, conmon, runc) a call
    on the loaded CI machine, and a verify makes well over a thousand, many of them polls."""
    into = _ENTER.entry(container)
    return None if into is None else _ENTER.nsenter(into, argv)


def _text(data: bytes) -> str:
    """As text=True decodes: UTF-8 here (strict), universal newlines."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`podman *args`; a plain `podman exec CONTAINER ARGV...` (no options) enters through nsenter."""
    if len(args) > 2 and args[0] == "exec" and not args[1].startswith("-"):
        entered = container_exec(args[1], list(args[2:]))
        if entered is not None:
            done = subprocess.CompletedProcess(
                ["podman", *args], entered.returncode, _text(entered.stdout), _text(entered.stderr)
            )
            if check:
                done.check_returncode()
            return done
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


class _PodmanBackend(testinfra.backend.podman.PodmanBackend):
    """testinfra's podman:// hosts, their commands entered through nsenter (container_exec) when they
    run as the container's default user; as another user (podman://user@name), through podman."""

    def run(self, command: str, *args: str, **kwargs) -> testinfra.backend.base.CommandResult:
        cmd = self.get_command(command, *args)
        done = None if self.user is not None else container_exec(self.name, ["/bin/sh", "-c", cmd])
        if done is None:
            return super().run(command, *args, **kwargs)
        return self.result(done.returncode, self.encode(cmd), done.stdout, done.stderr)


testinfra.backend.BACKENDS["podman"] = f"{__name__}._PodmanBackend"


AGENT_STATUS = "/opt/iact/collector/venv/bin/iact-collector status --json --max-age 30"


def agent_status(node: str) -> dict:
    out = podman("exec", node, "sh", "-c", AGENT_STATUS, check=False).stdout
    return json.loads(out) if out.strip() else {}


def agent_restarts(node: str) -> int:
    """How many times systemd restarted iact-collector after a failure (NRestarts); a crash adds one."""
    out = podman("exec", node, "systemctl", "show", "-p", "NRestarts", "--value", "iact-collector").stdout
    return int(out.strip())


def written(node: str) -> int:
    """Rows the agent has written to Cassandra so far (not spooled)."""
    return int(agent_status(node).get("counters", {}).get("rows_written", 0))


def ring_up(expected: int, via: str = "cass1") -> bool:
    """`nodetool status` seen from `via` lists exactly `expected` nodes Up/Normal."""
    out = podman("exec", via, "nodetool", "status", check=False).stdout
    return out.count("\nUN ") == expected


def unit_failures(node: str, unit: str = "cassandra") -> str:
    """What systemd saw of `unit` failing on `node`: "" when it never restarted it after a failure
    (NRestarts counts those only; a manual start resets it), else the count and the journal's lines
    about the exit (OutOfMemoryError, "Main process exited"), for the failure message."""
    restarts = podman("exec", node, "systemctl", "show", "-p", "NRestarts", "--value", unit, check=False).stdout.strip()
    if restarts in ("", "0"):
        return ""
    exits = "OutOfMemory|Main process exited|Failed|Scheduled restart"
    journal = podman(
        "exec", node, "sh", "-c", f"journalctl -u {unit} --no-pager -o short-iso | grep -E '{exits}' | tail -n 8",
        check=False,
    ).stdout  # fmt: skip
    return f"{node}: systemd restarted {unit} {restarts} time(s) after a failure:\n{journal}"


def unit_started(node: str, unit: str = "cassandra") -> str:
    """When the unit's main process started: unchanged means the unit was not restarted."""
    return podman("exec", node, "systemctl", "show", unit, "-p", "ExecMainStartTimestampMonotonic").stdout


# What a writer on a node runs: numbered lines through syslog(3) to /dev/log, as `logger` sends
# them (same socket, user.notice, the tag as identifier), every 50 ms until its stop file appears;
# then how many it sent. One process per node: a shell loop that forked `logger` and `sleep` per
# line had those three at 29 % of the lab's running tasks (sampled during the TLS migration and
# the Cassandra upgrade), CPU that the nodes and Ansible then waited for on two cores.
WRITER = r"""
import os, sys, syslog, time
program, run, stop, count = sys.argv[1:]
for path in (stop, count):
    if os.path.exists(path):
        os.remove(path)
syslog.openlog(program, 0, syslog.LOG_USER)
i = 0
try:
    while not os.path.exists(stop):
        i += 1
        syslog.syslog(syslog.LOG_NOTICE, f"run={run} seq={i}")
        time.sleep(0.05)
finally:
    with open(count + ".tmp", "w") as out:
        out.write(f"{i}\n")
    os.replace(count + ".tmp", count)
"""


def start_writer(node: str, program: str, run: str, stop: str, count: str) -> None:
    """Start WRITER on `node` in the background: lines `run=RUN seq=N` tagged `program`."""
    podman("exec", "-d", node, "python3", "-c", WRITER, program, run, stop, count)


class Writers:
    """A WRITER on each node (tag `program`, seq numbers), counted by each node when it stops."""

    def __init__(self, run: str, nodes: tuple[str, ...] = NODES, program: str = "fotest") -> None:
        self.run, self.nodes, self.program = run, nodes, program

    def start(self) -> None:
        self.started = datetime.now(UTC).date()
        for node in self.nodes:
            start_writer(node, self.program, self.run, f"/tmp/{self.program}-stop", f"/tmp/{self.program}-count")

    def stop(self) -> dict[str, int]:
        for node in self.nodes:
            podman("exec", node, "touch", f"/tmp/{self.program}-stop")

        def count(node: str) -> int | None:
            out = podman("exec", node, "cat", f"/tmp/{self.program}-count", check=False)
            return int(out.stdout) if out.returncode == 0 and out.stdout.strip() else None

        return {n: wait_until(lambda n=n: count(n), 15, f"the writer on {n} to stop", interval=0.5) for n in self.nodes}

    def in_syslog(self, node: str) -> int:
        """How many of this run's lines rsyslog wrote to the node's syslog (rotated file included).

        journald hands lines to rsyslog through a datagram socket and drops them when rsyslog falls
        behind ("Forwarding to syslog missed N messages" in the journal): on a CPU-saturated lab node
        a line can be in the journal and never reach /var/log/syslog, so the agent never sees it.
        What the agent must store from syslog is what is in the file.
        """
        grep = f"cat /var/log/syslog.1 /var/log/syslog 2>/dev/null | grep -cF 'run={self.run} seq='"
        return int(podman("exec", node, "sh", "-c", grep, check=False).stdout.strip() or 0)

    def stored_once(self, reader, counts: dict[str, int], timeout: float = 600) -> bool:
        """Wait until every line is stored from each node's journal (all of them) and from its syslog
        (every line the file holds, at least 95 % of them); True if none twice.

        The wait is long because agents that spooled while nodes restarted replay with a backoff of
        up to 30 s, on a machine that may be three times slower than usual; it ends as soon as all
        is stored."""
        lines = SimpleStatement(
            "SELECT host, source, message FROM logging.infrastructure_logs WHERE day = %s AND program = %s",
            fetch_size=5000,
        )
        mark = f"run={self.run} "
        in_file: dict[str, int] = {}
        last_per: dict[str, int] = {}  # what was stored at the last poll, per node and source

        def every_line():
            in_file.update({n: self.in_syslog(n) for n in counts})  # rsyslog may still be writing the last ones
            expected = {(n, "journal"): counts[n] for n in counts} | {(n, "syslog"): in_file[n] for n in counts}
            days = sorted({self.started, datetime.now(UTC).date()})  # a run may cross midnight (UTC)
            try:
                rows = [r for day in days for r in reader.execute(lines, (day, self.program))]
            except TRANSIENT_READ_ERRORS as exc:
                read_errors[:] = [f"{type(exc).__name__}: {exc}"]
                return None
            seen = Counter((r.host, r.source, r.message) for r in rows if mark in r.message)
            per = Counter((h, s) for h, s, _ in seen)
            last_per.clear()
            last_per.update({f"{h}/{s}": n for (h, s), n in per.items()})
            settled = all(self.in_syslog(n) == in_file[n] for n in counts)  # the files did not grow meanwhile
            return seen if settled and all(per[key] == want for key, want in expected.items()) else None

        read_errors: list[str] = []  # the last read that timed out, for the message if the wait does
        what = f"every {self.program} line from the journal and syslog of each node"
        try:
            seen = wait_until(every_line, timeout, what, 3)
        except AssertionError as exc:
            found = dict(last_per)
            raise AssertionError(
                f"{exc}; journal lines written {counts}, syslog files hold {in_file}, stored {found}; "
                f"last read error {read_errors}"
            ) from None
        for n, written in counts.items():  # rsyslog's losses stay rare, or the syslog path proves little
            assert written * 0.95 <= in_file[n] <= written, f"{n}: {in_file[n]} of {written} lines in /var/log/syslog"
        return max(seen.values()) == 1
