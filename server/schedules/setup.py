"""Wiring schedules into the app: the routes, the collectors file's schedules, the scheduler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.background import startup_turn
from server.keys import POOL, REGISTRY, SETTINGS
from server.schedules import store
from server.schedules.declared import load_declared_schedules
from server.schedules.keys import DECLARED_SCHEDULES, SCHEDULE_CLOCK, SCHEDULER
from server.schedules.routes import routes
from server.schedules.scheduler import Scheduler, system_clock

log = logging.getLogger(__name__)


async def schedules_ctx(app: web.Application) -> AsyncIterator[None]:
    """Upsert the declared schedules, then fire due ones until shutdown (unless this process
    is told not to: COLLECTOR_HUB_RUN_SCHEDULES=0)."""
    settings = app[SETTINGS]
    declared = app[DECLARED_SCHEDULES]
    async with startup_turn():  # in turn with the first ticks of the loops started before: one connection
        await store.upsert_declared(app[POOL], declared, app[SCHEDULE_CLOCK]())
    if declared:
        log.info("%d schedule(s) declared in the collectors file", len(declared))
    if not settings.run_schedules:
        yield
        return
    registry = app[REGISTRY]
    scheduler = Scheduler(app[POOL], registry, settings, app[SCHEDULE_CLOCK])
    app[SCHEDULER] = scheduler
    scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()


def setup_schedules(app: web.Application) -> None:
    """Call after the database context is registered. Reads the collectors file's schedules
    now, so a bad one stops the server before it listens."""
    registry = app[REGISTRY]
    app[DECLARED_SCHEDULES] = load_declared_schedules(app[SETTINGS].collectors_file, registry)
    app[SCHEDULE_CLOCK] = system_clock
    app.add_routes(routes)
    app.cleanup_ctx.append(schedules_ctx)
