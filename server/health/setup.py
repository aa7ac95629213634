"""Wiring health into the app: its route, and the evaluator's lifetime on every node."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server.health.evaluator import HealthEvaluator
from server.health.keys import HEALTH_EVALUATOR
from server.health.routes import routes
from server.keys import POOL, REGISTRY, SETTINGS
from server.realtime.keys import HUB
from server.webhooks.keys import WEBHOOK_DISPATCHER


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    dispatcher = app[WEBHOOK_DISPATCHER]
    registry = app[REGISTRY]
    evaluator = HealthEvaluator(app[POOL], registry, app[SETTINGS].health_interval, dispatcher.wake)
    app[HEALTH_EVALUATOR] = evaluator
    app[HUB].wake_ups.when_job_ended(evaluator.wake)  # a job's end may change its collector's state
    evaluator.start()
    try:
        yield
    finally:
        await evaluator.stop()


def setup_health(app: web.Application) -> None:
    """After the webhooks part: the evaluator wakes its dispatcher when it writes an alert."""
    app.add_routes(routes)
    app.cleanup_ctx.append(health_ctx)
