"""The client's address, for login lockouts and the admin's network restriction.

gunicorn listens on loopback behind nginx, so REMOTE_ADDR is nginx. The role's nginx sends
`X-Forwarded-For: $remote_addr`, the address it saw; another proxy chain may append to what the
client sent. Only entries added by trusted proxies are believed: walking the header from the
right, the first address that is not a trusted proxy is the client. Anything to its left was
written by the client and is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from django.conf import settings
from django.http import HttpRequest

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def _parse(value: str) -> Address | None:
    try:
        address = ip_address(value.strip())
    except ValueError:
        return None
    return (address.ipv4_mapped or address) if isinstance(address, IPv6Address) else address


def in_networks(address: Address | None, networks: Iterable[Network]) -> bool:
    """Whether the address lies in any of the networks (None never does)."""
    return address is not None and any(address.version == n.version and address in n for n in networks)


def client_address(request: HttpRequest) -> Address | None:
    """The client's address, or None when even REMOTE_ADDR is not one (a unix socket)."""
    trusted = settings.DORA_TRUSTED_PROXIES
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if not in_networks(peer, trusted):
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        address = _parse(hop)
        if address is None:
            break  # a hop we cannot read: stop at the last one a trusted proxy vouched for
        peer = address
        if not in_networks(address, trusted):
            break
    return peer


def client_ip(request: HttpRequest) -> str:
    """client_address as text ('' when unknown)."""
    address = client_address(request)
    return str(address) if address is not None else ""
