"""The rate-limit middleware: which requests count (``is_rate_limited``), whom they count
against (``client_of``), the 429 and the ``RateLimit-*`` headers. The counting itself, in
Redis or in process, is ``server.security.rate_limit_counters``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from server.api.client_address import client_address
from server.api.middleware import error_body
from server.keys import SETTINGS
from server.observability.metrics import RATE_LIMITED
from server.security.keys import PRINCIPAL, RATE_LIMIT_DECISION, RATE_LIMITER
from server.security.rate_limit_counters import RateLimiter


def is_rate_limited(request: web.Request) -> bool:
    return is_rate_limited_route(request.method, request.path)


def is_rate_limited_route(method: str, path: str) -> bool:
    """Reads (polls) of the spec's paths. The spec's runs/* were all reads; the writes added
    under it (a collector's progress reports, cancels) are not polls, and a collector
    reporting every second must not be refused for it (the runner throttles those writes).
    ``path`` may also be a route template: the OpenAPI document asks with those."""
    if method not in ("GET", "HEAD"):
        return False
    return path.startswith(("/api/collectors/runs/", "/api/inventory/")) or path == "/api/collectors/history"


def client_of(request: web.Request) -> str:
    client_id = request[PRINCIPAL].client_id if PRINCIPAL in request else None
    if client_id is not None:
        return client_id
    return "addr:" + client_address(request, request.app[SETTINGS].trusted_proxies)


@web.middleware
async def enforce_rate_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    limiter = request.app[RATE_LIMITER]
    if limiter.limit == 0 or not is_rate_limited(request) or request.method == "OPTIONS":
        return await handler(request)
    decision = await limiter.hit(client_of(request))
    request[RATE_LIMIT_DECISION] = decision
    if not decision.allowed:
        RATE_LIMITED.inc()
        return error_body(
            429,
            f"Rate limit exceeded: {decision.limit} requests per minute; retry in {decision.reset_seconds} s",
            {"Retry-After": str(decision.reset_seconds)},
        )
    return await handler(request)


async def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the headers go on every counted response, streams included."""
    decision = request.get(RATE_LIMIT_DECISION)
    if decision is not None:
        response.headers.update(decision.headers())


async def rate_limiter_ctx(app: web.Application) -> AsyncIterator[None]:
    limiter = RateLimiter(app[SETTINGS])
    app[RATE_LIMITER] = limiter
    try:
        yield
    finally:
        await limiter.close()
