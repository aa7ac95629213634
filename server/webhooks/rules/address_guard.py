"""SSRF guard: webhook requests go to public addresses over https only.

A receiver URL is checked three times:

1. when it is registered (``check_receiver_url``): https, no credentials, and a literal IP or a
   name that resolves must be public; names like ``localhost`` are refused outright;
2. on every attempt, by ``GuardedConnector``: every address a name resolves to (or the literal
   IP) must be public, otherwise nothing is sent; DNS is answered afresh, so a name that moved
   to a private address since registration is caught;
3. and the address the socket actually connected to is checked again before a byte of the
   request is written.

``COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE=1`` lifts all of this (http and private targets) for tests
and closed networks.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import aiohttp.abc
from yarl import URL

from server.compat import AddressCheckingConnector
from server.webhooks.rules.public_addresses import ALLOW_PRIVATE_HINT, is_public_address, literal_ip


class BlockedAddressError(OSError):
    """A receiver address is not public (loopback, private, link-local, multicast, ...)."""


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (a seam for tests: there is no DNS in CI)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolution_problem(url: URL, *, allow_private: bool, lookup_seconds: float = 3.0) -> str | None:
    """At registration: a name that resolves to any non-public address is refused. A name that
    does not resolve (yet) is accepted; every attempt checks again."""
    if allow_private or url.raw_host is None or literal_ip(url.raw_host) is not None:
        return None
    try:
        addresses = await asyncio.wait_for(resolve_addresses(url.raw_host, url.port or 443), lookup_seconds)
    except (OSError, TimeoutError):
        return None
    for address in addresses:
        if not is_public_address(address):
            return f"url host {url.raw_host!r} resolves to a non-public address ({address}){ALLOW_PRIVATE_HINT}"
    return None


class GuardedConnector(AddressCheckingConnector):
    """A TCP connector that only talks to public addresses: every address a name resolves to
    must be public, and so must the address the socket connected to. (The hooks it fills in are
    aiohttp internals, kept in server/compat.py with a test that fails loudly on a release that
    changes them, instead of silently opening the guard; tests/test_webhooks_ssrf.py pins the
    behaviour.)"""

    def check_resolved(self, host: str, addresses: list[str]) -> None:
        blocked = [address for address in addresses if not is_public_address(address)]
        if blocked or not addresses:
            raise BlockedAddressError(f"refused: {host} resolves to non-public address(es) {', '.join(blocked)}")

    def check_connected(self, address: str | None) -> None:
        if address is None or not is_public_address(address):
            raise BlockedAddressError(f"refused: connected to non-public address {address}")


def make_connector(
    *, allow_private: bool, limit: int, resolver: aiohttp.abc.AbstractResolver | None = None
) -> aiohttp.TCPConnector:
    """The connector for the dispatcher's session. The default resolver is the threaded
    getaddrinfo one, so /etc/hosts and the system's resolver configuration apply."""
    cls = aiohttp.TCPConnector if allow_private else GuardedConnector
    return cls(limit=limit, resolver=resolver or aiohttp.ThreadedResolver(), ttl_dns_cache=10)
