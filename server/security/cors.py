"""Browsers: CORS (aiohttp-cors) on every route, and no WebSocket from a foreign page.

CORS follows the spec's Security section: allowed origins from settings (by default the
spec's three), methods GET, POST, PUT, PATCH, DELETE, OPTIONS, the spec's request headers
(plus If-None-Match and Last-Event-ID, which polling and EventSource send), credentials
allowed, preflights cached for 24 hours. Response headers a dashboard needs to read (ETag,
the rate-limit headers, the request id) are exposed.

``setup_cors`` walks the router, so it must run after every route is added: ``create_app``
calls it last (``tests/test_cors.py`` sends a preflight to every route in the router).

WebSocket handshakes are not subject to CORS: a page on any site can open one to this
server, and the browser attaches this server's cookies (one of the ways a stream may carry
its credential). So an upgrade whose ``Origin`` is neither an allowed origin nor this server
itself is refused with 403 before anything else happens (cross-site WebSocket hijacking).
Clients that are not browsers send no Origin and are not affected.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from server.api.middleware import error_body
from server.api.roles import requires
from server.compat import CORS_PREFLIGHT_HANDLER
from server.keys import SETTINGS
from server.observability.metrics import AUTH_FAILURES

CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_REQUEST_HEADERS = (
    "Content-Type",
    "Authorization",
    "X-Requested-With",
    "X-API-Key",
    "Cache-Control",
    "Pragma",
    "If-None-Match",
    "Last-Event-ID",
    "X-Request-Id",
)
CORS_EXPOSED_HEADERS = (
    "ETag",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-Request-Id",
    "WWW-Authenticate",
)
CORS_MAX_AGE = 86400

# Preflights carry no credentials (the Fetch standard forbids it), so the handler aiohttp-cors
# installs on every resource is public. Declared here, on aiohttp-cors's own function (found by
# server/compat.py), so the role test and the enforcement middleware treat it like any other route.
requires("public")(CORS_PREFLIGHT_HANDLER)


def setup_cors(app: web.Application) -> None:
    """CORS on every route registered so far (call it after the last route is added)."""
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=True,
        expose_headers=CORS_EXPOSED_HEADERS,
        allow_headers=CORS_REQUEST_HEADERS,
        allow_methods=CORS_METHODS,
        max_age=CORS_MAX_AGE,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in app[SETTINGS].cors_origins})
    for route in list(app.router.routes()):
        if route.method != hdrs.METH_OPTIONS:
            cors.add(route)


def is_preflight_route(route: web.AbstractRoute) -> bool:
    """The OPTIONS routes aiohttp-cors adds (not part of the documented API)."""
    return route.method == hdrs.METH_OPTIONS and getattr(route.handler, "__func__", None) is CORS_PREFLIGHT_HANDLER


def is_same_origin(request: web.Request, origin: str) -> bool:
    """The page was served by this server (the built-in dashboard): Origin names our Host."""
    _, sep, rest = origin.partition("://")
    return bool(sep) and rest.lower() == request.host.lower()


PREFLIGHT_FAILED = "CORS preflight request failed: "
ORIGINS_SETTING = "COLLECTOR_HUB_CORS_ORIGINS"


def preflight_refusal(request: web.Request, reason: str) -> str:
    """What a refused preflight tells the developer: which part was refused and, for an
    origin, the setting that allows it (aiohttp-cors's own text, a bare 403, says neither)."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return "CORS preflight refused: the request has no Origin header"
    if reason.startswith("origin ") or reason == "no origins are allowed":
        return (
            f"CORS preflight refused: origin {origin[:200]!r} is not allowed; the server allows "
            f"{', '.join(request.app[SETTINGS].cors_origins) or 'no origin'} (setting {ORIGINS_SETTING})"
        )
    return f"CORS preflight refused: {reason}; allowed methods: {', '.join(CORS_METHODS)}; allowed headers: " + (
        ", ".join(CORS_REQUEST_HEADERS)
    )


def is_preflight_request(request: web.Request) -> bool:
    return hdrs.ORIGIN in request.headers and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers


@web.middleware
async def explain_refused_preflights(request: web.Request, handler: Handler) -> web.StreamResponse:
    """OPTIONS exists only for CORS preflights: any other OPTIONS request is a 405 listing
    the path's methods, and a refused preflight says what was refused."""
    route = request.match_info.route
    if request.method == hdrs.METH_OPTIONS and is_preflight_route(route) and not is_preflight_request(request):
        resource = route.resource
        allowed = sorted({r.method for r in (resource or []) if r.method != hdrs.METH_OPTIONS})
        return error_body(
            405, "Method OPTIONS not allowed (it only answers CORS preflights)", {"Allow": ", ".join(allowed)}
        )
    try:
        return await handler(request)
    except web.HTTPForbidden as exc:
        if request.method != hdrs.METH_OPTIONS or not (exc.text or "").startswith(PREFLIGHT_FAILED):
            raise
        return error_body(403, preflight_refusal(request, (exc.text or "").removeprefix(PREFLIGHT_FAILED)))


@web.middleware
async def refuse_foreign_websocket_origins(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        origin = request.headers.get(hdrs.ORIGIN)
        if (
            origin is not None
            and origin not in request.app[SETTINGS].cors_origins
            and not is_same_origin(request, origin)
        ):
            AUTH_FAILURES.labels("origin").inc()
            return error_body(403, "WebSocket connections from this Origin are not allowed")
    return await handler(request)
