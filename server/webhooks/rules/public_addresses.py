"""Which receiver URLs and addresses are public: the rules of the SSRF guard that need no
network and no HTTP client (docs/WEBHOOKS.md). ``address_guard`` applies them on every attempt;
the settings and the registration checks import them from here, so reading the settings does not
import aiohttp (the CLI's quick commands start without it).
"""

from __future__ import annotations

import ipaddress

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Names that never mean a public host, whatever a resolver says.
PRIVATE_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa", ".lan")
PRIVATE_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_public_address(address: str | IPAddress) -> bool:
    """True only for globally routable unicast addresses. IPv4-mapped/compatible IPv6 forms
    are judged by the IPv4 address they carry."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.packed[:12] == bytes(12):  # deprecated IPv4-compatible ::a.b.c.d
            return False
    return bool(
        ip.is_global
        and not (ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local)
        and not (ip.is_reserved or ip.is_unspecified)
    )


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# Every refusal that the setting lifts names it.
ALLOW_PRIVATE_HINT = (
    " (set COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE=1 to allow http and private addresses on closed networks)"
)


def url_problem(url: URL, *, allow_private: bool) -> str | None:
    """Why this URL may not receive webhooks, from the URL alone (no DNS); None if fine."""
    if url.scheme not in ("https", "http") or not url.is_absolute() or not url.raw_host:
        return "url must be an absolute http(s) URL"
    if url.user is not None or url.password is not None:
        return "url must not contain credentials (user:password@); use the signature to authenticate"
    if url.fragment:
        return "url must not contain a fragment (#...)"
    if allow_private:
        return None
    if url.scheme != "https":
        return "url must use https" + ALLOW_PRIVATE_HINT
    host = url.raw_host.rstrip(".").lower()
    ip = literal_ip(host)
    if ip is not None:
        if not is_public_address(ip):
            return f"url must not point at a non-public address ({ip}){ALLOW_PRIVATE_HINT}"
        return None
    if "." not in host or host in PRIVATE_NAMES or host.endswith(PRIVATE_NAME_SUFFIXES):
        return f"url host {host!r} is not a public DNS name{ALLOW_PRIVATE_HINT}"
    # Numeric shorthands such as 2130706433 or 127.1 that resolvers map onto addresses.
    if all(part.isdigit() or part.startswith("0x") for part in host.split(".")):
        return f"url host {host!r} is not a canonical address or a DNS name"
    return None
