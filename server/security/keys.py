"""Security's application and request keys: who is calling, and the rate limiter."""

from __future__ import annotations

from aiohttp import web

from server.security.credentials import Authenticator, Principal
from server.security.rate_limit_counters import Decision, RateLimiter

AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")

# Per request
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
RATE_LIMIT_DECISION: web.RequestKey[Decision] = web.RequestKey("rate_limit_decision")
