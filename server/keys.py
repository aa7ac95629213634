"""Typed application keys: every shared resource of the app, in one place."""

from __future__ import annotations

import aiopg
from aiohttp import web

from collectors.registry import CollectorSpec
from server.realtime.hub import Hub
from server.runner.runner import Runner
from server.security.credentials import Authenticator, Principal
from server.security.limiter import Decision, RateLimiter
from server.settings import Settings
from server.webhooks.dispatcher import Dispatcher

SETTINGS = web.AppKey("settings", Settings)
DATABASE_URL = web.AppKey("database_url", str)
POOL = web.AppKey("pool", aiopg.Pool)
REGISTRY = web.AppKey("registry", dict[str, CollectorSpec])
RUNNER: web.AppKey[Runner] = web.AppKey("runner")
WEBHOOK_DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("webhook_dispatcher")

# Per request
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")

# Security (server/security/)
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
RATE_LIMIT_DECISION: web.RequestKey[Decision] = web.RequestKey("rate_limit_decision")
HUB: web.AppKey[Hub] = web.AppKey("hub")
