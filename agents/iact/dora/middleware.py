"""Keeps /admin/ to the networks the operator lists (admin_networks in dora.yaml).

The admin can change every row and every user; an appliance's operators usually sit on known
networks. Refused requests get a 403 that says which option opens the door, without reaching the
admin's login form (and so without spending a login attempt).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

from iact.dora.clientip import client_address, in_networks

ADMIN_PREFIX = "/admin/"


class AdminNetworkMiddleware:
    """403 for /admin/ from outside DORA_ADMIN_NETWORKS; no restriction when the list is empty."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Check the path, then the client's address."""
        networks = settings.DORA_ADMIN_NETWORKS
        if networks and request.path_info.startswith(ADMIN_PREFIX):
            address = client_address(request)
            if not in_networks(address, networks):
                return HttpResponseForbidden(
                    f"The admin is not reachable from {address or 'your address'}. An operator can add your "
                    "network to admin_networks in dora.yaml (django_dora_admin_networks).\n",
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
