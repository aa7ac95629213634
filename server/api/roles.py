"""Who may call a route: every handler declares exactly one role.

``public`` needs no credentials (dashboard page, static files, docs, health); ``read`` covers
GET routes and live streams; ``trigger`` starts and cancels runs and reports progress over
HTTP; ``admin`` manages webhooks and keys. A role implies the ones before it in ``ROLES``
(admin may trigger and read).

The role is an attribute on the handler, so the declaration sits next to the route and a test
can walk the router and fail on any route without one. Enforcement lives in the security
middleware; this module only records the declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from collectors.contract import ROLES

_ATTR = "__collector_hub_role__"
# Live streams may carry the credential in the URL or a cookie of this name (EventSource and
# browsers' WebSocket cannot send headers); the security layer reads it there.
STREAM_TOKEN_NAME = "access_token"

F = TypeVar("F", bound=Callable[..., Any])


def requires(role: str) -> Callable[[F], F]:
    """Declare the role a handler needs. Returns the same function, so decorator order
    relative to ``@routes.get(...)`` does not matter."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")

    def mark(handler: F) -> F:
        setattr(handler, _ATTR, role)
        return handler

    return mark


def role_of_handler(handler: Any) -> str | None:
    return getattr(handler, _ATTR, None)


def role_of_route(route: web.AbstractRoute) -> str | None:
    """The declared role of a router entry; static file routes are public by construction."""
    if isinstance(route.resource, web.StaticResource):
        return "public"
    return role_of_handler(route.handler)


def is_stream_request(request: web.Request) -> bool:
    """Routes that may take a credential from the URL or a cookie (live streams)."""
    return request.path == "/api/ws" or request.path.endswith("/events")


def role_satisfies(granted: str, needed: str) -> bool:
    return ROLES.index(granted) >= ROLES.index(needed)
