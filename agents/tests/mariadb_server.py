"""A throwaway MariaDB server (Debian's mariadbd) in a temp directory, for the dashboard's tests.

Real database, no mocks: the same server the role installs, listening only on a Unix socket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path


class MariaDBServer:
    """mariadb-install-db + mariadbd, stopped and deleted by cleanup()."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = str(base / "mysqld.sock")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        """Initialise the data directory and wait until the server answers."""
        for tool in ("mariadb-install-db", "mariadbd", "mariadb-admin"):
            if not (shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")):
                raise RuntimeError(f"{tool} not found: install mariadb-server (scripts/lab deps does)")
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *user,
            ],
            check=True,
            capture_output=True,
        )
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        log = open(self.base / "error.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                "--skip-networking",
                f"--pid-file={self.base / 'mysqld.pid'}",
                "--innodb-buffer-pool-size=64M",
                # A throwaway server: no fsync per commit nor doublewrite. Django's test database is
                # created by some hundred DDL statements, each of which waited on the disk that CI's
                # Cassandra nodes write their commit logs to.
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                *user,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {(self.base / 'error.log').read_text()[-2000:]}")
            ping = subprocess.run(["mariadb-admin", f"--socket={self.socket}", "-uroot", "ping"], capture_output=True)
            if ping.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"mariadbd did not answer within {timeout} s: {(self.base / 'error.log').read_text()[-2000:]}"
        )

    def cleanup(self) -> None:
        """Stop the server and delete its files."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.base, ignore_errors=True)
