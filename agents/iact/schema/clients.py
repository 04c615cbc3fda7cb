"""Who is connected to each node, and over what: the gate before a cluster refuses plaintext.

system_views.clients is local to each node, so every node is asked directly. A client still
connected in plaintext when the native port turns TLS-only would lose its connection and, if it
cannot spool, its writes; the TLS migration stops before that step while any remain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cassandra.cluster import Session


@dataclass(frozen=True)
class Client:
    """One client connection as a node sees it."""

    node: str
    address: str
    username: str
    driver: str
    tls: bool


def connected_clients(session: Session) -> list[Client]:
    """Every client connection of every live node (this session's own included).

    A node the driver sees down cannot be asked: it is listed as one plaintext "client" named
    after it, so the gate never passes on what it could not see.
    """
    clients: list[Client] = []
    for host in session.cluster.metadata.all_hosts():
        if not host.is_up:
            clients.append(Client(str(host.address), "(node down: its clients are unknown)", "", "", False))
            continue
        rows = session.execute(
            "SELECT address, username, driver_name, ssl_enabled FROM system_views.clients", host=host
        )
        clients += [
            Client(str(host.address), str(r.address), r.username or "", r.driver_name or "", bool(r.ssl_enabled))
            for r in rows
        ]
    return clients


def report_plaintext(clients: list[Client], say: Callable[[str], None]) -> int:
    """Print the plaintext connections; returns how many there are."""
    plain = [c for c in clients if not c.tls]
    for c in plain:
        who = c.username or "(anonymous)"
        say(f"plaintext client: {c.address} as {who} ({c.driver or 'unknown driver'}) on {c.node}")
    say(f"clients: {len(clients)} connected, {len(plain)} in plaintext")
    return len(plain)
