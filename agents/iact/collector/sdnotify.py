"""The sd_notify protocol (READY, WATCHDOG, STATUS, STOPPING) without libsystemd.

A datagram to $NOTIFY_SOCKET; a no-op when not run by systemd (tests, a shell).
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Talks to systemd if it is listening."""

    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval = int(usec) / 2e6 if enabled else None

    def send(self, *states: str) -> None:
        """Send states like READY=1; errors are ignored (systemd may be restarting)."""
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(states).encode(), self.address)
        except OSError:
            pass
