"""Typed application keys: every shared resource of the app, in one place."""

from __future__ import annotations

import aiopg
from aiohttp import web

from collectors.registry import CollectorSpec
from server.realtime.hub import Hub
from server.runner.runner import Runner
from server.schedules.definition import ScheduleDefinition
from server.schedules.scheduler import Clock, Scheduler
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
# Schedules (server/schedules/): the clock every schedule decision reads (tests inject one),
# and this process's scheduler when it fires schedules.
SCHEDULE_CLOCK: web.AppKey[Clock] = web.AppKey("schedule_clock")
SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler")
DECLARED_SCHEDULES: web.AppKey[tuple[ScheduleDefinition, ...]] = web.AppKey("declared_schedules")

# Per request
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")

# Security (server/security/)
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
RATE_LIMIT_DECISION: web.RequestKey[Decision] = web.RequestKey("rate_limit_decision")
HUB: web.AppKey[Hub] = web.AppKey("hub")
