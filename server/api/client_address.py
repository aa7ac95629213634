"""Who the client is on the network: the peer, or behind trusted proxies the address they saw."""

from __future__ import annotations

import ipaddress

from aiohttp import web

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def client_address(request: web.Request, trusted: Networks) -> str:
    """The peer, or behind trusted proxies the first untrusted address of X-Forwarded-For
    (read from the right: only the hops our proxies appended can be believed)."""
    peer = request.remote or "unknown"
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
