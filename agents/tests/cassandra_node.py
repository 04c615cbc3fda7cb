"""A real single Cassandra node on loopback, unpacked from the lab's cached tarball.

Tests that talk to Cassandra use it instead of a mock; it can be stopped and started again on
the same data to test outages.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
JVM17 = ROOT / "roles" / "cassandra_cluster" / "templates" / "jvm17-server.options.j2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tarball_path() -> Path:
    path = Path(os.environ.get("IACT_CASSANDRA_TARBALL", "/var/cache/iact-lab/apache-cassandra-5.0.9-bin.tar.gz"))
    if not path.is_file():
        raise RuntimeError(f"no Cassandra tarball at {path}: run `scripts/lab tarball` (or set IACT_CASSANDRA_TARBALL)")
    return path


class CassandraNode:
    """One node: unpack, configure for loopback with free ports, start, stop, restart."""

    def __init__(
        self, workdir: Path, heap_mb: int = 512, tls: tuple[Path, Path] | None = None, auth: bool = False
    ) -> None:
        """`tls`: (key+certificate PEM, CA PEM) to accept TLS clients on the native port, besides
        plaintext ones (`optional`), as the role configures a node mid-migration. `auth`: passwords
        and grants enforced (the default role cassandra/cassandra appears some seconds after start),
        with no caching, so a grant or revoke holds from the next statement."""
        self.workdir = workdir
        self.heap_mb = heap_mb
        self.tls = tls
        self.auth = auth
        self.port = _free_port()
        self.storage_port = _free_port()
        self.jmx_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.home = self._unpack()
        self._configure()

    def _unpack(self) -> Path:
        with tarfile.open(tarball_path()) as tar:
            top = tar.getmembers()[0].name.split("/")[0]
            tar.extractall(self.workdir, filter="tar")
        return self.workdir / top

    def _configure(self) -> None:
        conf = self.home / "conf"
        data = self.workdir / "data"
        (conf / "cassandra.yaml").write_text(
            f"""cluster_name: test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
commitlog_sync: periodic
commitlog_sync_period: 10000ms
endpoint_snitch: GossipingPropertyFileSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{self.storage_port}"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
native_transport_port: {self.port}
storage_port: {self.storage_port}
data_file_directories: [{data}/data]
commitlog_directory: {data}/commitlog
hints_directory: {data}/hints
saved_caches_directory: {data}/saved_caches
batch_size_warn_threshold: 64KiB
batch_size_fail_threshold: 640KiB
{self._client_encryption()}{self._auth()}"""
        )
        (conf / "cassandra-rackdc.properties").write_text("dc=dc1\nrack=rack1\n")
        jvm17 = "\n".join(line for line in JVM17.read_text().splitlines() if line.startswith("-"))
        (conf / "jvm17-server.options").write_text(jvm17.replace("{{ cassandra_cluster_gc_pause_ms }}", "500") + "\n")
        (conf / "jvm-server.options").write_text(
            f"-Xms{self.heap_mb}M\n-Xmx{self.heap_mb}M\n-Xss256k\n-Djava.net.preferIPv4Stack=true\n"
            "-Dcassandra.skip_wait_for_gossip_to_settle=0\n-Dcassandra.ring_delay_ms=1000\n"
            # A node with no peers has no one to announce its shutdown to (2 s per stop otherwise).
            "-Dcassandra.shutdown_announce_in_ms=0\n"
        )
        (conf / "logback.xml").write_text(
            '<configuration><appender name="F" class="ch.qos.logback.core.FileAppender">'
            "<file>${cassandra.logdir}/system.log</file><encoder><pattern>%-5level %date %msg%n</pattern></encoder>"
            '</appender><root level="INFO"><appender-ref ref="F"/></root></configuration>\n'
        )

    def _auth(self) -> str:
        if not self.auth:
            return ""
        return """authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
roles_validity: 0ms
permissions_validity: 0ms
credentials_validity: 0ms
"""

    def _client_encryption(self) -> str:
        if self.tls is None:
            return ""
        keystore, ca = self.tls
        return f"""client_encryption_options:
  enabled: true
  optional: true
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: {keystore}
  truststore: {ca}
  require_client_auth: false
  accepted_protocols: [TLSv1.3, TLSv1.2]
"""

    def start(self, timeout: float = 180) -> None:
        env = dict(os.environ, JMX_PORT=str(self.jmx_port), CASSANDRA_LOG_DIR=str(self.workdir / "logs"))
        # The node dies with the process that started it (util-linux's setpriv sets the parent-death
        # signal, kept across exec): a test run killed outright (CI stops a job that ignores SIGINT
        # with SIGKILL) left its JVM running, and the next runs shared the CPU with it.
        orphan_guard = ["setpriv", "--pdeathsig", "SIGKILL", "--"] if shutil.which("setpriv") else []
        self.proc = subprocess.Popen(
            [*orphan_guard, str(self.home / "bin" / "cassandra"), "-f"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Cassandra exited with {self.proc.returncode}; see {self.workdir}/logs/system.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"Cassandra did not open port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def schema_session(port: int | None = None) -> Iterator[tuple[int, Any]]:
    """(port, session) on a node with the repository's schema: the one listening on `port`, or a
    node started here from the cached tarball and removed afterwards. For on-demand tools (bench/).
    """
    from iact.cassandra.session import open_session
    from iact.cassandra.settings import ConnectionSettings
    from iact.schema.migrations import apply_migrations, find_cql_dir, load_migrations
    from iact.schema.params import SchemaParams

    node = None
    if port is None:
        node = CassandraNode(Path(tempfile.mkdtemp(prefix="iact-node-")))
        node.start()
        port = node.port
    try:
        with open_session(ConnectionSettings(contact_points=("127.0.0.1",), port=port)) as session:
            if node is not None:
                params = SchemaParams(replication=(("dc1", 1),))
                apply_migrations(session, params, load_migrations(find_cql_dir(), params), lambda _line: None)
            yield port, session
    finally:
        if node is not None:
            node.cleanup()
